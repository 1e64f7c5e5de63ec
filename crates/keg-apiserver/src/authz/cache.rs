//! The RBAC objects in memory, as upstream's informers keep them for the authorizer: listed
//! once, then kept current by a watch on the store (so every server on a shared store sees
//! every change). Writers can wait until the cache has seen their write.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use keg_store::{EventKind, KeyValue, ListOptions, Revision, Store};
use tokio::sync::watch;

use super::rbac::Policy;

const PREFIX: &str = "/registry/rbac.authorization.k8s.io/";

/// The current RBAC policy, fed by the store.
pub struct PolicyCache {
    policy: RwLock<Arc<Policy>>,
    seen: watch::Sender<Revision>,
}

impl PolicyCache {
    /// Lists the RBAC objects and starts watching for changes.
    pub async fn start(store: Arc<dyn Store>) -> keg_store::Result<Arc<PolicyCache>> {
        let (policy, revision) = list(&store).await?;
        let cache = Arc::new(PolicyCache {
            policy: RwLock::new(Arc::new(policy)),
            seen: watch::Sender::new(revision),
        });
        tokio::spawn(follow(cache.clone(), store, revision));
        Ok(cache)
    }

    /// The policy now.
    pub fn snapshot(&self) -> Arc<Policy> {
        self.policy.read().expect("policy lock").clone()
    }

    /// Waits (up to a second) until the cache has seen the store at `revision`, so that a
    /// request right after a write to RBAC objects is decided by them.
    pub async fn wait_for(&self, revision: Revision) {
        let mut seen = self.seen.subscribe();
        let caught_up = seen.wait_for(|r| *r >= revision);
        let _ = tokio::time::timeout(Duration::from_secs(1), caught_up).await;
    }

    fn apply(&self, kind: EventKind, kv: &KeyValue) {
        let mut guard = self.policy.write().expect("policy lock");
        let policy = Arc::make_mut(&mut guard);
        apply(policy, kind == EventKind::Put, kv);
        drop(guard);
        self.seen.send_replace(kv.mod_revision);
    }
}

async fn list(store: &Arc<dyn Store>) -> keg_store::Result<(Policy, Revision)> {
    let page = store
        .list(ListOptions {
            prefix: PREFIX.to_string(),
            ..ListOptions::default()
        })
        .await?;
    let mut policy = Policy::default();
    for kv in &page.items {
        apply(&mut policy, true, kv);
    }
    Ok((policy, page.revision))
}

/// Follows the store's changes; after a failed watch (compaction overtook it), lists again.
async fn follow(cache: Arc<PolicyCache>, store: Arc<dyn Store>, mut revision: Revision) {
    loop {
        match store.watch(PREFIX, revision).await {
            Ok(mut events) => {
                while let Some(event) = events.next().await {
                    match event {
                        Ok(event) => {
                            revision = event.kv.mod_revision;
                            cache.apply(event.kind, &event.kv);
                        }
                        Err(e) => {
                            tracing::warn!("RBAC cache watch ended: {e}");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("RBAC cache watch failed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        match list(&store).await {
            Ok((policy, listed)) => {
                *cache.policy.write().expect("policy lock") = Arc::new(policy);
                revision = listed;
                cache.seen.send_replace(listed);
            }
            Err(e) => tracing::warn!("RBAC cache relist failed: {e}"),
        }
    }
}

/// Puts (or removes) the object stored under `kv.key`.
fn apply(policy: &mut Policy, put: bool, kv: &KeyValue) {
    let Some(rest) = kv.key.strip_prefix(PREFIX) else {
        return;
    };
    let pair = |ns: &str, name: &str| (ns.to_string(), name.to_string());
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["roles", ns, name] => keep(&mut policy.roles, pair(ns, name), put, kv, |r: Role| {
            r.rules.unwrap_or_default()
        }),
        ["rolebindings", ns, name] => keep(
            &mut policy.role_bindings,
            pair(ns, name),
            put,
            kv,
            |b: RoleBinding| b,
        ),
        ["clusterroles", name] => keep(
            &mut policy.cluster_roles,
            name.to_string(),
            put,
            kv,
            |r: ClusterRole| r.rules.unwrap_or_default(),
        ),
        ["clusterrolebindings", name] => keep(
            &mut policy.cluster_role_bindings,
            name.to_string(),
            put,
            kv,
            |b: ClusterRoleBinding| b,
        ),
        _ => {}
    }
}

/// Keeps what `held` takes from the object in `kv` under `key`, or forgets the key when the
/// object was deleted (or does not decode).
fn keep<K: Ord, T: serde::de::DeserializeOwned, V>(
    map: &mut BTreeMap<K, V>,
    key: K,
    put: bool,
    kv: &KeyValue,
    held: impl FnOnce(T) -> V,
) {
    match put
        .then(|| serde_json::from_slice::<T>(&kv.value).ok())
        .flatten()
    {
        Some(obj) => {
            map.insert(key, held(obj));
        }
        None => {
            map.remove(&key);
        }
    }
}
