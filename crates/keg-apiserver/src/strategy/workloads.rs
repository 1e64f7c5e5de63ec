//! Validation of StatefulSets, DaemonSets, Jobs and CronJobs, with upstream's field paths
//! and messages.

use serde_json::{Value, json};

use super::validate::{
    immutable, non_negative, selector_selects_template, validate_pod_spec, validate_workload,
};
use crate::error::Cause;
use crate::objects::without_nulls;

const STATEFUL_SET_UPDATE_FORBIDDEN: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

/// The pods of sets run forever: their template must restart them.
fn restart_always(spec: &Value, causes: &mut Vec<Cause>) {
    let policy = &spec["template"]["spec"]["restartPolicy"];
    if let Some(p) = policy.as_str()
        && p != "Always"
    {
        causes.push(Cause::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
}

fn one_of(value: &Value, path: &str, supported: &[&str], causes: &mut Vec<Cause>) {
    if let Some(v) = value.as_str()
        && !supported.contains(&v)
    {
        causes.push(Cause::not_supported(path, value, supported));
    }
}

pub(super) fn stateful_set(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    validate_workload(obj, None, causes);
    let spec = &obj["spec"];
    restart_always(spec, causes);
    one_of(
        &spec["podManagementPolicy"],
        "spec.podManagementPolicy",
        &["OrderedReady", "Parallel"],
        causes,
    );
    one_of(
        &spec["updateStrategy"]["type"],
        "spec.updateStrategy.type",
        &["OnDelete", "RollingUpdate"],
        causes,
    );
    non_negative(
        &spec["updateStrategy"]["rollingUpdate"]["partition"],
        "spec.updateStrategy.rollingUpdate.partition",
        causes,
    );
    non_negative(&spec["minReadySeconds"], "spec.minReadySeconds", causes);
    non_negative(&spec["ordinals"]["start"], "spec.ordinals.start", causes);
    for (i, template) in spec["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if template["metadata"]["name"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            causes.push(Cause::required(
                format!("spec.volumeClaimTemplates[{i}].metadata.name"),
                "",
            ));
        }
        if template["spec"]["accessModes"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            causes.push(Cause::required(
                format!("spec.volumeClaimTemplates[{i}].spec.accessModes"),
                "at least 1 access mode is required",
            ));
        }
    }
    for policy in ["whenDeleted", "whenScaled"] {
        one_of(
            &spec["persistentVolumeClaimRetentionPolicy"][policy],
            &format!("spec.persistentVolumeClaimRetentionPolicy.{policy}"),
            &["Retain", "Delete"],
            causes,
        );
    }
    if let Some(old) = old {
        let fixed = |spec: &Value| {
            let mut spec = without_nulls(spec);
            if let Some(map) = spec.as_object_mut() {
                for field in [
                    "replicas",
                    "ordinals",
                    "template",
                    "updateStrategy",
                    "persistentVolumeClaimRetentionPolicy",
                    "minReadySeconds",
                ] {
                    map.remove(field);
                }
            }
            spec
        };
        if fixed(spec) != fixed(&old["spec"]) {
            causes.push(Cause::forbidden("spec", STATEFUL_SET_UPDATE_FORBIDDEN));
        }
    }
}

pub(super) fn daemon_set(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    validate_workload(obj, old, causes);
    let spec = &obj["spec"];
    restart_always(spec, causes);
    one_of(
        &spec["updateStrategy"]["type"],
        "spec.updateStrategy.type",
        &["OnDelete", "RollingUpdate"],
        causes,
    );
    non_negative(&spec["minReadySeconds"], "spec.minReadySeconds", causes);
}

pub(super) fn job(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    job_spec(spec, "spec", true, causes);
    let Some(old) = old else { return };
    let old_spec = &old["spec"];
    for field in [
        "selector",
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
    ] {
        immutable(old_spec, spec, "spec", field, causes);
    }
    // Indexed Jobs are elastic: completions may follow parallelism.
    let elastic = spec["completionMode"] == "Indexed" && spec["completions"] == spec["parallelism"];
    if !elastic {
        immutable(old_spec, spec, "spec", "completions", causes);
    }
    // The template may change only while the Job is suspended and has not started.
    let unstarted = old_spec["suspend"] == json!(true) && old["status"]["startTime"].is_null();
    if !unstarted {
        immutable(old_spec, spec, "spec", "template", causes);
    }
}

