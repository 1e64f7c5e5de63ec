//! A restarted agent adopts the containers that run instead of restarting them, and
//! finishes what happened while it was down.

use kube::api::LogParams;
use serde_json::json;

use crate::common::{IMAGE, container_id, container_status, kubectl_status, with_cluster};

const NODE: &str = "ip-192-168-7-9.eu-west-1.compute.internal";
const SCRIPT: &str = "trap 'exit 0' TERM; echo started; while true; do sleep 1; done";

#[tokio::test]
async fn restarted_agent_adopts_running_containers() {
    with_cluster(
        "restarted_agent_adopts_running_containers",
        |mut c| async move {
            c.node(NODE, false).await;
            for name in ["kept", "doomed"] {
                c.pod(
                    name,
                    NODE,
                    json!({"containers": [{"name": "app", "image": IMAGE,
                "command": ["sh", "-c", SCRIPT],
                "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}]}),
                )
                .await;
            }
            let before = c
                .wait_pod("kept", "Ready", |p| {
                    kubectl_status(p) == "Running" && container_status(p, "app").ready
                })
                .await;
            c.wait_pod("doomed", "Running", |p| kubectl_status(p) == "Running")
                .await;
            let id = container_id(&before, "app");
            let started = container_status(&before, "app")
                .state
                .unwrap()
                .running
                .unwrap()
                .started_at;

            c.stop_agent().await;
            c.delete_pod("doomed").await;
            c.restart_agent().await;

            // The new agent finishes the deletion that happened while none ran...
            c.wait_gone("doomed").await;
            // ...and leaves the other pod's container alone.
            let after = c
                .wait_pod("kept", "Ready again", |p| container_status(p, "app").ready)
                .await;
            let app = container_status(&after, "app");
            assert_eq!(container_id(&after, "app"), id, "same container");
            assert_eq!(app.restart_count, 0);
            assert_eq!(app.state.unwrap().running.unwrap().started_at, started);
            let running: Vec<String> = c
                .runtime
                .list_containers()
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect();
            assert_eq!(running, vec![id]);
            assert_eq!(c.logs("kept", LogParams::default()).await, "started\n");
            c.delete_pod("kept").await;
            c.wait_gone("kept").await;
            c
        },
    )
    .await;
}
