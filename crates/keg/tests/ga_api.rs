//! The GA kinds beyond the workloads, with real kubectl: a ReplicationController kept by the
//! replica-set code (`kubectl scale rc`), pod priority from PriorityClasses (and the refusal of
//! an unknown class; as root, preemption on a full node group: a higher-priority pod evicts a
//! lower one and runs on its node, unless its class says `preemptionPolicy: Never`), and the
//! system objects: componentstatuses, flowschemas, priorityclasses,
//! apiservices, servicecidrs, events through events.k8s.io, podtemplates, csidrivers.

mod common;

use std::time::Duration;

use common::{Kubectl, Server, eventually};

fn pods_of(k: &Kubectl, selector: &str) -> usize {
    k.json(&["get", "pods", "-l", selector])["items"]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn replication_controllers_and_priorities_work_as_upstream() {
    let server = Server::start();
    let k = server.kubectl("1.33");
    let old = server.kubectl("1.27");
    k.ok_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: ReplicationController
metadata: {name: legacy, namespace: default}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: legacy}}
    spec:
      containers: [{name: c, image: busybox:test}]
"#,
    );
    // The selector and labels default to the template's, as upstream.
    let rc = k.json(&["get", "rc", "legacy"]);
    assert_eq!(rc["spec"]["selector"]["app"], "legacy", "{rc}");
    eventually("two pods", Duration::from_secs(30), || {
        (pods_of(&k, "app=legacy") == 2).then_some(())
    });
    old.ok(&["scale", "rc", "legacy", "--replicas=3"]);
    eventually("a third pod", Duration::from_secs(30), || {
        (pods_of(&k, "app=legacy") == 3).then_some(())
    });
    let table = k.ok(&["get", "rc"]);
    assert!(
        table.starts_with("NAME     DESIRED   CURRENT   READY   AGE"),
        "{table}"
    );
    let pod = &k.json(&["get", "pods", "-l", "app=legacy"])["items"][0];
    assert_eq!(
        pod["metadata"]["ownerReferences"][0]["kind"], "ReplicationController",
        "{pod}"
    );

    // Priorities.
    let classes = k.ok(&["get", "priorityclasses"]);
    assert!(
        classes.contains("system-cluster-critical   2000000000")
            && classes.contains("system-node-critical      2000001000"),
        "{classes}"
    );
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: critical, namespace: default}\nspec:\n  priorityClassName: system-cluster-critical\n  containers: [{name: c, image: busybox:test}]\n",
    );
    let critical = k.json(&["get", "pod", "critical"]);
    assert_eq!(critical["spec"]["priority"], 2_000_000_000_i64);
    assert_eq!(critical["spec"]["preemptionPolicy"], "PreemptLowerPriority");
    let refused = k.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: nope, namespace: default}\nspec:\n  priorityClassName: gold\n  containers: [{name: c, image: busybox:test}]\n",
    );
    assert!(!refused.status.success());
    assert!(
        refused
            .stderr
            .contains("pods \"nope\" is forbidden: no PriorityClass with name gold was found"),
        "{}",
        refused.stderr
    );
    assert!(k.run(&["get", "pod", "nope"]).stderr.contains("NotFound"));
    let reserved = k.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: system-mine}\nvalue: 5\n",
    );
    assert!(
        reserved
            .stderr
            .contains("priority class names with 'system-' prefix are reserved"),
        "{}",
        reserved.stderr
    );

    // The system objects and the rest of the list.
    let cs = k.ok(&["get", "componentstatuses"]);
    assert!(cs.contains("etcd-0") && cs.contains("Healthy"), "{cs}");
    let schemas = k.ok(&["get", "flowschemas"]);
    assert!(
        schemas.contains("exempt") && schemas.contains("catch-all"),
        "{schemas}"
    );
    let services = k.ok(&["get", "apiservices"]);
    assert!(
        services.contains("v1.apps") && services.contains("Local"),
        "{services}"
    );
    assert!(k.ok(&["get", "servicecidrs"]).contains("10.43.0.0/16"));
    for kind in ["podtemplates", "csidrivers", "ingresses", "networkpolicies"] {
        k.ok(&["get", kind, "-A"]);
    }
    let events = k.ok(&["get", "events.v1.events.k8s.io", "-A"]);
    assert!(!events.is_empty());
    let explain = k.ok(&["explain", "priorityclasses.value"]);
    assert!(explain.contains("value"), "{explain}");
}

/// A pod of priority class `class` that asks for 1500m of CPU (of a t3.medium's 2).
fn big_pod(name: &str, class: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, labels: {{app: {name}}}}}\n\
         spec:\n  priorityClassName: {class}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:test\n    command: [sleep, \"3600\"]\n    resources: {{requests: {{cpu: 1500m, memory: 64Mi}}}}\n"
    )
}

#[test]
fn on_a_full_node_group_a_higher_priority_pod_preempts_a_lower_one() {
    let test = "on_a_full_node_group_a_higher_priority_pod_preempts_a_lower_one";
    let Some(server) = common::PodServer::start(test, &[]) else {
        return;
    };
    let k = server.kubectl("1.33");
    // One node the group may not grow past: nothing but preemption makes room.
    server.node_group("ng", "t3.medium", 1, 1);
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: low}\nvalue: 100\n---\n\
         apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\nvalue: 1000\n---\n\
         apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high-never}\nvalue: 1000\npreemptionPolicy: Never\n",
    );
    k.ok_stdin(&["apply", "-f", "-"], &big_pod("low", "low"));
    let node = eventually("the low pod running", Duration::from_secs(60), || {
        let pods = k.running_pods("app=low");
        pods.first()
            .and_then(|p| p["spec"]["nodeName"].as_str().map(String::from))
    });

    // A high-priority pod whose class says `preemptionPolicy: Never` stays Pending: the node
    // is full.
    k.ok_stdin(&["apply", "-f", "-"], &big_pod("polite", "high-never"));
    let pending = eventually(
        "the polite pod unschedulable",
        Duration::from_secs(30),
        || {
            let pod = k.json(&["get", "pod", "polite"]);
            let reason = pod["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "PodScheduled")?["reason"]
                .clone();
            (reason == "Unschedulable").then_some(pod)
        },
    );
    assert!(pending["spec"]["nodeName"].is_null(), "{pending}");
    assert_eq!(k.running_pods("app=low").len(), 1);
    k.ok(&["delete", "pod", "polite", "--wait=false"]);

    // One that may preempt evicts the low pod, is nominated to its node, and runs there.
    k.ok_stdin(&["apply", "-f", "-"], &big_pod("urgent", "high"));
    let urgent = eventually("the urgent pod running", Duration::from_secs(90), || {
        k.running_pods("app=urgent").into_iter().next()
    });
    assert_eq!(urgent["spec"]["nodeName"], node.as_str(), "{urgent}");
    assert_eq!(urgent["spec"]["priority"], 1000);
    let low = k.run(&["get", "pod", "low", "-o", "json"]);
    assert!(
        !low.status.success() || low.stdout.contains("deletionTimestamp"),
        "the low pod was not preempted: {}",
        low.stdout
    );
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=Preempted",
        "-o",
        "custom-columns=OBJ:.involvedObject.name,MSG:.message",
    ]);
    assert!(
        events.contains("low") && events.contains("Preempted by pod"),
        "{events}"
    );
}
