//! The default scheduler: places pods on node-group nodes as upstream's kube-scheduler does
//! with its default plugins, in the same order: NodeUnschedulable, TaintToleration,
//! NodeAffinity (with nodeSelector), NodePorts and NodeResourcesFit filter; the least
//! allocated node wins. A pod that fits nowhere gets upstream's message, e.g.
//! `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {k: v}.`,
//! and is tried again whenever pods or nodes change. Pending pods are tried highest priority
//! first; one that fits nowhere may preempt lower-priority pods ([`preemption`]). Fargate
//! nodes never qualify (taint); on Fargate nothing is preempted, a new node is made.

mod preemption;

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use keg_api::node_fit::{Resources, matches_node_selector, tolerates};

use crate::ClusterView;
use crate::placement::{DEFAULT_SCHEDULER, Refusals, bind, scheduler_for, unbound};
use crate::volume_binding::{self, Snapshot, VolumeBinding};

/// Runs the scheduler until the process ends.
pub async fn run(client: Client, view: ClusterView) {
    view.ready().await;
    let mut changes = view.changes();
    let mut pass = Pass {
        client: client.clone(),
        refusals: Refusals::new(client, DEFAULT_SCHEDULER),
        binding: VolumeBinding::default(),
    };
    loop {
        pass.schedule_pending(&view).await;
        if changes.changed().await.is_err() {
            return;
        }
        // Let a burst of changes settle into one pass.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        changes.borrow_and_update();
    }
}

/// What a pass knows beyond nodes and usage: every pod and disruption budget.
#[derive(Clone, Copy)]
struct Others<'a> {
    pods: &'a [std::sync::Arc<Pod>],
    budgets: &'a [std::sync::Arc<k8s_openapi::api::policy::v1::PodDisruptionBudget>],
}

/// What the scheduler keeps from one pass to the next.
struct Pass {
    client: Client,
    refusals: Refusals,
    binding: VolumeBinding,
}

