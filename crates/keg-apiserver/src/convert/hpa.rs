//! autoscaling/v1 <-> autoscaling/v2 HorizontalPodAutoscalers.
//!
//! v1 knows one metric, CPU utilization (`targetCPUUtilizationPercentage`). As upstream does,
//! what v1 cannot say — the other metrics, their current values, the conditions and the
//! `behavior` — travels in `autoscaling.alpha.kubernetes.io/*` annotations of the v1 object,
//! so a v1 client that reads, changes and writes an autoscaler keeps what v2 set. (The
//! annotations hold the v2 shapes as JSON.)

use serde_json::{Map, Value, json};

const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";

/// Whether a v2 metric is the one v1 has a field for: CPU utilization of the pods.
fn is_cpu_utilization(metric: &Value, side: &str) -> bool {
    metric["type"] == "Resource"
        && metric["resource"]["name"] == "cpu"
        && !metric["resource"][side]["averageUtilization"].is_null()
}

fn take(map: &mut Map<String, Value>, key: &str) -> Value {
    map.remove(key).unwrap_or(Value::Null)
}

/// Moves `value` into annotation `key` as JSON, unless it is empty.
fn annotate(obj: &mut Value, key: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    if empty {
        return;
    }
    if !obj["metadata"]["annotations"].is_object() {
        obj["metadata"]["annotations"] = json!({});
    }
    obj["metadata"]["annotations"][key] = json!(value.to_string());
}

/// Takes annotation `key` out of the object and parses it; `Null` when absent or not JSON.
fn unannotate(obj: &mut Value, key: &str) -> Value {
    let Some(annotations) = obj["metadata"]["annotations"].as_object_mut() else {
        return Value::Null;
    };
    let value = annotations
        .remove(key)
        .and_then(|v| v.as_str().and_then(|s| serde_json::from_str(s).ok()))
        .unwrap_or(Value::Null);
    if annotations.is_empty() {
        obj["metadata"]
            .as_object_mut()
            .map(|m| m.remove("annotations"));
    }
    value
}

fn set(map: &mut Map<String, Value>, key: &str, value: Value) {
    if !value.is_null() {
        map.insert(key.to_string(), value);
    }
}

/// A stored (v2) autoscaler as autoscaling/v1 serves it.
pub(super) fn v2_to_v1(mut obj: Value) -> Value {
    let mut spec = obj["spec"].as_object().cloned().unwrap_or_default();
    let metrics = take(&mut spec, "metrics");
    let behavior = take(&mut spec, "behavior");
    let metrics = metrics.as_array().cloned().unwrap_or_default();
    let cpu = metrics.iter().find(|m| is_cpu_utilization(m, "target"));
    if let Some(cpu) = cpu {
        spec.insert(
            "targetCPUUtilizationPercentage".into(),
            cpu["resource"]["target"]["averageUtilization"].clone(),
        );
    }
    let others: Vec<Value> = metrics
        .iter()
        .filter(|m| !is_cpu_utilization(m, "target"))
        .cloned()
        .collect();
    obj["spec"] = Value::Object(spec);
    annotate(&mut obj, METRICS, Value::Array(others));
    annotate(&mut obj, BEHAVIOR, behavior);
    if let Some(mut status) = obj["status"].as_object().cloned() {
        let current = take(&mut status, "currentMetrics");
        let conditions = take(&mut status, "conditions");
        let current = current.as_array().cloned().unwrap_or_default();
        if let Some(cpu) = current.iter().find(|m| is_cpu_utilization(m, "current")) {
            status.insert(
                "currentCPUUtilizationPercentage".into(),
                cpu["resource"]["current"]["averageUtilization"].clone(),
            );
        }
        let others: Vec<Value> = current
            .iter()
            .filter(|m| !is_cpu_utilization(m, "current"))
            .cloned()
            .collect();
        // desiredReplicas is required in v1.
        status.entry("desiredReplicas").or_insert(json!(0));
        obj["status"] = Value::Object(status);
        annotate(&mut obj, CURRENT_METRICS, Value::Array(others));
        annotate(&mut obj, CONDITIONS, conditions);
    }
    obj["apiVersion"] = json!("autoscaling/v1");
    obj
}

/// A v2 CPU utilization metric: a target (`side` = "target") or a current value.
fn cpu_metric(side: &str, utilization: &Value) -> Value {
    let value = if side == "target" {
        json!({"type": "Utilization", "averageUtilization": utilization})
    } else {
        json!({"averageUtilization": utilization})
    };
    json!({"type": "Resource", "resource": {"name": "cpu", side: value}})
}

/// An autoscaling/v1 autoscaler in its stored (v2) shape.
pub(super) fn v1_to_v2(mut obj: Value) -> Value {
    let others = unannotate(&mut obj, METRICS);
    let behavior = unannotate(&mut obj, BEHAVIOR);
    let current_others = unannotate(&mut obj, CURRENT_METRICS);
    let conditions = unannotate(&mut obj, CONDITIONS);
    let mut spec = obj["spec"].as_object().cloned().unwrap_or_default();
    let cpu = take(&mut spec, "targetCPUUtilizationPercentage");
    let mut metrics = Vec::new();
    if !cpu.is_null() {
        metrics.push(cpu_metric("target", &cpu));
    }
    metrics.extend(others.as_array().cloned().unwrap_or_default());
    if !metrics.is_empty() {
        spec.insert("metrics".into(), Value::Array(metrics));
    }
    set(&mut spec, "behavior", behavior);
    obj["spec"] = Value::Object(spec);
    if let Some(mut status) = obj["status"].as_object().cloned() {
        let cpu = take(&mut status, "currentCPUUtilizationPercentage");
        let mut current = Vec::new();
        if !cpu.is_null() {
            current.push(cpu_metric("current", &cpu));
        }
        current.extend(current_others.as_array().cloned().unwrap_or_default());
        if !current.is_empty() {
            status.insert("currentMetrics".into(), Value::Array(current));
        }
        set(&mut status, "conditions", conditions);
        obj["status"] = Value::Object(status);
    }
    obj["apiVersion"] = json!("autoscaling/v2");
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2() -> Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 10, "selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}},
            },
            "status": {
                "currentReplicas": 2, "desiredReplicas": 3,
                // (v1 has no place for the current CPU's averageValue, as upstream.)
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 80}}}],
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "SucceededRescale"}],
            },
        })
    }

    #[test]
    fn v1_shows_cpu_and_keeps_the_rest_in_annotations() {
        let v1 = v2_to_v1(v2());
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert!(v1["spec"]["metrics"].is_null());
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 80);
        assert_eq!(v1["status"]["desiredReplicas"], 3);
        let annotations = &v1["metadata"]["annotations"];
        assert!(annotations[METRICS].as_str().unwrap().contains("memory"));
        assert!(
            annotations[CONDITIONS]
                .as_str()
                .unwrap()
                .contains("AbleToScale")
        );
        assert!(annotations[BEHAVIOR].is_string());
        assert!(annotations[CURRENT_METRICS].is_null());
    }

    #[test]
    fn a_round_trip_through_v1_loses_nothing() {
        assert_eq!(v1_to_v2(v2_to_v1(v2())), v2());
    }

    #[test]
    fn a_plain_v1_object_becomes_one_cpu_metric() {
        let v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 4, "targetCPUUtilizationPercentage": 60},
        });
        let v2 = v1_to_v2(v1);
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(
            v2["spec"]["metrics"],
            json!([cpu_metric("target", &json!(60))])
        );
        assert!(v2["metadata"]["annotations"].is_null());
    }
}
