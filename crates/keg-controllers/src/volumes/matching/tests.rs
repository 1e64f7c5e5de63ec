use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use serde_json::{Value, json};

use super::*;

fn claim(extra: Value) -> PersistentVolumeClaim {
    let mut spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": "manual",
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(json!({
        "metadata": {"name": "data", "namespace": "ns", "uid": "u1"},
        "spec": spec,
    }))
    .unwrap()
}

fn volume(name: &str, size: &str, extra: Value) -> PersistentVolume {
    let mut pv = json!({
        "metadata": {"name": name, "labels": {"tier": "fast"}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
            "storageClassName": "manual",
            "hostPath": {"path": "/tmp/x"},
        },
        "status": {"phase": "Available"},
    });
    for (k, v) in extra.as_object().unwrap() {
        pv["spec"][k] = v.clone();
    }
    serde_json::from_value(pv).unwrap()
}

fn node(name: &str, zone: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "zone": zone}},
    }))
    .unwrap()
}

fn best<'a>(
    claim: &PersistentVolumeClaim,
    volumes: &'a [PersistentVolume],
    node: Option<&Node>,
    delay: bool,
) -> Option<&'a str> {
    find_best_match(claim, volumes, node, delay, &HashSet::new())
        .and_then(|v| v.metadata.name.as_deref())
}

#[test]
fn the_smallest_volume_that_fits_wins() {
    let volumes = [
        volume("big", "10Gi", json!({})),
        volume("small", "512Mi", json!({})),
        volume("right", "2Gi", json!({})),
    ];
    assert_eq!(
        best(&claim(json!({})), &volumes, None, false),
        Some("right")
    );
}

#[test]
fn class_modes_selector_and_phase_must_fit() {
    let other_class = volume("a", "5Gi", json!({"storageClassName": "other"}));
    let few_modes = volume("b", "5Gi", json!({"accessModes": ["ReadOnlyMany"]}));
    let mut bound = volume("c", "5Gi", json!({}));
    bound.status.as_mut().unwrap().phase = Some("Bound".into());
    let block = volume("d", "5Gi", json!({"volumeMode": "Block"}));
    let volumes = [other_class, few_modes, bound, block];
    assert_eq!(best(&claim(json!({})), &volumes, None, false), None);

    let labelled = [volume("e", "5Gi", json!({}))];
    let wants_slow = claim(json!({"selector": {"matchLabels": {"tier": "slow"}}}));
    assert_eq!(best(&wants_slow, &labelled, None, false), None);
    let wants_fast = claim(json!({"selector": {"matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["fast"]}]}}));
    assert_eq!(best(&wants_fast, &labelled, None, false), Some("e"));
}

#[test]
fn delayed_binding_leaves_all_but_pre_bound_volumes_to_the_scheduler() {
    let free = volume("free", "5Gi", json!({}));
    let pre_bound = volume(
        "mine",
        "5Gi",
        json!({"claimRef": {"name": "data", "namespace": "ns"}}),
    );
    assert_eq!(
        best(&claim(json!({})), std::slice::from_ref(&free), None, true),
        None
    );
    assert_eq!(
        best(&claim(json!({})), &[free, pre_bound], None, true),
        Some("mine")
    );
}

#[test]
fn a_claim_ref_with_another_uid_is_another_claim() {
    let other = volume(
        "old",
        "5Gi",
        json!({"claimRef": {"name": "data", "namespace": "ns", "uid": "u0"}}),
    );
    assert!(!is_bound_to(&other, &claim(json!({}))));
    assert_eq!(best(&claim(json!({})), &[other], None, false), None);
}

#[test]
fn node_affinity_decides_per_node() {
    let affinity = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}});
    let local = volume("local", "5Gi", json!({"nodeAffinity": affinity}));
    let volumes = [local];
    assert_eq!(
        best(&claim(json!({})), &volumes, Some(&node("n1", "a")), true),
        Some("local")
    );
    assert_eq!(
        best(&claim(json!({})), &volumes, Some(&node("n2", "a")), true),
        None
    );
    assert!(node_affinity_allows(&volumes[0], &node("n1", "b")));
    assert!(!node_affinity_allows(&volumes[0], &node("n2", "b")));
}

#[test]
fn node_selector_terms_are_ored_and_their_expressions_anded() {
    let terms: Vec<NodeSelectorTerm> = serde_json::from_value(json!([
        {"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a"]},
            {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["n3"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n9"]}]},
        {},
    ]))
    .unwrap();
    assert!(terms_match(&terms, &node("n1", "a")));
    assert!(!terms_match(&terms, &node("n3", "a")));
    assert!(!terms_match(&terms, &node("n2", "b")));
    assert!(terms_match(&terms, &node("n9", "b")));
}

#[test]
fn requested_volumes_are_checked_with_upstream_words() {
    let c = claim(json!({}));
    assert_eq!(
        check_satisfies(&volume("v", "512Mi", json!({})), &c),
        Err("requested PV is too small".into())
    );
    assert_eq!(
        check_satisfies(&volume("v", "1Gi", json!({"storageClassName": "x"})), &c),
        Err("storageClassName does not match".into())
    );
    assert_eq!(
        check_satisfies(
            &volume("v", "1Gi", json!({"accessModes": ["ReadOnlyMany"]})),
            &c
        ),
        Err("incompatible accessMode".into())
    );
    assert_eq!(check_satisfies(&volume("v", "1Gi", json!({})), &c), Ok(()));
}

#[test]
fn allowed_topologies_restrict_labels() {
    let terms: Vec<k8s_openapi::api::core::v1::TopologySelectorTerm> =
        serde_json::from_value(json!([{"matchLabelExpressions": [
            {"key": "zone", "values": ["a", "b"]}]}]))
        .unwrap();
    let labels = |zone: &str| [("zone".to_owned(), zone.to_owned())].into();
    assert!(topology_allows(Some(&terms), &labels("b")));
    assert!(!topology_allows(Some(&terms), &labels("c")));
    assert!(topology_allows(None, &labels("c")));
}