impl Pass {
    async fn schedule_pending(&mut self, view: &ClusterView) {
        let profiles = view.profiles.state();
        let pods = view.pods.state();
        let nodes = view.nodes.state();
        let mut snapshot = self.binding.snapshot(view);
        let mut usage: BTreeMap<String, Usage> = BTreeMap::new();
        for pod in pods.iter().filter(|p| !unbound(p)) {
            if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone())
                && !is_finished(pod)
            {
                usage.entry(node).or_default().add(pod);
            }
        }
        let mut pending: Vec<_> = pods
            .iter()
            .filter(|p| unbound(p) && scheduler_for(p, &profiles) == DEFAULT_SCHEDULER)
            .collect();
        // Upstream's PrioritySort: higher priority first, then first come.
        pending.sort_by_key(|p| {
            (
                std::cmp::Reverse(preemption::priority(p)),
                p.metadata.creation_timestamp.clone(),
            )
        });
        let uids: HashSet<String> = pending.iter().filter_map(|p| p.uid()).collect();
        self.binding.forget_all_but(&uids);
        // A pod waiting for its claims holds its place on its node, as upstream's assumed pods.
        for pod in &pending {
            if let Some(node) = self.binding.waiting_node(pod) {
                usage.entry(node.to_owned()).or_default().add(pod);
            }
        }
        let budgets = view.budgets.state();
        for pod in pending {
            let others = Others {
                pods: &pods,
                budgets: &budgets,
            };
            self.schedule(pod, &nodes, &mut usage, &mut snapshot, others)
                .await;
        }
    }

    async fn schedule(
        &mut self,
        pod: &Pod,
        nodes: &[std::sync::Arc<Node>],
        usage: &mut BTreeMap<String, Usage>,
        snapshot: &mut Snapshot,
        others: Others<'_>,
    ) {
        let volumes = match volume_binding::pre_filter(pod, snapshot) {
            Ok(volumes) => volumes,
            Err(reason) => {
                self.release(pod, usage);
                let message = format!("0/{} nodes are available: {reason}.", nodes.len());
                return self.refuse(pod, "Unschedulable", &message).await;
            }
        };
        if let Some(v) = &volumes
            && let Some(node) = self.binding.waiting_node(pod).map(str::to_owned)
            && let Some(message) = self.binding.reset_claim(pod, v)
        {
            // Its claim's provisioning failed on the node: placed afresh below.
            release_on(pod, usage, &node);
            self.refuse(pod, "SchedulerError", &message).await;
        }
        let waiting = self.binding.waiting_node(pod).map(str::to_owned);
        self.release(pod, usage);
        let check = |node: &Node| match &volumes {
            None => Ok(()),
            Some(v) => volume_binding::filter(v, node, snapshot).map(|_| ()),
        };
        let node = match place(pod, nodes, usage, &check, waiting.as_deref()) {
            Ok(node) => node,
            Err(message) => {
                self.binding.forget(pod);
                if volumes.is_none()
                    && let Some(candidate) =
                        preemption::find(pod, nodes, others.pods, usage, others.budgets)
                {
                    self.preempt(pod, candidate).await;
                }
                return self.refuse(pod, "Unschedulable", &message).await;
            }
        };
        usage.entry(node.clone()).or_default().add(pod);
        if let Some(volumes) = &volumes {
            let target = nodes.iter().find(|n| n.name_any() == node).expect("placed");
            let decision = volume_binding::filter(volumes, target, snapshot).unwrap_or_default();
            match (self.binding)
                .pre_bind(&self.client, pod, &node, volumes, decision, snapshot)
                .await
            {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(pod = %pod.name_any(), "binding volumes: {e}");
                    self.binding.forget(pod);
                    return;
                }
            }
        }
        match bind(&self.client, pod, &node).await {
            Ok(()) => self.refusals.scheduled(pod, &node).await,
            Err(e) => tracing::warn!(pod = %pod.name_any(), "binding failed: {e}"),
        }
    }

    /// Nominates the node for the pod and evicts the victims gracefully, each marked with
    /// upstream's DisruptionTarget condition; the pod is placed once they are gone.
    async fn preempt(&self, pod: &Pod, candidate: preemption::Candidate) {
        let pods: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let nominate = json!({"status": {"nominatedNodeName": candidate.node}});
        if let Err(e) = pods
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(nominate),
            )
            .await
        {
            tracing::warn!(pod = %pod.name_any(), "nominating {}: {e}", candidate.node);
            return;
        }
        for victim in &candidate.victims {
            let api: Api<Pod> =
                Api::namespaced(self.client.clone(), &victim.namespace().unwrap_or_default());
            let condition = json!({"status": {"conditions": [{
                "type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                "message": format!("{DEFAULT_SCHEDULER}: preempting to accommodate a higher priority pod"),
                "lastTransitionTime": jiff::Timestamp::now().to_string(),
            }]}});
            let _ = api
                .patch_status(
                    &victim.name_any(),
                    &PatchParams::default(),
                    &Patch::Strategic(condition),
                )
                .await;
            tracing::info!(pod = %pod.name_any(), victim = %victim.name_any(), node = %candidate.node, "preempting");
            if let Err(e) = api
                .delete(&victim.name_any(), &DeleteParams::default())
                .await
            {
                tracing::warn!(victim = %victim.name_any(), "preempting: {e}");
            }
            self.refusals.preempted(victim, pod, &candidate.node).await;
        }
    }

    /// Takes back the place a waiting pod holds on its node (it is placed again).
    fn release(&self, pod: &Pod, usage: &mut BTreeMap<String, Usage>) {
        if let Some(node) = self.binding.waiting_node(pod) {
            release_on(pod, usage, node);
        }
    }

    async fn refuse(&mut self, pod: &Pod, reason: &str, message: &str) {
        if let Err(e) = self.refusals.refuse(pod, reason, message).await {
            tracing::warn!(pod = %pod.name_any(), "reporting unschedulable: {e}");
        }
    }
}

