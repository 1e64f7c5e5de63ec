//! Client certificates: TLS has already checked that the certificate chains to the cluster
//! CA; its subject names the user (CN) and the groups (O), as upstream's x509 authenticator.

use x509_parser::prelude::{FromDer, X509Certificate};

use super::UserInfo;

/// The user a connection's client certificate names, read once per connection and put in
/// each of its requests' extensions by the server.
#[derive(Debug, Clone)]
pub struct ClientCertificateUser(pub UserInfo);

/// The user a verified client certificate chain names (its first certificate's subject);
/// `None` when it names none.
pub fn user(chain: &[impl AsRef<[u8]>]) -> Option<UserInfo> {
    let der = chain.first()?.as_ref();
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())?
        .to_string();
    if name.is_empty() {
        return None;
    }
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(String::from))
        .collect();
    groups.push(super::AUTHENTICATED.to_string());
    Some(UserInfo {
        name,
        groups,
        ..UserInfo::default()
    })
}
