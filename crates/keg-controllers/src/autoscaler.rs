//! Node-group autoscaling, as the Cluster Autoscaler does it for EKS node groups: pods the
//! default scheduler cannot place for want of CPU, memory or pod slots grow the first group
//! whose node would fit them, within its `maxSize` (`TriggeredScaleUp`, or
//! `NotTriggerScaleUp` saying why not). A group's node that has been unneeded for the
//! unneeded time is removed, down to its `minSize`: one that runs nothing but DaemonSet pods,
//! or one under half used whose pods all fit on the group's other nodes and may move (not
//! annotated `safe-to-evict: "false"`, replicated, not kube-system without a budget, no local
//! storage, every disruption budget allowing it), one such node draining at a time. Removal
//! taints and cordons the node and lowers `desiredCapacity`; the node-group controller then
//! drains it through evictions. Each decision is an event on the NodeGroup (`ScaledUpGroup`,
//! `ScaleDownEmpty`, `ScaleDown`), which `keg cost` prices.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use keg_api::crds::NodeGroup;
use keg_api::instance_types::InstanceType;
use keg_api::node_fit::{Resources, matches_node_selector, tolerates};
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

/// Whether the pod would go on `node` were it empty: selector, affinity, taints, size; and
/// what it takes there.
fn fits_empty(pod: &Pod, node: &Node) -> Option<Resources> {
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
    let wanted = Resources::of_pod(pod);
    (tolerated && wanted.within(Resources::allocatable(node))).then_some(wanted)
}

/// How many new nodes of `template` the pods need, packed first-fit; and the pods placed.
fn nodes_needed<'a>(pending: &[&'a Pod], template: &Node) -> (usize, Vec<&'a Pod>) {
    let capacity = Resources::allocatable(template);
    let mut bins: Vec<Resources> = Vec::new();
    let mut placed = Vec::new();
    for pod in pending {
        let Some(wanted) = fits_empty(pod, template) else {
            continue;
        };
        match bins.iter_mut().find(|b| b.plus(wanted).within(capacity)) {
            Some(bin) => *bin = bin.plus(wanted),
            None => bins.push(wanted),
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
            events
                .normal(
                    &group.object_ref(&()),
                    "ScaledUpGroup",
                    "ScaleUp",
                    keg_api::nodes::scale_up_message(&name, desired, target, max),
                )
                .await;
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

/// Whether a pod is one the autoscaler must move off a node it removes (DaemonSet and
/// finished pods go with the node).
fn must_move(pod: &Pod) -> bool {
    !matches!(pods::phase(pod), "Succeeded" | "Failed")
        && owners::controller_of(&pod.metadata).is_none_or(|r| r.kind != "DaemonSet")
}

fn on_node<'a>(node: &str, pods: &'a [Pod]) -> impl Iterator<Item = &'a Pod> {
    let node = node.to_string();
    pods.iter()
        .filter(move |p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&node))
}

/// The Cluster Autoscaler's annotation that says whether a pod may be evicted to remove its
/// node.
pub const SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
/// The node annotation that keeps a node from being scaled down.
pub const SCALE_DOWN_DISABLED: &str = "cluster-autoscaler.kubernetes.io/scale-down-disabled";
/// The taint a node being removed carries, so that nothing new is placed there.
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";
/// Below this share of its allocatable CPU and memory requested, a node is a candidate for
/// removal (`--scale-down-utilization-threshold`).
const UTILIZATION_THRESHOLD: f64 = 0.5;

/// Why a pod keeps its node, in the Cluster Autoscaler's terms; `None` when it may move.
fn blocker(pod: &Pod, budgets: &[PodDisruptionBudget]) -> Option<&'static str> {
    let safe = pod.annotations().get(SAFE_TO_EVICT).map(String::as_str);
    if safe == Some("false") {
        return Some("NotSafeToEvictAnnotation");
    }
    let matching: Vec<&PodDisruptionBudget> = budgets
        .iter()
        .filter(|b| owners::budget_covers(b, &pod.metadata))
        .collect();
    if matching
        .iter()
        .any(|b| b.status.as_ref().is_none_or(|s| s.disruptions_allowed < 1))
    {
        return Some("NotEnoughPdb");
    }
    if safe == Some("true") {
        return None;
    }
    if owners::controller_of(&pod.metadata).is_none() {
        return Some("NotReplicated");
    }
    if pod.namespace().as_deref() == Some("kube-system") && matching.is_empty() {
        return Some("UnmovableKubeSystemPod");
    }
    let local = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .any(|v| {
            v.host_path.is_some()
                || v.empty_dir
                    .as_ref()
                    .is_some_and(|e| e.medium.as_deref() != Some("Memory"))
        });
    if local {
        return Some("LocalStorageRequested");
    }
    None
}

