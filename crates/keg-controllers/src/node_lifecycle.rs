//! The node lifecycle controller, as upstream's: a node whose Lease (and status) has not been
//! renewed for the grace period becomes Ready=Unknown ("Kubelet stopped posting node
//! status."), its pods are marked not ready, and it is tainted
//! `node.kubernetes.io/unreachable` NoSchedule and NoExecute; when it reports again the
//! taints go. The taint manager part evicts pods from NoExecute-tainted nodes: at once when
//! they do not tolerate the taint, after `tolerationSeconds` when they do for that long.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use keg_api::node_fit::tolerates;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::events::Events;
use crate::{Clock, Result, pods};

/// The taint of a node that stopped reporting.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// How often nodes are looked at (upstream's node-monitor-period).
const MONITOR_PERIOD: Duration = Duration::from_secs(1);

/// How the controller judges nodes.
pub struct Config {
    /// How long a node may stay silent before it is Unknown (upstream's
    /// `--node-monitor-grace-period`, 40 s).
    pub grace_period: Duration,
    /// Where the time comes from.
    pub clock: Arc<dyn Clock>,
}

/// Runs the controller until the process ends.
pub async fn run(client: Client, config: Config) {
    let events = Events::new(client.clone(), "node-controller");
    loop {
        if let Err(e) = monitor(&client, &config, &events).await {
            tracing::debug!("node lifecycle controller: {}", e.message());
        }
        tokio::time::sleep(config.clock.real_wait(MONITOR_PERIOD)).await;
    }
}

/// When the node last showed it is alive: its Lease's renewal or its Ready heartbeat.
fn last_heard(node: &Node, lease: Option<&Lease>) -> Option<Timestamp> {
    let renewed = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let heartbeat = ready_condition(node)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    renewed.max(heartbeat)
}

fn ready_condition(node: &Node) -> Option<&k8s_openapi::api::core::v1::NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

fn taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

async fn monitor(client: &Client, config: &Config, events: &Events) -> Result<()> {
    let now = config.clock.now();
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: HashMap<String, Lease> =
        Api::<Lease>::namespaced(client.clone(), "kube-node-lease")
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(|l| (l.name_any(), l))
            .collect();
    let all_pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let grace = jiff::SignedDuration::try_from(config.grace_period).unwrap_or_default();
    for node in nodes.list(&ListParams::default()).await?.items {
        let name = node.name_any();
        let on_node: Vec<&Pod> = all_pods
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
            .collect();
        // A node never heard from gets the grace period from its creation, as upstream.
        let heard = last_heard(&node, leases.get(&name))
            .or_else(|| node.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let silent = heard.is_none_or(|t| now - grace > t);
        let ready = ready_condition(&node).map(|c| c.status.as_str());
        if silent && ready != Some("Unknown") {
            mark_unknown(client, &node, &on_node, now, events).await?;
        }
        let unreachable = taints(&node).iter().any(|t| t.key == UNREACHABLE);
        if silent && !unreachable {
            set_unreachable_taints(&nodes, &node, true, now).await?;
        } else if !silent && ready == Some("True") && unreachable {
            set_unreachable_taints(&nodes, &node, false, now).await?;
        }
        evict_intolerant(client, &node, &on_node, now, events).await?;
    }
    Ok(())
}

/// Ready and the pressure conditions become Unknown; the node's pods are not ready.
async fn mark_unknown(
    client: &Client,
    node: &Node,
    on_node: &[&Pod],
    now: Timestamp,
    events: &Events,
) -> Result<()> {
    let name = node.name_any();
    let conditions: Vec<_> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|mut c| {
            if c.status != "Unknown" {
                c.last_transition_time = Some(Time(now));
            }
            c.status = "Unknown".into();
            c.reason = Some("NodeStatusUnknown".into());
            c.message = Some("Kubelet stopped posting node status.".into());
            c
        })
        .collect();
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": conditions}})),
        )
        .await?;
    events
        .normal(
            &node.object_ref(&()),
            "NodeNotReady",
            "NodeNotReady",
            format!("Node {name} status is now: NodeNotReady"),
        )
        .await;
    for pod in on_node.iter().filter(|p| pods::is_ready(p)) {
        let not_ready =
            json!({"type": "Ready", "status": "False", "lastTransitionTime": Time(now)});
        set_pod_condition(client, pod, not_ready).await?;
        events
            .warning(
                &pod.object_ref(&()),
                "NodeNotReady",
                "NodeNotReady",
                "Node is not ready".into(),
            )
            .await;
    }
    Ok(())
}

/// Adds (or removes) the unreachable NoSchedule and NoExecute taints.
async fn set_unreachable_taints(
    nodes: &Api<Node>,
    node: &Node,
    add: bool,
    now: Timestamp,
) -> Result<()> {
    let mut kept: Vec<Taint> = taints(node)
        .into_iter()
        .filter(|t| t.key != UNREACHABLE)
        .collect();
    if add {
        kept.push(Taint {
            key: UNREACHABLE.into(),
            effect: "NoSchedule".into(),
            time_added: None,
            value: None,
        });
        kept.push(Taint {
            key: UNREACHABLE.into(),
            effect: "NoExecute".into(),
            time_added: Some(Time(now)),
            value: None,
        });
    }
    // The resourceVersion makes this a compare-and-swap with other writers of the taints.
    let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version},
        "spec": {"taints": kept}});
    nodes
        .patch(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

/// The taint manager: deletes the node's pods that do not tolerate its NoExecute taints, at
/// once or once their `tolerationSeconds` have passed since the taint was added.
async fn evict_intolerant(
    client: &Client,
    node: &Node,
    on_node: &[&Pod],
    now: Timestamp,
    events: &Events,
) -> Result<()> {
    let no_execute: Vec<Taint> = taints(node)
        .into_iter()
        .filter(|t| t.effect == "NoExecute")
        .collect();
    if no_execute.is_empty() {
        return Ok(());
    }
    for pod in on_node
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        let mut due = false;
        for taint in &no_execute {
            let matching: Vec<_> = tolerations
                .iter()
                .filter(|t| tolerates(Some(std::slice::from_ref(*t)), taint))
                .collect();
            if matching.is_empty() {
                due = true;
                break;
            }
            // The shortest matching toleration; none with seconds means forever.
            let seconds = matching.iter().filter_map(|t| t.toleration_seconds).min();
            let added = taint.time_added.as_ref().map_or(now, |t| t.0);
            if let Some(s) = seconds
                && added + jiff::SignedDuration::from_secs(s.max(0)) <= now
            {
                due = true;
                break;
            }
        }
        if !due {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let condition = json!({
            "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
            "lastTransitionTime": Time(now),
        });
        set_pod_condition(client, pod, condition).await?;
        events
            .normal(
                &pod.object_ref(&()),
                "TaintManagerEviction",
                "Delete",
                format!("Marking for deletion Pod {ns}/{}", pod.name_any()),
            )
            .await;
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        crate::gone_is_fine(api.delete(&pod.name_any(), &DeleteParams::default()).await)?;
    }
    Ok(())
}

/// Sets one condition of a pod's status (conditions merge by type).
async fn set_pod_condition(client: &Client, pod: &Pod, condition: serde_json::Value) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let patch = json!({"status": {"conditions": [condition]}});
    let result = api
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await;
    crate::gone_is_fine(result)
}
