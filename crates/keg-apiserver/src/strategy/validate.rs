//! Validation of objects, with upstream's field paths and messages.

use keg_apimachinery::validation as v;
use serde_json::{Value, json};

use super::workloads;
use crate::error::Cause;
use crate::objects::without_nulls;
use crate::resources::Resource;

/// The causes an object fails validation with (empty when valid). `old` is set on updates.
pub fn validate(res: &Resource, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_meta(res, obj, &mut causes);
    match (res.group.as_str(), res.kind.as_str()) {
        ("", "Pod") => {
            validate_pod_spec(&obj["spec"], "spec", &mut causes);
            if let Some(old) = old {
                validate_pod_update(obj, old, &mut causes);
            }
        }
        ("apps", "Deployment" | "ReplicaSet") => validate_workload(obj, old, &mut causes),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            let stored = |o: &Value| crate::convert::to_storage(res, o).into_owned();
            super::autoscaling::validate(&stored(obj), old.map(stored).as_ref(), &mut causes);
        }
        ("apps", "StatefulSet") => workloads::stateful_set(obj, old, &mut causes),
        ("", "ReplicationController") => workloads::replication_controller(obj, &mut causes),
        ("apps", "DaemonSet") => workloads::daemon_set(obj, old, &mut causes),
        ("batch", "Job") => workloads::job(obj, old, &mut causes),
        ("batch", "CronJob") => workloads::cron_job(obj, &mut causes),
        ("policy", "PodDisruptionBudget")
            if !obj["spec"]["minAvailable"].is_null()
                && !obj["spec"]["maxUnavailable"].is_null() =>
        {
            causes.push(Cause::invalid(
                "spec",
                &obj["spec"],
                "minAvailable and maxUnavailable cannot be both set",
            ));
        }
        ("", "Service") => validate_service(obj, &mut causes),
        ("scheduling.k8s.io", "PriorityClass") => validate_priority_class(obj, old, &mut causes),
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            super::certificates::validate(obj, old, &mut causes);
        }
        ("", "PersistentVolumeClaim")
            if obj["spec"]["accessModes"]
                .as_array()
                .is_none_or(Vec::is_empty)
                && old.is_none() =>
        {
            causes.push(Cause::required(
                "spec.accessModes",
                "at least 1 access mode is required",
            ));
        }
        ("keg.dev", "FargateProfile") => {
            if let Some(old) = old
                && without_nulls(&old["spec"]) != without_nulls(&obj["spec"])
            {
                causes.push(Cause::forbidden(
                        "spec",
                        "a Fargate profile cannot be changed once created; create a new profile and delete the old one",
                    ));
            }
        }
        _ => {}
    }
    causes
}

fn validate_meta(res: &Resource, obj: &Value, causes: &mut Vec<Cause>) {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    if name.is_empty() {
        causes.push(Cause::required(
            "metadata.name",
            "name or generateName is required",
        ));
        return;
    }
    let problems = match res.kind.as_str() {
        "Namespace" | "Service" if res.group.is_empty() => {
            if res.kind == "Service" {
                v::is_dns1035_label(name)
            } else {
                v::is_dns1123_label(name)
            }
        }
        // RBAC objects, like custom resources, only need a valid path segment (upstream's
        // own roles are named `system:...`).
        // ... as are APIServices (`v1.` names the core group's), and CSRs (upstream checks
        // none of their names).
        _ if res.custom.is_some()
            || res.group == "rbac.authorization.k8s.io"
            || res.kind == "APIService"
            || res.kind == "CertificateSigningRequest" =>
        {
            v::is_path_segment_name(name)
        }
        _ => v::is_dns1123_subdomain(name),
    };
    for problem in problems {
        causes.push(Cause::invalid("metadata.name", &json!(name), &problem));
    }
    for (field, check) in [("labels", true), ("annotations", false)] {
        let Some(map) = obj["metadata"][field].as_object() else {
            continue;
        };
        for (key, value) in map {
            for problem in v::is_qualified_name(key) {
                causes.push(Cause::invalid(
                    format!("metadata.{field}"),
                    &json!(key),
                    &problem,
                ));
            }
            if check {
                for problem in v::is_valid_label_value(value.as_str().unwrap_or_default()) {
                    causes.push(Cause::invalid(
                        "metadata.labels".to_string(),
                        value,
                        &problem,
                    ));
                }
            }
        }
    }
}

