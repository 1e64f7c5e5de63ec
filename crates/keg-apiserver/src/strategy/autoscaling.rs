//! HorizontalPodAutoscaler defaults and validation, with upstream's field paths and
//! messages. Both versions are checked in their v2 shape (v1 converts to it losslessly).

use serde_json::{Value, json};

use super::validate::non_negative;
use crate::error::Cause;
use keg_apimachinery::validation as v;

/// The largest scaling policy period, in seconds.
const MAX_PERIOD_SECONDS: i64 = 1800;
/// The largest stabilization window, in seconds.
const MAX_STABILIZATION_WINDOW_SECONDS: i64 = 3600;

fn set_default(obj: &mut Value, key: &str, value: Value) {
    if obj.is_object() && obj.get(key).is_none_or(Value::is_null) {
        obj[key] = value;
    }
}

/// Upstream's defaults: one replica at least; for v2, CPU at 80% when no metric is given,
/// and a `behavior` that is given has its unset rules filled in.
pub(super) fn default(version: &str, obj: &mut Value) {
    let spec = &mut obj["spec"];
    set_default(spec, "minReplicas", json!(1));
    if version == "v1" {
        return;
    }
    if spec["metrics"].as_array().is_none_or(Vec::is_empty) {
        spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    }
    if spec["behavior"].is_object() {
        let behavior = &mut spec["behavior"];
        set_default(behavior, "scaleUp", json!({}));
        set_default(behavior, "scaleDown", json!({}));
        let up = &mut behavior["scaleUp"];
        set_default(up, "stabilizationWindowSeconds", json!(0));
        set_default(up, "selectPolicy", json!("Max"));
        if up["policies"].as_array().is_none_or(Vec::is_empty) {
            up["policies"] = json!([
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ]);
        }
        // scaleDown's window stays unset: the controller's flag decides it.
        let down = &mut behavior["scaleDown"];
        set_default(down, "selectPolicy", json!("Max"));
        if down["policies"].as_array().is_none_or(Vec::is_empty) {
            down["policies"] = json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]);
        }
    }
}

