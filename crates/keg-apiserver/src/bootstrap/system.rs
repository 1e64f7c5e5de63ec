//! The system objects of the GA APIs beyond RBAC: the built-in PriorityClasses, the API
//! Priority and Fairness configuration ([`flowcontrol.yaml`](flowcontrol.yaml)), a local
//! APIService for every built-in group-version (Available, as upstream's aggregator lists
//! them), and the ServiceCIDR the cluster IPs come from.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Result;
use crate::state::ApiState;

const FLOWCONTROL: &str = include_str!("flowcontrol.yaml");
const FLOWCONTROL_GROUP: &str = "flowcontrol.apiserver.k8s.io";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FlowControl {
    priority_levels: Vec<Named>,
    flow_schemas: Vec<Named>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
    spec: Value,
}

/// The objects upstream's bootstrap controllers keep: annotated as theirs, auto-updated.
fn flow_control_object(kind: &str, named: &Named) -> Value {
    json!({
        "apiVersion": format!("{FLOWCONTROL_GROUP}/v1"), "kind": kind,
        "metadata": {"name": named.name, "annotations": {"apf.kubernetes.io/autoupdate-spec": "true"}},
        "spec": named.spec,
    })
}

/// Creates what is missing of the system objects.
pub async fn ensure(state: &Arc<ApiState>) -> Result<()> {
    for (name, value) in crate::admission::SYSTEM_PRIORITY_CLASSES {
        let class = json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value,
            "description": "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
        });
        super::ensure(state, "scheduling.k8s.io", "priorityclasses", None, class).await?;
    }
    let flow: FlowControl =
        serde_yaml_ng::from_str(FLOWCONTROL).expect("the built-in flow control parses");
    for level in &flow.priority_levels {
        let obj = flow_control_object("PriorityLevelConfiguration", level);
        super::ensure(
            state,
            FLOWCONTROL_GROUP,
            "prioritylevelconfigurations",
            None,
            obj,
        )
        .await?;
    }
    for schema in &flow.flow_schemas {
        let obj = flow_control_object("FlowSchema", schema);
        super::ensure(state, FLOWCONTROL_GROUP, "flowschemas", None, obj).await?;
        let level = schema.spec["priorityLevelConfiguration"]["name"]
            .as_str()
            .unwrap_or_default();
        let dangling = json!({"conditions": [{
            "type": "Dangling", "status": "False", "reason": "Found",
            "message": format!("This FlowSchema references the PriorityLevelConfiguration object named \"{level}\" and it exists"),
            "lastTransitionTime": crate::objects::now(),
        }]});
        super::ensure_status(
            state,
            FLOWCONTROL_GROUP,
            "flowschemas",
            &schema.name,
            dangling,
        )
        .await?;
    }
    let mut group_versions: Vec<(String, String)> = state
        .registry
        .all()
        .iter()
        .filter(|r| r.custom.is_none() && !r.is_metrics())
        .map(|r| (r.group.clone(), r.version.clone()))
        .collect();
    group_versions.sort();
    group_versions.dedup();
    for (group, version) in group_versions {
        let name = format!("{version}.{group}");
        let service = json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": name, "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
            "spec": {"group": group, "version": version,
                "groupPriorityMinimum": if group.is_empty() { 18000 } else { 17000 },
                "versionPriority": 15},
        });
        super::ensure(
            state,
            "apiregistration.k8s.io",
            "apiservices",
            None,
            service,
        )
        .await?;
        let available = json!({"conditions": [{
            "type": "Available", "status": "True", "reason": "Local",
            "message": "Local APIServices are always available",
            "lastTransitionTime": crate::objects::now(),
        }]});
        super::ensure_status(
            state,
            "apiregistration.k8s.io",
            "apiservices",
            &name,
            available,
        )
        .await?;
    }
    let cidr = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
        "metadata": {"name": "kubernetes"},
        "spec": {"cidrs": [crate::admission::SERVICE_CIDR]},
    });
    super::ensure(state, "networking.k8s.io", "servicecidrs", None, cidr).await?;
    let ready = json!({"conditions": [{
        "type": "Ready", "status": "True", "reason": "", "message": "Kubernetes Service CIDR is ready",
        "lastTransitionTime": crate::objects::now(),
    }]});
    super::ensure_status(
        state,
        "networking.k8s.io",
        "servicecidrs",
        "kubernetes",
        ready,
    )
    .await
}
