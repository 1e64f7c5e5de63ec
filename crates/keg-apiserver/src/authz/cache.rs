//! The RBAC objects in memory, as upstream's informers keep them for the authorizer: listed
//! once, then kept current by a watch on the store (so every server on a shared store sees
//! every change). Writers can wait until the cache has seen their write.

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
    let parts: Vec<&str> = rest.split('/').collect();
    let value = || -> Option<serde_json::Value> { serde_json::from_slice(&kv.value).ok() };
    match parts.as_slice() {
        ["roles", ns, name] => {
            let key = (ns.to_string(), name.to_string());
            match value().and_then(|v| serde_json::from_value::<Role>(v).ok()) {
                Some(role) if put => {
                    policy.roles.insert(key, role.rules.unwrap_or_default());
                }
                _ => {
                    policy.roles.remove(&key);
                }
            }
        }
        ["rolebindings", ns, name] => {
            let key = (ns.to_string(), name.to_string());
            match value().and_then(|v| serde_json::from_value::<RoleBinding>(v).ok()) {
                Some(binding) if put => {
                    policy.role_bindings.insert(key, binding);
                }
                _ => {
                    policy.role_bindings.remove(&key);
                }
            }
        }
        ["clusterroles", name] => {
            match value().and_then(|v| serde_json::from_value::<ClusterRole>(v).ok()) {
                Some(role) if put => {
                    policy
                        .cluster_roles
                        .insert(name.to_string(), role.rules.unwrap_or_default());
                }
                _ => {
                    policy.cluster_roles.remove(*name);
                }
            }
        }
        ["clusterrolebindings", name] => {
            match value().and_then(|v| serde_json::from_value::<ClusterRoleBinding>(v).ok()) {
                Some(binding) if put => {
                    policy
                        .cluster_role_bindings
                        .insert(name.to_string(), binding);
                }
                _ => {
                    policy.cluster_role_bindings.remove(*name);
                }
            }
        }
        _ => {}
    }
}
