//! The cluster lifecycle as a user runs it: `keg create cluster -f` with the seed's file,
//! kubectl against it, node-group scaling, `keg delete cluster` leaving nothing behind.

mod common;

use std::path::Path;
use std::time::Duration;

use common::cluster::{CLUSTER, Env, seed_file};
use common::{Kubectl, eventually};

fn ready_nodes(k: &Kubectl, selector: &str) -> Vec<serde_json::Value> {
    let nodes = k.json(&["get", "nodes", "-l", selector]);
    nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| {
            n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .cloned()
        .collect()
}

#[test]
fn create_scale_and_delete_the_seed_cluster() {
    let env = Env::new();
    let seed = seed_file();
    let seed = seed.to_str().unwrap();
    let out = env.keg_ok(&["create", "cluster", "-f", seed]);
    assert!(
        out.contains("EKS cluster \"terrax-fargate\" in \"eu-west-1\" region is ready"),
        "{out}"
    );
    assert!(
        out.contains("[ℹ]") && out.contains("created Fargate profile \"fp-demo-service\""),
        "{out}"
    );

    let k = env.kubectl();
    let context = k.ok(&["config", "current-context"]);
    assert_eq!(context.trim(), "admin@terrax-fargate.eu-west-1.eksctl.io");
    let nodes = ready_nodes(&k, "alpha.eksctl.io/nodegroup-name=node-group");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let labels = &nodes[0]["metadata"]["labels"];
    assert_eq!(labels["node.kubernetes.io/instance-type"], "t2.medium");
    assert_eq!(labels["topology.kubernetes.io/region"], "eu-west-1");
    assert!(
        nodes[0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .ends_with(".eu-west-1.compute.internal")
    );
    let table = k.ok(&["get", "nodes"]);
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .eq(["NAME", "STATUS", "ROLES", "AGE", "VERSION"]),
        "{table}"
    );
    assert!(table.contains(" Ready "), "{table}");

    let profiles = k.ok(&["get", "fargateprofiles", "-o", "name"]);
    assert_eq!(
        profiles.lines().collect::<Vec<_>>(),
        [
            "fargateprofile.keg.dev/fp-default",
            "fargateprofile.keg.dev/fp-demo-service"
        ]
    );
    let eks_table = env.keg_ok(&["get", "fargateprofile", "--cluster", CLUSTER]);
    let rows: Vec<Vec<&str>> = eks_table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0][..3],
        ["NAME", "SELECTOR_NAMESPACE", "SELECTOR_LABELS"]
    );
    assert_eq!(rows[1][..3], ["fp-default", "default", "<none>"]);
    assert_eq!(rows[2][..3], ["fp-default", "kube-system", "<none>"]);
    assert_eq!(rows[3][..3], ["fp-demo-service", "tb-demo", "app=service"]);

    let again = env.keg(&["create", "cluster", "-f", seed]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains("cluster \"terrax-fargate\" already exists")
    );

    // Scaling: out of range is refused as eksctl refuses it; in range adds and removes nodes.
    let refused = env.keg(&[
        "scale",
        "nodegroup",
        "--cluster",
        CLUSTER,
        "--name",
        "node-group",
        "--nodes",
        "3",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("the desired nodes 3 is greater than current nodes-max/maxSize 1"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    env.keg_ok(&[
        "scale",
        "nodegroup",
        "--cluster",
        CLUSTER,
        "--name",
        "node-group",
        "--nodes",
        "3",
        "--nodes-max",
        "3",
    ]);
    eventually("3 Ready node-group nodes", Duration::from_secs(60), || {
        (ready_nodes(&k, "alpha.eksctl.io/nodegroup-name=node-group").len() == 3).then_some(())
    });
    env.keg_ok(&[
        "scale",
        "nodegroup",
        "--cluster",
        CLUSTER,
        "--name",
        "node-group",
        "--nodes",
        "1",
    ]);
    eventually("1 node-group node", Duration::from_secs(60), || {
        let all = k.json(&[
            "get",
            "nodes",
            "-l",
            "alpha.eksctl.io/nodegroup-name=node-group",
        ]);
        (all["items"].as_array().unwrap().len() == 1).then_some(())
    });

    let pid: i32 = std::fs::read_to_string(env.cluster_dir().join("keg.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let network: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.cluster_dir().join("data/node/network.json")).unwrap(),
    )
    .unwrap();
    let out = env.keg_ok(&["delete", "cluster", "-f", seed]);
    assert!(out.contains("all cluster resources were deleted"), "{out}");
    // A zombie has ended; only the reaping is up to whoever adopted it.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty()
            || state
                .rsplit_once(") ")
                .is_some_and(|(_, s)| s.starts_with('Z')),
        "the control plane process {pid} is still running"
    );
    assert!(
        !env.cluster_dir().exists(),
        "state left in {}",
        env.cluster_dir().display()
    );
    let contexts = k.run(&["config", "get-contexts", "-o", "name"]);
    assert!(
        !contexts.stdout.contains("terrax-fargate"),
        "{}",
        contexts.stdout
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(env.home.path().to_str().unwrap()),
        "mounts left behind:\n{mounts}"
    );
    let bridge = network["bridge"].as_str().unwrap();
    assert!(
        !Path::new("/sys/class/net").join(bridge).exists(),
        "the pod network's bridge {bridge} is left behind"
    );
    let cgroup = network["cgroup_root"]
        .as_str()
        .unwrap()
        .trim_start_matches('/');
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let left = hierarchy.path().join(cgroup);
        assert!(!left.exists(), "cgroup {} is left behind", left.display());
    }
}

#[test]
fn a_broken_cluster_file_names_file_line_and_column() {
    let env = Env::new();
    let file = common::write_file(
        env.home.path(),
        "bad.yaml",
        "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata:\n  name: x\n  region: eu-west-1\nnodeGroups:\n  - name: ng\n    desiredCapacity: many\n",
    );
    let out = env.keg(&["create", "cluster", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml:8:22"), "{stderr}");
    assert!(stderr.contains("nodeGroups[0].desiredCapacity"), "{stderr}");
    assert!(
        !env.home
            .path()
            .join("keg")
            .join("clusters")
            .join("x")
            .exists(),
        "a refused file left state behind"
    );
}

/// The PIDs a cluster's PID files name (`keg*.pid`, `etcd/member-*.pid`).
fn pids(dir: &Path) -> Vec<i32> {
    let files = std::fs::read_dir(dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("etcd")).into_iter().flatten())
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pid"));
    files
        .map(|p| std::fs::read_to_string(p).unwrap().trim().parse().unwrap())
        .collect()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, s)| !s.starts_with('Z'))
    })
}