fn release_on(pod: &Pod, usage: &mut BTreeMap<String, Usage>, node: &str) {
    if let Some(used) = usage.get_mut(node) {
        used.remove(pod);
    }
}

fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// What the pods bound to a node ask for.
#[derive(Debug, Default, Clone)]
struct Usage {
    resources: Resources,
    host_ports: Vec<(i32, String)>,
}

impl Usage {
    fn add(&mut self, pod: &Pod) {
        self.resources = self.resources.plus(Resources::of_pod(pod));
        self.host_ports.extend(host_ports(pod));
    }

    fn remove(&mut self, pod: &Pod) {
        self.resources = self.resources.minus(Resources::of_pod(pod));
        for port in host_ports(pod) {
            if let Some(i) = self.host_ports.iter().position(|p| *p == port) {
                self.host_ports.remove(i);
            }
        }
    }
}

fn host_ports(pod: &Pod) -> Vec<(i32, String)> {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            p.host_port
                .filter(|h| *h > 0)
                .map(|h| (h, p.protocol.clone().unwrap_or_else(|| "TCP".into())))
        })
        .collect()
}

/// The best node for a pod, or upstream's message saying why none fits. `volumes` is the
/// VolumeBinding filter, run last as upstream runs it; a `preferred` node (where the pod
/// waits for its claims) wins whenever it still fits.
fn place(
    pod: &Pod,
    nodes: &[std::sync::Arc<Node>],
    usage: &BTreeMap<String, Usage>,
    volumes: &dyn Fn(&Node) -> Result<(), Vec<String>>,
    preferred: Option<&str>,
) -> Result<String, String> {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(f64, String)> = None;
    for node in nodes
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
    {
        let name = node.name_any();
        let used = usage.get(&name).cloned().unwrap_or_default();
        match filter(pod, node, &used).and_then(|score| volumes(node).map(|()| score)) {
            Ok(_) if preferred == Some(name.as_str()) => return Ok(name),
            Err(failures) => {
                for failure in failures {
                    *reasons.entry(failure).or_default() += 1;
                }
            }
            Ok(score) => {
                if best.as_ref().is_none_or(|(s, _)| score > *s) {
                    best = Some((score, name));
                }
            }
        }
    }
    if let Some((_, node)) = best {
        return Ok(node);
    }
    let mut histogram: Vec<String> = reasons
        .iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    histogram.sort();
    let total = nodes.len();
    if histogram.is_empty() {
        Err(format!("0/{total} nodes are available."))
    } else {
        Err(format!(
            "0/{total} nodes are available: {}.",
            histogram.join(", ")
        ))
    }
}

/// The node's score if the pod fits it, else why not (upstream's per-plugin wording).
fn filter(pod: &Pod, node: &Node, used: &Usage) -> Result<f64, Vec<String>> {
    let spec = pod.spec.clone().unwrap_or_default();
    let node_spec = node.spec.clone().unwrap_or_default();
    if node_spec.unschedulable == Some(true)
        && !tolerates(
            spec.tolerations.as_deref(),
            &Taint {
                key: "node.kubernetes.io/unschedulable".into(),
                effect: "NoSchedule".into(),
                ..Taint::default()
            },
        )
    {
        return Err(vec!["node(s) were unschedulable".into()]);
    }
    let mut taints: Vec<Taint> = node_spec.taints.clone().unwrap_or_default();
    if !crate::fargate::is_ready(node) {
        // What upstream's node lifecycle controller taints a node with until it is Ready.
        taints.push(Taint {
            key: "node.kubernetes.io/not-ready".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        });
    }
    let untolerated = taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerates(spec.tolerations.as_deref(), t));
    if let Some(taint) = untolerated {
        return Err(vec![format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.clone().unwrap_or_default()
        )]);
    }
    if !matches_node_selector(&spec, node) {
        return Err(vec![
            "node(s) didn't match Pod's node affinity/selector".into(),
        ]);
    }
    let wanted_ports = host_ports(pod);
    if wanted_ports.iter().any(|p| used.host_ports.contains(p)) {
        return Err(vec![
            "node(s) didn't have free ports for the requested pod ports".into(),
        ]);
    }
    fits(pod, node, used)
}

