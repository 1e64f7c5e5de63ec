//! eksctl's day-two verbs on the seed's cluster: `keg create/delete fargateprofile` (from
//! flags and from a cluster file) and `keg create/get/delete nodegroup`, with eksctl's
//! refusals; a profile created later picks up a Pending pod it selects; deleting a node
//! group drains its nodes first.

mod common;

use std::time::Duration;

use common::cluster::{CLUSTER, Env, seed_file};
use common::{eventually, write_file};

fn fails(env: &Env, args: &[&str]) -> String {
    let out = env.keg(args);
    assert!(!out.status.success(), "keg {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn profiles_and_node_groups_come_and_go_as_with_eksctl() {
    if !keg_runtime::testing::require_root("profiles_and_node_groups_come_and_go_as_with_eksctl") {
        return;
    }
    let env = Env::new();
    // The cluster's node agent takes images from $KEG_HOME/images.
    let work = tempfile::tempdir().unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(keg_runtime::testing::busybox_in_store(
            work.path(),
            &env.keg_home().join("images"),
            "busybox:test",
        ))
        .unwrap();
    let seed = seed_file();
    env.keg_ok(&["create", "cluster", "-f", seed.to_str().unwrap()]);
    let k = env.kubectl();

    // Refusals, each before anything is made.
    let err = fails(
        &env,
        &[
            "create",
            "fargateprofile",
            "--cluster",
            "nowhere",
            "--name",
            "fp",
            "--namespace",
            "x",
        ],
    );
    assert!(
        err.contains("no cluster found for name: \"nowhere\""),
        "{err}"
    );
    let err = fails(
        &env,
        &[
            "create",
            "fargateprofile",
            "--cluster",
            CLUSTER,
            "--name",
            "eks-x",
            "--namespace",
            "x",
        ],
    );
    assert!(
        err.contains("invalid Fargate profile \"eks-x\": name should NOT start with \"eks-\""),
        "{err}"
    );
    let err = fails(
        &env,
        &[
            "create",
            "fargateprofile",
            "--cluster",
            CLUSTER,
            "--name",
            "fp-default",
            "--namespace",
            "x",
        ],
    );
    assert!(err.contains("ResourceInUseException: A Fargate Profile already exists with this name in this cluster."), "{err}");
    let six: String = (0..6)
        .map(|i| format!("      - namespace: ns{i}\n"))
        .collect();
    let file = write_file(
        work.path(),
        "six.yaml",
        &format!(
            "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {{name: {CLUSTER}, region: eu-west-1}}\nfargateProfiles:\n  - name: fp-six\n    selectors:\n{six}"
        ),
    );
    let err = fails(
        &env,
        &["create", "fargateprofile", "-f", file.to_str().unwrap()],
    );
    assert!(
        err.contains("six.yaml:12:") && err.contains("at most 5 selectors are allowed, found 6"),
        "{err}"
    );

    // A pod nothing can place waits; a profile created for it takes it to Fargate.
    let node_group_node = k.json(&[
        "get",
        "nodes",
        "-l",
        "alpha.eksctl.io/nodegroup-name=node-group",
        "-o",
        "json",
    ])["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    k.ok(&["cordon", &node_group_node]);
    k.ok(&["create", "namespace", "late"]);
    k.ok(&[
        "run",
        "waiter",
        "-n",
        "late",
        "--image=busybox:test",
        "--",
        "sleep",
        "3600",
    ]);
    std::thread::sleep(Duration::from_secs(1));
    let pod = k.json(&["get", "pod", "waiter", "-n", "late", "-o", "json"]);
    assert_eq!(pod["status"]["phase"], "Pending");
    assert!(pod["spec"]["nodeName"].is_null());
    let out = env.keg_ok(&[
        "create",
        "fargateprofile",
        "--cluster",
        CLUSTER,
        "--name",
        "fp-late",
        "--namespace",
        "late",
    ]);
    assert!(
        out.contains("created Fargate profile \"fp-late\" on EKS cluster \"terrax-fargate\""),
        "{out}"
    );
    let node = eventually(
        "the waiting pod on Fargate",
        Duration::from_secs(60),
        || {
            let pod = k.json(&["get", "pod", "waiter", "-n", "late", "-o", "json"]);
            pod["spec"]["nodeName"].as_str().map(String::from)
        },
    );
    assert!(node.starts_with("fargate-ip-"), "{node}");
    let table = env.keg_ok(&["get", "fargateprofile", "--cluster", CLUSTER]);
    assert!(
        table.contains("fp-late") && table.contains("late"),
        "{table}"
    );
    k.ok(&["uncordon", &node_group_node]);

    // A second node group, then its deletion: its pod is evicted before the node goes.
    let out = env.keg_ok(&[
        "create",
        "nodegroup",
        "--cluster",
        CLUSTER,
        "--name",
        "ng-2",
        "--node-type",
        "t3.small",
        "--nodes",
        "1",
    ]);
    assert!(
        out.contains("created 1 nodegroup(s) in cluster \"terrax-fargate\""),
        "{out}"
    );
    let err = fails(
        &env,
        &[
            "create",
            "nodegroup",
            "--cluster",
            CLUSTER,
            "--name",
            "ng-2",
            "--nodes",
            "1",
        ],
    );
    assert!(err.contains("nodegroup \"ng-2\" already exists"), "{err}");
    let table = env.keg_ok(&["get", "nodegroup", "--cluster", CLUSTER]);
    assert!(
        table.contains("ng-2") && table.contains("t3.small"),
        "{table}"
    );
    k.ok(&["create", "namespace", "apps"]);
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: pinned, namespace: apps}\nspec:\n  nodeSelector: {alpha.eksctl.io/nodegroup-name: ng-2}\n  terminationGracePeriodSeconds: 1\n  containers: [{name: main, image: busybox:test, command: [sleep, '3600']}]\n",
    );
    eventually("the pinned pod running", Duration::from_secs(60), || {
        let pod = k.json(&["get", "pod", "pinned", "-n", "apps", "-o", "json"]);
        (pod["status"]["phase"] == "Running").then_some(())
    });
    let out = env.keg_ok(&[
        "delete",
        "nodegroup",
        "--cluster",
        CLUSTER,
        "--name",
        "ng-2",
    ]);
    assert!(
        out.contains("drained all nodes of nodegroup \"ng-2\""),
        "{out}"
    );
    assert!(
        out.contains("deleted 1 nodegroup(s) from cluster \"terrax-fargate\""),
        "{out}"
    );
    let gone = k.run(&["get", "pod", "pinned", "-n", "apps"]);
    assert!(
        gone.stderr.contains("NotFound"),
        "the pod was evicted: {}",
        gone.stderr
    );
    let err = fails(
        &env,
        &[
            "delete",
            "nodegroup",
            "--cluster",
            CLUSTER,
            "--name",
            "ng-2",
        ],
    );
    assert!(err.contains("nodegroup \"ng-2\" not found"), "{err}");

    env.keg_ok(&[
        "delete",
        "fargateprofile",
        "--cluster",
        CLUSTER,
        "--name",
        "fp-late",
    ]);
    let err = fails(
        &env,
        &[
            "delete",
            "fargateprofile",
            "--cluster",
            CLUSTER,
            "--name",
            "fp-late",
        ],
    );
    assert!(
        err.contains("ResourceNotFoundException: No Fargate Profile found with name: fp-late."),
        "{err}"
    );
}
