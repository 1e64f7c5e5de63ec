//! The cluster's certificates: a CA made at first start and kept in the data dir, and a
//! serving certificate for 127.0.0.1, localhost, the host name and any extra names.

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// PEM material for serving and for clients.
pub struct Pki {
    /// The CA certificate (clients trust it).
    pub ca_pem: String,
    /// The serving certificate chain.
    pub server_cert_pem: String,
    /// The serving key.
    pub server_key_pem: String,
}

fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "keg-ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// Writes a file only its owner can read.
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// The cluster CA: its certificate, and the key that signs with it.
pub struct ClusterCa {
    /// The CA certificate (clients trust it).
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl ClusterCa {
    /// Loads the CA from `dir`, creating it the first time.
    pub fn load_or_create(dir: &Path) -> Result<ClusterCa> {
        let ca_cert_path = dir.join("ca.crt");
        let ca_key_path = dir.join("ca.key");
        let (ca_pem, ca_key) = if ca_cert_path.exists() && ca_key_path.exists() {
            let key_pem = fs::read_to_string(&ca_key_path)
                .with_context(|| format!("reading {}", ca_key_path.display()))?;
            let key = KeyPair::from_pem(&key_pem)
                .with_context(|| format!("{} is not a valid key", ca_key_path.display()))?;
            (fs::read_to_string(&ca_cert_path)?, key)
        } else {
            let key = KeyPair::generate()?;
            let cert = ca_params()?.self_signed(&key)?;
            write_private(&ca_key_path, &key.serialize_pem())?;
            fs::write(&ca_cert_path, cert.pem())?;
            (cert.pem(), key)
        };
        // The CA's subject comes from the same parameters it was made with, so certificates
        // signed now chain to the stored CA certificate.
        let issuer = Issuer::new(ca_params()?, ca_key);
        Ok(ClusterCa { ca_pem, issuer })
    }

    /// A client certificate for `user` in `groups` (its CN and O, as upstream's x509
    /// authenticator reads them), valid from the start of this month for a year: the certificate and key PEM.
    pub fn issue_client(&self, user: &str, groups: &[String]) -> Result<(String, String)> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, user);
        for group in groups {
            params
                .distinguished_name
                .push(DnType::OrganizationName, group.as_str());
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let today = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date();
        let month = today.month() as u8;
        params.not_before = rcgen::date_time_ymd(today.year().into(), month, 1);
        params.not_after = rcgen::date_time_ymd((today.year() + 1).into(), month, 1);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

impl ClusterCa {
    /// A certificate for a verified certificate request: its subject and alternative names,
    /// the key usages and extended key usages named in `usages` (certificates.k8s.io's
    /// words), valid from `not_before` to `not_after`; the certificate PEM.
    pub fn sign(
        &self,
        request: &keg_apimachinery::csr::Request,
        usages: &[String],
        not_before: jiff::Timestamp,
        not_after: jiff::Timestamp,
    ) -> Result<String> {
        let mut params = CertificateParams::default();
        // rcgen keeps one value of each attribute type: a subject with two (two groups, say)
        // would lose one, so it is refused rather than issued with fewer.
        for (i, (attribute, _)) in request.subject.iter().enumerate() {
            anyhow::ensure!(
                !request.subject[..i].iter().any(|(a, _)| a == attribute),
                "the subject names {attribute} more than once, which keg's signer cannot issue yet"
            );
        }
        for (attribute, value) in &request.subject {
            let kind = match *attribute {
                "CN" => DnType::CommonName,
                "O" => DnType::OrganizationName,
                "OU" => DnType::OrganizationalUnitName,
                "C" => DnType::CountryName,
                "ST" => DnType::StateOrProvinceName,
                "L" => DnType::LocalityName,
                _ => continue,
            };
            params.distinguished_name.push(kind, value.as_str());
        }
        for name in &request.dns_names {
            params
                .subject_alt_names
                .push(SanType::DnsName(name.as_str().try_into()?));
        }
        for ip in &request.ip_addresses {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        for email in &request.emails {
            params
                .subject_alt_names
                .push(SanType::Rfc822Name(email.as_str().try_into()?));
        }
        for uri in &request.uris {
            params
                .subject_alt_names
                .push(SanType::URI(uri.as_str().try_into()?));
        }
        for usage in usages {
            use rcgen::ExtendedKeyUsagePurpose as Extended;
            match usage.as_str() {
                "signing" | "digital signature" => {
                    params.key_usages.push(KeyUsagePurpose::DigitalSignature);
                }
                "content commitment" => params.key_usages.push(KeyUsagePurpose::ContentCommitment),
                "key encipherment" => params.key_usages.push(KeyUsagePurpose::KeyEncipherment),
                "key agreement" => params.key_usages.push(KeyUsagePurpose::KeyAgreement),
                "data encipherment" => params.key_usages.push(KeyUsagePurpose::DataEncipherment),
                "cert sign" => params.key_usages.push(KeyUsagePurpose::KeyCertSign),
                "crl sign" => params.key_usages.push(KeyUsagePurpose::CrlSign),
                "encipher only" => params.key_usages.push(KeyUsagePurpose::EncipherOnly),
                "decipher only" => params.key_usages.push(KeyUsagePurpose::DecipherOnly),
                "any" => params.extended_key_usages.push(Extended::Any),
                "server auth" => params.extended_key_usages.push(Extended::ServerAuth),
                "client auth" => params.extended_key_usages.push(Extended::ClientAuth),
                "code signing" => params.extended_key_usages.push(Extended::CodeSigning),
                "email protection" | "s/mime" => {
                    params.extended_key_usages.push(Extended::EmailProtection);
                }
                "timestamping" => params.extended_key_usages.push(Extended::TimeStamping),
                "ocsp signing" => params.extended_key_usages.push(Extended::OcspSigning),
                _ => {} // the IPsec and SGC usages: no extension upstream's signer would add
            }
        }
        params.key_usages.dedup();
        params.extended_key_usages.dedup();
        params.use_authority_key_identifier_extension = true;
        params.not_before = offset(not_before)?;
        params.not_after = offset(not_after)?;
        let key = rcgen::SubjectPublicKeyInfo::from_der(&request.public_key)
            .context("the request's public key")?;
        Ok(params.signed_by(&key, &self.issuer)?.pem())
    }
}

/// A jiff timestamp as the `time` crate's, which rcgen takes.
fn offset(at: jiff::Timestamp) -> Result<time::OffsetDateTime> {
    Ok(time::OffsetDateTime::from_unix_timestamp(at.as_second())?)
}

impl Pki {
    /// Loads the CA from `dir` (creating it the first time) and issues a serving certificate
    /// for the local names plus `extra_names` (DNS names or IP addresses).
    pub fn load_or_create(dir: &Path, extra_names: &[String]) -> Result<Pki> {
        let ClusterCa { ca_pem, issuer } = ClusterCa::load_or_create(dir)?;
        let mut names = vec![
            "localhost".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            "kubernetes.default.svc.cluster.local".to_string(),
        ];
        if let Ok(host) = fs::read_to_string("/proc/sys/kernel/hostname") {
            names.push(host.trim().to_string());
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let mut ips: Vec<IpAddr> = vec!["127.0.0.1".parse()?, "10.43.0.1".parse()?];
        for name in extra_names {
            match name.parse::<IpAddr>() {
                Ok(ip) => ips.push(ip),
                Err(_) => names.push(name.clone()),
            }
        }
        names.sort();
        names.dedup();
        for name in names.into_iter().filter(|n| !n.is_empty()) {
            params
                .subject_alt_names
                .push(SanType::DnsName(name.try_into()?));
        }
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
        let server_key = KeyPair::generate()?;
        let server_cert = params.signed_by(&server_key, &issuer)?;
        write_private(&dir.join("server.key"), &server_key.serialize_pem())?;
        fs::write(dir.join("server.crt"), server_cert.pem())?;
        Ok(Pki {
            ca_pem,
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
        })
    }

    /// A rustls server configuration offering HTTP/2 and HTTP/1.1.
    pub fn server_config(&self) -> Result<rustls::ServerConfig> {
        let certs = rustls_pemfile::certs(&mut self.server_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        let key = rustls_pemfile::private_key(&mut self.server_key_pem.as_bytes())?
            .context("no private key in PEM")?;
        // Client certificates are optional (most clients bring a token) but, when presented,
        // must chain to the cluster CA: they name the user.
        let mut roots = rustls::RootCertStore::empty();
        for ca in rustls_pemfile::certs(&mut self.ca_pem.as_bytes()) {
            roots.add(ca?)?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .allow_unauthenticated()
            .build()?;
        let mut config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}