pub(super) fn validate_pod_spec(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        causes.push(Cause::required(format!("{path}.containers"), ""));
    }
    let mut seen = std::collections::HashSet::new();
    for (list, items) in [
        (
            "initContainers",
            spec["initContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        ),
        ("containers", containers),
    ] {
        for (i, c) in items.iter().enumerate() {
            let at = format!("{path}.{list}[{i}]");
            let name = c["name"].as_str().unwrap_or_default();
            if name.is_empty() {
                causes.push(Cause::required(format!("{at}.name"), ""));
            } else {
                for problem in v::is_dns1123_label(name) {
                    causes.push(Cause::invalid(format!("{at}.name"), &json!(name), &problem));
                }
                if !seen.insert(name.to_string()) {
                    causes.push(Cause::duplicate(format!("{at}.name"), &json!(name)));
                }
            }
            if c["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
                causes.push(Cause::required(format!("{at}.image"), ""));
            }
        }
    }
    if let Some(policy) = spec["restartPolicy"].as_str()
        && !["Always", "OnFailure", "Never"].contains(&policy)
    {
        causes.push(Cause::not_supported(
            format!("{path}.restartPolicy"),
            &json!(policy),
            &["Always", "OnFailure", "Never"],
        ));
    }
}

const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Pod specs are immutable but for images, the active deadline and added tolerations.
fn validate_pod_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let strip = |spec: &Value| {
        let mut spec = without_nulls(spec);
        for list in ["containers", "initContainers"] {
            for c in spec[list].as_array_mut().into_iter().flatten() {
                c["image"] = Value::Null;
            }
        }
        if let Some(map) = spec.as_object_mut() {
            map.remove("activeDeadlineSeconds");
            map.remove("tolerations");
        }
        spec
    };
    if strip(&new["spec"]) != strip(&old["spec"]) {
        causes.push(Cause::forbidden("spec", POD_UPDATE_FORBIDDEN));
    }
}

pub(super) fn validate_workload(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    selector_selects_template(spec, "spec", true, causes);
    if let Some(old) = old {
        immutable(&old["spec"], spec, "spec", "selector", causes);
    }
    if let Some(replicas) = spec["replicas"].as_i64() {
        non_negative(&json!(replicas), "spec.replicas", causes);
    }
    validate_pod_spec(&spec["template"]["spec"], "spec.template.spec", causes);
}

/// The workload's selector (at `{path}.selector`) must select its pod template's labels.
pub(super) fn selector_selects_template(
    spec: &Value,
    path: &str,
    required: bool,
    causes: &mut Vec<Cause>,
) {
    let selector = &spec["selector"];
    if selector.is_null() {
        if required {
            causes.push(Cause::required(format!("{path}.selector"), ""));
        }
        return;
    }
    let labels = spec["template"]["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let matches = keg_apimachinery::labels::Selector::from_label_selector(selector)
        .map(|s| !s.is_empty() && s.matches_json(&labels))
        .unwrap_or(false);
    if !matches {
        causes.push(Cause::invalid(
            format!("{path}.template.metadata.labels"),
            &Value::Object(labels),
            "`selector` does not match template `labels`",
        ));
    }
}

/// `{path}.{field}` may not change from `old` to `new`.
pub(super) fn immutable(
    old: &Value,
    new: &Value,
    path: &str,
    field: &str,
    causes: &mut Vec<Cause>,
) {
    if without_nulls(&old[field]) != without_nulls(&new[field]) {
        causes.push(Cause::invalid(
            format!("{path}.{field}"),
            &new[field],
            "field is immutable",
        ));
    }
}

/// A number, where one is given, is not negative.
pub(super) fn non_negative(value: &Value, path: &str, causes: &mut Vec<Cause>) {
    if value.as_i64().is_some_and(|n| n < 0) {
        causes.push(Cause::invalid(
            path,
            value,
            "must be greater than or equal to 0",
        ));
    }
}

fn validate_service(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let types = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
    if let Some(t) = spec["type"].as_str()
        && !types.contains(&t)
    {
        causes.push(Cause::not_supported("spec.type", &json!(t), &types));
    }
    for (i, port) in spec["ports"].as_array().into_iter().flatten().enumerate() {
        let number = port["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&number) {
            causes.push(Cause::invalid(
                format!("spec.ports[{i}].port"),
                &json!(number),
                "must be between 1 and 65535, inclusive",
            ));
        }
    }
}

/// The largest value a user's PriorityClass may have (upstream's HighestUserDefinablePriority).
const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

fn validate_priority_class(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let value = obj["value"].as_i64().unwrap_or(0);
    let system = crate::admission::SYSTEM_PRIORITY_CLASSES
        .iter()
        .any(|(n, v)| *n == name && *v == value && obj["globalDefault"] != json!(true));
    if !system {
        if name.starts_with("system-") {
            causes.push(Cause::forbidden(
                "metadata.name",
                "priority class names with 'system-' prefix are reserved",
            ));
        } else if value > HIGHEST_USER_PRIORITY {
            causes.push(Cause::forbidden(
                "value",
                &format!(
                    "maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"
                ),
            ));
        }
    }
    if let Some(p) = obj["preemptionPolicy"].as_str()
        && !["Never", "PreemptLowerPriority"].contains(&p)
    {
        causes.push(Cause::not_supported(
            "preemptionPolicy",
            &obj["preemptionPolicy"],
            &["Never", "PreemptLowerPriority"],
        ));
    }
    if let Some(old) = old {
        if old["value"] != obj["value"] {
            causes.push(Cause::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        if without_nulls(&old["preemptionPolicy"]) != without_nulls(&obj["preemptionPolicy"]) {
            causes.push(Cause::invalid(
                "preemptionPolicy",
                &obj["preemptionPolicy"],
                "field is immutable",
            ));
        }
    }
}
