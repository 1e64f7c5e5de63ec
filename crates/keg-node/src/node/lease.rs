//! The node's Lease in `kube-node-lease`: the heartbeat the node lifecycle controller reads.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use kube::api::{Api, ObjectMeta, PostParams};

use crate::util::is_not_found;

/// Where node leases live.
pub(crate) const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Creates the node's Lease or renews it (a compare-and-swap on its resourceVersion, so a
/// concurrent writer makes this renewal fail rather than be overwritten).
pub(crate) async fn renew(
    client: &kube::Client,
    node: &Node,
    duration_seconds: i32,
) -> kube::Result<()> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let now = MicroTime(Timestamp::now());
    match api.get(&name).await {
        Ok(mut lease) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.holder_identity = Some(name.clone());
            spec.lease_duration_seconds = Some(duration_seconds);
            spec.renew_time = Some(now);
            if lease
                .metadata
                .owner_references
                .as_ref()
                .is_none_or(Vec::is_empty)
            {
                lease.metadata.owner_references = owner(node);
            }
            api.replace(&name, &PostParams::default(), &lease).await?;
        }
        Err(e) if is_not_found(&e) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    owner_references: owner(node),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(name),
                    lease_duration_seconds: Some(duration_seconds),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await?;
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// The Node owns its Lease, so the garbage collector removes the Lease with the Node.
fn owner(node: &Node) -> Option<Vec<OwnerReference>> {
    let uid = node.metadata.uid.clone()?;
    Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.metadata.name.clone().unwrap_or_default(),
        uid,
        ..Default::default()
    }])
}