/// `--servers 3`: keg starts a three-member etcd (TLS for clients and peers) and three servers
/// on it, one context each; all serve one cluster; `keg delete cluster` stops all six.
#[test]
fn a_cluster_of_three_servers_on_an_etcd_keg_starts() {
    let env = Env::new();
    let seed = seed_file();
    let seed = seed.to_str().unwrap();
    let out = env.keg_ok(&["create", "cluster", "-f", seed, "--servers", "3"]);
    assert!(
        out.contains("starting a 3-member etcd for 3 servers"),
        "{out}"
    );
    assert!(
        out.contains("EKS cluster \"terrax-fargate\" in \"eu-west-1\" region is ready"),
        "{out}"
    );
    let dir = env.cluster_dir();
    let started = pids(&dir);
    assert_eq!(
        started.len(),
        6,
        "3 servers and 3 etcd members: {started:?}"
    );
    assert!(started.iter().all(|pid| alive(*pid)));

    let k = env.kubectl();
    let main = "admin@terrax-fargate.eu-west-1.eksctl.io";
    let contexts = k.ok(&["config", "get-contexts", "-o", "name"]);
    let mut contexts: Vec<&str> = contexts.lines().collect();
    contexts.sort();
    assert_eq!(
        contexts,
        [
            main,
            &format!("{main}/server-2"),
            &format!("{main}/server-3")
        ]
    );
    assert_eq!(k.ok(&["config", "current-context"]).trim(), main);
    let servers: Vec<String> = (1..=3)
        .map(|i| {
            let context = if i == 1 {
                main.to_owned()
            } else {
                format!("{main}/server-{i}")
            };
            let url = k.ok(&[
                "config",
                "view",
                "-o",
                &format!(
                    "jsonpath={{.clusters[?(@.name==\"{}\")].cluster.server}}",
                    &context[6..]
                ),
            ]);
            assert!(url.starts_with("https://127.0.0.1:"), "{context}: {url}");
            context
        })
        .collect();

    // One cluster behind every server: the node group's node, and an object made through
    // the second server read through the third.
    for context in &servers {
        let nodes = k.json(&[
            "--context",
            context,
            "get",
            "nodes",
            "-l",
            "alpha.eksctl.io/nodegroup-name=node-group",
        ]);
        assert_eq!(nodes["items"].as_array().unwrap().len(), 1, "{context}");
    }
    k.ok(&[
        "--context",
        &servers[1],
        "create",
        "configmap",
        "made-on-two",
        "--from-literal=k=v",
    ]);
    let read = k.json(&["--context", &servers[2], "get", "configmap", "made-on-two"]);
    assert_eq!(read["data"]["k"], "v");
    // Exactly one server leads the controllers.
    let lease = k.json(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-controller-manager",
    ]);
    assert!(
        lease["spec"]["holderIdentity"].as_str().is_some(),
        "{lease}"
    );

    // etcd: three members of one cluster, on loopback, refusing clients without a
    // certificate of the cluster's etcd CA.
    let etcd = dir.join("etcd");
    let endpoint = out
        .lines()
        .find_map(|l| l.split("etcd serves on ").nth(1))
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let etcdctl = |certs: bool| {
        let mut command = std::process::Command::new("etcdctl");
        command
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=https://{endpoint}"))
            .arg(format!("--cacert={}", etcd.join("etcd-ca.crt").display()))
            .arg("--dial-timeout=3s")
            .arg("--command-timeout=5s");
        if certs {
            command
                .arg(format!(
                    "--cert={}",
                    etcd.join("etcd-ca-client.crt").display()
                ))
                .arg(format!(
                    "--key={}",
                    etcd.join("etcd-ca-client.key").display()
                ));
        }
        command.args(["member", "list"]).output().unwrap()
    };
    let listed = etcdctl(true);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).lines().count(),
        3,
        "{}",
        String::from_utf8_lossy(&listed.stdout)
    );
    assert!(
        !etcdctl(false).status.success(),
        "etcd served a client without a certificate"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&etcd).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o077,
        0,
        "etcd's directory is open to others: {mode:o}"
    );

    let out = env.keg_ok(&["delete", "cluster", "--name", CLUSTER]);
    assert!(out.contains("all cluster resources were deleted"), "{out}");
    let left: Vec<i32> = started.into_iter().filter(|pid| alive(*pid)).collect();
    assert!(left.is_empty(), "still running: {left:?}");
    assert!(!dir.exists(), "state left in {}", dir.display());
    let contexts = k.run(&["config", "get-contexts", "-o", "name"]);
    assert!(
        !contexts.stdout.contains("terrax-fargate"),
        "{}",
        contexts.stdout
    );
}

