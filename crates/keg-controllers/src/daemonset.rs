//! The DaemonSet controller, as upstream's: one pod on every node its selector, affinity and
//! tolerations allow, pinned there by node affinity and left to the scheduler; pods on nodes
//! that no longer qualify are deleted. RollingUpdate replaces old pods node by node within
//! `maxUnavailable` (or starts the new one first within `maxSurge`); OnDelete waits for the
//! old pod to be deleted. ControllerRevisions keep the template history.
//!
//! As on EKS, Fargate nodes never run DaemonSet pods: they are not counted as desired.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use keg_api::node_fit::{matches_node_selector, tolerates};
use keg_api::nodes::COMPUTE_TYPE_LABEL;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::events::Events;
use crate::pod_control::{PodControl, pod_from_template};
use crate::{Clock, Result, history, owners, pods};

/// The label a DaemonSet pod carries with its revision's hash.
const REVISION_LABEL: &str = "controller-revision-hash";
/// The label with the DaemonSet generation the pod was made from.
const GENERATION_LABEL: &str = "pod-template-generation";

struct Context {
    client: Client,
    events: Events,
    clock: Arc<dyn Clock>,
}

/// Runs the controller until the process ends.
pub async fn run(client: Client, clock: Arc<dyn Clock>) {
    let sets: Api<DaemonSet> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let controller = Controller::new(sets, watcher::Config::default());
    let store = controller.store();
    controller
        .watches(
            pods,
            watcher::Config::default(),
            owners::to_controller::<Pod, DaemonSet>(),
        )
        // A node that comes, goes or changes may change where every DaemonSet runs.
        .watches(nodes, watcher::Config::default(), move |_: Node| {
            store
                .state()
                .iter()
                .map(|ds| ObjectRef::from_obj(ds.as_ref()))
                .collect::<Vec<_>>()
        })
        .run(
            reconcile,
            |_, error, _| crate::retry_after_error("daemonset", error),
            Arc::new(Context {
                events: Events::new(client.clone(), "daemonset-controller"),
                client,
                clock,
            }),
        )
        .for_each(|_| async {})
        .await;
}

/// Whether the DaemonSet's pod should run on the node: not a Fargate node, and the node
/// selector, affinity and the NoSchedule/NoExecute taints allow it.
fn should_run(ds: &DaemonSet, node: &Node) -> bool {
    let fargate = node
        .labels()
        .get(COMPUTE_TYPE_LABEL)
        .is_some_and(|t| t == "fargate");
    if fargate || node.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let spec = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    let tolerations = with_daemon_tolerations(spec.tolerations.clone().unwrap_or_default());
    let taints: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let tolerated = taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|t| tolerates(Some(&tolerations), t));
    tolerated && matches_node_selector(&spec, node)
}

/// The tolerations upstream adds to every DaemonSet pod, so node conditions do not evict it.
fn with_daemon_tolerations(mut tolerations: Vec<Toleration>) -> Vec<Toleration> {
    for (key, effect) in [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ] {
        let present = tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some(key) && t.effect.as_deref() == Some(effect));
        if !present {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some(effect.into()),
                ..Default::default()
            });
        }
    }
    tolerations
}

