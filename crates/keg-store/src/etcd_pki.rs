//! Certificates for an etcd cluster on loopback: a CA of its own, one certificate the members
//! serve clients and each other with, and one client certificate for keg's servers. Used for
//! the etcd keg starts for a cluster of several servers, and by the tests of TLS to etcd.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};

use crate::EtcdTls;
use crate::etcd_member::MemberTls;

/// The PEM files, in one directory.
#[derive(Debug, Clone)]
pub struct EtcdPki {
    /// The CA certificate: members trust clients and each other by it, clients trust members.
    pub ca_file: PathBuf,
    /// The members' certificate (127.0.0.1 and localhost; server and client use).
    pub member_cert: PathBuf,
    /// Its key.
    pub member_key: PathBuf,
    /// The client certificate (CN `keg`).
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

fn rcgen_error(e: rcgen::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

impl EtcdPki {
    /// Makes a new CA named `ca_name` and its two certificates as `ca_name*.crt|key` in `dir`.
    pub fn create(dir: &Path, ca_name: &str) -> std::io::Result<EtcdPki> {
        let path = |suffix: &str| dir.join(format!("{ca_name}{suffix}"));
        let pki = EtcdPki {
            ca_file: path(".crt"),
            member_cert: path("-member.crt"),
            member_key: path("-member.key"),
            client_cert: path("-client.crt"),
            client_key: path("-client.key"),
        };
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
        ca.distinguished_name.push(DnType::CommonName, ca_name);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().map_err(rcgen_error)?;
        let ca_cert = ca.self_signed(&ca_key).map_err(rcgen_error)?;
        std::fs::write(&pki.ca_file, ca_cert.pem())?;
        let issuer = Issuer::new(ca, ca_key);

        let mut member =
            CertificateParams::new(vec!["localhost".to_owned()]).map_err(rcgen_error)?;
        member
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        member
            .distinguished_name
            .push(DnType::CommonName, "etcd-member");
        // A member is a server to clients and to peers, and a client of its peers.
        member.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let member_key = KeyPair::generate().map_err(rcgen_error)?;
        let member_cert = member
            .signed_by(&member_key, &issuer)
            .map_err(rcgen_error)?;
        std::fs::write(&pki.member_cert, member_cert.pem())?;
        write_private(&pki.member_key, &member_key.serialize_pem())?;

        let mut client = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
        client.distinguished_name.push(DnType::CommonName, "keg");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().map_err(rcgen_error)?;
        let client_cert = client
            .signed_by(&client_key, &issuer)
            .map_err(rcgen_error)?;
        std::fs::write(&pki.client_cert, client_cert.pem())?;
        write_private(&pki.client_key, &client_key.serialize_pem())?;
        Ok(pki)
    }

    /// TLS for members: clients and peers must show a certificate of this CA.
    pub fn member_tls(&self) -> MemberTls {
        MemberTls {
            cert_file: self.member_cert.clone(),
            key_file: self.member_key.clone(),
            client_ca_file: Some(self.ca_file.clone()),
            peers: true,
        }
    }

    /// TLS for a client (keg's servers).
    pub fn client_tls(&self) -> EtcdTls {
        EtcdTls {
            ca_file: Some(self.ca_file.clone()),
            cert_file: Some(self.client_cert.clone()),
            key_file: Some(self.client_key.clone()),
        }
    }
}
