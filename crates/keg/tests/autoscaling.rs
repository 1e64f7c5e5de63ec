//! Node-group autoscaling with real pods: three pods of 1500m that one t3.medium (2 vCPU)
//! cannot hold grow the group from 1 to 3 nodes (`TriggeredScaleUp`); a fourth finds the
//! group at its maxSize and is told so (`NotTriggerScaleUp`); once the pods are gone the
//! empty nodes go after the unneeded time, back to minSize.

mod common;

use std::time::Duration;

use common::{Kubectl, PodServer, eventually};

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: big, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:test
        command: [sleep, "3600"]
        resources: {requests: {cpu: 1500m, memory: 64Mi}}
"#;

fn group_nodes(k: &Kubectl) -> usize {
    let nodes = k.json(&[
        "get",
        "nodes",
        "-l",
        "alpha.eksctl.io/nodegroup-name=ng",
        "-o",
        "json",
    ]);
    nodes["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|n| n["metadata"]["deletionTimestamp"].is_null())
                .count()
        })
        .unwrap_or(0)
}

fn running(k: &Kubectl) -> usize {
    k.running_pods("app=big").len()
}

fn event_messages(k: &Kubectl, reason: &str) -> String {
    k.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("reason={reason}"),
        "-o",
        "custom-columns=MSG:.message",
    ])
}

#[test]
fn node_groups_grow_for_pending_pods_and_shrink_when_idle() {
    let Some(server) = PodServer::start(
        "node_groups_grow_for_pending_pods_and_shrink_when_idle",
        &["--scale-down-unneeded-time", "3"],
    ) else {
        return;
    };
    let k = server.kubectl("1.33");
    server.node_group("ng", "t3.medium", 1, 3);
    eventually("the first node", Duration::from_secs(60), || {
        (group_nodes(&k) == 1).then_some(())
    });
    k.ok_stdin(&["apply", "-f", "-"], APP);
    eventually(
        "three pods running on three nodes",
        Duration::from_secs(120),
        || (running(&k) == 3 && group_nodes(&k) == 3).then_some(()),
    );
    let triggered = event_messages(&k, "TriggeredScaleUp");
    // One scan may see both pending pods (1->3) or one at a time (1->2, 2->3).
    assert!(
        triggered.contains("pod triggered scale-up: [{ng 1->3 (max: 3)}]")
            || (triggered.contains("pod triggered scale-up: [{ng 1->2 (max: 3)}]")
                && triggered.contains("pod triggered scale-up: [{ng 2->3 (max: 3)}]")),
        "{triggered}"
    );

    // A fourth pod: the group is at its maxSize.
    k.ok(&["scale", "deployment", "big", "--replicas=4"]);
    let refused = eventually("the fourth pod told why", Duration::from_secs(60), || {
        let text = event_messages(&k, "NotTriggerScaleUp");
        text.contains("pod didn't trigger scale-up: 1 max node group size reached")
            .then_some(text)
    });
    assert!(!refused.is_empty());
    assert_eq!(group_nodes(&k), 3);

    // The pods go; after the unneeded time the empty nodes go too, down to minSize.
    k.ok(&["delete", "deployment", "big"]);
    eventually("back to one node", Duration::from_secs(120), || {
        (group_nodes(&k) == 1).then_some(())
    });
    let group = k.json(&["get", "nodegroup", "ng", "-o", "json"]);
    assert_eq!(group["spec"]["desiredCapacity"], 1);
    let down = event_messages(&k, "ScaleDownEmpty");
    assert!(down.contains("Scale-down: removing empty node"), "{down}");
    let up = event_messages(&k, "ScaledUpGroup");
    assert!(
        up.contains("Scale-up: setting group ng size to 3 instead of"),
        "{up}"
    );
}

fn node_of(k: &Kubectl, selector: &str) -> Vec<String> {
    k.running_pods(selector)
        .iter()
        .map(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// Consolidation: a node whose only pods are two small ones (10% of its CPU) that fit on the
/// group's other node is drained through evictions their budget allows and removed.
#[test]
fn an_underused_node_is_drained_onto_the_others_and_removed() {
    let Some(server) = PodServer::start(
        "an_underused_node_is_drained_onto_the_others_and_removed",
        &["--scale-down-unneeded-time", "3"],
    ) else {
        return;
    };
    let k = server.kubectl("1.33");
    // minSize 2 while the pods are placed, so that nothing is removed before.
    let group = |min: u32| {
        format!(
            "apiVersion: keg.dev/v1\nkind: NodeGroup\nmetadata: {{name: ng}}\nspec: {{instanceType: t3.medium, desiredCapacity: 2, minSize: {min}, maxSize: 3}}\n"
        )
    };
    k.ok_stdin(&["apply", "-f", "-"], &group(2));
    let names = eventually("two nodes", Duration::from_secs(60), || {
        let nodes = k.json(&["get", "nodes", "-l", "alpha.eksctl.io/nodegroup-name=ng"]);
        let names: Vec<String> = nodes["items"]
            .as_array()?
            .iter()
            .filter(|n| {
                n["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        (names.len() == 2).then_some(names)
    });
    let (kept, drained) = (&names[0], &names[1]);
    // A big pod pinned to the kept node; two small ones (with a budget) on the other.
    k.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: big, namespace: default}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: big}}}}
  template:
    metadata: {{labels: {{app: big}}}}
    spec:
      terminationGracePeriodSeconds: 1
      nodeSelector: {{kubernetes.io/hostname: {kept}}}
      containers:
      - {{name: main, image: busybox:test, command: [sleep, "3600"], resources: {{requests: {{cpu: 1500m, memory: 64Mi}}}}}}
"#
        ),
    );
    eventually("big running", Duration::from_secs(60), || {
        (node_of(&k, "app=big") == [kept.clone()]).then_some(())
    });
    k.ok(&["cordon", kept]);
    k.ok_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: small, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: small}}
  template:
    metadata: {labels: {app: small}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: busybox:test, command: [sleep, "3600"], resources: {requests: {cpu: 100m, memory: 32Mi}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: small, namespace: default}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: small}}
"#,
    );
    eventually(
        "small pods on the other node",
        Duration::from_secs(60),
        || (node_of(&k, "app=small") == [drained.clone(), drained.clone()]).then_some(()),
    );
    k.ok(&["uncordon", kept]);

    // Now the group may shrink: the small pods' node goes, they run beside the big one.
    k.ok_stdin(&["apply", "-f", "-"], &group(1));
    eventually(
        "the small pods moved and the node gone",
        Duration::from_secs(120),
        || {
            (group_nodes(&k) == 1 && node_of(&k, "app=small") == [kept.clone(), kept.clone()])
                .then_some(())
        },
    );
    let group = k.json(&["get", "nodegroup", "ng"]);
    assert_eq!(group["spec"]["desiredCapacity"], 1);
    let down = event_messages(&k, "ScaleDown");
    assert!(
        down.contains(&format!(
            "Scale-down: removing node {drained}, utilization: {{0.1 "
        )) && down.contains("pods to reschedule: default/small-"),
        "{down}"
    );
    assert!(down.contains("deleting pod for node scale down"), "{down}");
    let node = k.run(&["get", "node", drained]);
    assert!(!node.status.success(), "the drained node is gone");
}
