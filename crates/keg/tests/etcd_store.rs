//! `keg server --store etcd://...`: the cluster's state in a real etcd (Debian's etcd-server,
//! one process per test on loopback), surviving a restart of keg, and kubectl's watch on it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::Server;
use keg_store::local_etcd::LocalEtcd;

#[test]
fn objects_live_in_etcd_across_restarts_of_keg() {
    let Some(etcd) = LocalEtcd::start() else {
        return;
    };
    let store = format!("etcd://{}", etcd.endpoint());
    let mut server = Server::start_with(&[
        "--no-node-agent",
        "--store",
        &store,
        "--etcd-prefix",
        "/keg-e2e",
    ]);
    let kubectl = server.kubectl("1.33");
    kubectl.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=colour=blue",
    ]);
    let created = kubectl.json(&["get", "configmap", "settings"]);
    assert_eq!(created["data"]["colour"], "blue");
    assert!(
        !server.dir.join("keg.db").exists(),
        "with etcd, no embedded store is opened"
    );

    // A watch from the list's resourceVersion sees a change made afterwards.
    let mut watch = std::process::Command::new(&kubectl.bin)
        .arg("--kubeconfig")
        .arg(&kubectl.kubeconfig)
        .args(["get", "configmap", "settings", "--watch-only", "-o", "name"])
        .env("HOME", std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // kubectl's watch starts asynchronously; patch until it reports a change, each time with
    // a new value, so that each patch is a write (an unchanged object is not written again).
    let mut attempt = 0;
    let seen = common::eventually(
        "the watch to report the patch",
        Duration::from_secs(30),
        || {
            attempt += 1;
            let patch = format!(r#"{{"data":{{"colour":"green","attempt":"{attempt}"}}}}"#);
            kubectl.ok(&["patch", "configmap", "settings", "-p", &patch]);
            rx.recv_timeout(Duration::from_secs(2)).ok()
        },
    );
    assert_eq!(seen, "configmap/settings");
    let _ = watch.kill();
    let _ = watch.wait();
    let before = kubectl.json(&["get", "configmap", "settings"]);

    // Another keg process on the same etcd finds the object as it was.
    server.stop();
    server.restart();
    let after = kubectl.json(&["get", "configmap", "settings"]);
    assert_eq!(after["data"]["colour"], "green");
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(after["metadata"]["uid"], created["metadata"]["uid"]);
    // resourceVersion is etcd's mod revision, so it moves on from there.
    kubectl.ok(&["label", "configmap", "settings", "edited=yes"]);
    let edited = kubectl.json(&["get", "configmap", "settings"]);
    let rv = |v: &serde_json::Value| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(rv(&edited) > rv(&after));

    // The keys are under the prefix, as etcdctl sees them.
    let etcdctl = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &etcd.endpoint(),
            "get",
            "--prefix",
            "--keys-only",
            "/keg-e2e/registry/core/configmaps/default/settings",
        ])
        .output();
    if let Ok(out) = etcdctl {
        let keys = String::from_utf8_lossy(&out.stdout);
        assert!(
            keys.contains("/keg-e2e/registry/core/configmaps/default/settings"),
            "etcdctl found: {keys}"
        );
    }
}

#[test]
fn a_bad_store_flag_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keg"))
        .args([
            "server",
            "--data-dir",
            "/nonexistent-keg-test",
            "--store",
            "mysql://x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("etcd://"), "stderr: {stderr}");
}
