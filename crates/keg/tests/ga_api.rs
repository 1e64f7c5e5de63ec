//! The GA kinds beyond the workloads, with real kubectl: a ReplicationController kept by the
//! replica-set code (`kubectl scale rc`), pod priority from PriorityClasses (and the refusal of
//! an unknown class), and the system objects: componentstatuses, flowschemas, priorityclasses,
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
