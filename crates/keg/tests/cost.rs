//! `keg cost` and `/metrics` as a user drives them: a `keg server` laid out as a cluster
//! under `$KEG_HOME`, usage records as metering writes them (created here with kubectl, so
//! the figures are known), then the command's table and JSON, `kubectl get usage`, and
//! curl of `/metrics` with and without the admin token.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use common::{Kubectl, eventually, free_port, kubectl_binary};
use serde_json::{Value, json};

const CLUSTER: &str = "costly";
const SMALLEST_HOURLY: f64 = 0.25 * 0.04048 + 0.5 * 0.004445;

/// A `keg server` whose files sit where `keg create cluster` puts a cluster's.
struct Cluster {
    home: tempfile::TempDir,
    server: Child,
    port: u16,
}

impl Cluster {
    fn start() -> Cluster {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("clusters").join(CLUSTER);
        std::fs::create_dir_all(&root).unwrap();
        let port = free_port();
        let log = std::fs::File::create(root.join("keg.log")).unwrap();
        let server = Command::new(env!("CARGO_BIN_EXE_keg"))
            .args(["server", "--no-node-agent", "--cluster-name", CLUSTER])
            .args(["--port", &port.to_string(), "--data-dir"])
            .arg(root.join("data"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        std::fs::write(root.join("keg.pid"), server.id().to_string()).unwrap();
        let cluster = Cluster { home, server, port };
        let kubectl = cluster.kubectl();
        eventually("the server to be ready", Duration::from_secs(60), || {
            let ready = kubectl.kubeconfig.exists()
                && kubectl.run(&["get", "--raw", "/readyz"]).status.success();
            ready.then_some(())
        });
        cluster
    }

    fn data(&self) -> PathBuf {
        self.home.path().join("clusters").join(CLUSTER).join("data")
    }

    fn kubectl(&self) -> Kubectl {
        Kubectl {
            bin: kubectl_binary("1.33"),
            kubeconfig: self.data().join("kubeconfig"),
        }
    }

    fn keg_cost(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_keg"))
            .args(["cost", "--cluster", CLUSTER])
            .args(args)
            .env("KEG_HOME", self.home.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "keg cost {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// `curl` of `/metrics`: the HTTP code and body.
    fn curl_metrics(&self, token: Option<&str>) -> (String, String) {
        let mut curl = Command::new("curl");
        curl.args(["-sk", "-w", "\n%{http_code}"]);
        if let Some(token) = token {
            curl.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        let out = curl
            .arg(format!("https://127.0.0.1:{}/metrics", self.port))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.to_owned(), body.to_owned())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn record(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "keg.dev/v1", "kind": "UsageRecord", "metadata": {"name": name}, "spec": spec})
}

/// Two Fargate pods (10 s and 61.2 s) and a t3.medium node's hour, all in us-east-1.
fn records() -> Value {
    let pod = |uid: &str, name: &str, end: &str| {
        record(
            &format!("pod-{uid}"),
            json!({"subject": "Pod", "compute": "fargate", "region": "us-east-1",
                "namespace": "tb-demo", "name": name, "uid": uid, "profile": "fp-demo",
                "capacity": "0.25vCPU 0.5GB", "cpuMillis": 250, "memoryMib": 512,
                "requests": {"cpuMillis": 250, "memoryBytes": 268435456},
                "hourlyRate": SMALLEST_HOURLY, "start": "2025-01-01T00:00:00Z", "end": end}),
        )
    };
    let node = record(
        "node-n1",
        json!({"subject": "Node", "compute": "nodegroup", "region": "us-east-1",
            "name": "ip-1", "uid": "n1", "nodeGroup": "ng-1", "instanceType": "t3.medium",
            "capacity": "2vCPU 4GiB", "hourlyRate": 0.0416,
            "start": "2025-01-01T00:00:00Z", "end": "2025-01-01T01:00:00Z"}),
    );
    json!({"apiVersion": "v1", "kind": "List", "items": [
        pod("u1", "job", "2025-01-01T00:00:10Z"),
        pod("u2", "web", "2025-01-01T00:01:01.2Z"),
        node,
    ]})
}

#[test]
fn keg_cost_and_metrics_agree_with_the_records() {
    let cluster = Cluster::start();
    let kubectl = cluster.kubectl();
    kubectl.ok_stdin(&["create", "-f", "-"], &records().to_string());
    let listed = kubectl.ok(&["get", "usage"]);
    assert!(listed.contains("CAPACITY"), "{listed}");
    assert!(listed.contains("0.25vCPU 0.5GB"), "{listed}");

    let report: Value =
        serde_json::from_str(&cluster.keg_cost(&["--by", "pod", "-o", "json"])).unwrap();
    let row = |key: &str| {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .unwrap_or_else(|| panic!("no row {key}: {report}"))
            .clone()
    };
    // Ten seconds is billed a minute; 61.2 seconds is billed 62.
    assert_eq!(row("tb-demo/job")["billedSeconds"], 60.0);
    assert_eq!(row("tb-demo/web")["billedSeconds"], 62.0);
    let web_spend = row("tb-demo/web")["spend"].as_f64().unwrap();
    assert!((web_spend - SMALLEST_HOURLY * 62.0 / 3600.0).abs() < 1e-12);
    assert_eq!(row("node/ip-1")["spend"].as_f64(), Some(0.0416));
    assert_eq!(report["region"], "us-east-1");
    assert_eq!(report["total"]["hourly"], 0.0);

    // The node's pods (none) are allocated nothing: its hour is the node group's idle cost.
    let idle = report["allocation"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "__idle__/ng-1")
        .unwrap_or_else(|| panic!("no idle row: {report}"));
    assert_eq!(idle["spend"].as_f64(), Some(0.0416));

    let table = cluster.keg_cost(&["--since", "2025-01-01T00:00:30Z"]);
    assert!(table.contains("tb-demo"), "{table}");
    assert!(table.contains("on node groups alone"), "{table}");
    assert!(table.contains("Prices: AWS on-demand"), "{table}");
    assert!(table.contains("ALLOCATED BY NAMESPACE"), "{table}");
    let by_label = cluster.keg_cost(&["--by", "label=team", "-o", "csv"]);
    assert!(
        by_label.contains("\nallocated,__idle__/ng-1,0,,,"),
        "{by_label}"
    );

    // The autoscaler's decisions, as its events on a node group record them, are priced.
    kubectl.ok_stdin(
        &["create", "-f", "-"],
        &json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "keg.dev/v1", "kind": "NodeGroup", "metadata": {"name": "ng-1"},
             "spec": {"instanceType": "t3.medium", "desiredCapacity": 1, "minSize": 1, "maxSize": 3}},
            {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ng-1.up", "namespace": "default"},
             "involvedObject": {"apiVersion": "keg.dev/v1", "kind": "NodeGroup", "name": "ng-1"},
             "reason": "ScaledUpGroup", "type": "Normal", "count": 1,
             "message": "Scale-up: setting group ng-1 size to 3 instead of 1 (max: 3)",
             "lastTimestamp": "2025-01-01T00:20:00Z", "source": {"component": "cluster-autoscaler"}},
            {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ng-1.down", "namespace": "default"},
             "involvedObject": {"apiVersion": "keg.dev/v1", "kind": "NodeGroup", "name": "ng-1"},
             "reason": "ScaleDownEmpty", "type": "Normal", "count": 1,
             "message": "Scale-down: removing empty node \"ip-2\"",
             "lastTimestamp": "2025-01-01T00:40:00Z", "source": {"component": "cluster-autoscaler"}},
        ]})
        .to_string(),
    );
    let table = cluster.keg_cost(&[]);
    assert!(
        table.contains("2025-01-01T00:20:00Z  ng-1   +2     +$0.08320/h (t3.medium)")
            && table.contains("2025-01-01T00:40:00Z  ng-1   -1     -$0.04160/h saved (t3.medium)"),
        "{table}"
    );
    let report: Value = serde_json::from_str(&cluster.keg_cost(&["-o", "json"])).unwrap();
    assert_eq!(report["autoscaler"][0]["nodes"], 2, "{report}");

    let (code, body) = cluster.curl_metrics(None);
    assert_eq!(code, "401", "{body}");
    let token = std::fs::read_to_string(cluster.data().join("admin.token")).unwrap();
    let (code, body) = cluster.curl_metrics(Some(token.trim()));
    assert_eq!(code, "200");
    for line in [
        "keg_fargate_vcpu_seconds_total{namespace=\"tb-demo\",profile=\"fp-demo\"} 30.5",
        "keg_fargate_gb_seconds_total{namespace=\"tb-demo\",profile=\"fp-demo\"} 61",
        "keg_nodegroup_instance_seconds_total{nodegroup=\"ng-1\",instance_type=\"t3.medium\"} 3600",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "{line} missing from:\n{body}"
        );
    }
    for name in [
        "keg_cost_dollars_total{",
        "apiserver_request_duration_seconds_bucket{",
        "# TYPE scheduler_pod_scheduling_duration_seconds histogram",
        "# TYPE keg_pods_started_total counter",
    ] {
        assert!(body.contains(name), "{name} missing from:\n{body}");
    }
}
