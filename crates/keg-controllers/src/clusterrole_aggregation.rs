//! The ClusterRole aggregation controller: a ClusterRole with an `aggregationRule` has as its
//! rules the rules of every ClusterRole its selectors pick, as upstream's does (so `admin`,
//! `edit` and `view` grow when a chart labels its role `aggregate-to-view`).

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use crate::{cache, owners};

/// Runs the controller until the process ends.
pub async fn run(client: Client) {
    let changes = Arc::new(watch::Sender::new(0u64));
    let mut changed = changes.subscribe();
    let api: Api<ClusterRole> = Api::all(client);
    let roles = cache::follow(api.clone(), changes);
    if roles.wait_until_ready().await.is_err() {
        return;
    }
    loop {
        for role in roles.state() {
            if let Some(rules) = aggregated_rules(&role, &roles)
                && role.rules.as_deref().unwrap_or_default() != rules.as_slice()
                && let Err(e) = write_rules(&api, &role, rules).await
            {
                // A conflict means the role changed meanwhile; that change wakes this loop.
                tracing::debug!("aggregating ClusterRole {}: {e}", role.name_any());
            }
        }
        if changed.changed().await.is_err() {
            return;
        }
    }
}

/// The rules an aggregated role should have: those of the roles its selectors pick, in name
/// order, each rule once. `None` for a role without an aggregation rule.
fn aggregated_rules(role: &ClusterRole, roles: &Store<ClusterRole>) -> Option<Vec<PolicyRule>> {
    let selectors = role
        .aggregation_rule
        .as_ref()?
        .cluster_role_selectors
        .clone()?;
    let selectors: Vec<_> = selectors
        .iter()
        .filter_map(|s| owners::selector(Some(s)).ok().flatten())
        .collect();
    let mut sources: Vec<Arc<ClusterRole>> = roles
        .state()
        .into_iter()
        .filter(|other| other.name_any() != role.name_any())
        .filter(|other| {
            selectors
                .iter()
                .any(|s| owners::selects(Some(s), &other.metadata))
        })
        .collect();
    sources.sort_by_key(|r| r.name_any());
    let mut rules: Vec<PolicyRule> = Vec::new();
    for rule in sources.iter().flat_map(|r| r.rules.iter().flatten()) {
        if !rules.contains(rule) {
            rules.push(rule.clone());
        }
    }
    Some(rules)
}

async fn write_rules(
    api: &Api<ClusterRole>,
    role: &ClusterRole,
    rules: Vec<PolicyRule>,
) -> kube::Result<()> {
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": role.resource_version()},
        "rules": rules,
    });
    api.patch(
        &role.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(|_| ())
}
