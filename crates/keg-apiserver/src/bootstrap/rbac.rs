//! The default RBAC policy ([`policy.yaml`](policy.yaml)) as ClusterRoles and
//! ClusterRoleBindings, labelled and annotated as upstream's bootstrap policy.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Result;
use crate::state::ApiState;

const POLICY: &str = include_str!("policy.yaml");
const GROUP: &str = "rbac.authorization.k8s.io";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Policy {
    cluster_roles: Vec<RoleSpec>,
    cluster_role_bindings: Vec<BindingSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleSpec {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<Value>,
    /// For an aggregated role: the `rbac.authorization.k8s.io/<this>` label it gathers.
    aggregate_from: Option<String>,
}

#[derive(Deserialize)]
struct BindingSpec {
    name: String,
    role: String,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

fn metadata(name: &str, labels: &BTreeMap<String, String>) -> Value {
    let mut labels = labels.clone();
    labels.insert(
        "kubernetes.io/bootstrapping".to_string(),
        "rbac-defaults".to_string(),
    );
    json!({
        "name": name,
        "labels": labels,
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn cluster_role(spec: &RoleSpec) -> Value {
    let mut role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": metadata(&spec.name, &spec.labels),
        "rules": spec.rules,
    });
    if let Some(label) = &spec.aggregate_from {
        role["aggregationRule"] = json!({"clusterRoleSelectors": [
            {"matchLabels": {format!("{GROUP}/{label}"): "true"}}
        ]});
    }
    role
}

fn cluster_role_binding(spec: &BindingSpec) -> Value {
    let subjects: Vec<Value> = spec
        .users
        .iter()
        .map(|u| json!({"apiGroup": GROUP, "kind": "User", "name": u}))
        .chain(
            spec.groups
                .iter()
                .map(|g| json!({"apiGroup": GROUP, "kind": "Group", "name": g})),
        )
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": metadata(&spec.name, &BTreeMap::new()),
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": spec.role},
        "subjects": subjects,
    })
}

fn policy() -> Policy {
    serde_yaml_ng::from_str(POLICY).expect("the built-in RBAC policy parses")
}

/// Creates the default roles and bindings that are missing. Existing ones are left as they
/// are, so an administrator's edits survive restarts.
pub async fn ensure_policy(state: &Arc<ApiState>) -> Result<()> {
    let policy = policy();
    for role in &policy.cluster_roles {
        super::ensure(state, GROUP, "clusterroles", None, cluster_role(role)).await?;
    }
    for binding in &policy.cluster_role_bindings {
        let obj = cluster_role_binding(binding);
        super::ensure(state, GROUP, "clusterrolebindings", None, obj).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binding_names_a_role_of_the_policy() {
        let policy = policy();
        for binding in &policy.cluster_role_bindings {
            assert!(
                policy.cluster_roles.iter().any(|r| r.name == binding.role),
                "{} binds the unknown role {}",
                binding.name,
                binding.role
            );
        }
    }

    #[test]
    fn aggregated_roles_select_by_label() {
        let view = policy()
            .cluster_roles
            .into_iter()
            .find(|r| r.name == "view")
            .expect("view role");
        let role = cluster_role(&view);
        assert_eq!(
            role["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"]["rbac.authorization.k8s.io/aggregate-to-view"],
            "true"
        );
        assert_eq!(
            role["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"],
            "true"
        );
    }
}
