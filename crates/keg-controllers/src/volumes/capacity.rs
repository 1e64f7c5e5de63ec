//! Storage booked against nodes. A keg volume is a directory on its node's machine; what it
//! claims is booked against the node's `ephemeral-storage` (the node group's `volumeSize`),
//! so a node never promises more than its disk. The bookings are the volumes themselves
//! (annotated with their node), so there is no second record to drift from the truth.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, PersistentVolume};
use keg_api::nodes::COMPUTE_TYPE_LABEL;

use super::{ANN_VOLUME_NODE, annotation, volume_bytes};

/// The storage a node offers to volumes: its allocatable (else capacity) ephemeral storage.
pub fn node_storage(node: &Node) -> u64 {
    let status = node.status.as_ref();
    let quantity = status
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get("ephemeral-storage"))
        .or_else(|| {
            status
                .and_then(|s| s.capacity.as_ref())
                .and_then(|c| c.get("ephemeral-storage"))
        });
    quantity
        .and_then(|q| keg_api::quantity::parse_bytes(&q.0).ok())
        .unwrap_or(0)
}

/// The storage booked on each node by the volumes keg provisioned there.
pub fn booked<'a>(
    volumes: impl IntoIterator<Item = &'a PersistentVolume>,
) -> BTreeMap<String, u64> {
    let mut booked = BTreeMap::new();
    for volume in volumes {
        if let Some(node) = annotation(&volume.metadata, ANN_VOLUME_NODE) {
            *booked.entry(node.clone()).or_default() += volume_bytes(volume);
        }
    }
    booked
}

/// The storage a node still has for new volumes.
pub fn free(node: &Node, booked: &BTreeMap<String, u64>) -> u64 {
    let name = node.metadata.name.clone().unwrap_or_default();
    node_storage(node).saturating_sub(booked.get(&name).copied().unwrap_or(0))
}

/// Whether a node can hold keg volumes: a node-group (or other machine) node, not a
/// Fargate one (Fargate mounts no block storage), not cordoned and not going away.
pub fn can_hold_volumes(node: &Node) -> bool {
    let fargate = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(COMPUTE_TYPE_LABEL))
        .is_some_and(|v| v == "fargate");
    let cordoned = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    !fargate && !cordoned && node.metadata.deletion_timestamp.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, storage: &str, labels: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {"ephemeral-storage": storage}},
        }))
        .unwrap()
    }

    fn volume(node: &str, size: &str) -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": format!("pv-{node}-{size}"), "annotations": {ANN_VOLUME_NODE: node}},
            "spec": {"capacity": {"storage": size}},
        }))
        .unwrap()
    }

    #[test]
    fn volumes_book_their_node() {
        let volumes = [volume("a", "1Gi"), volume("a", "512Mi"), volume("b", "2Gi")];
        let booked = booked(&volumes);
        assert_eq!(booked["a"], (1 << 30) + (512 << 20));
        assert_eq!(free(&node("a", "2Gi", json!({})), &booked), 512 << 20);
        assert_eq!(free(&node("b", "1Gi", json!({})), &booked), 0);
        assert_eq!(free(&node("c", "1Gi", json!({})), &booked), 1 << 30);
    }

    #[test]
    fn fargate_nodes_hold_no_volumes() {
        assert!(can_hold_volumes(&node("a", "1Gi", json!({}))));
        assert!(!can_hold_volumes(&node(
            "f",
            "20Gi",
            json!({COMPUTE_TYPE_LABEL: "fargate"})
        )));
    }
}
