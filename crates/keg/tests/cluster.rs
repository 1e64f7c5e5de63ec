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
