//! The secrets every API server of one cluster must share: the CA's certificate and key, the
//! service-account signing key and the admin token. They are one key in the store,
//! [`KEY`], created if absent by the first server to start (with the material already in its
//! data dir, or made new), so that of servers starting together one wins and the others take
//! the winner's; each server then writes them into its data dir, where [`crate::pki`] and
//! [`crate::auth`] read them as before. So any server accepts the tokens and client
//! certificates another issued, and every server's serving certificate (each issues its own,
//! for its own names) chains to the one CA.
//!
//! With the embedded store this changes nothing a user sees (the store is in the data dir).
//! As upstream's Secrets, the key is stored unencrypted: whoever can read the store (etcd's
//! clients) can read it.

use std::path::Path;

use anyhow::{Context, Result};
use bytes::Bytes;
use keg_store::Store;
use serde::{Deserialize, Serialize};

/// The store key holding the cluster's shared secrets.
pub const KEY: &str = "/registry/keg/cluster-secrets";

/// The files of the data dir that hold shared material, each with its field below.
const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const SERVICE_ACCOUNT_KEY: &str = "service-account.key";
const ADMIN_TOKEN: &str = "admin.token";

/// The shared secrets, PEM and text as in their files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Secrets {
    ca_cert: String,
    ca_key: String,
    service_account_key: String,
    admin_token: String,
}

impl Secrets {
    fn files(&self) -> [(&'static str, &str); 4] {
        [
            (CA_CERT, &self.ca_cert),
            (CA_KEY, &self.ca_key),
            (SERVICE_ACCOUNT_KEY, &self.service_account_key),
            (ADMIN_TOKEN, &self.admin_token),
        ]
    }

    fn read(dir: &Path) -> Result<Secrets> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        };
        Ok(Secrets {
            ca_cert: read(CA_CERT)?,
            ca_key: read(CA_KEY)?,
            service_account_key: read(SERVICE_ACCOUNT_KEY)?,
            admin_token: read(ADMIN_TOKEN)?.trim().to_owned(),
        })
    }

    /// Writes each file that differs (the CA certificate readable, the rest private),
    /// warning about each replaced one when `warn`.
    fn write(&self, dir: &Path, warn: bool) -> Result<()> {
        for (name, contents) in self.files() {
            let path = dir.join(name);
            let current = std::fs::read_to_string(&path).ok();
            if current.as_deref().map(str::trim) == Some(contents.trim()) {
                continue;
            }
            if warn && current.is_some() {
                tracing::warn!(
                    "{} differs from the cluster's shared one in the store: replaced",
                    path.display()
                );
            }
            if name == CA_CERT {
                std::fs::write(&path, contents)
                    .with_context(|| format!("writing {}", path.display()))?;
            } else {
                crate::pki::write_private(&path, contents)?;
            }
        }
        Ok(())
    }

    fn decode(value: &[u8]) -> Result<Secrets> {
        serde_json::from_slice(value).with_context(|| format!("{KEY} in the store is not valid"))
    }
}

/// Makes the data dir hold the cluster's shared secrets: the store's when a server already
/// published them, else this server's own (made now if missing), published for the others.
pub async fn sync(store: &dyn Store, dir: &Path) -> Result<()> {
    if let Some(kv) = store.get(KEY).await.context("reading the shared secrets")? {
        return Secrets::decode(&kv.value)?.write(dir, true);
    }
    // Material of this data dir's own, from before it joined the store, is worth a warning
    // when replaced; what is made just below is not.
    let had_own = [CA_KEY, SERVICE_ACCOUNT_KEY, ADMIN_TOKEN]
        .iter()
        .any(|name| dir.join(name).exists());
    crate::pki::ClusterCa::load_or_create(dir)?;
    crate::auth::Tokens::load_or_create(dir)?;
    crate::auth::ServiceAccountTokens::load_or_create(dir)?;
    let mine = Secrets::read(dir)?;
    let value = Bytes::from(serde_json::to_vec(&mine)?);
    match store.create(KEY, value).await {
        Ok(_) => Ok(()),
        // Another server published first: theirs are the cluster's.
        Err(keg_store::Error::AlreadyExists { current, .. }) => {
            Secrets::decode(&current.value)?.write(dir, had_own)
        }
        Err(e) => Err(e).context("publishing the shared secrets"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_servers_secrets_are_every_servers() {
        let store = keg_store::RedbStore::in_memory();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        sync(&store, a.path()).await.unwrap();
        // b had its own CA and token before joining: replaced by a's.
        crate::pki::ClusterCa::load_or_create(b.path()).unwrap();
        crate::auth::Tokens::load_or_create(b.path()).unwrap();
        sync(&store, b.path()).await.unwrap();
        let (sa, sb) = (
            Secrets::read(a.path()).unwrap(),
            Secrets::read(b.path()).unwrap(),
        );
        assert_eq!(sa, sb);
        assert!(sa.ca_cert.contains("BEGIN CERTIFICATE"));
        assert_eq!(sa.admin_token.len(), 64);
        // Running again changes nothing.
        sync(&store, a.path()).await.unwrap();
        assert_eq!(Secrets::read(a.path()).unwrap(), sa);
    }
}
