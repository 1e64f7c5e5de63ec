//! A pod's life: running, status as kubectl shows it, logs, the container's view of itself,
//! graceful deletion.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::runtime::watcher;
use serde_json::json;

use crate::common::{
    Cluster, IMAGE, WAIT, condition, container_status, kubectl_status, with_cluster,
};

const NODE: &str = "fargate-ip-192-168-7-9.eu-west-1.compute.internal";
const MEMORY_LIMIT: &str =
    "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes";

#[tokio::test]
async fn runs_a_pod_on_a_fargate_node() {
    with_cluster("runs_a_pod_on_a_fargate_node", |c| async move {
        c.node(NODE, true).await;
        let script = "trap 'echo bye; exit 0' TERM; echo hello; while true; do sleep 1; done";
        let spec = json!({"containers": [{"name": "app", "image": IMAGE, "command": ["sh", "-c", script]}]});
        c.pod("web", NODE, spec).await;
        let pod = c.wait_pod("web", "Running", |p| kubectl_status(p) == "Running").await;
        check_running_status(&pod);
        assert_eq!(c.logs("web", LogParams::default()).await, "hello\n");
        check_inside(&c, &pod).await;
        for event in [
            "Pulled: Container image \"busybox:test\" already present on machine",
            "Created: Created container: app",
            "Started: Started container app",
        ] {
            c.wait_event("web", event).await;
        }
        let last = delete_and_watch(&c, "web").await;
        assert_eq!(last.status.as_ref().unwrap().phase.as_deref(), Some("Succeeded"), "{:?}", last.status);
        let ended = container_status(&last, "app").state.unwrap().terminated.unwrap();
        assert_eq!((ended.exit_code, ended.reason.as_deref()), (0, Some("Completed")));
        c.wait_event("web", "Killing: Stopping container app").await;
        assert!(c.runtime.list_pod_sandboxes().unwrap().is_empty(), "sandbox removed");
        assert!(c.runtime.list_containers().unwrap().is_empty(), "containers removed");
        c
    })
    .await;
}

/// Status as the kubelet writes it for a running pod.
fn check_running_status(pod: &Pod) {
    let status = pod.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    for t in [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ] {
        assert_eq!(condition(pod, t).0, "True", "{t}");
    }
    assert_eq!(status.host_ip.as_deref(), Some("192.168.7.9"));
    assert!(status.pod_ip.is_some() && status.start_time.is_some());
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    let app = container_status(pod, "app");
    assert!(app.ready && app.started == Some(true) && app.restart_count == 0);
    assert!(app.container_id.as_deref().unwrap().starts_with("crun://"));
    // As containerd reports them: the normalised tag and the repository digest.
    assert_eq!(app.image, "docker.io/library/busybox:test");
    assert!(
        app.image_id
            .starts_with("docker.io/library/busybox@sha256:"),
        "{}",
        app.image_id
    );
    assert!(app.state.unwrap().running.unwrap().started_at.is_some());
}

/// The container sees itself as PID 1, the pod name as hostname, the cluster's resolv.conf,
/// and (on Fargate) a pod cgroup of the node's provisioned size.
async fn check_inside(c: &Cluster, pod: &Pod) {
    assert_eq!(
        c.exec(pod, "app", &["cat", "/proc/1/comm"]).await,
        (0, "sh\n".into())
    );
    assert_eq!(c.exec(pod, "app", &["hostname"]).await, (0, "web\n".into()));
    let (_, resolv) = c.exec(pod, "app", &["cat", "/etc/resolv.conf"]).await;
    assert_eq!(
        resolv,
        "search default.svc.cluster.local svc.cluster.local cluster.local\n\
         nameserver 10.43.0.10\noptions ndots:5\n"
    );
    let uid = pod.metadata.uid.clone().unwrap();
    let cgroup = format!(
        "/{}/pod{uid}",
        c.runtime_config.cgroup_root.trim_matches('/')
    );
    assert_eq!(
        c.runtime.cgroup_memory_limit(&cgroup),
        Some(512 << 20),
        "0.5 GB"
    );
    // The container's own cgroup has no lower limit of its own.
    let (_, limit) = c.exec(pod, "app", &["sh", "-c", MEMORY_LIMIT]).await;
    let limit = limit.trim();
    assert!(
        limit == "max" || limit.parse::<u64>().unwrap() >= 512 << 20,
        "{limit}"
    );
}

/// Deletes the pod and watches it go; returns the last version seen terminating.
async fn delete_and_watch(c: &Cluster, name: &str) -> Pod {
    let selector = format!("metadata.name={name}");
    let mut versions = Box::pin(watcher::watcher(
        c.pods(),
        watcher::Config::default().fields(&selector),
    ));
    c.delete_pod(name).await;
    let mut last: Option<Pod> = None;
    loop {
        match tokio::time::timeout(WAIT, versions.next()).await {
            Ok(Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)))) => {
                if kubectl_status(&p) == "Terminating" {
                    last = Some(p);
                }
            }
            Ok(Some(Ok(watcher::Event::Delete(_)))) => break,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("pod {name} was never removed"),
        }
    }
    last.expect("saw the pod terminating")
}
