//! Which pods a ReplicaSet deletes first when it scales down, in upstream's order
//! (controller_utils.go's ActivePodsWithRanks): unscheduled before scheduled; Pending before
//! Unknown before Running; not ready before ready; lower pod-deletion-cost first; pods doubled
//! up on a node first; ready more recently first; more restarts first; newer first. Times
//! compare on a logarithmic scale (upstream's LogarithmicScaleDown), ties broken by UID.

use std::cmp::Ordering;
use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use crate::pods;

/// The annotation that makes a pod cheaper or dearer to delete.
const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The `count` pods of `pods` to delete first. `related` are the active pods of the
/// ReplicaSet and its siblings (same owner), counted per node to find doubled-up pods.
pub(crate) fn pods_to_delete(
    mut pods: Vec<Pod>,
    related: &[Pod],
    count: usize,
    now: Timestamp,
) -> Vec<Pod> {
    if count < pods.len() {
        let mut on_node: HashMap<&str, usize> = HashMap::new();
        for pod in related.iter().filter(|p| pods::is_active(p)) {
            *on_node.entry(node(pod)).or_default() += 1;
        }
        let rank = |p: &Pod| on_node.get(node(p)).copied().unwrap_or(0);
        let mut ranked: Vec<(usize, Pod)> = pods.into_iter().map(|p| (rank(&p), p)).collect();
        ranked.sort_by(|(ra, a), (rb, b)| compare(a, *ra, b, *rb, now));
        pods = ranked.into_iter().map(|(_, p)| p).collect();
    }
    pods.truncate(count);
    pods
}

fn node(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match pods::phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The highest restart count of regular containers, then of sidecars (restartable init
/// containers), as upstream compares them.
fn max_restarts(pod: &Pod) -> (i32, i32) {
    let Some(status) = pod.status.as_ref() else {
        return (0, 0);
    };
    let regular = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0);
    let sidecars: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let sidecar = status
        .init_container_statuses
        .iter()
        .flatten()
        .filter(|c| sidecars.contains(&c.name.as_str()))
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0);
    (regular, sidecar)
}

/// floor(log2(age in nanoseconds)), -1 for no age: times in the same power-of-two bucket
/// count as equally old.
fn log_rank(time: Option<Timestamp>, now: Timestamp) -> i32 {
    let nanos = now
        .duration_since(time.unwrap_or(Timestamp::UNIX_EPOCH))
        .as_nanos();
    if nanos <= 0 {
        -1
    } else {
        127 - (nanos as u128).leading_zeros() as i32
    }
}

/// Newer first on a logarithmic scale; `None` when both times are equal.
fn newer_first(
    a: Option<Timestamp>,
    b: Option<Timestamp>,
    uid_a: &str,
    uid_b: &str,
    now: Timestamp,
) -> Option<Ordering> {
    if a == b {
        return None;
    }
    match log_rank(a, now).cmp(&log_rank(b, now)) {
        Ordering::Equal => Some(uid_a.cmp(uid_b)),
        other => Some(other),
    }
}

/// `Less` when `a` should be deleted before `b`.
fn compare(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: Timestamp) -> Ordering {
    let (node_a, node_b) = (node(a), node(b));
    if node_a != node_b && (node_a.is_empty() || node_b.is_empty()) {
        return if node_a.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let by_state = phase_ordinal(a)
        .cmp(&phase_ordinal(b))
        .then(pods::is_ready(a).cmp(&pods::is_ready(b)))
        .then(deletion_cost(a).cmp(&deletion_cost(b)))
        .then(rank_b.cmp(&rank_a));
    if by_state != Ordering::Equal {
        return by_state;
    }
    let (uid_a, uid_b) = (
        a.metadata.uid.as_deref().unwrap_or_default(),
        b.metadata.uid.as_deref().unwrap_or_default(),
    );
    let both_ready = pods::is_ready(a) && pods::is_ready(b);
    if let Some(order) = both_ready
        .then(|| {
            newer_first(
                pods::ready_since(a),
                pods::ready_since(b),
                uid_a,
                uid_b,
                now,
            )
        })
        .flatten()
    {
        return order;
    }
    let (restarts_a, restarts_b) = (max_restarts(a), max_restarts(b));
    if restarts_a != restarts_b {
        return restarts_b.cmp(&restarts_a);
    }
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    newer_first(created(a), created(b), uid_a, uid_b, now).unwrap_or(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn pod(
        name: &str,
        node: &str,
        phase: &str,
        ready: bool,
        created_secs_ago: i64,
        now: Timestamp,
    ) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.uid = Some(name.into());
        pod.metadata.creation_timestamp = Some(Time(
            now - jiff::SignedDuration::from_secs(created_secs_ago),
        ));
        pod.spec = Some(PodSpec {
            node_name: (!node.is_empty()).then(|| node.into()),
            ..Default::default()
        });
        let conditions = vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            last_transition_time: Some(Time(
                now - jiff::SignedDuration::from_secs(created_secs_ago),
            )),
            ..Default::default()
        }];
        pod.status = Some(PodStatus {
            phase: Some(phase.into()),
            conditions: Some(conditions),
            ..Default::default()
        });
        pod
    }

    fn names(pods: &[Pod]) -> Vec<&str> {
        pods.iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn upstream_order() {
        let now: Timestamp = "2024-06-01T00:00:00Z".parse().unwrap();
        let pods = vec![
            pod("running-ready-old", "n1", "Running", true, 100_000, now),
            pod("running-ready-new", "n2", "Running", true, 10, now),
            pod("running-not-ready", "n3", "Running", false, 100_000, now),
            pod("pending", "n4", "Pending", false, 100_000, now),
            pod("unscheduled", "", "Pending", false, 100_000, now),
        ];
        let ordered = pods_to_delete(pods.clone(), &pods, 4, now);
        assert_eq!(
            names(&ordered),
            [
                "unscheduled",
                "pending",
                "running-not-ready",
                "running-ready-new"
            ]
        );
    }

    #[test]
    fn doubled_up_and_deletion_cost() {
        let now: Timestamp = "2024-06-01T00:00:00Z".parse().unwrap();
        let a = pod("alone", "n1", "Running", true, 1000, now);
        let b = pod("doubled", "n2", "Running", true, 1000, now);
        let c = pod("doubled-sibling", "n2", "Running", true, 1000, now);
        let related = vec![a.clone(), b.clone(), c];
        assert_eq!(
            names(&pods_to_delete(
                vec![a.clone(), b.clone()],
                &related,
                1,
                now
            )),
            ["doubled"]
        );
        let mut dear = b;
        dear.metadata.annotations = Some([(DELETION_COST.to_string(), "10".to_string())].into());
        assert_eq!(
            names(&pods_to_delete(vec![a, dear], &related, 1, now)),
            ["alone"]
        );
    }
}
