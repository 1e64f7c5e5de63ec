//! Preemption, as upstream's DefaultPreemption plugin: when a pod fits no node, find a node
//! where evicting pods of lower priority makes it fit. On each node every lower-priority pod is
//! taken off first, then as many as possible are given back (those a disruption budget
//! protects first, then highest priority first); the node whose victims violate the fewest
//! budgets, then have the lowest highest priority, then the lowest sum of priorities, then are
//! fewest, wins. Pods with `preemptionPolicy: Never` preempt nothing; a pod that already
//! nominated a node waits while lower-priority pods there are still terminating.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;

use super::{Usage, filter};

/// A pod's priority (0 when the Priority admission did not set one).
pub(crate) fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// Where a pod may go by preempting, and whom it evicts.
#[derive(Debug)]
pub(crate) struct Candidate {
    /// The node.
    pub node: String,
    /// The pods to evict, gracefully.
    pub victims: Vec<Arc<Pod>>,
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

fn running(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether evicting `pod` would break a budget that allows no disruption now.
fn protected(pod: &Pod, budgets: &[Arc<PodDisruptionBudget>]) -> bool {
    budgets.iter().any(|b| {
        b.status.as_ref().is_none_or(|s| s.disruptions_allowed <= 0)
            && keg_controllers::owners::budget_covers(b, &pod.metadata)
    })
}

/// Whether the pod may preempt at all now.
fn eligible(pod: &Pod, pods: &[Arc<Pod>]) -> bool {
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return false;
    }
    let nominated = pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref());
    // Victims already going: wait for them rather than choosing more.
    !nominated.is_some_and(|node| {
        pods.iter().any(|p| {
            node_of(p) == Some(node)
                && p.metadata.deletion_timestamp.is_some()
                && priority(p) < priority(pod)
        })
    })
}

/// The best node to preempt on, if any.
pub(crate) fn find(
    pod: &Pod,
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
    usage: &BTreeMap<String, Usage>,
    budgets: &[Arc<PodDisruptionBudget>],
) -> Option<Candidate> {
    if !eligible(pod, pods) {
        return None;
    }
    let mine = priority(pod);
    let mut best: Option<((usize, i32, i64, usize), Candidate)> = None;
    for node in nodes
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
    {
        let name = node.name_any();
        let mut lower: Vec<Arc<Pod>> = pods
            .iter()
            .filter(|p| node_of(p) == Some(name.as_str()) && running(p))
            .filter(|p| p.metadata.deletion_timestamp.is_none() && priority(p) < mine)
            .cloned()
            .collect();
        if lower.is_empty() {
            continue;
        }
        let mut used = usage.get(&name).cloned().unwrap_or_default();
        for victim in &lower {
            used.remove(victim);
        }
        if filter(pod, node, &used).is_err() {
            continue; // even evicting every lower-priority pod would not do
        }
        // Give back protected pods first, then the highest priorities.
        lower.sort_by_key(|p| (!protected(p, budgets), -priority(p)));
        let mut victims = Vec::new();
        for candidate in lower {
            let mut with = used.clone();
            with.add(&candidate);
            if filter(pod, node, &with).is_ok() {
                used = with;
            } else {
                victims.push(candidate);
            }
        }
        let violations = victims.iter().filter(|v| protected(v, budgets)).count();
        let highest = victims
            .iter()
            .map(|v| priority(v))
            .max()
            .unwrap_or(i32::MIN);
        let sum: i64 = victims.iter().map(|v| i64::from(priority(v))).sum();
        let rank = (violations, highest, sum, victims.len());
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((
                rank,
                Candidate {
                    node: name,
                    victims,
                },
            ));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "17"},
                           "conditions": [{"type": "Ready", "status": "True"}]}
            }))
            .unwrap(),
        )
    }

    fn pod(name: &str, cpu: &str, priority: i32, node: Option<&str>) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "d", "labels": {"app": name}},
                "spec": {"nodeName": node, "priority": priority,
                    "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}}}]},
                "status": {"phase": if node.is_some() { "Running" } else { "Pending" }},
            }))
            .unwrap(),
        )
    }

    fn usage(pods: &[Arc<Pod>]) -> BTreeMap<String, Usage> {
        let mut usage: BTreeMap<String, Usage> = BTreeMap::new();
        for p in pods {
            if let Some(n) = node_of(p) {
                usage.entry(n.to_string()).or_default().add(p);
            }
        }
        usage
    }

    #[test]
    fn the_fewest_lowest_victims_on_the_best_node() {
        let nodes = [node("a"), node("b")];
        let pods = vec![
            pod("a-low", "1500m", 10, Some("a")),
            pod("b-low", "1", 5, Some("b")),
            pod("b-lower", "800m", 1, Some("b")),
        ];
        let high = pod("high", "1200m", 1000, None);
        let found = find(&high, &nodes, &pods, &usage(&pods), &[]).unwrap();
        // On b, b-lower (800m) can stay beside the new pod, so only b-low (priority 5) goes:
        // a lower victim than a's (priority 10).
        assert_eq!(found.node, "b");
        let names: Vec<String> = found.victims.iter().map(|v| v.name_any()).collect();
        assert_eq!(names, ["b-low"]);
    }

    #[test]
    fn never_and_equal_priorities_preempt_nothing() {
        let nodes = [node("a")];
        let pods = vec![pod("same", "2", 100, Some("a"))];
        let peer = pod("peer", "1", 100, None);
        assert!(find(&peer, &nodes, &pods, &usage(&pods), &[]).is_none());
        let mut polite = (*pod("polite", "1", 1000, None)).clone();
        polite.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
        assert!(find(&polite, &nodes, &pods, &usage(&pods), &[]).is_none());
    }

    #[test]
    fn budgets_steer_the_choice() {
        let nodes = [node("a"), node("b")];
        let pods = vec![
            pod("guarded", "2", 1, Some("a")),
            pod("free", "2", 5, Some("b")),
        ];
        let budget: Arc<PodDisruptionBudget> = Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "guard", "namespace": "d"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}},
                "status": {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1},
            }))
            .unwrap(),
        );
        let high = pod("high", "1", 1000, None);
        let found = find(&high, &nodes, &pods, &usage(&pods), &[budget]).unwrap();
        assert_eq!(found.node, "b", "no budget is broken on b");
    }
}