/// On the user's etcd (`--store`): two servers on it with a key prefix of the cluster's own;
/// deleting the cluster stops the servers, leaves etcd running and says where the data stays.
#[test]
fn a_cluster_on_the_users_etcd() {
    let Some(etcd) = keg_store::local_etcd::LocalEtcd::start_cluster(3) else {
        return;
    };
    let endpoints: Vec<String> = etcd.iter().map(|m| m.endpoint()).collect();
    let store = format!("etcd://{}", endpoints.join(","));
    let env = Env::new();
    let seed = seed_file();
    let out = env.keg_ok(&[
        "create",
        "cluster",
        "-f",
        seed.to_str().unwrap(),
        "--store",
        &store,
        "--etcd-prefix",
        "/mine",
        "--servers",
        "2",
    ]);
    assert!(!out.contains("starting a 3-member etcd"), "{out}");
    let k = env.kubectl();
    k.ok(&["create", "namespace", "kept"]);
    let keys = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints[1]))
        .args([
            "get",
            "--prefix",
            "--keys-only",
            "/mine/registry/core/namespaces/",
        ])
        .output()
        .unwrap();
    let (keys, err) = (
        String::from_utf8_lossy(&keys.stdout),
        String::from_utf8_lossy(&keys.stderr),
    );
    assert!(
        keys.contains("/mine/registry/core/namespaces/kept"),
        "{keys}{err}"
    );
    let second = k.json(&[
        "--context",
        "admin@terrax-fargate.eu-west-1.eksctl.io/server-2",
        "get",
        "namespace",
        "kept",
    ]);
    assert_eq!(second["metadata"]["name"], "kept");
    let started = pids(&env.cluster_dir());
    assert_eq!(started.len(), 2, "{started:?}");

    let out = env.keg_ok(&["delete", "cluster", "--name", CLUSTER]);
    assert!(
        out.contains(&format!(
            "the cluster's data stays in {store} under /mine/registry/"
        )),
        "{out}"
    );
    assert!(started.iter().all(|pid| !alive(*pid)));
    assert!(
        etcd.iter().all(|m| alive(m.pid() as i32)),
        "keg stopped the user's etcd"
    );
}
