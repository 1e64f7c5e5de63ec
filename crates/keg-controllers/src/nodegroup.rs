//! The node-group controller: keeps each NodeGroup at its desired number of nodes, as EC2
//! auto scaling does for an EKS node group. It "launches an instance" by creating the Node
//! object, labelled as EKS labels its nodes and handed to this machine's node agent, which
//! then keeps the node's status and heartbeat. Scaling in drains the emptiest nodes first,
//! through evictions that honour disruption budgets.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeSpec, NodeStatus, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use keg_api::crds::{NodeGroup, NodeGroupStatus, STATUS_ACTIVE, STATUS_CREATING};
use keg_api::fargate::node::ec2_node_name;
use keg_api::instance_types::InstanceType;
use keg_api::nodes::{AGENT_LABEL, ClusterInfo, NODEGROUP_LABEL, free_node_address, region_labels};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::{Error, RETRY, Result, gone_is_fine};

struct Context {
    client: Client,
    cluster: ClusterInfo,
}

/// Runs the controller until the process ends.
pub async fn run(client: Client, cluster: ClusterInfo) {
    let groups: Api<NodeGroup> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let context = Arc::new(Context { client, cluster });
    Controller::new(groups, watcher::Config::default())
        .owns(nodes, watcher::Config::default().labels(NODEGROUP_LABEL))
        .run(
            reconcile,
            |_, error, _| {
                tracing::warn!("node-group controller: {error}");
                Action::requeue(RETRY)
            },
            context,
        )
        .for_each(|_| async {})
        .await;
}

async fn reconcile(group: Arc<NodeGroup>, ctx: Arc<Context>) -> Result<Action> {
    if group.meta().deletion_timestamp.is_some() {
        // Its nodes are deleted by the garbage collector through their owner reference.
        return Ok(Action::await_change());
    }
    let name = group.name_any();
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let mut members = nodes
        .list(&ListParams::default().labels(&format!("{NODEGROUP_LABEL}={name}")))
        .await?
        .items;
    members.retain(|n| n.metadata.deletion_timestamp.is_none());
    let desired = usize::try_from(group.spec.desired_capacity).unwrap_or(0);
    let mut draining = false;
    if members.len() < desired {
        let instance = InstanceType::lookup(&group.spec.instance_type).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown instance type {}",
                group.spec.instance_type
            ))
        })?;
        let all_nodes = nodes.list(&ListParams::default()).await?.items;
        let mut taken: Vec<String> = all_nodes.iter().map(|n| n.name_any()).collect();
        for _ in members.len()..desired {
            let node = new_node(&group, instance, &ctx.cluster, &taken);
            taken.push(node.name_any());
            tracing::info!(node = %node.name_any(), group = %name, "launching node");
            members.push(nodes.create(&PostParams::default(), &node).await?);
        }
    } else if members.len() > desired {
        for node in choose_for_removal(&ctx.client, &members, members.len() - desired).await? {
            if drain_and_delete(&ctx.client, &node).await? {
                members.retain(|m| m.name_any() != node);
            } else {
                draining = true;
            }
        }
    }
    let ready = members.iter().filter(|n| is_ready(n)).count();
    let status = NodeGroupStatus {
        replicas: i32::try_from(members.len()).unwrap_or(i32::MAX),
        ready_replicas: i32::try_from(ready).unwrap_or(i32::MAX),
        status: if ready == desired {
            STATUS_ACTIVE
        } else {
            STATUS_CREATING
        }
        .to_owned(),
    };
    if group.status.as_ref() != Some(&status) {
        let groups: Api<NodeGroup> = Api::all(ctx.client.clone());
        groups
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await?;
    }
    // Pods leaving a draining node announce nothing to this controller: look again.
    Ok(if draining {
        Action::requeue(RETRY)
    } else {
        Action::await_change()
    })
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

