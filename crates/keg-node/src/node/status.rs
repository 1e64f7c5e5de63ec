//! A node's status as the kubelet posts it: the four conditions with upstream's reasons and
//! messages, nodeInfo, daemon endpoints, and capacity where its creator left it out.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeCondition, NodeDaemonEndpoints, NodeStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::machine::MachineFacts;

/// Pods a node takes when its creator did not say (the kubelet's `maxPods` default).
const DEFAULT_MAX_PODS: u32 = 110;

/// (type, status, reason, message) of the conditions the kubelet owns, in its order.
fn conditions() -> [(&'static str, &'static str, &'static str, &'static str); 4] {
    [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        (
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        (
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        (
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
    ]
}

/// The status to post: the node's current status with the kubelet's parts replaced.
/// Conditions keep their `lastTransitionTime` while their status stays the same; conditions
/// of other owners are kept.
pub(crate) fn desired_status(
    node: &Node,
    facts: &MachineFacts,
    images: Vec<ContainerImage>,
    now: Time,
) -> NodeStatus {
    let mut status = node.status.clone().unwrap_or_default();
    let old = status.conditions.take().unwrap_or_default();
    let mut merged: Vec<NodeCondition> = old
        .iter()
        .filter(|c| !conditions().iter().any(|(t, ..)| *t == c.type_))
        .cloned()
        .collect();
    for (type_, value, reason, message) in conditions() {
        let previous = old.iter().find(|c| c.type_ == type_);
        let since = previous
            .filter(|p| p.status == value)
            .and_then(|p| p.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        merged.push(NodeCondition {
            type_: type_.into(),
            status: value.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(since),
        });
    }
    status.conditions = Some(merged);
    status.node_info = Some(facts.info.clone());
    status.daemon_endpoints = Some(NodeDaemonEndpoints {
        kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
    });
    let capacity = status.capacity.get_or_insert_with(BTreeMap::new);
    for (key, value) in [
        ("cpu", facts.cpus.to_string()),
        ("memory", format!("{}Ki", facts.memory_bytes / 1024)),
        (
            "ephemeral-storage",
            format!("{}Ki", facts.disk_bytes / 1024),
        ),
        ("pods", DEFAULT_MAX_PODS.to_string()),
    ] {
        capacity
            .entry(key.into())
            .or_insert_with(|| Quantity(value));
    }
    let capacity = capacity.clone();
    let allocatable = status.allocatable.get_or_insert_with(BTreeMap::new);
    for (key, value) in capacity {
        allocatable.entry(key).or_insert(value);
    }
    status.images = (!images.is_empty()).then_some(images);
    status
}

/// Whether a status differs from the posted one in more than heartbeat times.
pub(crate) fn differs(posted: &NodeStatus, desired: &NodeStatus) -> bool {
    let strip = |s: &NodeStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_heartbeat_time = None;
        }
        s
    };
    strip(posted) != strip(desired)
}

/// Whether the node's Ready condition is True.
pub(crate) fn is_ready(status: Option<&NodeStatus>) -> bool {
    status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The images of the store, as `status.images` lists them (largest first, at most 50).
pub(crate) fn images(store: &keg_runtime::ImageStore) -> Vec<ContainerImage> {
    let mut images: Vec<ContainerImage> = store
        .list()
        .unwrap_or_default()
        .into_iter()
        .map(|i| ContainerImage {
            names: Some(i.repo_digests.into_iter().chain(i.repo_tags).collect()),
            size_bytes: Some(i.size as i64),
        })
        .collect();
    images.sort_by_key(|i| std::cmp::Reverse(i.size_bytes));
    images.truncate(50);
    images
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::now;

    fn facts() -> MachineFacts {
        MachineFacts {
            info: Default::default(),
            cpus: 4,
            memory_bytes: 8 << 30,
            disk_bytes: 100 << 30,
        }
    }

    #[test]
    fn keeps_transition_times_and_given_capacity() {
        let mut node = Node::default();
        let earlier = Time("2024-01-01T00:00:00Z".parse().unwrap());
        node.status = Some(NodeStatus {
            capacity: Some([("cpu".to_string(), Quantity("2".into()))].into()),
            conditions: Some(vec![
                NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(earlier.clone()),
                    ..Default::default()
                },
                NodeCondition {
                    type_: "NetworkUnavailable".into(),
                    status: "False".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        });
        let status = desired_status(&node, &facts(), vec![], now());
        let conditions = status.conditions.as_ref().unwrap();
        let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.last_transition_time, Some(earlier));
        assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
        assert!(conditions.iter().any(|c| c.type_ == "NetworkUnavailable"));
        assert_eq!(conditions.len(), 5);
        let capacity = status.capacity.as_ref().unwrap();
        assert_eq!(capacity["cpu"].0, "2", "the creator's capacity stays");
        assert_eq!(capacity["pods"].0, "110");
        assert_eq!(status.allocatable.as_ref().unwrap()["cpu"].0, "2");
        assert!(is_ready(Some(&status)));
        node.status = Some(status.clone());
        let later = desired_status(&node, &facts(), vec![], now());
        assert!(!differs(&status, &later), "only heartbeats changed");
    }
}