/// What the unfinished pods on a node request.
fn requested_on(node: &str, pods: &[Pod]) -> Resources {
    on_node(node, pods)
        .filter(|p| !matches!(pods::phase(p), "Succeeded" | "Failed"))
        .map(Resources::of_pod)
        .fold(Resources::default(), Resources::plus)
}

/// (CPU, memory) requested on a node as shares of its allocatable.
fn utilization(node: &Node, pods: &[Pod]) -> Option<(f64, f64)> {
    let offered = Resources::allocatable(node);
    let used = requested_on(&node.name_any(), pods);
    (offered.millicpu > 0 && offered.memory > 0).then(|| {
        (
            used.millicpu as f64 / offered.millicpu as f64,
            used.memory as f64 / offered.memory as f64,
        )
    })
}

/// Whether every pod of `moving` finds room on one of `targets` (as the scheduler would place
/// it: selector, taints, requests), first fit.
fn fit_elsewhere(moving: &[&Pod], targets: &[&Node], pods: &[Pod]) -> bool {
    let mut used: Vec<(&Node, Resources)> = targets
        .iter()
        .map(|node| (*node, requested_on(&node.name_any(), pods)))
        .collect();
    moving.iter().all(|pod| {
        let wanted = Resources::of_pod(pod);
        let room = used.iter_mut().find(|(node, used)| {
            used.plus(wanted).within(Resources::allocatable(node))
                && fits_empty(pod, node).is_some()
        });
        match room {
            Some((_, used)) => {
                *used = used.plus(wanted);
                true
            }
            None => false,
        }
    })
}

/// Whether the autoscaler marked the node for removal.
fn marked_for_removal(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .any(|t| t.key == TO_BE_DELETED_TAINT)
}

/// Whether a node is cordoned or already on its way out.
fn is_leaving(node: &Node) -> bool {
    node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
        || marked_for_removal(node)
        || node.metadata.deletion_timestamp.is_some()
}

/// What the autoscaler would do with a node: nothing, or remove it with the pods it must
/// move (none for an empty node).
enum Verdict<'a> {
    Keep,
    Remove {
        moving: Vec<&'a Pod>,
        use_: (f64, f64),
    },
}

fn judge<'a>(
    node: &Node,
    nodes: &[Node],
    pods: &'a [Pod],
    budgets: &[PodDisruptionBudget],
) -> Verdict<'a> {
    let name = node.name_any();
    if node
        .annotations()
        .get(SCALE_DOWN_DISABLED)
        .map(String::as_str)
        == Some("true")
        || !crate::nodegroup::is_ready(node)
        || is_leaving(node)
    {
        return Verdict::Keep;
    }
    let moving: Vec<&Pod> = on_node(&name, pods).filter(|p| must_move(p)).collect();
    let use_ = utilization(node, pods).unwrap_or((1.0, 1.0));
    if moving.is_empty() {
        return Verdict::Remove { moving, use_ };
    }
    if use_.0.max(use_.1) >= UTILIZATION_THRESHOLD {
        return Verdict::Keep;
    }
    if let Some(reason) = moving.iter().find_map(|p| blocker(p, budgets)) {
        tracing::debug!(node = %name, reason, "node cannot be removed");
        return Verdict::Keep;
    }
    // Other node-group nodes that take pods (Fargate nodes hold one pod each).
    let targets: Vec<&Node> = nodes
        .iter()
        .filter(|n| n.name_any() != name && n.labels().contains_key(NODEGROUP_LABEL))
        .filter(|n| crate::nodegroup::is_ready(n) && !is_leaving(n))
        .collect();
    if fit_elsewhere(&moving, &targets, pods) {
        Verdict::Remove { moving, use_ }
    } else {
        Verdict::Keep
    }
}

