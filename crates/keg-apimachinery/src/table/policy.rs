//! Disruption budgets and autoscalers: PodDisruptionBudget, HorizontalPodAutoscaler.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Col;
use super::helpers::{age, arr_at, at, int_at, int_or_string, name, opt_int, str_at};

pub(super) const PDB: &[Col] = &[
    Col::NAME,
    Col::new(
        "Min Available",
        "string",
        "The minimum number of pods that must be available.",
    ),
    Col::new(
        "Max Unavailable",
        "string",
        "The maximum number of pods that may be unavailable.",
    ),
    Col::new(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    Col::AGE,
];

pub(super) fn pdb(obj: &Value, now: Timestamp) -> Vec<Value> {
    let bound = |path| match at(obj, path) {
        Value::Null => "N/A".to_owned(),
        v => int_or_string(v),
    };
    vec![
        name(obj),
        json!(bound("spec.minAvailable")),
        json!(bound("spec.maxUnavailable")),
        json!(int_at(obj, "status.disruptionsAllowed")),
        age(obj, now),
    ]
}

pub(super) const HPA: &[Col] = &[
    Col::NAME,
    Col::new(
        "Reference",
        "string",
        "scaleTargetRef points to the target resource to scale.",
    ),
    Col::new(
        "Targets",
        "string",
        "metrics contains the specifications for which to use to calculate the desired replica count.",
    ),
    Col::new(
        "MinPods",
        "string",
        "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
    ),
    Col::new(
        "MaxPods",
        "string",
        "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.",
    ),
    Col::new(
        "Replicas",
        "string",
        "currentReplicas is current number of replicas of pods managed by this autoscaler.",
    ),
    Col::AGE,
];

pub(super) fn hpa(obj: &Value, now: Timestamp) -> Vec<Value> {
    let target = at(obj, "spec.scaleTargetRef");
    // minReplicas defaults to 1.
    let min = opt_int(obj, "spec.minReplicas").unwrap_or(1);
    vec![
        name(obj),
        json!(format!(
            "{}/{}",
            str_at(target, "kind"),
            str_at(target, "name")
        )),
        json!(hpa_targets(obj)),
        json!(min.to_string()),
        json!(int_at(obj, "spec.maxReplicas")),
        json!(int_at(obj, "status.currentReplicas")),
        age(obj, now),
    ]
}

/// Upstream's `formatHPAMetrics` over autoscaling/v2 metrics; autoscaling/v1 objects are read
/// as their v2 equivalent (one CPU utilization metric).
fn hpa_targets(obj: &Value) -> String {
    let (specs, statuses) = if str_at(obj, "apiVersion") == "autoscaling/v1" {
        let spec = at(obj, "spec.targetCPUUtilizationPercentage");
        let current = at(obj, "status.currentCPUUtilizationPercentage");
        let specs = if spec.is_null() {
            vec![]
        } else {
            vec![cpu_metric("target", spec)]
        };
        let statuses = if current.is_null() {
            vec![]
        } else {
            vec![cpu_metric("current", current)]
        };
        (specs, statuses)
    } else {
        (
            arr_at(obj, "spec.metrics").to_vec(),
            arr_at(obj, "status.currentMetrics").to_vec(),
        )
    };
    // Without metrics the HPA scales on CPU at 80% utilization (upstream's default).
    let specs = if specs.is_empty() {
        vec![cpu_metric("target", &json!(80))]
    } else {
        specs
    };
    const MAX: usize = 2;
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| hpa_metric(spec, statuses.get(i).unwrap_or(&Value::Null)))
        .collect();
    let shown = list
        .iter()
        .take(MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > MAX {
        format!("{shown} + {} more...", list.len() - MAX)
    } else {
        shown
    }
}

fn cpu_metric(side: &str, utilization: &Value) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu", side: {"type": "Utilization", "averageUtilization": utilization}}})
}

/// One metric as `current/target`, as upstream shows it.
fn hpa_metric(spec: &Value, status: &Value) -> String {
    // An unset quantity prints as Go's nil Quantity does.
    let q = |v: &Value| match v {
        Value::Null => "<nil>".to_owned(),
        v => int_or_string(v),
    };
    let source = |kind: &str| {
        let field = match kind {
            "External" => "external",
            "Pods" => "pods",
            "Object" => "object",
            "Resource" => "resource",
            _ => "containerResource",
        };
        let current = status.get(field).filter(|v| !v.is_null());
        (&spec[field], current)
    };
    match str_at(spec, "type") {
        kind @ ("External" | "Object") => {
            let (s, current) = source(kind);
            if !at(s, "target.averageValue").is_null() {
                let cur = current
                    .map(|c| at(c, "current.averageValue"))
                    .filter(|v| !v.is_null())
                    .map_or_else(|| "<unknown>".to_owned(), q);
                format!("{cur}/{} (avg)", q(at(s, "target.averageValue")))
            } else {
                let cur =
                    current.map_or_else(|| "<unknown>".to_owned(), |c| q(at(c, "current.value")));
                format!("{cur}/{}", q(at(s, "target.value")))
            }
        }
        "Pods" => {
            let (s, current) = source("Pods");
            let cur = current.map_or_else(
                || "<unknown>".to_owned(),
                |c| q(at(c, "current.averageValue")),
            );
            format!("{cur}/{}", q(at(s, "target.averageValue")))
        }
        kind @ ("Resource" | "ContainerResource") => {
            let (s, current) = source(kind);
            let resource = str_at(s, "name");
            if !at(s, "target.averageValue").is_null() {
                let cur = current.map_or_else(
                    || "<unknown>".to_owned(),
                    |c| q(at(c, "current.averageValue")),
                );
                format!("{resource}: {cur}/{}", q(at(s, "target.averageValue")))
            } else {
                let cur = current
                    .and_then(|c| opt_int(c, "current.averageUtilization"))
                    .map_or_else(|| "<unknown>".to_owned(), |u| format!("{u}%"));
                let target = opt_int(s, "target.averageUtilization")
                    .map_or_else(|| "<auto>".to_owned(), |u| format!("{u}%"));
                format!("{resource}: {cur}/{target}")
            }
        }
        _ => "<unknown type>".to_owned(),
    }
}
