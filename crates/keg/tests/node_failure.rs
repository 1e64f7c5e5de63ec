//! A node that stops reporting, as kubectl shows it: the test is the agent of one node (its
//! Node, status and Lease, written as a kubelet writes them) and falls silent. Within the
//! grace period the node is NotReady (Ready=Unknown) with the unreachable taints, its pod is
//! evicted once its toleration runs out and the Deployment's replacement runs on the real
//! node-group node; when the agent reports again the node is Ready and untainted.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Kubectl, PodServer, eventually};
use serde_json::{Value, json};

const SILENT: &str = "silent-node";

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 3}
      containers:
      - {name: main, image: busybox:test, command: [sleep, "3600"]}
"#;

/// What the silent node's agent posts while it is alive: a Ready status and a fresh Lease.
fn report(k: &Kubectl) {
    let now = jiff::Timestamp::now();
    let seconds = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let status = json!({"status": {
        "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
        "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": seconds, "lastTransitionTime": seconds}],
    }});
    k.ok(&[
        "patch",
        "node",
        SILENT,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);
    let lease = format!(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: {SILENT}, namespace: kube-node-lease}}\nspec: {{holderIdentity: {SILENT}, leaseDurationSeconds: 4, renewTime: \"{}\"}}\n",
        now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
    );
    k.ok_stdin(&["apply", "-f", "-"], &lease);
}

fn ready_status(node: &Value) -> String {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn unreachable_taints(node: &Value) -> Vec<String> {
    let mut effects: Vec<String> = node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["key"] == "node.kubernetes.io/unreachable")
        .map(|t| t["effect"].as_str().unwrap_or_default().to_string())
        .collect();
    effects.sort();
    effects
}

fn app_pods(k: &Kubectl) -> Vec<Value> {
    k.json(&["get", "pods", "-l", "app=app", "-o", "json"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_silent_node_is_not_ready_its_pods_move_and_it_comes_back() {
    let Some(server) = PodServer::start(
        "a_silent_node_is_not_ready",
        &["--node-monitor-grace-period", "4"],
    ) else {
        return;
    };
    let k = server.kubectl("1.33");
    server.node_group("ng", "t3.medium", 1, 1);
    let real = eventually("the node-group node", Duration::from_secs(60), || {
        let nodes = k.json(&["get", "nodes", "-o", "json"]);
        nodes["items"].as_array()?.first()?["metadata"]["name"]
            .as_str()
            .map(String::from)
    });
    k.ok_stdin(
        &["apply", "-f", "-"],
        &format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {SILENT}, labels: {{kubernetes.io/hostname: {SILENT}}}}}\n"),
    );
    report(&k);
    // The app's pod goes to the silent node: the real one is cordoned meanwhile.
    k.ok(&["cordon", &real]);
    k.ok_stdin(&["apply", "-f", "-"], APP);
    let first = eventually(
        "the pod on the silent node",
        Duration::from_secs(30),
        || {
            report(&k);
            let pods = app_pods(&k);
            let pod = pods.first()?;
            (pod["spec"]["nodeName"] == SILENT).then(|| pod.clone())
        },
    );
    // DefaultTolerationSeconds added not-ready for 300 s; the pod's own unreachable stays.
    let tolerations = first["spec"]["tolerations"].as_array().unwrap();
    assert!(
        tolerations
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/not-ready" && t["tolerationSeconds"] == 300)
    );
    assert!(
        tolerations
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["tolerationSeconds"] == 3)
    );
    k.ok(&["uncordon", &real]);

    // Silence: NotReady with both taints within the grace period (and a little).
    let node = eventually("the silent node NotReady", Duration::from_secs(20), || {
        let node = k.json(&["get", "node", SILENT, "-o", "json"]);
        (ready_status(&node) == "Unknown" && unreachable_taints(&node).len() == 2).then_some(node)
    });
    assert_eq!(unreachable_taints(&node), ["NoExecute", "NoSchedule"]);
    let ready = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap();
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");
    let table = k.ok(&["get", "node", SILENT]);
    assert!(table.contains("NotReady"), "{table}");

    // After its 3 s toleration the pod is evicted; the replacement runs on the real node.
    let first_name = first["metadata"]["name"].as_str().unwrap().to_string();
    eventually(
        "the replacement running on the real node",
        Duration::from_secs(60),
        || {
            let pods = app_pods(&k);
            let evicted = pods.iter().any(|p| {
                p["metadata"]["name"] == first_name.as_str()
                    && !p["metadata"]["deletionTimestamp"].is_null()
            }) || !pods
                .iter()
                .any(|p| p["metadata"]["name"] == first_name.as_str());
            let moved = pods.iter().any(|p| {
                p["spec"]["nodeName"] == real.as_str() && p["status"]["phase"] == "Running"
            });
            (evicted && moved).then_some(())
        },
    );
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=TaintManagerEviction",
    ]);
    assert!(
        events.contains(&format!("Marking for deletion Pod default/{first_name}")),
        "{events}"
    );

    // The agent reports again: Ready, and the taints are gone.
    let alive = Arc::new(AtomicBool::new(true));
    let agent = {
        let (alive, k) = (alive.clone(), k.clone());
        std::thread::spawn(move || {
            while alive.load(Ordering::SeqCst) {
                report(&k);
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    eventually("the node Ready again", Duration::from_secs(20), || {
        let node = k.json(&["get", "node", SILENT, "-o", "json"]);
        (ready_status(&node) == "True" && unreachable_taints(&node).is_empty()).then_some(())
    });
    alive.store(false, Ordering::SeqCst);
    agent.join().unwrap();
    // Nothing of the silent node outlives the test's server; its pod object goes with it.
}