/// Marks a node for removal as the Cluster Autoscaler does: tainted `ToBeDeleted...` and
/// cordoned, so the node-group controller drains it first (through evictions).
async fn mark_for_removal(client: &Client, node: &Node, now: Timestamp) -> Result<()> {
    let mut taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    taints.push(Taint {
        key: TO_BE_DELETED_TAINT.into(),
        value: Some(now.as_second().to_string()),
        effect: "NoSchedule".into(),
        time_added: None,
    });
    let patch = json!({"spec": {"unschedulable": true, "taints": taints}});
    Api::<Node>::all(client.clone())
        .patch(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
    Ok(())
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
    let budgets = Api::<PodDisruptionBudget>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    // One node with pods drains at a time (the Cluster Autoscaler's --max-drain-parallelism);
    // empty nodes go together.
    let mut draining = nodes
        .iter()
        .any(|n| marked_for_removal(n) && n.metadata.deletion_timestamp.is_none());
    for group in groups {
        let name = group.name_any();
        let members: Vec<&Node> = nodes
            .iter()
            .filter(|n| n.labels().get(NODEGROUP_LABEL) == Some(&name))
            .filter(|n| n.metadata.deletion_timestamp.is_none())
            .collect();
        let mut desired = group.spec.desired_capacity;
        for node in &members {
            let node_name = node.name_any();
            let Verdict::Remove { moving, use_ } = judge(node, nodes, pods, &budgets) else {
                memory.unneeded_since.remove(&node_name);
                continue;
            };
            let since = *memory
                .unneeded_since
                .entry(node_name.clone())
                .or_insert(now);
            if now.duration_since(since) < unneeded_for
                || desired <= group.spec.min_size
                || (!moving.is_empty() && draining)
            {
                continue;
            }
            mark_for_removal(client, node, now).await?;
            desired -= 1;
            let patch = json!({"spec": {"desiredCapacity": desired}});
            Api::<NodeGroup>::all(client.clone())
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
            tracing::info!(group = %name, node = %node_name, to = desired, "scale-down");
            memory.unneeded_since.remove(&node_name);
            let (reason, message) = if moving.is_empty() {
                (
                    "ScaleDownEmpty",
                    format!("Scale-down: removing empty node \"{node_name}\""),
                )
            } else {
                draining = true;
                let names: Vec<String> = moving
                    .iter()
                    .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()))
                    .collect();
                let top = if use_.0 >= use_.1 { "cpu" } else { "memory" };
                (
                    "ScaleDown",
                    format!(
                        "Scale-down: removing node {node_name}, utilization: {{{} {} 0 {top} {}}}, pods to reschedule: {}",
                        use_.0,
                        use_.1,
                        use_.0.max(use_.1),
                        names.join(",")
                    ),
                )
            };
            events
                .normal(&group.object_ref(&()), reason, "ScaleDown", message.clone())
                .await;
            events
                .normal(
                    &node.object_ref(&()),
                    "ScaleDown",
                    "ScaleDown",
                    "marked the node as toBeDeleted/unschedulable".into(),
                )
                .await;
            for pod in &moving {
                events
                    .normal(
                        &pod.object_ref(&()),
                        "ScaleDown",
                        "ScaleDown",
                        "deleting pod for node scale down".into(),
                    )
                    .await;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(extra: serde_json::Value) -> Pod {
        let mut pod = json!({
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "1", "controller": true}]},
            "spec": {"containers": [{"name": "web", "image": "x"}]},
        });
        json_patch(&mut pod, extra);
        serde_json::from_value(pod).unwrap()
    }

    fn json_patch(base: &mut serde_json::Value, extra: serde_json::Value) {
        match (base, extra) {
            (serde_json::Value::Object(b), serde_json::Value::Object(e)) => {
                for (k, v) in e {
                    json_patch(b.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (b, e) => *b = e,
        }
    }

    fn budget(allowed: i32) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": allowed, "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2},
        }))
        .unwrap()
    }

    #[test]
    fn pods_that_keep_their_node_say_why_as_the_cluster_autoscaler() {
        assert_eq!(blocker(&pod(json!({})), &[]), None);
        let annotated = |v: &str| pod(json!({"metadata": {"annotations": {SAFE_TO_EVICT: v}}}));
        assert_eq!(
            blocker(&annotated("false"), &[]),
            Some("NotSafeToEvictAnnotation")
        );
        assert_eq!(blocker(&pod(json!({})), &[budget(0)]), Some("NotEnoughPdb"));
        assert_eq!(blocker(&pod(json!({})), &[budget(1)]), None);
        let bare = pod(json!({"metadata": {"ownerReferences": []}}));
        assert_eq!(blocker(&bare, &[]), Some("NotReplicated"));
        let system = pod(json!({"metadata": {"namespace": "kube-system"}}));
        assert_eq!(blocker(&system, &[]), Some("UnmovableKubeSystemPod"));
        let scratch = pod(json!({"spec": {"volumes": [{"name": "tmp", "emptyDir": {}}]}}));
        assert_eq!(blocker(&scratch, &[]), Some("LocalStorageRequested"));
        let memory =
            pod(json!({"spec": {"volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory"}}]}}));
        assert_eq!(blocker(&memory, &[]), None);
        // safe-to-evict "true" lifts all but the budget.
        let allowed = pod(
            json!({"metadata": {"ownerReferences": [], "annotations": {SAFE_TO_EVICT: "true"}},
            "spec": {"volumes": [{"name": "tmp", "emptyDir": {}}]}}),
        );
        assert_eq!(blocker(&allowed, &[]), None);
        let allowed_no_budget = pod(json!({"metadata": {"annotations": {SAFE_TO_EVICT: "true"}}}));
        assert_eq!(
            blocker(&allowed_no_budget, &[budget(0)]),
            Some("NotEnoughPdb")
        );
    }
}
