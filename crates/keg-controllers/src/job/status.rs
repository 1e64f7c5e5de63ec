//! What the Job controller decides from pods alone: which pods have finished and how, what a
//! pod failure policy says of a failure, completion indexes, conditions and back-off.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::pods;

/// The finalizer that keeps a Job's pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The annotation and label that carry an Indexed Job pod's index.
pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";

/// How a pod ended, once it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every container exited 0.
    Succeeded,
    /// A container failed, or the pod was deleted first.
    Failed,
}

/// The pod's outcome if it is finished: Succeeded or Failed, or deleted before it
/// succeeded (which counts as a failure once its node has stopped it).
pub fn outcome(pod: &Pod) -> Option<Outcome> {
    match pods::phase(pod) {
        "Succeeded" => Some(Outcome::Succeeded),
        "Failed" => Some(Outcome::Failed),
        _ if pod.metadata.deletion_timestamp.is_some()
            && (pod.metadata.deletion_grace_period_seconds == Some(0)
                || pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_none()) =>
        {
            Some(Outcome::Failed)
        }
        _ => None,
    }
}

/// Whether the pod still holds the Job's tracking finalizer.
pub fn is_tracked(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

/// An Indexed Job pod's index.
pub fn index_of(pod: &Pod) -> Option<u32> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(INDEX_KEY)?
        .parse()
        .ok()
}

/// What a pod failure policy rule does with a failed pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Counts towards the back-off limit.
    Count,
    /// Not counted at all.
    Ignore,
    /// Fails the whole Job, with this message.
    FailJob(String),
}

/// The first rule of the Job's pod failure policy that matches the failed pod, as upstream
/// reads it; no policy or no matching rule counts the failure.
pub fn judge_failure(spec: &JobSpec, pod: &Pod) -> Verdict {
    let rules = spec
        .pod_failure_policy
        .as_ref()
        .map(|p| p.rules.as_slice())
        .unwrap_or_default();
    for (i, rule) in rules.iter().enumerate() {
        let Some(why) = rule_matches(rule, pod) else {
            continue;
        };
        return match rule.action.as_str() {
            "Ignore" => Verdict::Ignore,
            "FailJob" => Verdict::FailJob(format!("{why} matching FailJob rule at index {i}")),
            _ => Verdict::Count,
        };
    }
    Verdict::Count
}

/// Why the rule matches the pod (the start of upstream's message), if it does.
fn rule_matches(rule: &PodFailurePolicyRule, pod: &Pod) -> Option<String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    if let Some(codes) = &rule.on_exit_codes {
        let status = pod.status.as_ref()?;
        let containers = status.container_statuses.iter().flatten();
        let inits = status.init_container_statuses.iter().flatten();
        for c in inits.chain(containers) {
            if codes.container_name.as_ref().is_some_and(|n| *n != c.name) {
                continue;
            }
            let Some(code) = c
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.exit_code)
            else {
                continue;
            };
            if code == 0 {
                continue;
            }
            let listed = codes.values.contains(&code);
            if listed == (codes.operator == "In") {
                return Some(format!(
                    "Container {} for pod {ns}/{name} failed with exit code {code}",
                    c.name
                ));
            }
        }
        return None;
    }
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    rule.on_pod_conditions.iter().flatten().find_map(|pattern| {
        conditions
            .iter()
            .any(|c| c.type_ == pattern.type_ && c.status == pattern.status)
            .then(|| format!("Pod {ns}/{name} has condition {}", pattern.type_))
    })
}

/// A set of indexes as upstream writes it: `1,3-5,7`.
pub fn format_indexes(indexes: &BTreeSet<u32>) -> String {
    let mut parts = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// Reads `1,3-5,7` back.
pub fn parse_indexes(text: &str) -> BTreeSet<u32> {
    let mut set = BTreeSet::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    set.extend(a..=b);
                }
            }
            None => set.extend(part.parse::<u32>().ok()),
        }
    }
    set
}

/// Sets a condition, keeping its transition time when its status does not change.
pub fn set_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let condition = JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) if existing.status == status => {
            existing.reason = condition.reason;
            existing.message = condition.message;
        }
        Some(existing) => *existing = condition,
        None => conditions.push(condition),
    }
}

/// Whether the condition is there and True.
pub fn has_condition(conditions: &[JobCondition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// How long a Job waits after its `failures`-th failed pod before it makes a new one:
/// 10 s, doubling, at most six minutes (upstream's pod failure back-off).
pub fn backoff(failures: i32) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(failures - 1).unwrap_or(0).min(6);
    (Duration::from_secs(10) * 2u32.pow(doublings)).min(Duration::from_secs(360))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn index_sets_round_trip_in_upstreams_form() {
        let set: BTreeSet<u32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format_indexes(&set), "0-2,4,6-7");
        assert_eq!(parse_indexes("0-2,4,6-7"), set);
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }

    #[test]
    fn failure_policy_rules_match_exit_codes_in_order() {
        let spec: JobSpec = serde_json::from_value(json!({
            "template": {},
            "podFailurePolicy": {"rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            ]},
        }))
        .unwrap();
        let pod = |code: i32, disrupted: bool| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "ns"},
                "status": {
                    "phase": "Failed",
                    "conditions": if disrupted { json!([{"type": "DisruptionTarget", "status": "True"}]) } else { json!([]) },
                    "containerStatuses": [{"name": "main", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                        "state": {"terminated": {"exitCode": code}}}],
                },
            }))
            .unwrap()
        };
        assert_eq!(
            judge_failure(&spec, &pod(42, false)),
            Verdict::FailJob(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"
                    .into()
            )
        );
        assert_eq!(judge_failure(&spec, &pod(42, true)), Verdict::Ignore);
        assert_eq!(judge_failure(&spec, &pod(1, false)), Verdict::Count);
    }

    #[test]
    fn backoff_doubles_to_six_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(40));
        assert_eq!(backoff(20), Duration::from_secs(360));
    }
}
