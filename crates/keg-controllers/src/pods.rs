//! What controllers read of a pod's state, as upstream's podutil: active, ready, available.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodCondition};

/// A pod not finished and not being deleted (upstream's IsPodActive).
pub fn is_active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// The pod's phase, empty when it has none yet.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// The pod's Ready condition.
pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When a ready pod became ready, if it says.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    if !is_ready(pod) {
        return None;
    }
    ready_condition(pod)?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// When a ready pod with a known readiness time becomes available: minReadySeconds later.
fn available_from(pod: &Pod, min_ready_seconds: i32) -> Option<Timestamp> {
    let since = ready_since(pod)?;
    since
        .checked_add(Duration::from_secs(u64::from(
            min_ready_seconds.unsigned_abs(),
        )))
        .ok()
}

/// Whether the pod is available at `now` (upstream's IsPodAvailable: ready, and strictly
/// more than minReadySeconds ago when there are any).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_ready(pod) {
        return false;
    }
    min_ready_seconds <= 0 || available_from(pod, min_ready_seconds).is_some_and(|at| at < now)
}

/// How long until the first ready pod that is not yet available becomes available, so a
/// controller can look again then.
pub fn next_available_in<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Option<Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    pods.into_iter()
        .filter_map(|p| available_from(p, min_ready_seconds))
        .filter(|at| *at >= now)
        .min()
        .map(|at| {
            Duration::try_from(at.duration_since(now)).unwrap_or_default()
                + Duration::from_millis(100)
        })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn ready_pod(since: Timestamp) -> Pod {
        let condition = PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(since)),
            ..Default::default()
        };
        let status = k8s_openapi::api::core::v1::PodStatus {
            conditions: Some(vec![condition]),
            ..Default::default()
        };
        Pod {
            status: Some(status),
            ..Default::default()
        }
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let pod = ready_pod(t0);
        assert!(is_available(&pod, 0, t0));
        assert!(!is_available(
            &pod,
            10,
            t0 + jiff::SignedDuration::from_secs(10)
        ));
        assert!(is_available(
            &pod,
            10,
            t0 + jiff::SignedDuration::from_secs(11)
        ));
        let wait = next_available_in([&pod], 10, t0 + jiff::SignedDuration::from_secs(4)).unwrap();
        assert_eq!(wait, Duration::from_millis(6100));
        assert!(!is_available(&Pod::default(), 0, t0));
    }
}
