//! Scheduling on the seed's cluster, with real pods: pods its Fargate profiles select each get a
//! new one-pod fargate node (app=service in tb-demo, everything in default and kube-system),
//! other pods run on the node group's node; a Deployment scaled 2 -> 4 -> 1 is followed by its
//! fargate nodes; pods Fargate cannot run are refused with EKS's event text; a pod too big for
//! every node gets upstream's FailedScheduling message and is scheduled once a node group with
//! room for it is added, or on Fargate once a profile selects it.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::{Env, seed_file};
use common::{Kubectl, eventually, write_file};
use keg_runtime::testing::{busybox_in_store, require_root};
use serde_json::{Value, json};

const PROFILE_LABEL: &str = "eks.amazonaws.com/fargate-profile";
const FARGATE_TAINT: &str = "{eks.amazonaws.com/compute-type: fargate}";
const WAIT: Duration = Duration::from_secs(120);

/// A pod (or a pod template's spec) that sleeps and ends at once on SIGTERM.
fn sleeper() -> Value {
    json!({
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": "busybox:test",
                        "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]}]
    })
}

fn pod(namespace: &str, name: &str, labels: Value, spec: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    })
}

/// `sleeper()` with changes merged into its one container or into the pod spec.
fn sleeper_with(container: Value, spec: Value) -> Value {
    let mut base = sleeper();
    for (k, v) in container.as_object().unwrap() {
        base["containers"][0][k] = v.clone();
    }
    for (k, v) in spec.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

fn apply(k: &Kubectl, dir: &std::path::Path, name: &str, objects: &[Value]) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let file = write_file(dir, name, &list.to_string());
    k.ok(&["apply", "-f", file.to_str().unwrap()]);
}

fn nodes(k: &Kubectl, selector: &str) -> Vec<Value> {
    k.json(&["get", "nodes", "-l", selector])["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn name(object: &Value) -> String {
    object["metadata"]["name"].as_str().unwrap().to_owned()
}

/// The pods of `selector` in `namespace` once `count` of them run, each on a distinct node.
fn running_pods(k: &Kubectl, namespace: &str, selector: &str, count: usize) -> Vec<Value> {
    eventually(
        &format!("{count} running pods {selector} in {namespace}"),
        WAIT,
        || {
            let pods = k.json(&["get", "pods", "-n", namespace, "-l", selector]);
            let pods = pods["items"].as_array().unwrap().clone();
            let running = pods
                .iter()
                .filter(|p| p["status"]["phase"] == "Running")
                .count();
            (pods.len() == count && running == count).then_some(pods)
        },
    )
}

/// The pod's node, checked to be a fargate node made for it by `profile`.
fn fargate_node_of(k: &Kubectl, pod: &Value, profile: &str) -> String {
    let pod_name = name(pod);
    assert_eq!(
        pod["metadata"]["labels"][PROFILE_LABEL], profile,
        "{pod_name}"
    );
    assert_eq!(
        pod["spec"]["schedulerName"], "fargate-scheduler",
        "{pod_name}"
    );
    assert_eq!(
        pod["metadata"]["annotations"]["CapacityProvisioned"], "0.25vCPU 0.5GB",
        "{pod_name}"
    );
    let node_name = pod["spec"]["nodeName"].as_str().unwrap();
    assert!(
        node_name.starts_with("fargate-ip-") && node_name.ends_with(".eu-west-1.compute.internal"),
        "{pod_name} runs on {node_name}"
    );
    let node = k.json(&["get", "node", node_name]);
    let labels = &node["metadata"]["labels"];
    assert_eq!(labels["eks.amazonaws.com/compute-type"], "fargate");
    assert_eq!(labels[PROFILE_LABEL], profile);
    assert_eq!(labels["topology.kubernetes.io/region"], "eu-west-1");
    assert_eq!(
        node["spec"]["taints"],
        json!([{"key": "eks.amazonaws.com/compute-type", "value": "fargate", "effect": "NoSchedule"}])
    );
    assert_eq!(node["status"]["capacity"]["memory"], "512Mi");
    assert_eq!(node["status"]["capacity"]["pods"], "1");
    node_name.to_owned()
}

/// The nodes of `pods`, each checked to be a fargate node `profile` made for it.
fn distinct_fargate_nodes(k: &Kubectl, pods: &[Value], profile: &str) -> BTreeSet<String> {
    pods.iter()
        .map(|p| fargate_node_of(k, p, profile))
        .collect()
}

/// The FailedScheduling event message the fargate scheduler recorded for a pod.
fn fargate_refusal(k: &Kubectl, namespace: &str, pod: &str) -> String {
    eventually(&format!("FailedScheduling of {pod}"), WAIT, || {
        let events = k.json(&["get", "events", "-n", namespace]);
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["involvedObject"]["name"] == pod
                    && e["reason"] == "FailedScheduling"
                    && e["type"] == "Warning"
                    && (e["source"]["component"] == "fargate-scheduler"
                        || e["reportingComponent"] == "fargate-scheduler")
            })
            .map(|e| e["message"].as_str().unwrap().to_owned())
    })
}