/// The `count` nodes with the fewest pods (newest first among equals), as scale-in picks.
async fn choose_for_removal(
    client: &Client,
    members: &[Node],
    count: usize,
) -> Result<Vec<String>> {
    let pods: Api<Pod> = Api::all(client.clone());
    let all = pods.list(&ListParams::default()).await?.items;
    let mut ranked: Vec<(bool, usize, String, String)> = members
        .iter()
        .map(|node| {
            let name = node.name_any();
            // A node already draining (cordoned) finishes before another starts.
            let draining = node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
            let load = all
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
                .count();
            let created = node
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            (!draining, load, created, name)
        })
        .collect();
    ranked.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| b.2.cmp(&a.2)));
    Ok(ranked
        .into_iter()
        .take(count)
        .map(|(_, _, _, name)| name)
        .collect())
}

/// Drains a node as `kubectl drain` does: cordons it and evicts its pods, so disruption
/// budgets hold (an eviction a budget refuses is tried again at the next sync) and their
/// controllers place them elsewhere; DaemonSet pods and finished pods go with the node. The
/// node is deleted once no other pod is left; returns whether it was.
async fn drain_and_delete(client: &Client, node: &str) -> Result<bool> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await?;
    let pods: Api<Pod> = Api::all(client.clone());
    let mut left = 0;
    for pod in pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?
    {
        let daemon =
            crate::owners::controller_of(&pod.metadata).is_some_and(|r| r.kind == "DaemonSet");
        if daemon || matches!(crate::pods::phase(&pod), "Succeeded" | "Failed") {
            continue;
        }
        left += 1;
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let namespaced: Api<Pod> =
            Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        match namespaced
            .evict(&pod.name_any(), &kube::api::EvictParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 429 => {
                tracing::info!(%node, pod = %pod.name_any(), "eviction refused: {}", s.message)
            }
            Err(kube::Error::Api(s)) if s.code == 404 => left -= 1,
            Err(e) => return Err(e.into()),
        }
    }
    if left > 0 {
        return Ok(false);
    }
    tracing::info!(%node, "terminating node");
    gone_is_fine(nodes.delete(node, &DeleteParams::default()).await)?;
    Ok(true)
}

/// The Node a group launches (also the template the autoscaler fits pending pods to).
pub(crate) fn new_node(
    group: &NodeGroup,
    instance: &InstanceType,
    cluster: &ClusterInfo,
    taken: &[String],
) -> Node {
    let ip = free_node_address(&cluster.region, taken, ec2_node_name);
    let name = ec2_node_name(ip, &cluster.region);
    let mut labels = region_labels(&cluster.region, &name, instance.arch);
    labels.extend(group.spec.labels.clone());
    for (key, value) in [
        (NODEGROUP_LABEL, group.name_any()),
        ("alpha.eksctl.io/cluster-name", cluster.name.clone()),
        ("node.kubernetes.io/instance-type", instance.name.to_owned()),
        ("beta.kubernetes.io/instance-type", instance.name.to_owned()),
        (AGENT_LABEL, cluster.agent.clone()),
    ] {
        labels.insert(key.to_owned(), value);
    }
    if group.spec.managed {
        labels.insert("eks.amazonaws.com/nodegroup".into(), group.name_any());
        labels.insert("eks.amazonaws.com/capacityType".into(), "ON_DEMAND".into());
    }
    let capacity: BTreeMap<String, Quantity> = [
        ("cpu", instance.vcpus.to_string()),
        ("memory", format!("{}Ki", instance.memory_mib * 1024)),
        ("pods", instance.max_pods.to_string()),
        (
            "ephemeral-storage",
            format!("{}Gi", group.spec.volume_size.unwrap_or(80)),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Quantity(v)))
    .collect();
    let owner = OwnerReference {
        api_version: "keg.dev/v1".into(),
        kind: "NodeGroup".into(),
        name: group.name_any(),
        uid: group.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            provider_id: Some(format!(
                "aws:///{}a/i-{:017x}",
                cluster.region,
                rand::random::<u64>() >> 4
            )),
            taints: (!group.spec.taints.is_empty()).then(|| group.spec.taints.clone()),
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
                    address: name,
                },
            ]),
            ..NodeStatus::default()
        }),
    }
}
