//! Persistent volumes, as upstream's components split the work:
//!
//! - [`binder`]: the PV controller (kube-controller-manager's `persistentvolume-controller`):
//!   binds claims to volumes, Immediate at once and WaitForFirstConsumer once the scheduler has
//!   picked a node, asks for dynamic provisioning, and releases volumes whose claim is gone.
//! - [`provisioner`] and [`deleter`]: keg's local provisioner, standing where an external
//!   CSI provisioner stands (e.g. `ebs.csi.aws.com`): a volume is a directory on the chosen
//!   node's machine under the cluster's state dir, its capacity booked against the node.
//! - [`protection`]: the `kubernetes.io/pvc-protection` and `kubernetes.io/pv-protection`
//!   finalizers.
//!
//! [`matching`] and [`capacity`] are pure functions the scheduler's VolumeBinding shares.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Client;

pub mod binder;
pub mod capacity;
pub mod deleter;
pub mod matching;
pub mod protection;
pub mod provisioner;

/// The node the scheduler chose for a WaitForFirstConsumer claim.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// The provisioner asked to provision a claim (set by the PV controller).
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The older name of [`ANN_STORAGE_PROVISIONER`], still set by upstream for old provisioners.
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// Marks a claim whose binding the PV controller has completed.
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Marks a claim or volume bound by a controller rather than by its author.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// The provisioner that made a volume.
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The class of a claim or volume before `storageClassName` existed; still honoured.
pub const ANN_BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// The node a keg volume's directory is on (and whose capacity it books).
pub const ANN_VOLUME_NODE: &str = "keg.dev/volume-node";

/// Keeps a claim while a pod uses it.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// Keeps a volume while it is bound.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";
/// Keeps a provisioned volume (reclaim policy Delete) until its storage is deleted, as
/// upstream's external-provisioner does since HonorPVReclaimPolicy.
pub const PROVISIONER_FINALIZER: &str = "external-provisioner.volume.kubernetes.io/finalizer";

/// The class provisioner of statically provisioned local volumes: nothing to provision.
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";
/// The in-tree EBS provisioner name EKS's `gp2` class uses.
pub const AWS_EBS_IN_TREE: &str = "kubernetes.io/aws-ebs";
/// The EBS CSI driver, which the in-tree name migrates to.
pub const AWS_EBS_CSI: &str = "ebs.csi.aws.com";
/// keg's own provisioner name.
pub const KEG_LOCAL: &str = "keg.dev/local";

/// Where the local provisioner keeps volumes.
#[derive(Debug, Clone)]
pub struct Config {
    /// The root of every volume directory: `<data-dir>/volumes` of the cluster's state dir.
    pub root: PathBuf,
}

/// Runs the PV controller, the local provisioner and deleter, and the protection
/// controllers until the process ends.
pub async fn run(client: Client, config: Config) {
    let config = std::sync::Arc::new(config);
    tokio::join!(
        binder::run_claims(client.clone()),
        binder::run_volumes(client.clone()),
        provisioner::run(client.clone(), config.clone()),
        deleter::run(client.clone(), config),
        protection::run_claims(client.clone()),
        protection::run_volumes(client),
    );
}

/// The provisioner that serves a class's provisioner name: in-tree names migrated to CSI
/// are served by their CSI driver, as upstream does with CSI migration (GA for EBS).
pub fn provisioner_for_class(class_provisioner: &str) -> &str {
    if class_provisioner == AWS_EBS_IN_TREE {
        AWS_EBS_CSI
    } else {
        class_provisioner
    }
}

/// Whether keg's local provisioner serves this provisioner name.
pub fn is_local_provisioner(name: &str) -> bool {
    matches!(name, AWS_EBS_IN_TREE | AWS_EBS_CSI | KEG_LOCAL)
}

/// The class a claim asks for ("" for none), from the field or the old annotation.
pub fn claim_class(claim: &PersistentVolumeClaim) -> String {
    if let Some(class) = claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_BETA_STORAGE_CLASS))
    {
        return class.clone();
    }
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

/// The class a volume belongs to ("" for none), from the field or the old annotation.
pub fn volume_class(volume: &PersistentVolume) -> String {
    if let Some(class) = volume
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_BETA_STORAGE_CLASS))
    {
        return class.clone();
    }
    volume
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

/// The storage a claim requests, in bytes (0 when it asks for none).
pub fn requested_bytes(claim: &PersistentVolumeClaim) -> u64 {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| keg_api::quantity::parse_bytes(&q.0).ok())
        .unwrap_or(0)
}

/// The storage a claim requests as written ("25Mi"), for messages.
pub fn requested_quantity(claim: &PersistentVolumeClaim) -> String {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone())
        .unwrap_or_else(|| "0".into())
}

/// A volume's capacity in bytes (0 when it states none).
pub fn volume_bytes(volume: &PersistentVolume) -> u64 {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| keg_api::quantity::parse_bytes(&q.0).ok())
        .unwrap_or(0)
}

/// An annotation of an object's metadata.
pub(crate) fn annotation<'a>(meta: &'a kube::api::ObjectMeta, key: &str) -> Option<&'a String> {
    meta.annotations.as_ref().and_then(|a| a.get(key))
}

/// Whether the object's metadata lists the finalizer.
pub(crate) fn has_finalizer(meta: &kube::api::ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == finalizer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_tree_ebs_is_served_by_its_csi_driver() {
        assert_eq!(provisioner_for_class(AWS_EBS_IN_TREE), AWS_EBS_CSI);
        assert_eq!(provisioner_for_class(KEG_LOCAL), KEG_LOCAL);
        assert!(is_local_provisioner(AWS_EBS_CSI));
        assert!(!is_local_provisioner("rancher.io/local-path"));
    }
}
