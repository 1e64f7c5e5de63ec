//! PKCS#10 certificate requests as certificates.k8s.io reads them: the PEM block of a
//! CertificateSigningRequest's `spec.request`, its signature, and what signers check (the
//! subject and the alternative names).

use std::net::IpAddr;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

/// The PEM label of a certificate request.
const BLOCK_TYPE: &str = "CERTIFICATE REQUEST";

/// A parsed request whose signature has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The subject's attributes in order, as short names (`CN`, `O`, `OU`, `C`, `ST`, `L`)
    /// with their values; others are left out.
    pub subject: Vec<(&'static str, String)>,
    /// Requested DNS names.
    pub dns_names: Vec<String>,
    /// Requested IP addresses.
    pub ip_addresses: Vec<IpAddr>,
    /// Requested email addresses.
    pub emails: Vec<String>,
    /// Requested URIs.
    pub uris: Vec<String>,
    /// The DER SubjectPublicKeyInfo the certificate is to carry.
    pub public_key: Vec<u8>,
}

impl Request {
    /// The subject's common name (the user a client certificate names), empty if none.
    pub fn common_name(&self) -> &str {
        self.subject
            .iter()
            .find(|(k, _)| *k == "CN")
            .map_or("", |(_, v)| v)
    }

    /// The subject's organizations (the groups of a client certificate).
    pub fn organizations(&self) -> Vec<&str> {
        self.subject
            .iter()
            .filter(|(k, _)| *k == "O")
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Parses the PEM of a request and checks its signature; the error is upstream's wording
/// where it has one (`PEM block type must be CERTIFICATE REQUEST`).
pub fn parse(pem: &[u8]) -> Result<Request, String> {
    let der = first_block(pem)?;
    let (_, request) = X509CertificationRequest::from_der(&der)
        .map_err(|e| format!("x509: malformed certificate request: {e}"))?;
    request
        .verify_signature()
        .map_err(|_| "x509: invalid signature on the certificate request".to_string())?;
    let info = &request.certification_request_info;
    let mut parsed = Request {
        subject: subject(&info.subject),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        emails: Vec::new(),
        uris: Vec::new(),
        public_key: info.subject_pki.raw.to_vec(),
    };
    for extension in request.requested_extensions().into_iter().flatten() {
        let ParsedExtension::SubjectAlternativeName(names) = extension else {
            continue;
        };
        for name in &names.general_names {
            match name {
                GeneralName::DNSName(n) => parsed.dns_names.push((*n).to_owned()),
                GeneralName::RFC822Name(n) => parsed.emails.push((*n).to_owned()),
                GeneralName::URI(n) => parsed.uris.push((*n).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip(bytes) {
                        parsed.ip_addresses.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(parsed)
}

/// The DER of the first PEM block, which must be a certificate request, as Go's `pem.Decode`
/// and upstream's `ParseCSR` take it: text before the block is skipped.
fn first_block(pem: &[u8]) -> Result<Vec<u8>, String> {
    let wrong = || format!("PEM block type must be {BLOCK_TYPE}");
    let begin = pem
        .windows(11)
        .position(|w| w == b"-----BEGIN ")
        .ok_or_else(wrong)?;
    match x509_parser::pem::parse_x509_pem(&pem[begin..]) {
        Ok((_, block)) if block.label == BLOCK_TYPE => Ok(block.contents),
        _ => Err(wrong()),
    }
}

fn subject(name: &X509Name<'_>) -> Vec<(&'static str, String)> {
    use x509_parser::oid_registry as oids;
    let mut attributes = Vec::new();
    for attribute in name.iter_attributes() {
        let oid = attribute.attr_type();
        let short = if *oid == oids::OID_X509_COMMON_NAME {
            "CN"
        } else if *oid == oids::OID_X509_ORGANIZATION_NAME {
            "O"
        } else if *oid == oids::OID_X509_ORGANIZATIONAL_UNIT {
            "OU"
        } else if *oid == oids::OID_X509_COUNTRY_NAME {
            "C"
        } else if *oid == oids::OID_X509_STATE_OR_PROVINCE_NAME {
            "ST"
        } else if *oid == oids::OID_X509_LOCALITY_NAME {
            "L"
        } else {
            continue;
        };
        if let Ok(value) = attribute.as_str() {
            attributes.push((short, value.to_owned()));
        }
    }
    attributes
}

fn ip(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_pem_blocks_are_refused_with_upstreams_words() {
        let cert = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        assert_eq!(
            parse(cert.as_bytes()).unwrap_err(),
            "PEM block type must be CERTIFICATE REQUEST"
        );
        assert_eq!(
            parse(b"not pem").unwrap_err(),
            "PEM block type must be CERTIFICATE REQUEST"
        );
        let garbage =
            "-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8=\n-----END CERTIFICATE REQUEST-----\n";
        let err = parse(garbage.as_bytes()).unwrap_err();
        assert!(err.starts_with("x509: malformed"), "{err}");
    }
}
