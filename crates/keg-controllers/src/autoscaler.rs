//! Node-group autoscaling, as the Cluster Autoscaler does it for EKS node groups: pods the
//! default scheduler cannot place for want of CPU, memory or pod slots grow the first group
//! whose node would fit them, within its `maxSize` (`TriggeredScaleUp`, or
//! `NotTriggerScaleUp` saying why not); a group's nodes that have run nothing but DaemonSet
//! pods for the unneeded time are removed, down to its `minSize`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use keg_api::crds::NodeGroup;
use keg_api::instance_types::InstanceType;
use keg_api::node_fit::{matches_node_selector, tolerates};
use keg_api::nodes::{ClusterInfo, NODEGROUP_LABEL};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::events::Events;
use crate::{Clock, Result, owners, pods};

/// How often pending pods and idle nodes are looked at (the autoscaler's scan interval).
const SCAN: Duration = Duration::from_secs(2);
/// How long a pod that triggered a scale-up waits before it may trigger another.
const TRIGGER_COOLDOWN: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// How the autoscaler behaves.
pub struct Config {
    /// The cluster the nodes belong to (names the template nodes).
    pub cluster: ClusterInfo,
    /// How long a node must be unneeded before it goes (`--scale-down-unneeded-time`).
    pub scale_down_unneeded: Duration,
    /// Where the time comes from.
    pub clock: Arc<dyn Clock>,
}

#[derive(Default)]
struct Memory {
    /// Pods that triggered a scale-up or were told why not, and when.
    told: HashMap<String, Timestamp>,
    /// Since when each node has been unneeded.
    unneeded_since: HashMap<String, Timestamp>,
}

/// Runs the autoscaler until the process ends.
pub async fn run(client: Client, config: Config) {
    let events = Events::new(client.clone(), "cluster-autoscaler");
    let mut memory = Memory::default();
    loop {
        if let Err(e) = scan(&client, &config, &events, &mut memory).await {
            tracing::debug!("autoscaler: {}", e.message());
        }
        tokio::time::sleep(config.clock.real_wait(SCAN)).await;
    }
}

/// Whether the default scheduler found no room for the pod.
fn wants_room(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let default_scheduler = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .is_none_or(|s| s == "default-scheduler");
    let unscheduled = spec.and_then(|s| s.node_name.as_ref()).is_none();
    let short = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_ == "PodScheduled"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message
                    .as_deref()
                    .is_some_and(|m| m.contains("Insufficient") || m.contains("Too many pods"))
        });
    default_scheduler && unscheduled && pod.metadata.deletion_timestamp.is_none() && short
}

/// Whether the pod would go on `node` were it empty: selector, affinity, taints, size.
fn fits_empty(pod: &Pod, node: &Node) -> Option<(u64, u64)> {
    let spec = pod.spec.as_ref()?;
    if !matches_node_selector(spec, node) {
        return None;
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let tolerated = taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|t| tolerates(spec.tolerations.as_deref(), t));
    let (cpu, memory) = keg_api::fargate::sizing::pod_requests(spec).ok()?;
    let allocatable = node.status.as_ref()?.allocatable.clone()?;
    let node_cpu = keg_api::quantity::parse_millis(&allocatable.get("cpu")?.0).ok()?;
    let node_memory = keg_api::quantity::parse_bytes(&allocatable.get("memory")?.0).ok()?;
    (tolerated && cpu <= node_cpu && memory <= node_memory).then_some((cpu, memory))
}

/// How many new nodes of `template` the pods need, packed first-fit; and the pods placed.
fn nodes_needed<'a>(pending: &[&'a Pod], template: &Node) -> (usize, Vec<&'a Pod>) {
    let allocatable = template
        .status
        .as_ref()
        .and_then(|s| s.allocatable.clone())
        .unwrap_or_default();
    let get = |key: &str, parse: fn(&str) -> keg_api::quantity::Result<u64>| {
        allocatable
            .get(key)
            .and_then(|q| parse(&q.0).ok())
            .unwrap_or(0)
    };
    let capacity = (
        get("cpu", keg_api::quantity::parse_millis),
        get("memory", keg_api::quantity::parse_bytes),
        get("pods", keg_api::quantity::parse_bytes),
    );
    let mut bins: Vec<(u64, u64, u64)> = Vec::new();
    let mut placed = Vec::new();
    for pod in pending {
        let Some((cpu, memory)) = fits_empty(pod, template) else {
            continue;
        };
        match bins
            .iter_mut()
            .find(|b| b.0 + cpu <= capacity.0 && b.1 + memory <= capacity.1 && b.2 < capacity.2)
        {
            Some(bin) => *bin = (bin.0 + cpu, bin.1 + memory, bin.2 + 1),
            None => bins.push((cpu, memory, 1)),
        }
        placed.push(*pod);
    }
    (bins.len(), placed)
}

