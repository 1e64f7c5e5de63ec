//! The Fargate scheduler: each pod a Fargate profile selects gets a node of its own, sized to
//! the pod (EKS's `CapacityProvisioned`), and the node goes once the pod is gone or finished.
//! Pods Fargate cannot run are refused with EKS's reasons in a FailedScheduling event.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeSpec, NodeStatus, Pod, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use keg_api::fargate::checks::unsupported_reasons;
use keg_api::fargate::matching::PROFILE_LABEL;
use keg_api::fargate::node::fargate_node_name;
use keg_api::fargate::sizing::FargateSize;
use keg_api::nodes::{
    AGENT_LABEL, COMPUTE_TYPE_LABEL, ClusterInfo, free_node_address, region_labels,
};
use keg_api::quantity::{format_bytes, format_millis};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::ClusterView;
use crate::placement::{FARGATE_SCHEDULER, Refusals, bind, profile_for, scheduler_for, unbound};

/// The annotation with the pod's provisioned size, as EKS writes it.
pub const CAPACITY_ANNOTATION: &str = "CapacityProvisioned";
/// The annotation on a Fargate node naming the pod (`<namespace>/<name>/<uid>`) it is for.
pub const POD_ANNOTATION: &str = "keg.dev/fargate-pod";

/// Runs the scheduler and the node reaper until the process ends.
pub async fn run(client: Client, view: ClusterView, cluster: ClusterInfo) {
    view.ready().await;
    let mut changes = view.changes();
    let mut refusals = Refusals::new(client.clone(), FARGATE_SCHEDULER);
    loop {
        schedule_pending(&client, &view, &cluster, &mut refusals).await;
        reap_nodes(&client, &view).await;
        if changes.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        changes.borrow_and_update();
    }
}

/// Whether a node reports Ready=True.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

async fn schedule_pending(
    client: &Client,
    view: &ClusterView,
    cluster: &ClusterInfo,
    refusals: &mut Refusals,
) {
    let profiles = view.profiles.state();
    let nodes = view.nodes.state();
    // A node already made for a pod (a pass that failed to bind) is reused, not made again.
    let made_for: BTreeMap<String, String> = nodes
        .iter()
        .filter_map(|n| Some((n.annotations().get(POD_ANNOTATION)?.clone(), n.name_any())))
        .collect();
    let mut taken: Vec<String> = nodes.iter().map(|n| n.name_any()).collect();
    for pod in view
        .pods
        .state()
        .iter()
        .filter(|p| unbound(p) && scheduler_for(p, &profiles) == FARGATE_SCHEDULER)
    {
        let Some(profile) = pod
            .labels()
            .get(PROFILE_LABEL)
            .cloned()
            .or_else(|| profile_for(pod, &profiles))
        else {
            let _ = refusals
                .refuse(
                    pod,
                    "Unschedulable",
                    "Pod not supported on Fargate: no Fargate profile selects the pod",
                )
                .await;
            continue;
        };
        let reasons =
            unsupported_reasons(pod, &|ns: &str, claim: &str| view.bound_volume(ns, claim));
        if !reasons.is_empty() {
            let message = format!("Pod not supported on Fargate: {}", reasons.join(", "));
            let _ = refusals
                .refuse(pod, "POD_UNSUPPORTED_ON_FARGATE", &message)
                .await;
            continue;
        }
        let size = match FargateSize::for_pod(&pod.spec.clone().unwrap_or_default()) {
            Ok(size) => size,
            Err(e) => {
                let _ = refusals
                    .refuse(
                        pod,
                        e.reason(),
                        &format!("Pod not supported on Fargate: {e}"),
                    )
                    .await;
                continue;
            }
        };
        let key = pod_key(pod);
        let node = match made_for.get(&key) {
            Some(node) => node.clone(),
            None => match launch(client, pod, &profile, size, cluster, &taken).await {
                Ok(node) => node,
                Err(e) => {
                    tracing::warn!(pod = %pod.name_any(), "creating a Fargate node: {e}");
                    continue;
                }
            },
        };
        taken.push(node.clone());
        if let Err(e) = annotate_and_bind(client, pod, &node, size).await {
            tracing::warn!(pod = %pod.name_any(), "binding to {node}: {e}");
            continue;
        }
        refusals.scheduled(pod, &node).await;
    }
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}/{}",
        pod.namespace().unwrap_or_default(),
        pod.name_any(),
        pod.uid().unwrap_or_default()
    )
}

async fn annotate_and_bind(
    client: &Client,
    pod: &Pod,
    node: &str,
    size: FargateSize,
) -> crate::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let patch = json!({"metadata": {"annotations": {CAPACITY_ANNOTATION: size.to_string()}}});
    pods.patch(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    bind(client, pod, node).await
}

/// Creates the pod's node: Fargate's labels and taint, capacity equal to the provisioned size.
async fn launch(
    client: &Client,
    pod: &Pod,
    profile: &str,
    size: FargateSize,
    cluster: &ClusterInfo,
    taken: &[String],
) -> crate::Result<String> {
    let ip = free_node_address(&cluster.region, taken, fargate_node_name);
    let name = fargate_node_name(ip, &cluster.region);
    let mut labels = region_labels(&cluster.region, &name, "amd64");
    labels.insert(COMPUTE_TYPE_LABEL.into(), "fargate".into());
    labels.insert(PROFILE_LABEL.into(), profile.to_owned());
    labels.insert(AGENT_LABEL.into(), cluster.agent.clone());
    let capacity: BTreeMap<String, Quantity> = [
        ("cpu", format_millis(size.millicpu.into())),
        ("memory", format_bytes(u64::from(size.memory_mib) << 20)),
        ("pods", "1".to_owned()),
        ("ephemeral-storage", "20Gi".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Quantity(v)))
    .collect();
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            annotations: Some(
                [
                    (POD_ANNOTATION.to_owned(), pod_key(pod)),
                    (CAPACITY_ANNOTATION.to_owned(), size.to_string()),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: Some(vec![Taint {
                key: COMPUTE_TYPE_LABEL.into(),
                value: Some("fargate".into()),
                effect: "NoSchedule".into(),
                time_added: None,
            }]),
            provider_id: Some(format!(
                "aws:///{}a/{}",
                cluster.region,
                pod.uid().unwrap_or_default()
            )),
            ..NodeSpec::default()
        }),
        status: Some(NodeStatus {
            capacity: Some(capacity.clone()),
            allocatable: Some(capacity),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: ip.to_string(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.clone(),
                },
                NodeAddress {
                    type_: "InternalDNS".into(),
                    address: name.clone(),
                },
            ]),
            ..NodeStatus::default()
        }),
    };
    tracing::info!(node = %name, pod = %pod_key(pod), %size, "launching Fargate node");
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await?;
    Ok(name)
}

/// Deletes Fargate nodes whose pod is gone (removed after termination) or has finished.
async fn reap_nodes(client: &Client, view: &ClusterView) {
    let live: HashSet<String> = view
        .pods
        .state()
        .iter()
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .map(|p| pod_key(p))
        .collect();
    let nodes: Api<Node> = Api::all(client.clone());
    for node in view
        .nodes
        .state()
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
    {
        let Some(key) = node.annotations().get(POD_ANNOTATION) else {
            continue;
        };
        if live.contains(key) {
            continue;
        }
        tracing::info!(node = %node.name_any(), pod = %key, "recycling Fargate node");
        if let Err(e) = nodes
            .delete(&node.name_any(), &DeleteParams::default())
            .await
        {
            tracing::warn!(node = %node.name_any(), "deleting Fargate node: {e}");
        }
    }
}
