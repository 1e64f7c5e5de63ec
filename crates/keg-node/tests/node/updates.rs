//! Changes to running pods: a new image restarts the container; config map changes reach
//! mounted volumes.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::{IMAGE, container_status, kubectl_status, with_cluster};

const NODE: &str = "ip-192-168-7-9.eu-west-1.compute.internal";
const SCRIPT: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

#[tokio::test]
async fn new_image_restarts_the_container() {
    with_cluster("new_image_restarts_the_container", |c| async move {
        c.images.tag(&c.image.id, "busybox:v2").unwrap();
        c.node(NODE, false).await;
        c.pod("upgraded", NODE, json!({"containers": [{"name": "app", "image": IMAGE, "command": ["sh", "-c", SCRIPT]}]}))
            .await;
        c.wait_pod("upgraded", "Running", |p| kubectl_status(p) == "Running").await;
        let patch = json!({"spec": {"containers": [{"name": "app", "image": "busybox:v2"}]}});
        c.pods().patch("upgraded", &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();
        let pod = c
            .wait_pod("upgraded", "restarted on the new image", |p| {
                let app = container_status(p, "app");
                app.restart_count == 1 && app.state.is_some_and(|s| s.running.is_some())
            })
            .await;
        assert_eq!(container_status(&pod, "app").image, "docker.io/library/busybox:v2");
        c.wait_event("upgraded", "Killing: Container app definition changed, will be restarted").await;
        c.delete_pod("upgraded").await;
        c.wait_gone("upgraded").await;
        c
    })
    .await;
}

#[tokio::test]
async fn config_map_changes_reach_the_volume() {
    with_cluster("config_map_changes_reach_the_volume", |mut c| async move {
        c.restart_agent_with(|config| {
            config.volume_refresh_interval = std::time::Duration::from_secs(1)
        })
        .await;
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
        let cm =
            serde_json::from_value(json!({"metadata": {"name": "live"}, "data": {"value": "one"}}))
                .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        c.node(NODE, false).await;
        c.pod(
            "reader",
            NODE,
            json!({
                "volumes": [{"name": "cfg", "configMap": {"name": "live"}}],
                "containers": [{"name": "app", "image": IMAGE, "command": ["sh", "-c", SCRIPT],
                                "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}]
            }),
        )
        .await;
        let pod = c
            .wait_pod("reader", "Running", |p| kubectl_status(p) == "Running")
            .await;
        assert_eq!(
            c.exec(&pod, "app", &["cat", "/cfg/value"]).await,
            (0, "one".into())
        );
        let patch = json!({"data": {"value": "two"}});
        cms.patch("live", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + crate::common::WAIT;
        loop {
            if c.exec(&pod, "app", &["cat", "/cfg/value"]).await == (0, "two".into()) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the volume never showed the change"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        c.delete_pod("reader").await;
        c.wait_gone("reader").await;
        c
    })
    .await;
}