async fn scan(
    client: &Client,
    config: &Config,
    events: &Events,
    memory: &mut Memory,
) -> Result<()> {
    let now = config.clock.now();
    let groups: Api<NodeGroup> = Api::all(client.clone());
    let mut groups: Vec<NodeGroup> = groups
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|g| g.meta().deletion_timestamp.is_none())
        .collect();
    groups.sort_by_key(|g| g.name_any());
    let all_pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    memory
        .told
        .retain(|_, at| now.duration_since(*at) < TRIGGER_COOLDOWN);
    let mut pending: Vec<&Pod> = all_pods
        .iter()
        .filter(|p| wants_room(p))
        .filter(|p| {
            !memory
                .told
                .contains_key(p.metadata.uid.as_deref().unwrap_or_default())
        })
        .collect();
    for group in &groups {
        if pending.is_empty() {
            break;
        }
        let Some(instance) = InstanceType::lookup(&group.spec.instance_type) else {
            continue;
        };
        let taken: Vec<String> = nodes.iter().map(|n| n.name_any()).collect();
        let mut template = crate::nodegroup::new_node(group, instance, &config.cluster, &taken);
        if let Some(status) = template.status.as_mut() {
            status.allocatable = status.allocatable.clone().or(status.capacity.clone());
        }
        let (needed, placed) = nodes_needed(&pending, &template);
        if placed.is_empty() {
            continue;
        }
        let (desired, max) = (group.spec.desired_capacity, group.spec.max_size);
        let room = usize::try_from(max - desired).unwrap_or(0);
        let name = group.name_any();
        let (reason, message) = if room == 0 {
            (
                "NotTriggerScaleUp",
                "pod didn't trigger scale-up: 1 max node group size reached".to_string(),
            )
        } else {
            let target = desired + i32::try_from(needed.min(room)).unwrap_or(0);
            let patch = json!({"spec": {"desiredCapacity": target}});
            Api::<NodeGroup>::all(client.clone())
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
            tracing::info!(group = %name, from = desired, to = target, "scale-up");
            (
                "TriggeredScaleUp",
                format!("pod triggered scale-up: [{{{name} {desired}->{target} (max: {max})}}]"),
            )
        };
        for pod in &placed {
            events
                .normal(&pod.object_ref(&()), reason, "ScaleUp", message.clone())
                .await;
            memory
                .told
                .insert(pod.metadata.uid.clone().unwrap_or_default(), now);
        }
        pending.retain(|p| !placed.iter().any(|q| q.metadata.uid == p.metadata.uid));
    }
    scale_down(
        client, config, events, memory, &groups, &nodes, &all_pods, now,
    )
    .await
}

/// Whether a node runs nothing an autoscaler must move (DaemonSet and finished pods aside).
fn is_empty(node: &str, pods: &[Pod]) -> bool {
    !pods.iter().any(|p| {
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
            && !matches!(pods::phase(p), "Succeeded" | "Failed")
            && owners::controller_of(&p.metadata).is_none_or(|r| r.kind != "DaemonSet")
    })
}

#[allow(clippy::too_many_arguments)]
async fn scale_down(
    client: &Client,
    config: &Config,
    events: &Events,
    memory: &mut Memory,
    groups: &[NodeGroup],
    nodes: &[Node],
    pods: &[Pod],
    now: Timestamp,
) -> Result<()> {
    let unneeded_for =
        jiff::SignedDuration::try_from(config.scale_down_unneeded).unwrap_or_default();
    memory
        .unneeded_since
        .retain(|node, _| nodes.iter().any(|n| &n.name_any() == node));
    for group in groups {
        let name = group.name_any();
        let members: Vec<&Node> = nodes
            .iter()
            .filter(|n| n.labels().get(NODEGROUP_LABEL) == Some(&name))
            .filter(|n| n.metadata.deletion_timestamp.is_none())
            .collect();
        let mut removable = Vec::new();
        for node in &members {
            let node_name = node.name_any();
            if !is_empty(&node_name, pods) || !crate::nodegroup::is_ready(node) {
                memory.unneeded_since.remove(&node_name);
                continue;
            }
            let since = *memory
                .unneeded_since
                .entry(node_name.clone())
                .or_insert(now);
            if now.duration_since(since) >= unneeded_for {
                removable.push(node_name);
            }
        }
        let desired = group.spec.desired_capacity;
        let spare = usize::try_from(desired - group.spec.min_size).unwrap_or(0);
        let count = removable.len().min(spare);
        if count == 0 {
            continue;
        }
        let target = desired - i32::try_from(count).unwrap_or(0);
        let patch = json!({"spec": {"desiredCapacity": target}});
        Api::<NodeGroup>::all(client.clone())
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        tracing::info!(group = %name, from = desired, to = target, "scale-down");
        for node_name in removable.into_iter().take(count) {
            if let Some(node) = members.iter().find(|n| n.name_any() == node_name) {
                events
                    .normal(
                        &node.object_ref(&()),
                        "ScaleDown",
                        "ScaleDown",
                        format!("Scale-down: removing empty node \"{node_name}\""),
                    )
                    .await;
            }
            memory.unneeded_since.remove(&node_name);
        }
    }
    Ok(())
}
