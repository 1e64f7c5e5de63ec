//! Whether a pod may go on a node by its node selector, required node affinity and
//! tolerations, and what nodes offer and pods ask for: the rules the scheduler, the
//! autoscaler and the DaemonSet controller share.

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, Pod, PodSpec, Taint, Toleration};

/// CPU, memory and pod slots: what a node offers or a pod takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Millicores.
    pub millicpu: u64,
    /// Bytes.
    pub memory: u64,
    /// Pod slots.
    pub pods: u64,
}

impl Resources {
    /// A node's allocatable resources; what it does not say counts as none.
    pub fn allocatable(node: &Node) -> Resources {
        let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let get = |key: &str, parse: fn(&str) -> crate::quantity::Result<u64>| {
            allocatable
                .and_then(|a| a.get(key))
                .and_then(|q| parse(&q.0).ok())
                .unwrap_or(0)
        };
        Resources {
            millicpu: get("cpu", crate::quantity::parse_millis),
            memory: get("memory", crate::quantity::parse_bytes),
            pods: get("pods", crate::quantity::parse_bytes),
        }
    }

    /// What a pod requests (its effective requests, as the scheduler counts them) and one
    /// slot; a request that does not parse counts as none.
    pub fn of_pod(pod: &Pod) -> Resources {
        let (millicpu, memory) = pod
            .spec
            .as_ref()
            .and_then(|s| crate::fargate::sizing::pod_requests(s).ok())
            .unwrap_or((0, 0));
        Resources {
            millicpu,
            memory,
            pods: 1,
        }
    }

    /// Both together.
    pub fn plus(self, other: Resources) -> Resources {
        Resources {
            millicpu: self.millicpu + other.millicpu,
            memory: self.memory + other.memory,
            pods: self.pods + other.pods,
        }
    }

    /// This without `other` (never below none).
    pub fn minus(self, other: Resources) -> Resources {
        Resources {
            millicpu: self.millicpu.saturating_sub(other.millicpu),
            memory: self.memory.saturating_sub(other.memory),
            pods: self.pods.saturating_sub(other.pods),
        }
    }

    /// Whether this fits in `limit` in every dimension.
    pub fn within(self, limit: Resources) -> bool {
        self.millicpu <= limit.millicpu && self.memory <= limit.memory && self.pods <= limit.pods
    }
}

/// Whether some toleration matches the taint (upstream's `ToleratesTaint`).
pub fn tolerates(tolerations: Option<&[Toleration]>, taint: &Taint) -> bool {
    tolerations.unwrap_or_default().iter().any(|t| {
        let effect_ok = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == taint.effect);
        let key = t.key.as_deref().unwrap_or_default();
        let key_ok = key.is_empty() || key == taint.key;
        let value_ok = match t.operator.as_deref() {
            Some("Exists") => true,
            _ => {
                !key.is_empty()
                    && t.value.as_deref().unwrap_or_default()
                        == taint.value.as_deref().unwrap_or_default()
            }
        };
        effect_ok
            && key_ok
            && value_ok
            && (!key.is_empty() || t.operator.as_deref() == Some("Exists"))
    })
}

/// Whether the node has the labels of the pod's node selector and meets its required node
/// affinity (labels and `metadata.name` fields).
pub fn matches_node_selector(spec: &PodSpec, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if let Some(selector) = &spec.node_selector
        && selector.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let Some(required) = required else {
        return true;
    };
    required.node_selector_terms.iter().any(|term| {
        let expressions_ok = term
            .match_expressions
            .iter()
            .flatten()
            .all(|r| requirement_holds(r, labels.get(&r.key).map(String::as_str)));
        let name = node.metadata.name.clone().unwrap_or_default();
        let fields_ok = term
            .match_fields
            .iter()
            .flatten()
            .all(|r| r.key == "metadata.name" && requirement_holds(r, Some(name.as_str())));
        (term.match_expressions.is_some() || term.match_fields.is_some())
            && expressions_ok
            && fields_ok
    })
}

fn requirement_holds(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.clone().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(number), values.first().and_then(|x| number(x))), (Some(v), Some(x)) if v > x)
        }
        "Lt" => {
            matches!((value.and_then(number), values.first().and_then(|x| number(x))), (Some(v), Some(x)) if v < x)
        }
        _ => false,
    }
}