/// A Job's spec, at `path` (`spec` of a Job, `spec.jobTemplate.spec` of a CronJob).
fn job_spec(spec: &Value, path: &str, selector_required: bool, causes: &mut Vec<Cause>) {
    selector_selects_template(spec, path, selector_required, causes);
    for field in [
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        non_negative(&spec[field], &format!("{path}.{field}"), causes);
    }
    one_of(
        &spec["completionMode"],
        &format!("{path}.completionMode"),
        &["NonIndexed", "Indexed"],
        causes,
    );
    if spec["completionMode"] == "Indexed" && spec["completions"].is_null() {
        causes.push(Cause::required(
            format!("{path}.completions"),
            "when completion mode is Indexed",
        ));
    }
    for (i, rule) in spec["podFailurePolicy"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{path}.podFailurePolicy.rules[{i}]");
        one_of(
            &rule["action"],
            &format!("{at}.action"),
            &["Count", "FailIndex", "FailJob", "Ignore"],
            causes,
        );
        if rule["onExitCodes"].is_null() == rule["onPodConditions"].is_null() {
            causes.push(Cause::invalid(
                &at,
                rule,
                "specifying one of OnExitCodes and OnPodConditions is required",
            ));
        }
        one_of(
            &rule["onExitCodes"]["operator"],
            &format!("{at}.onExitCodes.operator"),
            &["In", "NotIn"],
            causes,
        );
    }
    let template_spec = format!("{path}.template.spec");
    validate_pod_spec(&spec["template"]["spec"], &template_spec, causes);
    let policy = &spec["template"]["spec"]["restartPolicy"];
    if !matches!(policy.as_str(), Some("OnFailure" | "Never")) {
        causes.push(Cause::not_supported(
            format!("{template_spec}.restartPolicy"),
            policy,
            &["OnFailure", "Never"],
        ));
    }
}

pub(super) fn cron_job(obj: &Value, causes: &mut Vec<Cause>) {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    // The Jobs it makes are named `<name>-<minutes since the epoch>` (11 characters).
    if name.len() > 52 {
        causes.push(Cause::invalid(
            "metadata.name",
            &json!(name),
            "must be no more than 52 characters",
        ));
    }
    let spec = &obj["spec"];
    match spec["schedule"].as_str() {
        None | Some("") => causes.push(Cause::required("spec.schedule", "")),
        Some(schedule) => {
            if let Err(e) = keg_apimachinery::cron::parse(schedule) {
                causes.push(Cause::invalid("spec.schedule", &spec["schedule"], &e));
            }
        }
    }
    if let Some(zone) = spec["timeZone"].as_str()
        && jiff::tz::TimeZone::get(zone).is_err()
    {
        causes.push(Cause::invalid(
            "spec.timeZone",
            &spec["timeZone"],
            &format!("unknown time zone {zone}"),
        ));
    }
    one_of(
        &spec["concurrencyPolicy"],
        "spec.concurrencyPolicy",
        &["Allow", "Forbid", "Replace"],
        causes,
    );
    for field in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        non_negative(&spec[field], &format!("spec.{field}"), causes);
    }
    job_spec(
        &spec["jobTemplate"]["spec"],
        "spec.jobTemplate.spec",
        false,
        causes,
    );
}

/// A ReplicationController: an equality selector that selects its template's labels.
pub(super) fn replication_controller(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let selector = spec["selector"].as_object().cloned().unwrap_or_default();
    if selector.is_empty() {
        causes.push(Cause::required("spec.selector", ""));
    }
    non_negative(&spec["replicas"], "spec.replicas", causes);
    non_negative(&spec["minReadySeconds"], "spec.minReadySeconds", causes);
    if !spec["template"].is_object() {
        causes.push(Cause::required("spec.template", ""));
        return;
    }
    let labels = spec["template"]["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if !selector.is_empty() && !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
        causes.push(Cause::invalid(
            "spec.template.metadata.labels",
            &Value::Object(labels),
            "`selector` does not match template `labels`",
        ));
    }
    restart_always(spec, causes);
    validate_pod_spec(&spec["template"]["spec"], "spec.template.spec", causes);
}
