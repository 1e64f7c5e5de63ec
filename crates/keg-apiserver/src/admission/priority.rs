//! The Priority plugin, as upstream's: a new pod gets `spec.priority` (and
//! `spec.preemptionPolicy`) from the PriorityClass it names, or from the cluster's
//! `globalDefault` class, or priority 0; an unknown class refuses the pod. A PriorityClass
//! may be the global default only if no other one is.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{AdmissionPlugin, Attributes, Operation};
use crate::error::{ApiError, Result};
use crate::state::ApiState;

/// The built-in classes: (name, value).
pub const SYSTEM_PRIORITY_CLASSES: [(&str, i64); 2] = [
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// Upstream's default when a pod and its class say nothing.
const DEFAULT_PREEMPTION: &str = "PreemptLowerPriority";

/// Sets pod priorities and keeps one global default class.
pub struct Priority;

async fn classes(state: &ApiState) -> Result<Vec<Value>> {
    let res = state
        .registry
        .get("scheduling.k8s.io", "v1", "priorityclasses")
        .expect("built in");
    Ok(state
        .objects
        .list(&res, None, None, None, None)
        .await?
        .items)
}

#[async_trait]
impl AdmissionPlugin for Priority {
    async fn admit(&self, state: &ApiState, attrs: &mut Attributes<'_>) -> Result<()> {
        let res = attrs.resource;
        match (res.group.as_str(), res.kind.as_str(), attrs.operation) {
            ("", "Pod", Operation::Create) => admit_pod(state, attrs).await,
            ("scheduling.k8s.io", "PriorityClass", Operation::Create | Operation::Update) => {
                let object = &*attrs.object;
                if object["globalDefault"] != json!(true) {
                    return Ok(());
                }
                let name = crate::objects::name(object);
                let other = classes(state)
                    .await?
                    .into_iter()
                    .find(|c| c["globalDefault"] == json!(true) && crate::objects::name(c) != name);
                match other {
                    Some(other) => Err(ApiError::forbidden(
                        "scheduling.k8s.io",
                        "priorityclasses",
                        name,
                        &format!(
                            "PriorityClass {} is already marked as default. Only one default can exist",
                            crate::objects::name(&other)
                        ),
                    )),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}

async fn admit_pod(state: &ApiState, attrs: &mut Attributes<'_>) -> Result<()> {
    let spec = &attrs.object["spec"];
    let wanted = spec["priorityClassName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pod_name = crate::objects::name(attrs.object).to_string();
    let all = classes(state).await?;
    let class = if wanted.is_empty() {
        all.iter().find(|c| c["globalDefault"] == json!(true))
    } else {
        all.iter().find(|c| crate::objects::name(c) == wanted)
    };
    let (priority, preemption, class_name) = match class {
        Some(c) => (
            c["value"].as_i64().unwrap_or(0),
            c["preemptionPolicy"]
                .as_str()
                .unwrap_or(DEFAULT_PREEMPTION)
                .to_string(),
            crate::objects::name(c).to_string(),
        ),
        None if wanted.is_empty() => (0, DEFAULT_PREEMPTION.to_string(), String::new()),
        None => {
            return Err(ApiError::forbidden(
                "",
                "pods",
                &pod_name,
                &format!("no PriorityClass with name {wanted} was found"),
            ));
        }
    };
    if let Some(given) = spec["priority"].as_i64()
        && given != priority
    {
        return Err(ApiError::forbidden(
            "",
            "pods",
            &pod_name,
            &format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
            ),
        ));
    }
    if let Some(given) = spec["preemptionPolicy"].as_str()
        && class.is_some()
        && given != preemption
    {
        return Err(ApiError::forbidden(
            "",
            "pods",
            &pod_name,
            &format!(
                "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {preemption} from the given PriorityClass name"
            ),
        ));
    }
    let spec = &mut attrs.object["spec"];
    spec["priority"] = json!(priority);
    if !class_name.is_empty() {
        spec["priorityClassName"] = json!(class_name);
    }
    if spec["preemptionPolicy"].is_null() {
        spec["preemptionPolicy"] = json!(preemption);
    }
    Ok(())
}
