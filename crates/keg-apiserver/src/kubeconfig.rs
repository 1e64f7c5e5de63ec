//! Kubeconfig files: the one the server writes to its data dir for the admin, and those
//! `keg create kubeconfig` writes for other users.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;

/// How a kubeconfig's user proves who it is.
pub enum Credential<'a> {
    /// A bearer token.
    Token(&'a str),
    /// A client certificate and its key (PEM).
    Certificate {
        /// The certificate.
        cert_pem: &'a str,
        /// Its private key.
        key_pem: &'a str,
    },
}

/// A kubeconfig with one cluster and context named `name`, whose user `user` holds
/// `credential`.
pub fn render(
    name: &str,
    server: &str,
    ca_pem: &str,
    user: &str,
    credential: Credential,
) -> String {
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let ca = b64(ca_pem);
    let credential = match credential {
        Credential::Token(token) => format!("    token: {token}\n"),
        Credential::Certificate { cert_pem, key_pem } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(cert_pem),
            b64(key_pem)
        ),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: {name}\ncontexts:\n- context:\n    cluster: {name}\n    user: {user}\n  name: {name}\ncurrent-context: {name}\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n{credential}"
    )
}

/// Writes `text` to `path` atomically; only its owner can read it (it holds credentials).
pub fn write(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The server URL of a kubeconfig's first cluster.
pub fn server_of(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{} is not a kubeconfig", path.display()))?;
    config["clusters"][0]["cluster"]["server"]
        .as_str()
        .map(String::from)
        .with_context(|| format!("{} names no server", path.display()))
}