fn pod_scheduled_condition(k: &Kubectl, namespace: &str, pod: &str) -> Value {
    let pod = k.json(&["get", "pod", "-n", namespace, pod]);
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "PodScheduled")
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn the_seed_cluster_places_pods_as_eks_does() {
    if !require_root("the_seed_cluster_places_pods_as_eks_does") {
        return;
    }
    let env = Env::new();
    let work = tempfile::tempdir().unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(busybox_in_store(
            work.path(),
            env.keg_home().join("images"),
            "busybox:test",
        ))
        .unwrap();
    env.keg_ok(&["create", "cluster", "-f", seed_file().to_str().unwrap()]);
    let k = env.kubectl();
    let group_nodes = nodes(&k, "alpha.eksctl.io/nodegroup-name=node-group");
    assert_eq!(group_nodes.len(), 1);
    let group_node = name(&group_nodes[0]);

    k.ok(&["create", "namespace", "tb-demo"]);
    let service = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "service", "namespace": "tb-demo"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "service"}},
            "template": {"metadata": {"labels": {"app": "service"}}, "spec": sleeper()},
        },
    });
    apply(
        &k,
        work.path(),
        "workloads.json",
        &[
            service,
            pod("tb-demo", "database", json!({"app": "database"}), sleeper()),
            pod("default", "web", json!({}), sleeper()),
            pod("kube-system", "system", json!({}), sleeper()),
        ],
    );

    // app=service pods: a fargate node each; app=database: the node group's node.
    let services = running_pods(&k, "tb-demo", "app=service", 2);
    let service_nodes = distinct_fargate_nodes(&k, &services, "fp-demo-service");
    assert_eq!(
        service_nodes.len(),
        2,
        "two pods share a node: {service_nodes:?}"
    );
    let database = &running_pods(&k, "tb-demo", "app=database", 1)[0];
    assert_eq!(database["spec"]["nodeName"], group_node.as_str());
    assert_eq!(database["spec"]["schedulerName"], "default-scheduler");
    assert!(database["metadata"]["labels"][PROFILE_LABEL].is_null());

    // default and kube-system: Fargate, by fp-default.
    for namespace in ["default", "kube-system"] {
        let pods = running_pods(&k, namespace, "!app", 1);
        fargate_node_of(&k, &pods[0], "fp-default");
    }

    // Scaling 2 -> 4 -> 1: the fargate nodes follow, extra ones removed once their pods end.
    let service_nodes = || nodes(&k, &format!("{PROFILE_LABEL}=fp-demo-service"));
    let scale = |replicas: &str| {
        let replicas = format!("--replicas={replicas}");
        k.ok(&["scale", "deployment", "service", "-n", "tb-demo", &replicas]);
    };
    scale("4");
    let services = running_pods(&k, "tb-demo", "app=service", 4);
    let distinct = distinct_fargate_nodes(&k, &services, "fp-demo-service");
    assert_eq!(distinct.len(), 4, "{distinct:?}");
    assert_eq!(service_nodes().len(), 4);
    scale("1");
    let kept = &running_pods(&k, "tb-demo", "app=service", 1)[0];
    let kept_node = fargate_node_of(&k, kept, "fp-demo-service");
    eventually("the extra fargate nodes to go", WAIT, || {
        let left = service_nodes();
        (left.len() == 1 && name(&left[0]) == kept_node).then_some(())
    });

    // What Fargate cannot run, refused in EKS's words.
    let unsupported = [
        (
            "host-network",
            sleeper_with(json!({}), json!({"hostNetwork": true})),
            "fields not supported: HostNetwork",
        ),
        (
            "privileged",
            sleeper_with(json!({"securityContext": {"privileged": true}}), json!({})),
            "invalid SecurityContext fields: Privileged",
        ),
        (
            "net-admin",
            sleeper_with(
                json!({"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}),
                json!({}),
            ),
            "invalid SecurityContext fields: Capabilities added: NET_ADMIN",
        ),
        (
            "host-port",
            sleeper_with(
                json!({"ports": [{"containerPort": 80, "hostPort": 8080}]}),
                json!({}),
            ),
            "port contains HostIP or HostPort",
        ),
        (
            "host-path",
            sleeper_with(
                json!({"volumeMounts": [{"name": "docker-sock", "mountPath": "/run/docker.sock"}]}),
                json!({"volumes": [{"name": "docker-sock", "hostPath": {"path": "/run/docker.sock"}}]}),
            ),
            "volumes not supported: docker-sock is of an unsupported volume Type",
        ),
        (
            "too-big",
            sleeper_with(
                json!({"resources": {"requests": {"cpu": "17", "memory": "1Gi"}}}),
                json!({}),
            ),
            "Your pod's cpu/memory requirements exceed the max Fargate configuration",
        ),
    ];
    let pods: Vec<Value> = unsupported
        .iter()
        .map(|(name, spec, _)| pod("default", name, json!({}), spec.clone()))
        .collect();
    apply(&k, work.path(), "unsupported.json", &pods);
    for (pod_name, _, reason) in &unsupported {
        let message = fargate_refusal(&k, "default", pod_name);
        assert_eq!(message, format!("Pod not supported on Fargate: {reason}"));
        let condition = pod_scheduled_condition(&k, "default", pod_name);
        assert_eq!(condition["status"], "False", "{pod_name}: {condition}");
        assert_eq!(condition["message"], message.as_str());
    }
    assert_eq!(
        pod_scheduled_condition(&k, "default", "too-big")["reason"],
        "POD_CPU_MEM_EXCEEDS_MAX_FARGATE_SIZE"
    );
    k.ok(&["delete", "pods", "-n", "default", "--all", "--wait=false"]);

    // Pods no profile selects that fit no node: upstream's message, counting the fargate
    // nodes by their taint. One goes to Fargate once a profile selects its namespace (EKS would
    // leave it Pending); the other is scheduled once a node group with room for it comes.
    let big = sleeper_with(
        json!({"resources": {"requests": {"cpu": "3", "memory": "1Gi"}}}),
        json!({}),
    );
    for namespace in ["big", "late"] {
        k.ok(&["create", "namespace", namespace]);
        let file = format!("{namespace}.json");
        apply(
            &k,
            work.path(),
            &file,
            &[pod(namespace, "big", json!({}), big.clone())],
        );
    }
    for namespace in ["big", "late"] {
        eventually("the default scheduler's message", WAIT, || {
            let fargate = nodes(&k, "eks.amazonaws.com/compute-type=fargate").len();
            let expected = format!(
                "0/{} nodes are available: 1 Insufficient cpu, {fargate} node(s) had \
                 untolerated taint {FARGATE_TAINT}.",
                fargate + 1
            );
            let condition = pod_scheduled_condition(&k, namespace, "big");
            (condition["status"] == "False"
                && condition["reason"] == "Unschedulable"
                && condition["message"] == expected.as_str())
            .then_some(())
        });
    }
    let described = k.ok(&["describe", "pod", "big", "-n", "big"]);
    assert!(
        described.contains("FailedScheduling") && described.contains("1 Insufficient cpu"),
        "{described}"
    );
    let profile = json!({
        "apiVersion": "keg.dev/v1", "kind": "FargateProfile",
        "metadata": {"name": "fp-late"},
        "spec": {"selectors": [{"namespace": "late"}]},
    });
    apply(&k, work.path(), "fp-late.json", &[profile]);
    let late = &running_pods(&k, "late", "!app", 1)[0];
    // Its spec.schedulerName stays as created (it is immutable); the node tells.
    assert_eq!(
        late["metadata"]["annotations"]["CapacityProvisioned"],
        "4vCPU 8GB"
    );
    let node = k.json(&["get", "node", late["spec"]["nodeName"].as_str().unwrap()]);
    assert_eq!(node["metadata"]["labels"][PROFILE_LABEL], "fp-late");
    assert_eq!(node["status"]["capacity"]["cpu"], "4");

    let node_group = json!({
        "apiVersion": "keg.dev/v1", "kind": "NodeGroup",
        "metadata": {"name": "large"},
        "spec": {"instanceType": "m5.xlarge", "desiredCapacity": 1, "minSize": 1, "maxSize": 1},
    });
    apply(&k, work.path(), "large.json", &[node_group]);
    let big = &running_pods(&k, "big", "!app", 1)[0];
    let node = k.json(&["get", "node", big["spec"]["nodeName"].as_str().unwrap()]);
    assert_eq!(
        node["metadata"]["labels"]["node.kubernetes.io/instance-type"],
        "m5.xlarge"
    );

    env.keg_ok(&["delete", "cluster", "-f", seed_file().to_str().unwrap()]);
}