/// The node a DaemonSet pod is for: where it runs, or where its node affinity pins it.
fn node_of(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = &spec.node_name {
        return Some(node.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// A new pod of the DaemonSet for `node`.
fn daemon_pod(ds: &DaemonSet, hash: &str, node: &str) -> Pod {
    let template = ds.spec.as_ref().map(|s| &s.template);
    let mut pod = pod_from_template(ds, template);
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(REVISION_LABEL.into(), hash.into());
    labels.insert(
        GENERATION_LABEL.into(),
        ds.metadata.generation.unwrap_or(1).to_string(),
    );
    let spec = pod.spec.get_or_insert_default();
    let tolerations = with_daemon_tolerations(spec.tolerations.take().unwrap_or_default());
    spec.tolerations = Some(tolerations);
    // Pinned by affinity (not nodeName) so the scheduler still checks that it fits.
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
        ..Default::default()
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
    pod
}

fn pod_hash(pod: &Pod) -> Option<&String> {
    pod.labels().get(REVISION_LABEL)
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Context>) -> Result<Action> {
    let ns = ds.namespace().unwrap_or_default();
    let sets: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(ds) = sets.get_opt(&ds.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let spec = ds.spec.clone().unwrap_or_default();
    let revisions_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let (revisions, update) = history::sync(&revisions_api, &ds, &spec.template).await?;
    let hash = update
        .labels()
        .get(history::HASH_LABEL)
        .cloned()
        .unwrap_or_default();

    let nodes: Vec<Node> = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = owners::selector(Some(&spec.selector))?;
    let all = pods_api.list(&ListParams::default()).await?.items;
    let claimed = owners::claim(&ds, selector.as_ref(), &pods_api, all).await?;
    let mut by_node: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for pod in claimed {
        if let Some(node) = node_of(&pod) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    let now = ctx.clock.now();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let control = PodControl::new(&ctx.client, &ctx.events, &ds);
    let mut create = Vec::new();
    let mut delete = Vec::new();
    let eligible: Vec<&Node> = nodes.iter().filter(|n| should_run(&ds, n)).collect();
    for node in &nodes {
        let name = node.name_any();
        let mut here: Vec<&Pod> = by_node
            .get(&name)
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        if !eligible.iter().any(|n| n.name_any() == name) {
            delete.extend(
                here.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none()),
            );
            continue;
        }
        // A failed pod is replaced; extra pods (the oldest stays) are removed.
        let (failed, rest): (Vec<&Pod>, Vec<&Pod>) =
            here.drain(..).partition(|p| pods::phase(p) == "Failed");
        delete.extend(
            failed
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none()),
        );
        let mut live: Vec<&Pod> = rest
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        live.sort_by_key(|p| p.metadata.creation_timestamp.clone());
        if live.is_empty() {
            create.push(name);
        } else if live.len() > 1 && !rolling_surge(&spec) {
            delete.extend(live[1..].iter().copied());
        }
    }
    // Pods whose node is gone.
    for (node, pods) in &by_node {
        if !nodes.iter().any(|n| &n.name_any() == node) {
            delete.extend(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none()),
            );
        }
    }
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    if rolling {
        roll(
            &spec,
            &eligible,
            &by_node,
            &hash,
            min_ready,
            now,
            &mut create,
            &mut delete,
        );
    }
    let mut names: Vec<String> = delete.iter().map(|p| p.name_any()).collect();
    names.sort();
    names.dedup();
    let new_pods: Vec<Pod> = create.iter().map(|n| daemon_pod(&ds, &hash, n)).collect();
    let deleted = control.delete_all(&names).await;
    let created = control.create_all(new_pods).await;

    let status = compute_status(&ds, &eligible, &by_node, &hash, min_ready, now);
    if ds.status.as_ref() != Some(&status) {
        let mut updated = ds.clone();
        updated.status = Some(status);
        let result = sets
            .replace_status(&ds.name_any(), &PostParams::default(), &updated)
            .await;
        crate::gone_is_fine(result)?;
    }
    let live = by_node
        .values()
        .flatten()
        .filter_map(|p| pod_hash(p))
        .filter_map(|h| {
            revisions
                .iter()
                .find(|r| r.labels().get(history::HASH_LABEL) == Some(h))
        })
        .map(|r| r.name_any())
        .chain(std::iter::once(update.name_any()))
        .collect();
    history::truncate(
        &revisions_api,
        &revisions,
        &live,
        spec.revision_history_limit.unwrap_or(10),
    )
    .await?;
    deleted?;
    created?;
    let all_pods: Vec<&Pod> = by_node.values().flatten().collect();
    Ok(match pods::next_available_in(all_pods, min_ready, now) {
        Some(wait) => Action::requeue(ctx.clock.real_wait(wait)),
        None => Action::await_change(),
    })
}

fn rolling_surge(spec: &k8s_openapi::api::apps::v1::DaemonSetSpec) -> bool {
    surge_of(spec) > 0
}

fn int_or_percent(value: Option<&IntOrString>, total: usize, round_up: bool) -> usize {
    match value {
        Some(IntOrString::Int(n)) => usize::try_from(*n).unwrap_or(0),
        Some(IntOrString::String(p)) => {
            let percent: usize = p.trim_end_matches('%').parse().unwrap_or(0);
            if round_up {
                (total * percent).div_ceil(100)
            } else {
                total * percent / 100
            }
        }
        None => 0,
    }
}

fn surge_of(spec: &k8s_openapi::api::apps::v1::DaemonSetSpec) -> usize {
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    int_or_percent(rolling.and_then(|r| r.max_surge.as_ref()), 1, true)
}

/// The rolling update, node by node: with `maxSurge` the new pod starts beside the old one,
/// which goes once the new one is available; otherwise old pods are deleted while fewer than
/// `maxUnavailable` nodes lack an available pod.
#[allow(clippy::too_many_arguments)]
fn roll<'a>(
    spec: &k8s_openapi::api::apps::v1::DaemonSetSpec,
    eligible: &[&Node],
    by_node: &'a BTreeMap<String, Vec<Pod>>,
    hash: &str,
    min_ready: i32,
    now: jiff::Timestamp,
    create: &mut Vec<String>,
    delete: &mut Vec<&'a Pod>,
) {
    let total = eligible.len();
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let surge = int_or_percent(rolling.and_then(|r| r.max_surge.as_ref()), total, true);
    let max_unavailable = int_or_percent(
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        total,
        false,
    )
    .max(usize::from(surge == 0));
    let available = |p: &Pod| pods::is_available(p, min_ready, now);
    let mut unavailable = 0;
    let mut outdated = Vec::new();
    for node in eligible {
        let live: Vec<&Pod> = by_node
            .get(&node.name_any())
            .into_iter()
            .flatten()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && pods::phase(p) != "Failed")
            .collect();
        if !live.iter().any(|p| available(p)) {
            unavailable += 1;
        }
        let new = live
            .iter()
            .find(|p| pod_hash(p).map(String::as_str) == Some(hash));
        let old: Vec<&Pod> = live
            .iter()
            .filter(|p| pod_hash(p).map(String::as_str) != Some(hash))
            .copied()
            .collect();
        if !old.is_empty() {
            outdated.push((node.name_any(), new.copied(), old));
        }
    }
    if surge > 0 {
        let mut surging = outdated.iter().filter(|(_, new, _)| new.is_some()).count();
        for (node, new, old) in &outdated {
            match new {
                Some(new) if available(new) => delete.extend(old.iter().copied()),
                Some(_) => {}
                None if surging < surge => {
                    create.push(node.clone());
                    surging += 1;
                }
                None => {}
            }
        }
        return;
    }
    let mut budget = max_unavailable.saturating_sub(unavailable);
    // Nodes whose old pod is already unavailable cost nothing to replace.
    for (_, _, old) in &outdated {
        if old.iter().all(|p| !available(p)) {
            delete.extend(old.iter().copied());
        }
    }
    for (_, _, old) in &outdated {
        if budget == 0 {
            break;
        }
        if old.iter().any(|p| available(p)) {
            delete.extend(old.iter().copied());
            budget -= 1;
        }
    }
}

