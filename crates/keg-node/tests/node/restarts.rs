//! Restart policies: CrashLoopBackOff with a growing restart count, `--previous` logs,
//! pods that complete, init containers, termination messages, SIGKILL after the grace period.

use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use serde_json::json;

use crate::common::{IMAGE, condition, container_status, kubectl_status, with_cluster};

const NODE: &str = "ip-192-168-7-9.eu-west-1.compute.internal";

fn restarts(pod: &Pod) -> i32 {
    container_status(pod, "app").restart_count
}

#[tokio::test]
async fn crashing_container_backs_off() {
    with_cluster("crashing_container_backs_off", |c| async move {
        c.node(NODE, false).await;
        c.pod("crash", NODE, json!({
            "containers": [{"name": "app", "image": IMAGE, "command": ["sh", "-c", "echo attempt; exit 1"]}]
        }))
        .await;
        let pod = c
            .wait_pod("crash", "CrashLoopBackOff", |p| kubectl_status(p) == "CrashLoopBackOff")
            .await;
        let app = container_status(&pod, "app");
        let waiting = app.state.clone().unwrap().waiting.unwrap();
        let uid = pod.metadata.uid.clone().unwrap();
        assert_eq!(
            waiting.message.as_deref(),
            Some(format!("back-off 10s restarting failed container=app pod=crash_default({uid})").as_str())
        );
        assert_eq!(app.restart_count, 1, "the first restart is at once");
        let last = app.last_state.unwrap().terminated.unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
        assert_eq!(pod.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
        assert_eq!(condition(&pod, "Ready").1.as_deref(), Some("ContainersNotReady"));
        c.wait_event("crash", "BackOff: Back-off restarting failed container app in pod crash_default").await;
        // After the 10 s back-off it runs (and fails) again.
        let pod = c.wait_pod("crash", "a second restart", |p| restarts(p) >= 2).await;
        assert!(restarts(&pod) >= 2);
        let previous = c.logs("crash", LogParams { previous: true, ..Default::default() }).await;
        assert_eq!(previous, "attempt\n");
        c.delete_pod("crash").await;
        c.wait_gone("crash").await;
        c
    })
    .await;
}

#[tokio::test]
async fn pods_complete_under_never_and_on_failure() {
    with_cluster("pods_complete_under_never_and_on_failure", |c| async move {
        c.node(NODE, false).await;
        let message = "echo -n 'it went wrong' > /dev/termination-log; exit 3";
        c.pod(
            "fails",
            NODE,
            json!({"restartPolicy": "Never", "containers": [
                {"name": "app", "image": IMAGE, "command": ["sh", "-c", message]}
            ]}),
        )
        .await;
        c.pod(
            "works",
            NODE,
            json!({"restartPolicy": "OnFailure", "containers": [
                {"name": "app", "image": IMAGE, "command": ["sh", "-c", "echo done"]}
            ]}),
        )
        .await;
        c.pod(
            "logs-fallback",
            NODE,
            json!({"restartPolicy": "Never", "containers": [
                {"name": "app", "image": IMAGE, "command": ["sh", "-c", "echo last words; exit 2"],
                 "terminationMessagePolicy": "FallbackToLogsOnError"}
            ]}),
        )
        .await;
        let pod = c
            .wait_pod("fails", "Failed", |p| status_phase(p) == "Failed")
            .await;
        assert_eq!(kubectl_status(&pod), "Error");
        let ended = container_status(&pod, "app")
            .state
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(ended.exit_code, 3);
        assert_eq!(ended.message.as_deref(), Some("it went wrong"));
        assert_eq!(condition(&pod, "Ready").1.as_deref(), Some("PodFailed"));
        let pod = c
            .wait_pod("works", "Succeeded", |p| status_phase(p) == "Succeeded")
            .await;
        assert_eq!(kubectl_status(&pod), "Completed");
        assert_eq!(restarts(&pod), 0);
        assert_eq!(
            c.logs("works", LogParams::default()).await,
            "done\n",
            "logs outlive the container"
        );
        let pod = c
            .wait_pod("logs-fallback", "Failed", |p| status_phase(p) == "Failed")
            .await;
        let ended = container_status(&pod, "app")
            .state
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(ended.message.as_deref(), Some("last words"));
        assert!(
            c.runtime.list_pod_sandboxes().unwrap().is_empty(),
            "finished pods hold no sandbox"
        );
        for name in ["fails", "works", "logs-fallback"] {
            c.delete_pod(name).await;
            c.wait_gone(name).await;
        }
        c
    })
    .await;
}

fn status_phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn init_containers_run_first() {
    with_cluster("init_containers_run_first", |c| async move {
        c.node(NODE, false).await;
        c.pod("init", NODE, json!({
            "volumes": [{"name": "work", "emptyDir": {}}],
            "initContainers": [
                {"name": "first", "image": IMAGE, "command": ["sh", "-c", "echo one > /work/log"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
                {"name": "second", "image": IMAGE, "command": ["sh", "-c", "sleep 1; echo two >> /work/log"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work"}]}
            ],
            "containers": [{"name": "app", "image": IMAGE,
                "command": ["sh", "-c", "trap 'exit 0' TERM; cat /work/log; while true; do sleep 1; done"],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}]}]
        }))
        .await;
        let pod = c.wait_pod("init", "Running", |p| kubectl_status(p) == "Running").await;
        assert_eq!(condition(&pod, "Initialized").0, "True");
        let inits = pod.status.clone().unwrap().init_container_statuses.unwrap();
        assert_eq!(inits.len(), 2);
        for s in &inits {
            let t = s.state.clone().unwrap().terminated.unwrap();
            assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")), "{}", s.name);
        }
        assert_eq!(c.logs("init", LogParams::default()).await, "one\ntwo\n");
        let second = LogParams { container: Some("second".into()), ..Default::default() };
        assert_eq!(c.logs("init", second).await, "");
        c.delete_pod("init").await;
        c.wait_gone("init").await;
        c
    })
    .await;
}

#[tokio::test]
async fn failed_init_fails_the_pod_under_never() {
    with_cluster("failed_init_fails_the_pod_under_never", |c| async move {
        c.node(NODE, false).await;
        c.pod("badinit", NODE, json!({
            "restartPolicy": "Never",
            "initContainers": [{"name": "setup", "image": IMAGE, "command": ["sh", "-c", "exit 4"]}],
            "containers": [{"name": "app", "image": IMAGE, "command": ["true"]}]
        }))
        .await;
        let pod = c.wait_pod("badinit", "Failed", |p| status_phase(p) == "Failed").await;
        assert_eq!(kubectl_status(&pod), "Init:Error");
        let (status, reason, message) = condition(&pod, "Initialized");
        assert_eq!((status.as_str(), reason.as_deref()), ("False", Some("ContainersNotInitialized")));
        assert_eq!(message.as_deref(), Some("containers with incomplete status: [setup]"));
        let app = container_status(&pod, "app");
        assert_eq!(app.state.unwrap().waiting.unwrap().reason.as_deref(), Some("PodInitializing"));
        c.delete_pod("badinit").await;
        c.wait_gone("badinit").await;
        c
    })
    .await;
}

#[tokio::test]
async fn stubborn_container_is_killed_after_the_grace_period() {
    with_cluster("stubborn_container_is_killed_after_the_grace_period", |c| async move {
        c.node(NODE, false).await;
        // sh as PID 1 ignores SIGTERM without a handler: only SIGKILL ends it.
        c.pod("stubborn", NODE, json!({"terminationGracePeriodSeconds": 2, "containers": [
            {"name": "app", "image": IMAGE, "command": ["sh", "-c", "echo up; while true; do sleep 1; done"]}
        ]}))
        .await;
        c.wait_pod("stubborn", "Running", |p| kubectl_status(p) == "Running").await;
        let logs = c.logs("stubborn", LogParams { follow: true, ..Default::default() });
        let (logs, ()) = tokio::join!(logs, async {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            c.delete_pod("stubborn").await;
        });
        assert_eq!(logs, "up\n", "following ends with the container");
        c.wait_gone("stubborn").await;
        c.wait_event("stubborn", "Killing: Stopping container app").await;
        c
    })
    .await;
}

#[tokio::test]
async fn sidecars_serve_the_app_and_end_with_it() {
    with_cluster("sidecars_serve_the_app_and_end_with_it", |c| async move {
        c.node(NODE, false).await;
        let sidecar = "echo ready > /shared/flag; trap 'exit 0' TERM; while true; do sleep 1; done";
        c.pod("with-sidecar", NODE, json!({
            "restartPolicy": "Never",
            "volumes": [{"name": "shared", "emptyDir": {}}],
            "initContainers": [{"name": "helper", "image": IMAGE, "restartPolicy": "Always",
                "command": ["sh", "-c", sidecar],
                "startupProbe": {"exec": {"command": ["test", "-f", "/shared/flag"]}, "periodSeconds": 1},
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}],
            "containers": [{"name": "app", "image": IMAGE, "command": ["sh", "-c", "sleep 2; cat /shared/flag"],
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}]
        }))
        .await;
        let running = c.wait_pod("with-sidecar", "Running", |p| kubectl_status(p) == "Running").await;
        let helper = &running.status.clone().unwrap().init_container_statuses.unwrap()[0];
        assert_eq!(helper.started, Some(true));
        let pod = c.wait_pod("with-sidecar", "Succeeded", |p| status_phase(p) == "Succeeded").await;
        assert_eq!(kubectl_status(&pod), "Completed");
        assert_eq!(c.logs("with-sidecar", LogParams::default()).await, "ready\n");
        let helper = &pod.status.clone().unwrap().init_container_statuses.unwrap()[0];
        let ended = helper.state.clone().unwrap().terminated.expect("the sidecar was stopped");
        assert_eq!(ended.exit_code, 0, "it got SIGTERM and exited");
        c.delete_pod("with-sidecar").await;
        c.wait_gone("with-sidecar").await;
        c
    })
    .await;
}

#[tokio::test]
async fn active_deadline_fails_the_pod() {
    with_cluster("active_deadline_fails_the_pod", |c| async move {
        c.node(NODE, false).await;
        c.pod(
            "deadline",
            NODE,
            json!({"activeDeadlineSeconds": 2, "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "app", "image": IMAGE,
                "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}]}),
        )
        .await;
        let pod = c
            .wait_pod("deadline", "Failed", |p| status_phase(p) == "Failed")
            .await;
        let status = pod.status.clone().unwrap();
        assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(
            status.message.as_deref(),
            Some("Pod was active on the node longer than the specified deadline")
        );
        c.wait_event(
            "deadline",
            "DeadlineExceeded: Pod was active on the node longer than the specified deadline",
        )
        .await;
        c.delete_pod("deadline").await;
        c.wait_gone("deadline").await;
        c
    })
    .await;
}