/// Validates a v2-shaped autoscaler. `old` is the stored one on updates.
pub(super) fn validate(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    // minReplicas may stay 0 where it already was (upstream's HPAScaleToZero allowance).
    let lower = match old {
        Some(old) if old["spec"]["minReplicas"] == 0 => 0,
        _ => 1,
    };
    if let Some(min) = spec["minReplicas"].as_i64()
        && min < lower
    {
        causes.push(Cause::invalid(
            "spec.minReplicas",
            &json!(min),
            &format!("must be greater than or equal to {lower}"),
        ));
    }
    let max = spec["maxReplicas"].as_i64().unwrap_or(0);
    if max < 1 {
        causes.push(Cause::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than 0",
        ));
    }
    if spec["minReplicas"].as_i64().is_some_and(|min| max < min) {
        causes.push(Cause::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    object_reference(&spec["scaleTargetRef"], "spec.scaleTargetRef", causes);
    let metrics = spec["metrics"].as_array().cloned().unwrap_or_default();
    for (i, metric) in metrics.iter().enumerate() {
        metric_spec(metric, &format!("spec.metrics[{i}]"), causes);
    }
    if spec["minReplicas"] == 0
        && !metrics
            .iter()
            .any(|m| m["type"] == "Object" || m["type"] == "External")
    {
        causes.push(Cause::forbidden(
            "spec.metrics",
            "must specify at least one Object or External metric to support scaling to zero replicas",
        ));
    }
    for side in ["scaleUp", "scaleDown"] {
        let rules = &spec["behavior"][side];
        if rules.is_object() {
            scaling_rules(rules, &format!("spec.behavior.{side}"), causes);
        }
    }
    if old.is_some() {
        let status = &obj["status"];
        non_negative(&status["currentReplicas"], "status.currentReplicas", causes);
        non_negative(&status["desiredReplicas"], "status.desiredReplicas", causes);
    }
}

fn object_reference(reference: &Value, path: &str, causes: &mut Vec<Cause>) {
    for field in ["kind", "name"] {
        match reference[field].as_str().unwrap_or_default() {
            "" => causes.push(Cause::required(format!("{path}.{field}"), "")),
            text => {
                for problem in v::is_path_segment_name(text) {
                    causes.push(Cause::invalid(
                        format!("{path}.{field}"),
                        &json!(text),
                        &problem,
                    ));
                }
            }
        }
    }
}

fn scaling_rules(rules: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(window) = rules["stabilizationWindowSeconds"].as_i64() {
        if window < 0 {
            causes.push(Cause::invalid(
                format!("{path}.stabilizationWindowSeconds"),
                &json!(window),
                "must be greater than or equal to zero",
            ));
        }
        if window > MAX_STABILIZATION_WINDOW_SECONDS {
            causes.push(Cause::invalid(
                format!("{path}.stabilizationWindowSeconds"),
                &json!(window),
                &format!("must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"),
            ));
        }
    }
    let select = &rules["selectPolicy"];
    if let Some(s) = select.as_str()
        && !["Disabled", "Max", "Min"].contains(&s)
    {
        causes.push(Cause::not_supported(
            format!("{path}.selectPolicy"),
            select,
            &["Disabled", "Max", "Min"],
        ));
    }
    let policies = rules["policies"].as_array().cloned().unwrap_or_default();
    if policies.is_empty() {
        causes.push(Cause::required(
            format!("{path}.policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, policy) in policies.iter().enumerate() {
        let at = format!("{path}.policies[{i}]");
        let kind = &policy["type"];
        if kind != "Pods" && kind != "Percent" {
            causes.push(Cause::not_supported(
                format!("{at}.type"),
                kind,
                &["Percent", "Pods"],
            ));
        }
        let value = policy["value"].as_i64().unwrap_or(0);
        if value <= 0 {
            causes.push(Cause::invalid(
                format!("{at}.value"),
                &json!(value),
                "must be greater than zero",
            ));
        }
        let period = policy["periodSeconds"].as_i64().unwrap_or(0);
        if period <= 0 {
            causes.push(Cause::invalid(
                format!("{at}.periodSeconds"),
                &json!(period),
                "must be greater than zero",
            ));
        }
        if period > MAX_PERIOD_SECONDS {
            causes.push(Cause::invalid(
                format!("{at}.periodSeconds"),
                &json!(period),
                &format!("must be less than or equal to {MAX_PERIOD_SECONDS}"),
            ));
        }
    }
}

const SOURCE_TYPES: [&str; 5] = [
    "ContainerResource",
    "External",
    "Object",
    "Pods",
    "Resource",
];

fn metric_spec(metric: &Value, path: &str, causes: &mut Vec<Cause>) {
    let kind = metric["type"].as_str().unwrap_or_default();
    if kind.is_empty() {
        causes.push(Cause::required(
            format!("{path}.type"),
            "must specify a metric source type",
        ));
    }
    if !SOURCE_TYPES.contains(&kind) {
        causes.push(Cause::not_supported(
            format!("{path}.type"),
            &metric["type"],
            &SOURCE_TYPES,
        ));
    }
    let fields = [
        ("Object", "object"),
        ("External", "external"),
        ("Pods", "pods"),
        ("Resource", "resource"),
        ("ContainerResource", "containerResource"),
    ];
    let present: Vec<&str> = fields
        .iter()
        .map(|(_, f)| *f)
        .filter(|f| metric[*f].is_object())
        .collect();
    if let Some(first) = present.first() {
        source(first, &metric[*first], &format!("{path}.{first}"), causes);
    }
    let expected = fields.iter().find(|(k, _)| *k == kind).map(|(_, f)| *f);
    if let Some(expected) = expected
        && !metric[expected].is_object()
    {
        causes.push(Cause::required(
            format!("{path}.{expected}"),
            "must populate information for the given metric source",
        ));
    }
    if present.len() != 1 {
        for field in present.iter().filter(|f| Some(**f) != expected) {
            causes.push(Cause::forbidden(
                format!("{path}.{field}"),
                "must populate the given metric source only",
            ));
        }
    }
}

fn source(field: &str, src: &Value, path: &str, causes: &mut Vec<Cause>) {
    let target = &src["target"];
    let has = |key: &str| !target[key].is_null();
    match field {
        "resource" | "containerResource" => {
            if src["name"].as_str().unwrap_or_default().is_empty() {
                causes.push(Cause::required(
                    format!("{path}.name"),
                    "must specify a resource name",
                ));
            }
            if field == "containerResource"
                && src["container"].as_str().unwrap_or_default().is_empty()
            {
                causes.push(Cause::required(
                    format!("{path}.container"),
                    "must specify a container",
                ));
            }
            metric_target(target, &format!("{path}.target"), causes);
            if !has("averageUtilization") && !has("averageValue") {
                causes.push(Cause::required(
                    format!("{path}.target.averageUtilization"),
                    "must set either a target raw value or a target utilization",
                ));
            }
            if has("averageUtilization") && has("averageValue") {
                causes.push(Cause::forbidden(
                    format!("{path}.target.averageValue"),
                    "may not set both a target raw value and a target utilization",
                ));
            }
        }
        "pods" => {
            metric_identifier(&src["metric"], &format!("{path}.metric"), causes);
            metric_target(target, &format!("{path}.target"), causes);
            if !has("averageValue") {
                causes.push(Cause::required(
                    format!("{path}.target.averageValue"),
                    "must specify a positive target averageValue",
                ));
            }
        }
        "object" => {
            object_reference(
                &src["describedObject"],
                &format!("{path}.describedObject"),
                causes,
            );
            metric_identifier(&src["metric"], &format!("{path}.metric"), causes);
            metric_target(target, &format!("{path}.target"), causes);
            if !has("value") && !has("averageValue") {
                causes.push(Cause::required(
                    format!("{path}.target.averageValue"),
                    "must set either a target value or averageValue",
                ));
            }
        }
        _ => {
            metric_identifier(&src["metric"], &format!("{path}.metric"), causes);
            metric_target(target, &format!("{path}.target"), causes);
            if !has("value") && !has("averageValue") {
                causes.push(Cause::required(
                    format!("{path}.target.averageValue"),
                    "must set either a target value for metric or a per-pod target",
                ));
            }
            if has("value") && has("averageValue") {
                causes.push(Cause::forbidden(
                    format!("{path}.target.value"),
                    "may not set both a target value for metric and a per-pod target",
                ));
            }
        }
    }
}

fn metric_identifier(id: &Value, path: &str, causes: &mut Vec<Cause>) {
    match id["name"].as_str().unwrap_or_default() {
        "" => causes.push(Cause::required(
            format!("{path}.name"),
            "must specify a metric name",
        )),
        name => {
            for problem in v::is_path_segment_name(name) {
                causes.push(Cause::invalid(
                    format!("{path}.name"),
                    &json!(name),
                    &problem,
                ));
            }
        }
    }
}

fn metric_target(target: &Value, path: &str, causes: &mut Vec<Cause>) {
    let kind = target["type"].as_str().unwrap_or_default();
    if kind.is_empty() {
        causes.push(Cause::required(
            format!("{path}.type"),
            "must specify a metric target type",
        ));
    }
    if !["Utilization", "Value", "AverageValue"].contains(&kind) {
        causes.push(Cause::invalid(
            format!("{path}.type"),
            &target["type"],
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    for field in ["value", "averageValue"] {
        let quantity = &target[field];
        let positive = match quantity {
            Value::Null => continue,
            Value::String(s) => keg_api::quantity::parse_millis(s).is_ok_and(|m| m > 0),
            Value::Number(n) => n.as_f64().is_some_and(|f| f > 0.0),
            _ => false,
        };
        if !positive {
            causes.push(Cause::invalid(
                format!("{path}.{field}"),
                quantity,
                "must be positive",
            ));
        }
    }
    if let Some(u) = target["averageUtilization"].as_i64()
        && u < 1
    {
        causes.push(Cause::invalid(
            format!("{path}.averageUtilization"),
            &json!(u),
            "must be greater than 0",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa(spec: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": spec})
    }

    fn messages(obj: &Value) -> Vec<String> {
        let mut causes = Vec::new();
        validate(obj, None, &mut causes);
        causes
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn v2_defaults_fill_cpu_and_the_behavior_rules() {
        let mut obj = hpa(
            json!({"maxReplicas": 3, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 10}}}),
        );
        default("v2", &mut obj);
        let spec = &obj["spec"];
        assert_eq!(spec["minReplicas"], 1);
        assert_eq!(
            spec["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert_eq!(spec["behavior"]["scaleUp"]["policies"][0]["value"], 4);
        assert_eq!(spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"], 0);
        assert_eq!(
            spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
            10
        );
        assert_eq!(spec["behavior"]["scaleDown"]["selectPolicy"], "Max");
    }

    #[test]
    fn v1_defaults_only_the_minimum() {
        let mut obj = hpa(json!({"maxReplicas": 3}));
        default("v1", &mut obj);
        assert_eq!(obj["spec"]["minReplicas"], 1);
        assert!(obj["spec"]["metrics"].is_null());
    }

    #[test]
    fn bounds_and_references_use_upstreams_messages() {
        let got = messages(&hpa(
            json!({"minReplicas": 7, "maxReplicas": 5, "scaleTargetRef": {"kind": "Deployment"}}),
        ));
        assert_eq!(
            got,
            [
                "spec.maxReplicas: Invalid value: 5: must be greater than or equal to `minReplicas`",
                "spec.scaleTargetRef.name: Required value",
            ]
        );
        let got = messages(&hpa(
            json!({"minReplicas": 0, "maxReplicas": 0, "scaleTargetRef": {"kind": "Deployment", "name": "web"}}),
        ));
        assert_eq!(
            got,
            [
                "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1",
                "spec.maxReplicas: Invalid value: 0: must be greater than 0",
                "spec.metrics: Forbidden: must specify at least one Object or External metric to support scaling to zero replicas",
            ]
        );
    }

    #[test]
    fn metrics_and_policies_are_checked() {
        let got = messages(&hpa(json!({
            "minReplicas": 1, "maxReplicas": 5,
            "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}},
                {"type": "Pods"},
            ],
            "behavior": {"scaleUp": {"policies": [{"type": "Nodes", "value": 0, "periodSeconds": 1801}]}},
        })));
        assert_eq!(
            got,
            [
                "spec.metrics[0].resource.target.averageUtilization: Required value: must set either a target raw value or a target utilization",
                "spec.metrics[1].pods: Required value: must populate information for the given metric source",
                "spec.behavior.scaleUp.policies[0].type: Unsupported value: \"Nodes\": supported values: \"Percent\", \"Pods\"",
                "spec.behavior.scaleUp.policies[0].value: Invalid value: 0: must be greater than zero",
                "spec.behavior.scaleUp.policies[0].periodSeconds: Invalid value: 1801: must be less than or equal to 1800",
            ]
        );
    }
}
