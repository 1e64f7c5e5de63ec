//! `kubectl cordon`, `uncordon` and `drain` (1.33, then 1.27) of a node-group node with real
//! pods: a Deployment of two, both on the node drained, under a PodDisruptionBudget of
//! `minAvailable: 1`. The drain evicts one pod, is refused the second until its replacement
//! is ready elsewhere, and at no moment is fewer than one pod ready.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use common::{Kubectl, PodServer, eventually};
use serde_json::Value;

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:test
        command: [sleep, "3600"]
        readinessProbe:
          exec: {command: ["true"]}
          initialDelaySeconds: 1
          periodSeconds: 1
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: default}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
"#;

fn ready_pods(k: &Kubectl) -> Vec<Value> {
    let pods = k.json(&["get", "pods", "-l", "app=web", "-o", "json"]);
    pods["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null()
                && p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .collect()
}

fn nodes_of(pods: &[Value]) -> Vec<String> {
    let mut nodes: Vec<String> = pods
        .iter()
        .map(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    nodes.sort();
    nodes
}

/// Drains `from` with `k` while watching that a pod stays ready; returns drain's output.
fn drain(k: &Kubectl, watcher: &Kubectl, from: &str) -> String {
    let done = Arc::new(AtomicBool::new(false));
    let fewest = Arc::new(AtomicI64::new(i64::MAX));
    let watch = {
        let (done, fewest, watcher) = (done.clone(), fewest.clone(), watcher.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                let ready = i64::try_from(ready_pods(&watcher).len()).unwrap_or(0);
                fewest.fetch_min(ready, Ordering::SeqCst);
            }
        })
    };
    let run = k.run(&[
        "drain",
        from,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=180s",
    ]);
    // kubectl reports refused evictions (and retries them) on stderr.
    let out = format!("{}{}", run.stdout, run.stderr);
    assert!(run.status.success(), "kubectl drain failed:\n{out}");
    done.store(true, Ordering::SeqCst);
    watch.join().unwrap();
    assert!(
        fewest.load(Ordering::SeqCst) >= 1,
        "the drain left no ready pod at some moment:\n{out}"
    );
    out
}

#[test]
fn drain_evicts_one_pod_at_a_time_within_the_budget() {
    let Some(server) = PodServer::start("drain_evicts_one_pod_at_a_time_within_the_budget", &[])
    else {
        return;
    };
    let k = server.kubectl("1.33");
    let old = server.kubectl("1.27");
    server.node_group("ng", "t3.medium", 2, 2);
    let nodes: Vec<String> = eventually("two nodes", Duration::from_secs(60), || {
        let list = k.json(&["get", "nodes", "-o", "json"]);
        let names: Vec<String> = list["items"]
            .as_array()?
            .iter()
            .map(|n| {
                n["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        (names.len() == 2).then_some(names)
    });
    let (a, b) = (nodes[0].as_str(), nodes[1].as_str());

    // Both pods on A: B is cordoned while they start.
    assert!(k.ok(&["cordon", b]).contains("cordoned"));
    k.ok_stdin(&["apply", "-f", "-"], APP);
    let pods = eventually("two ready pods on A", Duration::from_secs(120), || {
        let pods = ready_pods(&k);
        (pods.len() == 2).then_some(pods)
    });
    assert_eq!(nodes_of(&pods), [a, a]);
    assert!(k.ok(&["uncordon", b]).contains("uncordoned"));
    eventually(
        "the budget allows one disruption",
        Duration::from_secs(30),
        || {
            let pdb = k.json(&["get", "pdb", "web", "-o", "json"]);
            (pdb["status"]["disruptionsAllowed"] == 1).then_some(())
        },
    );
    let table = k.ok(&["get", "pdb", "web"]);
    assert!(
        table.contains("MIN AVAILABLE") && table.contains("ALLOWED DISRUPTIONS"),
        "{table}"
    );

    let out = drain(&k, &old, a);
    assert!(out.contains(&format!("node/{a} cordoned")), "{out}");
    assert!(
        out.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "the second eviction waited for the budget:\n{out}"
    );
    assert!(out.contains(&format!("node/{a} drained")), "{out}");
    let pods = eventually("two ready pods on B", Duration::from_secs(120), || {
        let pods = ready_pods(&k);
        (pods.len() == 2).then_some(pods)
    });
    assert_eq!(nodes_of(&pods), [b, b]);
    let node = k.json(&["get", "node", a, "-o", "json"]);
    assert_eq!(node["spec"]["unschedulable"], true);

    // And back with kubectl 1.27.
    old.ok(&["uncordon", a]);
    let out = drain(&old, &k, b);
    assert!(out.contains(&format!("node/{b} drained")), "{out}");
    let pods = eventually(
        "two ready pods on A again",
        Duration::from_secs(120),
        || {
            let pods = ready_pods(&k);
            (pods.len() == 2).then_some(pods)
        },
    );
    assert_eq!(nodes_of(&pods), [a, a]);
}
