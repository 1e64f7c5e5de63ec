//! Serving a node: its status (conditions, nodeInfo, capacity where missing) and its Lease
//! heartbeat, one task per node. Nodes are made by others (node-group controller, Fargate
//! scheduler); the agent only keeps them alive.

mod lease;
pub(crate) mod machine;
mod status;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::agent::Shared;
use crate::events::{EventRequest, EventType};
use crate::util::now;

/// Keeps one node's status and Lease until its feed closes (the node is no longer served).
pub(crate) async fn serve(shared: Arc<Shared>, mut rx: watch::Receiver<Arc<Node>>) {
    let name = rx.borrow().metadata.name.clone().unwrap_or_default();
    let mut last_post: Option<Instant> = None;
    let mut ticker = tokio::time::interval(shared.config.lease_renew_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut announced = false;
    loop {
        let node = rx.borrow_and_update().clone();
        if !announced {
            announce(&shared, &node);
            announced = true;
        }
        let due =
            last_post.is_none_or(|t| t.elapsed() >= shared.config.node_status_report_interval);
        match post_status(&shared, &node, due).await {
            Ok(true) => last_post = Some(Instant::now()),
            Ok(false) => {}
            Err(e) => tracing::warn!(node = %name, error = %e, "could not post node status"),
        }
        tokio::select! {
            _ = ticker.tick() => {
                let client = &shared.client;
                if let Err(e) = lease::renew(client, &node, shared.config.lease_duration_seconds).await {
                    tracing::warn!(node = %name, error = %e, "could not renew the node lease");
                }
            }
            changed = rx.changed() => if changed.is_err() {
                tracing::info!(node = %name, "no longer serving node");
                return;
            },
        }
    }
}

/// Posts the node's status when it differs from what the node shows, or when `due`.
/// Returns whether it posted.
async fn post_status(shared: &Shared, node: &Node, due: bool) -> kube::Result<bool> {
    let images = status::images(shared.runtime.images());
    let desired = status::desired_status(node, &shared.facts, images, now());
    let current = node.status.clone().unwrap_or_default();
    if !due && !status::differs(&current, &desired) {
        return Ok(false);
    }
    let name = node.metadata.name.clone().unwrap_or_default();
    let api: Api<Node> = Api::all(shared.client.clone());
    let patch = json!({ "status": desired });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    if !status::is_ready(node.status.as_ref()) {
        node_event(
            shared,
            &name,
            "NodeReady",
            &format!("Node {name} status is now: NodeReady"),
        );
    }
    Ok(true)
}

/// The events a kubelet records when it starts serving a node.
fn announce(shared: &Shared, node: &Node) {
    let name = node.metadata.name.clone().unwrap_or_default();
    node_event(shared, &name, "Starting", "Starting kubelet.");
    for condition in [
        "NodeHasSufficientMemory",
        "NodeHasNoDiskPressure",
        "NodeHasSufficientPID",
    ] {
        node_event(
            shared,
            &name,
            condition,
            &format!("Node {name} status is now: {condition}"),
        );
    }
    node_event(
        shared,
        &name,
        "NodeAllocatableEnforced",
        "Updated Node Allocatable limit across pods",
    );
}

fn node_event(shared: &Shared, name: &str, reason: &str, message: &str) {
    shared.events.record(EventRequest {
        // The kubelet names its node by name as UID, in the default namespace.
        object: ObjectReference {
            kind: Some("Node".into()),
            name: Some(name.into()),
            uid: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        host: name.into(),
        type_: EventType::Normal,
        reason: reason.into(),
        message: message.into(),
    });
}
