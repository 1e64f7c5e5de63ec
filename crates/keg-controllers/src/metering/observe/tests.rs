use super::*;
use serde_json::{Value, json};

fn pricing(prices: &PriceTable) -> Pricing<'_> {
    Pricing {
        region: "us-east-1",
        prices,
    }
}

fn fargate_node() -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": "fargate-ip-1", "uid": "n1", "labels": {
            COMPUTE_TYPE_LABEL: "fargate", PROFILE_LABEL: "fp-node"}},
    }))
    .unwrap()
}

fn group_node(ready: bool) -> Node {
    let conditions = if ready {
        json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:05Z"}])
    } else {
        json!([{"type": "Ready", "status": "False", "lastTransitionTime": "2025-01-01T00:00:00Z"}])
    };
    serde_json::from_value(json!({
        "metadata": {"name": "ip-1", "uid": "n2", "labels": {
            NODEGROUP_LABEL: "ng-1", INSTANCE_TYPE_LABEL: "t3.medium"}},
        "status": {"conditions": conditions},
    }))
    .unwrap()
}

fn pod(status: Value, extra_meta: Value) -> Pod {
    let mut meta = json!({"name": "web", "namespace": "tb-demo", "uid": "p1",
        "labels": {PROFILE_LABEL: "fp-demo"},
        "annotations": {CAPACITY_ANNOTATION: "0.5vCPU 1GB"}});
    for (k, v) in extra_meta.as_object().unwrap() {
        meta[k] = v.clone();
    }
    serde_json::from_value(json!({
        "metadata": meta,
        "spec": {"nodeName": "fargate-ip-1", "containers": [
            {"name": "app", "image": "app", "resources": {"requests": {"cpu": "400m", "memory": "512Mi"}}}]},
        "status": status,
    }))
    .unwrap()
}

fn terminated(at: &str) -> Value {
    json!([{"name": "app", "image": "app", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "finishedAt": at}}}])
}

#[test]
fn a_started_fargate_pod_is_billed_at_its_provisioned_size() {
    let prices = PriceTable::aws();
    let status = json!({"phase": "Running", "startTime": "2025-01-01T00:00:00Z"});
    let node = fargate_node();
    let record = pod_record(&pod(status, json!({})), Some(&node), &pricing(&prices)).unwrap();
    assert_eq!(record.compute, Compute::Fargate);
    assert_eq!(record.capacity.as_deref(), Some("0.5vCPU 1GB"));
    assert_eq!((record.cpu_millis, record.memory_mib), (500, 1024));
    assert!((record.hourly_rate - (0.5 * 0.04048 + 0.004445)).abs() < 1e-12);
    assert_eq!(record.profile.as_deref(), Some("fp-demo"));
    assert_eq!(record.pod_labels[PROFILE_LABEL], "fp-demo");
    assert_eq!(record.requests.unwrap().cpu_millis, 400);
    assert_eq!(record.requests.unwrap().memory_bytes, 512 << 20);
    assert_eq!(record.start.to_string(), "2025-01-01T00:00:00Z");
    assert_eq!((record.end, record.end_reason), (None, None));
    assert_eq!(record.object_name(), "pod-p1");
}

#[test]
fn a_pod_the_agent_has_not_started_is_not_billed() {
    let prices = PriceTable::aws();
    let node = fargate_node();
    let pending = pod(json!({"phase": "Pending"}), json!({}));
    assert_eq!(pod_record(&pending, Some(&node), &pricing(&prices)), None);
}

#[test]
fn a_pod_ends_when_its_last_container_finished() {
    let prices = PriceTable::aws();
    let node = fargate_node();
    let done = json!({"phase": "Succeeded", "startTime": "2025-01-01T00:00:00Z",
        "containerStatuses": terminated("2025-01-01T00:00:10Z")});
    let record = pod_record(&pod(done, json!({})), Some(&node), &pricing(&prices)).unwrap();
    assert_eq!(record.end.unwrap().to_string(), "2025-01-01T00:00:10Z");
    assert_eq!(record.end_reason, Some(EndReason::Terminated));
    assert_eq!(record.billed_seconds(jiff::Timestamp::MAX), 60);
    // A deleted pod whose containers stopped has ended too, though its phase stays Running.
    let deleting = json!({"phase": "Running", "startTime": "2025-01-01T00:00:00Z",
        "containerStatuses": terminated("2025-01-01T00:01:01Z")});
    let meta = json!({"deletionTimestamp": "2025-01-01T00:01:00Z"});
    let record = pod_record(&pod(deleting.clone(), meta), Some(&node), &pricing(&prices)).unwrap();
    assert_eq!(record.billed_seconds(jiff::Timestamp::MAX), 61);
    // Without the deletion, a terminated container is a restart to come, not an end.
    let record = pod_record(&pod(deleting, json!({})), Some(&node), &pricing(&prices)).unwrap();
    assert_eq!(record.end, None);
}

#[test]
fn a_pod_on_a_node_group_costs_nothing_of_its_own() {
    let prices = PriceTable::aws();
    let node = group_node(true);
    let status = json!({"phase": "Running", "startTime": "2025-01-01T00:00:00Z"});
    let mut pod = pod(status, json!({"annotations": {}}));
    pod.spec.as_mut().unwrap().node_name = Some("ip-1".into());
    let record = pod_record(&pod, Some(&node), &pricing(&prices)).unwrap();
    assert_eq!(record.compute, Compute::Nodegroup);
    assert_eq!(record.node_group.as_deref(), Some("ng-1"));
    assert_eq!((record.hourly_rate, record.capacity.clone()), (0.0, None));
}

#[test]
fn a_fargate_pod_whose_node_is_gone_is_known_by_its_annotation() {
    let prices = PriceTable::aws();
    let status = json!({"phase": "Running", "startTime": "2025-01-01T00:00:00Z"});
    let record = pod_record(&pod(status, json!({})), None, &pricing(&prices)).unwrap();
    assert_eq!(record.compute, Compute::Fargate);
    assert_eq!(record.profile.as_deref(), Some("fp-demo"));
}

#[test]
fn a_node_group_node_is_billed_from_ready_at_its_instance_price() {
    let prices = PriceTable::aws();
    assert_eq!(node_record(&group_node(false), &pricing(&prices)), None);
    let record = node_record(&group_node(true), &pricing(&prices)).unwrap();
    assert_eq!(record.subject, Subject::Node);
    assert_eq!(record.start.to_string(), "2025-01-01T00:00:05Z");
    assert_eq!(record.hourly_rate, 0.0416);
    assert_eq!(record.instance_type.as_deref(), Some("t3.medium"));
    assert_eq!(record.capacity.as_deref(), Some("2vCPU 4GiB"));
    assert_eq!(record.object_name(), "node-n2");
    assert_eq!(node_record(&fargate_node(), &pricing(&prices)), None);
    let eu = Pricing {
        region: "eu-west-1",
        prices: &prices,
    };
    assert_eq!(
        node_record(&group_node(true), &eu).unwrap().hourly_rate,
        0.0456
    );
}