/// Upstream's status counts, over the nodes that should run the pod.
fn compute_status(
    ds: &DaemonSet,
    eligible: &[&Node],
    by_node: &BTreeMap<String, Vec<Pod>>,
    hash: &str,
    min_ready: i32,
    now: jiff::Timestamp,
) -> DaemonSetStatus {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let mut status = ds.status.clone().unwrap_or_default();
    let (mut scheduled, mut ready, mut available, mut updated) = (0, 0, 0, 0);
    for node in eligible {
        let here: Vec<&Pod> = by_node
            .get(&node.name_any())
            .into_iter()
            .flatten()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        if here.is_empty() {
            continue;
        }
        scheduled += 1;
        if here.iter().any(|p| pods::is_ready(p)) {
            ready += 1;
        }
        if here.iter().any(|p| pods::is_available(p, min_ready, now)) {
            available += 1;
        }
        if here
            .iter()
            .any(|p| pod_hash(p).map(String::as_str) == Some(hash))
        {
            updated += 1;
        }
    }
    let misscheduled = by_node
        .iter()
        .filter(|(node, pods)| {
            !eligible.iter().any(|n| &n.name_any() == *node)
                && pods.iter().any(|p| p.metadata.deletion_timestamp.is_none())
        })
        .count();
    let desired = eligible.len();
    status.desired_number_scheduled = count(desired);
    status.current_number_scheduled = count(scheduled);
    status.number_misscheduled = count(misscheduled);
    status.number_ready = count(ready);
    status.number_available = Some(count(available));
    status.number_unavailable = Some(count(desired.saturating_sub(available)));
    status.updated_number_scheduled = Some(count(updated));
    status.observed_generation = ds.metadata.generation;
    status
}