fn fits(pod: &Pod, node: &Node, used: &Usage) -> Result<f64, Vec<String>> {
    let offered = Resources::allocatable(node);
    let after = used.resources.plus(Resources::of_pod(pod));
    let mut failures = Vec::new();
    if after.pods > offered.pods {
        failures.push("Too many pods".to_owned());
    }
    if after.millicpu > offered.millicpu {
        failures.push("Insufficient cpu".to_owned());
    }
    if after.memory > offered.memory {
        failures.push("Insufficient memory".to_owned());
    }
    if !failures.is_empty() {
        return Err(failures);
    }
    // LeastAllocated: the share left free after placing the pod, averaged over cpu and memory.
    let free = |used: u64, total: u64| {
        if total == 0 {
            0.0
        } else {
            (total - used) as f64 / total as f64
        }
    };
    Ok((free(after.millicpu, offered.millicpu) + free(after.memory, offered.memory)) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn place_plain(
        pod: &Pod,
        nodes: &[std::sync::Arc<Node>],
        usage: &BTreeMap<String, Usage>,
    ) -> Result<String, String> {
        place(pod, nodes, usage, &|_| Ok(()), None)
    }

    fn node(name: &str, cpu: &str, taints: serde_json::Value) -> std::sync::Arc<Node> {
        std::sync::Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"zone": "a"}},
                "spec": {"taints": taints},
                "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "17"},
                           "conditions": [{"type": "Ready", "status": "True"}]}
            }))
            .unwrap(),
        )
    }

    fn pod(cpu: &str, extra: serde_json::Value) -> Pod {
        let mut spec = json!({"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}}}]});
        if let Some(extra) = extra.as_object() {
            for (k, v) in extra {
                spec[k] = v.clone();
            }
        }
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "d"}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn message_counts_reasons_as_upstream() {
        let fargate = json!([{"key": "eks.amazonaws.com/compute-type", "value": "fargate", "effect": "NoSchedule"}]);
        let nodes = vec![
            node("small", "1", json!(null)),
            node("f1", "2", fargate.clone()),
            node("f2", "2", fargate),
        ];
        let err = place_plain(&pod("1500m", json!(null)), &nodes, &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err,
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {eks.amazonaws.com/compute-type: fargate}."
        );
    }

    #[test]
    fn least_allocated_node_wins_and_usage_counts() {
        let nodes = vec![node("a", "2", json!(null)), node("b", "2", json!(null))];
        let mut usage = BTreeMap::new();
        usage.insert(
            "a".to_owned(),
            Usage {
                resources: Resources {
                    millicpu: 1000,
                    ..Resources::default()
                },
                ..Usage::default()
            },
        );
        assert_eq!(
            place_plain(&pod("500m", json!(null)), &nodes, &usage).unwrap(),
            "b"
        );
    }

    #[test]
    fn tolerations_selectors_and_affinity() {
        let tainted = vec![node(
            "t",
            "2",
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        )];
        let tolerating = pod(
            "100m",
            json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}),
        );
        assert_eq!(
            place_plain(&tolerating, &tainted, &BTreeMap::new()).unwrap(),
            "t"
        );
        let everything = pod("100m", json!({"tolerations": [{"operator": "Exists"}]}));
        assert!(place_plain(&everything, &tainted, &BTreeMap::new()).is_ok());

        let plain = vec![node("n", "2", json!(null))];
        let wrong_zone = pod("100m", json!({"nodeSelector": {"zone": "b"}}));
        assert_eq!(
            place_plain(&wrong_zone, &plain, &BTreeMap::new()).unwrap_err(),
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        );
        let affinity = pod(
            "100m",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "c"]}]}]}}}}),
        );
        assert!(place_plain(&affinity, &plain, &BTreeMap::new()).is_ok());
    }
}
