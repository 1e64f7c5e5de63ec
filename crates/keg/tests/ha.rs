//! Several keg servers on one store: three `keg server`s on a three-member etcd (each its own
//! process, data dir and port on loopback, started together). They share the CA and tokens,
//! so one cluster's credentials work on any of them; a Deployment created through one is
//! reconciled and scheduled by the leader while kubectl reads through another; `kill -9` of
//! the controllers' leader hands its Leases to another server within 20 s, which carries out
//! a scale change made afterwards; a CRD made through one server is served by the others;
//! and a watch resumed on another server from the last resourceVersion seen misses nothing.
//!
//! No node agent runs (three agents on one machine would all claim the cluster's nodes), so
//! no pod runs: the test stands in for a kubelet by registering one Ready node, and asserts
//! what the control plane does (ReplicaSet, pods, their binding to the node, the
//! Deployment's status), not containers.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Kubectl, Server, eventually};
use keg_store::local_etcd::LocalEtcd;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn lease_holder(k: &Kubectl, name: &str) -> Option<String> {
    let run = k.run(&["get", "lease", "-n", "kube-system", name, "-o", "json"]);
    if !run.status.success() {
        return None;
    }
    let lease: Value = serde_json::from_str(&run.stdout).ok()?;
    lease["spec"]["holderIdentity"]
        .as_str()
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

/// The index of the server whose identity `holder` is (each logs its own at start; the
/// others log it too, as the new leader).
fn server_of(servers: &[Option<Server>], holder: &str) -> usize {
    servers
        .iter()
        .position(|s| {
            s.as_ref().is_some_and(|s| {
                s.log().lines().any(|line| {
                    line.contains("leader election on a shared store") && line.contains(holder)
                })
            })
        })
        .unwrap_or_else(|| panic!("no server has identity {holder}"))
}

/// The web pods, once there are `count`, all bound to `node`, and the Deployment's status
/// counts them.
fn web_pods_bound(k: &Kubectl, count: usize, node: &str) -> Vec<Value> {
    eventually(&format!("{count} web pods bound to {node}"), WAIT, || {
        let pods = k.json(&["get", "pods", "-n", "ha", "-l", "app=web"]);
        let pods = pods["items"].as_array().unwrap().clone();
        let live: Vec<Value> = pods
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        let bound = live.iter().all(|p| p["spec"]["nodeName"] == node);
        let deployment = k.json(&["get", "deployment", "-n", "ha", "web"]);
        let observed = deployment["status"]["observedGeneration"]
            == deployment["metadata"]["generation"]
            && deployment["status"]["replicas"] == json!(count);
        (live.len() == count && bound && observed).then_some(live)
    })
}

/// The events of a watch of ConfigMaps in `ns` from `rv` through `k`'s server, for
/// `seconds`: (type, name, resourceVersion) of each.
fn watch_events(k: &Kubectl, ns: &str, rv: &str, seconds: u32) -> std::process::Child {
    let path = format!(
        "/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds={seconds}"
    );
    Command::new(&k.bin)
        .arg("--kubeconfig")
        .arg(&k.kubeconfig)
        .args(["get", "--raw", &path])
        .env("HOME", std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn read_events(child: std::process::Child) -> Vec<(String, String, String)> {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .filter(|e| e["type"] != "BOOKMARK")
        // The namespace's CA bundle, which the API server adds to every namespace.
        .filter(|e| e["object"]["metadata"]["name"] != "kube-root-ca.crt")
        .map(|e| {
            let meta = &e["object"]["metadata"];
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                meta["name"].as_str().unwrap_or_default().to_owned(),
                meta["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

#[test]
fn three_servers_on_one_etcd_serve_one_cluster_and_hand_over_the_controllers() {
    let Some(etcd) = LocalEtcd::start_cluster(3) else {
        return;
    };
    let endpoints: Vec<String> = etcd.iter().map(LocalEtcd::endpoint).collect();
    let store = format!("etcd://{}", endpoints.join(","));
    let flags = [
        "--no-node-agent",
        "--store",
        &store,
        "--etcd-prefix",
        "/keg-ha",
        // The stand-in node below never renews a Lease.
        "--node-monitor-grace-period",
        "3600",
    ];
    // Started together, so they race to publish the shared secrets.
    let mut servers: Vec<Option<Server>> = std::thread::scope(|scope| {
        let started: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| Server::start_with(&flags)))
            .collect();
        started
            .into_iter()
            .map(|s| Some(s.join().unwrap()))
            .collect()
    });
    let server =
        |servers: &[Option<Server>], i: usize| servers[i].as_ref().unwrap().kubectl("1.33");

    // One CA and one admin token, whichever server published them first.
    let file = |s: &Option<Server>, name: &str| {
        std::fs::read_to_string(s.as_ref().unwrap().dir.join(name)).unwrap()
    };
    for name in ["ca.crt", "admin.token", "service-account.key"] {
        assert_eq!(file(&servers[0], name), file(&servers[1], name), "{name}");
        assert_eq!(file(&servers[0], name), file(&servers[2], name), "{name}");
    }
    let (a, b, c) = (
        server(&servers, 0),
        server(&servers, 1),
        server(&servers, 2),
    );
    // A service-account token issued by A is accepted by B.
    a.ok(&["create", "namespace", "ha"]);
    eventually("the default account in ha", WAIT, || {
        a.run(&["get", "serviceaccount", "-n", "ha", "default"])
            .status
            .success()
            .then_some(())
    });
    let token = a.ok(&["create", "token", "-n", "ha", "default"]);
    let whoami = b.json(&["auth", "whoami", "--token", token.trim()]);
    assert_eq!(
        whoami["status"]["userInfo"]["username"],
        "system:serviceaccount:ha:default"
    );

    // Exactly one server holds each Lease.
    let holder = eventually("a controller-manager leader", WAIT, || {
        lease_holder(&b, "kube-controller-manager")
    });
    let scheduler_holder = eventually("a scheduler leader", WAIT, || {
        lease_holder(&b, "kube-scheduler")
    });
    let leader = server_of(&servers, &holder);
    assert!(
        servers[leader]
            .as_ref()
            .unwrap()
            .log()
            .contains("acquired the lease")
    );

    // A stand-in kubelet: one Ready node with room for pods.
    a.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata: {name: ha-node}\n",
    );
    let now = jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
        "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "lastHeartbeatTime": now, "lastTransitionTime": now}],
    }});
    a.ok(&[
        "patch",
        "node",
        "ha-node",
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);

    // Created through A, reconciled and scheduled by the leader, seen through B.
    a.ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "ha",
        "--image=busybox:test",
        "--replicas=2",
    ]);
    let rs = eventually("web's ReplicaSet through B", WAIT, || {
        let list = b.json(&["get", "replicasets", "-n", "ha", "-l", "app=web"]);
        list["items"].as_array().unwrap().first().cloned()
    });
    assert_eq!(rs["metadata"]["ownerReferences"][0]["name"], "web");
    web_pods_bound(&b, 2, "ha-node");

    // A CRD made through B is served by C (which follows the store's CRDs).
    b.ok_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.ha.keg.dev"},
            "spec": {"group": "ha.keg.dev", "scope": "Namespaced",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                              "x-kubernetes-preserve-unknown-fields": true}}}]}}"#,
    );
    eventually("C to serve widgets", WAIT, || {
        c.run_stdin(
            &["apply", "-f", "-"],
            r#"{"apiVersion": "ha.keg.dev/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "ha"}, "spec": {"size": 3}}"#,
        )
        .status
        .success()
        .then_some(())
    });
    assert_eq!(
        a.json(&["get", "widgets.ha.keg.dev", "-n", "ha", "w"])["spec"]["size"],
        3
    );

    // kill -9 of the controllers' leader: another server holds its Leases within 20 s (the
    // scheduler's too when it held that one, as the first server up usually does).
    let killed_at = Instant::now();
    servers[leader].as_mut().unwrap().kill9();
    let dead = servers[leader].take().unwrap();
    let survivor = (0..3).find(|i| *i != leader).unwrap();
    let k = server(&servers, survivor);
    let new_holder = eventually("another controller-manager leader", WAIT, || {
        lease_holder(&k, "kube-controller-manager").filter(|h| *h != holder)
    });
    let new_scheduler = eventually("another scheduler leader", WAIT, || {
        lease_holder(&k, "kube-scheduler").filter(|h| *h != holder || scheduler_holder != holder)
    });
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(20), "takeover took {took:?}");
    eprintln!("takeover after kill -9 of the leader: {took:?}");
    // Each Lease is elected on its own: two survivors may win one each.
    for holder in [&new_holder, &new_scheduler] {
        assert_ne!(server_of(&servers, holder), leader);
    }
    let lease = k.json(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-controller-manager",
    ]);
    assert!(lease["spec"]["leaseTransitions"].as_i64().unwrap() >= 1);
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 15);

    // A scale change made afterwards is carried out.
    k.ok(&["scale", "deployment", "web", "-n", "ha", "--replicas=4"]);
    web_pods_bound(&k, 4, "ha-node");
    drop(dead);

    // A watch on one server, resumed on another from the last resourceVersion it saw,
    // misses nothing and repeats nothing.
    let (first, second) = {
        let mut alive = (0..3).filter(|i| servers[*i].is_some());
        (alive.next().unwrap(), alive.next().unwrap())
    };
    let (w1, w2) = (server(&servers, first), server(&servers, second));
    w1.ok(&["create", "namespace", "watched"]);
    let start = w1.json(&["get", "configmaps", "-n", "watched"])["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let watching = watch_events(&w1, "watched", &start, 4);
    for i in 1..=3 {
        w2.ok(&["create", "configmap", &format!("c{i}"), "-n", "watched"]);
    }
    let seen_first = read_events(watching);
    let last = seen_first.last().map(|e| e.2.clone()).unwrap_or(start);
    for i in 4..=5 {
        w1.ok(&["create", "configmap", &format!("c{i}"), "-n", "watched"]);
    }
    w1.ok(&["delete", "configmap", "c1", "-n", "watched"]);
    let seen_second = read_events(watch_events(&w2, "watched", &last, 3));
    let all: Vec<(String, String)> = seen_first
        .iter()
        .chain(&seen_second)
        .map(|(t, n, _)| (t.clone(), n.clone()))
        .collect();
    let expected: Vec<(String, String)> = (1..=5)
        .map(|i| ("ADDED".to_owned(), format!("c{i}")))
        .chain([("DELETED".to_owned(), "c1".to_owned())])
        .collect();
    assert_eq!(
        all, expected,
        "first: {seen_first:?}, second: {seen_second:?}"
    );
    let names: BTreeSet<&str> = seen_second.iter().map(|e| e.1.as_str()).collect();
    assert!(names.contains("c5"));

    // Every process this test started ends here: the servers (SIGTERM, by PID), then etcd's
    // members (SIGKILL, by PID), as they drop.
    for s in servers.iter_mut() {
        if let Some(mut s) = s.take() {
            s.stop();
        }
    }
    drop(etcd);
}
