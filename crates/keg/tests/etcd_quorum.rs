//! One `keg server` on a three-member etcd (each member its own process on loopback) while
//! members die: with one member killed (`kill -9`) writes through kubectl go on; with two gone
//! the store has no quorum and a write fails within seconds with a Status that says so, and
//! /readyz reports not ready; once the members return writes recover, and every write kubectl
//! saw acknowledged is still there.

mod common;

use std::time::{Duration, Instant};

use common::{Kubectl, Run, Server};
use keg_store::local_etcd::LocalEtcd;
use serde_json::Value;

/// How long one kubectl write may take, whether it succeeds or fails: no hang.
const BOUND: Duration = Duration::from_secs(15);

/// Creates ConfigMaps through kubectl, one per call, remembering those acknowledged (exit 0).
struct Writer {
    kubectl: Kubectl,
    next: u32,
    acknowledged: Vec<String>,
}

impl Writer {
    /// One `kubectl create -f -` of a new ConfigMap: what kubectl printed, how long it took.
    fn write(&mut self) -> (Run, Duration) {
        let name = format!("write-{}", self.next);
        self.next += 1;
        let manifest = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{name: {name}}}\n"
        );
        let started = Instant::now();
        let run = self.kubectl.run_stdin(&["create", "-f", "-"], &manifest);
        let took = started.elapsed();
        if run.status.success() {
            self.acknowledged.push(name);
        }
        (run, took)
    }

    /// A write that must succeed, in bounded time.
    fn ok(&mut self, when: &str) {
        let (run, took) = self.write();
        assert!(
            run.status.success(),
            "a write {when} failed after {took:?}:\n{}",
            run.stderr
        );
        assert!(took < BOUND, "a write {when} took {took:?}");
    }
}

/// The index of the member etcd says leads (from `etcdctl endpoint status`).
fn leader(etcd: &[LocalEtcd]) -> usize {
    let endpoints: Vec<String> = etcd.iter().map(LocalEtcd::endpoint).collect();
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &endpoints.join(",")])
        .args(["endpoint", "status", "--write-out=json"])
        .output()
        .expect("run etcdctl (Debian's etcd-client, installed by scripts/install-deps.sh)");
    let status: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "etcdctl endpoint status: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let members = status.as_array().unwrap();
    members
        .iter()
        .find_map(|m| {
            let s = &m["Status"];
            (s["header"]["member_id"] == s["leader"]).then(|| {
                let endpoint = m["Endpoint"].as_str().unwrap();
                endpoints.iter().position(|e| e == endpoint).unwrap()
            })
        })
        .expect("an etcd member that leads")
}

/// `kubectl get --raw /readyz`.
fn readyz(server: &Server) -> Run {
    server.kubectl("1.33").run(&["get", "--raw", "/readyz"])
}

#[test]
fn writes_go_on_with_one_etcd_member_down_fail_clearly_without_quorum_and_none_is_lost() {
    let Some(mut etcd) = LocalEtcd::start_cluster(3) else {
        return;
    };
    let endpoints: Vec<String> = etcd.iter().map(LocalEtcd::endpoint).collect();
    let store = format!("etcd://{}", endpoints.join(","));
    let server = Server::start_with(&[
        "--no-node-agent",
        "--store",
        &store,
        "--etcd-prefix",
        "/quorum",
    ]);
    let mut writer = Writer {
        kubectl: server.kubectl("1.33"),
        next: 0,
        acknowledged: Vec::new(),
    };
    for _ in 0..3 {
        writer.ok("on a healthy etcd");
    }

    // kill -9 of the etcd leader: the other two elect another and are a quorum, so every
    // write goes on (the first waits out the election).
    let first = leader(&etcd);
    etcd[first].kill();
    for _ in 0..10 {
        writer.ok("with the etcd leader killed");
    }
    let ready = readyz(&server);
    assert!(
        ready.status.success(),
        "not ready with a quorum: {}",
        ready.stderr
    );

    // kill -9 of a second member: one of three is no quorum. A write fails, in bounded time,
    // with a 5xx Status that says etcd is unavailable (kube-apiserver answers 500 with
    // etcd's error too), and the server is not ready.
    let second = (first + 1) % 3;
    etcd[second].kill();
    let (run, took) = writer.write();
    assert!(!run.status.success(), "a write without a quorum succeeded");
    assert!(
        took < BOUND,
        "a write without a quorum took {took:?} to fail"
    );
    assert!(
        run.stderr.contains("Error from server (InternalError)")
            && run.stderr.contains("Internal error occurred")
            && run.stderr.contains("etcd is unavailable"),
        "kubectl printed: {}",
        run.stderr
    );
    let ready = readyz(&server);
    assert!(!ready.status.success(), "ready without a quorum");
    assert!(
        ready.stderr.contains("ServiceUnavailable"),
        "readyz: {}",
        ready.stderr
    );

    // The second member returns: with two of three writes recover at once (within the time
    // the member takes to rejoin), and the server is ready again.
    etcd[second].restart();
    let started = Instant::now();
    loop {
        let (run, _) = writer.write();
        if run.status.success() {
            break;
        }
        assert!(
            started.elapsed() < BOUND,
            "writes did not recover with a quorum back: {}",
            run.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    common::eventually("ready again", BOUND, || {
        readyz(&server).status.success().then_some(())
    });
    etcd[first].restart();
    for _ in 0..5 {
        writer.ok("with every member back");
    }

    // Every write kubectl saw succeed is there (a write that failed may or may not be: etcd
    // may commit one it could not confirm).
    let names = writer.kubectl.ok(&["get", "configmaps", "-o", "name"]);
    for name in &writer.acknowledged {
        assert!(
            names.lines().any(|l| l == format!("configmap/{name}")),
            "{name} was acknowledged but is gone: {names}"
        );
    }
    assert!(writer.acknowledged.len() >= 19);
}
