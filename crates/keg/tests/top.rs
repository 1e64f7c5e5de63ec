//! `kubectl top` (1.27 and 1.33) against metrics.k8s.io with real pods: a busybox pod
//! burning CPU under a 500m limit shows about 500m (within 20 %), an idle one next to
//! nothing but its memory, per container too, and the node shows what its pods use; the
//! same figures are Prometheus series on `/metrics`.

mod common;

use std::time::Duration;

use common::{Kubectl, PodServer, eventually};

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: burner, namespace: default, labels: {app: burner}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: spin
    image: busybox:test
    command: [sh, -c, "while :; do :; done"]
    resources:
      requests: {cpu: 500m, memory: 32Mi}
      limits: {cpu: 500m, memory: 32Mi}
---
apiVersion: v1
kind: Pod
metadata: {name: idle, namespace: default, labels: {app: idle}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: sleep, image: busybox:test, command: [sleep, "3600"]}
"#;

/// The millicores and MiB of `kubectl top pod NAME` (its one data line).
fn top_pod(k: &Kubectl, name: &str, extra: &[&str]) -> Option<(u64, u64, String)> {
    let mut args = vec!["top", "pod", name, "--no-headers"];
    args.extend(extra);
    let run = k.run(&args);
    if !run.status.success() {
        return None;
    }
    let line = run.stdout.lines().next()?.to_string();
    let cells: Vec<&str> = line.split_whitespace().collect();
    let (cpu, memory) = (cells[cells.len() - 2], cells[cells.len() - 1]);
    let millis = cpu.strip_suffix('m')?.parse().ok()?;
    let mib = memory.strip_suffix("Mi")?.parse().ok()?;
    Some((millis, mib, line))
}

#[test]
fn kubectl_top_shows_what_pods_and_nodes_use() {
    let Some(server) = PodServer::start("kubectl_top_shows_what_pods_and_nodes_use", &[]) else {
        return;
    };
    let k = server.kubectl("1.33");
    let old = server.kubectl("1.27");
    server.node_group("ng", "t3.medium", 1, 1);
    k.ok_stdin(&["apply", "-f", "-"], PODS);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/burner",
        "pod/idle",
        "--timeout=120s",
    ]);
    // A full window of samples (ten seconds) before judging the rate.
    std::thread::sleep(Duration::from_secs(11));
    let (millis, _, line) = eventually("burner's metrics", Duration::from_secs(30), || {
        top_pod(&k, "burner", &[])
    });
    assert!(
        (400..=600).contains(&millis),
        "burning under a 500m limit shows {millis}m: {line}"
    );
    let (idle_millis, idle_mib, line) =
        eventually("idle's metrics", Duration::from_secs(30), || {
            top_pod(&old, "idle", &[])
        });
    assert!(idle_millis < 50, "an idle pod shows {idle_millis}m: {line}");
    assert!(idle_mib > 0 || line.contains("Mi"), "{line}");
    let (_, _, line) = eventually("per container", Duration::from_secs(30), || {
        top_pod(&k, "burner", &["--containers"])
    });
    assert!(
        line.starts_with("burner") && line.contains("spin"),
        "{line}"
    );
    let table = k.ok(&["top", "pods"]);
    assert!(
        table.contains("CPU(cores)") && table.contains("MEMORY(bytes)") && table.contains("idle"),
        "{table}"
    );
    let nodes = k.ok(&["top", "nodes", "--no-headers"]);
    let node_millis: u64 = nodes
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.strip_suffix('m'))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    assert!(node_millis >= 400, "the node shows its pods' use: {nodes}");
    let nodes_old = old.ok(&["top", "nodes"]);
    assert!(nodes_old.contains("CPU%"), "{nodes_old}");

    // The same figures as Prometheus series on /metrics, named as the kubelet names them.
    let metrics = k.ok(&["get", "--raw", "/metrics"]);
    let series = |name: &str| -> Option<f64> {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(name)
                    && l.contains("pod=\"burner\"")
                    && l.contains("container=\"spin\"")
            })?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()
    };
    let cpu_seconds = series("container_cpu_usage_seconds_total").expect("a cpu counter of burner");
    assert!(
        cpu_seconds > 3.0,
        "burner has used {cpu_seconds} cpu-seconds"
    );
    let memory = series("container_memory_working_set_bytes").expect("a memory gauge of burner");
    assert!(memory > 0.0);
    assert!(metrics.contains("# TYPE pod_cpu_usage_seconds_total counter"));
}
