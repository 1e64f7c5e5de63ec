//! Upstream's VolumeBinding plugin for the default scheduler.
//!
//! - PreFilter: a pod whose claim is missing, being deleted, or unbound with an Immediate
//!   class cannot be scheduled (`pod has unbound immediate PersistentVolumeClaims`): the PV
//!   controller binds those, and the pod is tried again when it has.
//! - Filter, per node: bound claims' volumes must admit the node (`node(s) had volume node
//!   affinity conflict`); each WaitForFirstConsumer claim needs a free volume that fits there
//!   or a class that can provision there (`node(s) didn't find available persistent volumes
//!   to bind`), and keg's local volumes need room on the node (`node(s) did not have enough
//!   free storage`, keg's analogue of CSI storage capacity).
//! - PreBind: on the chosen node, free volumes are bound to their claims and claims to be
//!   provisioned get `volume.kubernetes.io/selected-node`; the pod is bound only once every
//!   claim is (upstream waits inside PreBind; keg's single scheduling loop instead remembers
//!   the pod's node and binds it in a later pass, holding its resources on the node meanwhile).
//!
//! Writes the watches have not delivered yet are kept in an assume cache, as upstream's, so
//! a pass never decides from claims older than this scheduler's own last write.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::{
    Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod,
};
use k8s_openapi::api::storage::v1::StorageClass;
use keg_controllers::volumes::capacity::{booked, can_hold_volumes, free};
use keg_controllers::volumes::matching::{find_best_match, node_affinity_allows, topology_allows};
use keg_controllers::volumes::{
    ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER, ANN_SELECTED_NODE, NO_PROVISIONER, claim_class,
    is_local_provisioner, provisioner_for_class, requested_bytes,
};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::ClusterView;

/// A node lacks a free volume or a way to provision one for a claim.
pub const ERR_BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
/// A bound claim's volume does not admit the node.
pub const ERR_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// The node has no room for the volumes to provision.
pub const ERR_NOT_ENOUGH_SPACE: &str = "node(s) did not have enough free storage";
/// A bound claim's volume is gone.
pub const ERR_PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
/// PreFilter's refusal of a pod whose Immediate claims are not bound yet.
pub const ERR_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";

/// The claims, volumes and classes of one scheduling pass, this scheduler's writes included.
pub struct Snapshot {
    claims: HashMap<(String, String), PersistentVolumeClaim>,
    volumes: Vec<PersistentVolume>,
    classes: HashMap<String, StorageClass>,
    booked: BTreeMap<String, u64>,
}

/// A pod's claims, as PreFilter sorted them.
pub struct PodVolumes {
    /// Bound claims and their volume (`None` when it is gone).
    bound: Vec<Option<PersistentVolume>>,
    /// WaitForFirstConsumer claims still to bind.
    to_bind: Vec<PersistentVolumeClaim>,
}

impl PodVolumes {
    /// Whether every claim is bound (the pod may be bound to its node).
    pub fn all_bound(&self) -> bool {
        self.to_bind.is_empty()
    }
}

/// What binding the pod's claims on a node takes.
#[derive(Default)]
pub struct Decision {
    /// Free volumes to bind to claims: (claim, volume name).
    bind: Vec<(PersistentVolumeClaim, String)>,
    /// Claims to provision on the node.
    provision: Vec<PersistentVolumeClaim>,
}

/// The plugin's state across passes: the assume cache and the pods waiting for their claims.
#[derive(Default)]
pub struct VolumeBinding {
    assumed_claims: HashMap<(String, String), PersistentVolumeClaim>,
    assumed_volumes: HashMap<String, PersistentVolume>,
    waiting: HashMap<String, String>,
}

fn key(claim: &PersistentVolumeClaim) -> (String, String) {
    (claim.namespace().unwrap_or_default(), claim.name_any())
}

/// Whether the cached object has caught up with an assumed write (keg's resourceVersions are
/// store revisions, so they order; anything else is taken as caught up).
fn caught_up(cached: Option<&str>, assumed: Option<&str>) -> bool {
    match (
        cached.and_then(|c| c.parse::<u64>().ok()),
        assumed.and_then(|a| a.parse::<u64>().ok()),
    ) {
        (Some(c), Some(a)) => c >= a,
        _ => true,
    }
}

impl VolumeBinding {
    /// This pass's view: the cache's objects, or this scheduler's newer writes of them.
    pub fn snapshot(&mut self, view: &ClusterView) -> Snapshot {
        let mut claims: HashMap<_, _> = view
            .claims
            .state()
            .iter()
            .map(|c| (key(c), (**c).clone()))
            .collect();
        self.assumed_claims.retain(|k, assumed| {
            let cached = claims
                .get(k)
                .and_then(|c| c.metadata.resource_version.as_deref());
            let fresh = claims.contains_key(k)
                && !caught_up(cached, assumed.metadata.resource_version.as_deref());
            if fresh {
                claims.insert(k.clone(), assumed.clone());
            }
            fresh
        });
        let mut volumes: HashMap<String, PersistentVolume> = view
            .volumes
            .state()
            .iter()
            .map(|v| (v.name_any(), (**v).clone()))
            .collect();
        self.assumed_volumes.retain(|name, assumed| {
            let cached = volumes
                .get(name)
                .and_then(|v| v.metadata.resource_version.as_deref());
            let fresh = volumes.contains_key(name)
                && !caught_up(cached, assumed.metadata.resource_version.as_deref());
            if fresh {
                volumes.insert(name.clone(), assumed.clone());
            }
            fresh
        });
        let volumes: Vec<PersistentVolume> = volumes.into_values().collect();
        let classes = view
            .classes
            .state()
            .iter()
            .map(|c| (c.name_any(), (**c).clone()))
            .collect();
        let booked = booked_with_selected(&claims, &volumes, &classes);
        Snapshot {
            booked,
            claims,
            volumes,
            classes,
        }
    }

    /// The node a pod waits on for its claims, if it does.
    pub fn waiting_node(&self, pod: &Pod) -> Option<&str> {
        self.waiting
            .get(&pod.uid().unwrap_or_default())
            .map(String::as_str)
    }

    /// Forgets a pod (bound, gone, or to be placed afresh).
    pub fn forget(&mut self, pod: &Pod) {
        self.waiting.remove(&pod.uid().unwrap_or_default());
    }

    /// Forgets the pods that are no longer pending.
    pub fn forget_all_but(&mut self, pending: &HashSet<String>) {
        self.waiting.retain(|uid, _| pending.contains(uid));
    }

    /// If the pod waits on a node but a claim's chosen node was taken back (its provisioning
    /// failed there), upstream's PreBind error; the pod is then placed afresh.
    pub fn reset_claim(&mut self, pod: &Pod, volumes: &PodVolumes) -> Option<String> {
        self.waiting_node(pod)?;
        let reset = volumes
            .to_bind
            .iter()
            .find(|c| c.annotations().get(ANN_SELECTED_NODE).is_none())?;
        self.forget(pod);
        Some(format!(
            "running PreBind plugin \"VolumeBinding\": binding volumes: selectedNode annotation reset for PVC {:?}",
            reset.name_any()
        ))
    }
}

/// The storage booked on each node: by its volumes, and by the claims whose node is chosen
/// but whose volume is not made yet (else two pods' claims could be sent to one node that
/// has room for only one of them).
fn booked_with_selected(
    claims: &HashMap<(String, String), PersistentVolumeClaim>,
    volumes: &[PersistentVolume],
    classes: &HashMap<String, StorageClass>,
) -> BTreeMap<String, u64> {
    let mut booked = booked(volumes);
    let made: HashSet<String> = volumes.iter().map(|v| v.name_any()).collect();
    for claim in claims.values() {
        let Some(node) = claim.annotations().get(ANN_SELECTED_NODE) else {
            continue;
        };
        let unbound = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .is_none_or(str::is_empty);
        let local = classes
            .get(&claim_class(claim))
            .is_some_and(|c| is_local_provisioner(provisioner_for_class(&c.provisioner)));
        let volume = format!("pvc-{}", claim.uid().unwrap_or_default());
        if unbound && local && !made.contains(&volume) {
            *booked.entry(node.clone()).or_default() += requested_bytes(claim);
        }
    }
    booked
}

/// PreFilter: the pod's claims sorted into bound and to bind, or why the pod cannot be
/// scheduled on any node. `None` for a pod without claims.
pub fn pre_filter(pod: &Pod, snapshot: &Snapshot) -> Result<Option<PodVolumes>, String> {
    let namespace = pod.namespace().unwrap_or_default();
    let names = keg_controllers::volumes::protection::claim_names(pod);
    if names.is_empty() {
        return Ok(None);
    }
    let mut volumes = PodVolumes {
        bound: vec![],
        to_bind: vec![],
    };
    let mut unbound_immediate = false;
    for name in names {
        let Some(claim) = snapshot.claims.get(&(namespace.clone(), name.clone())) else {
            return Err(format!("persistentvolumeclaim {name:?} not found"));
        };
        if claim.metadata.deletion_timestamp.is_some() {
            return Err(format!("persistentvolumeclaim {name:?} is being deleted"));
        }
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .unwrap_or_default();
        if !volume_name.is_empty() && claim.annotations().contains_key(ANN_BIND_COMPLETED) {
            let volume = snapshot
                .volumes
                .iter()
                .find(|v| v.name_any() == volume_name)
                .cloned();
            volumes.bound.push(volume);
            continue;
        }
        let delayed = snapshot
            .classes
            .get(&claim_class(claim))
            .is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
        if delayed {
            volumes.to_bind.push(claim.clone());
        } else {
            unbound_immediate = true;
        }
    }
    if unbound_immediate {
        return Err(ERR_UNBOUND_IMMEDIATE.into());
    }
    Ok(Some(volumes))
}

/// Filter: what binding the pod's claims on this node takes, or why it cannot be done.
pub fn filter(
    volumes: &PodVolumes,
    node: &Node,
    snapshot: &Snapshot,
) -> Result<Decision, Vec<String>> {
    let mut reasons = Vec::new();
    if volumes.bound.iter().any(Option::is_none) {
        reasons.push(ERR_PV_NOT_EXIST.to_owned());
    }
    if volumes
        .bound
        .iter()
        .flatten()
        .any(|v| !node_affinity_allows(v, node))
    {
        reasons.push(ERR_NODE_CONFLICT.to_owned());
    }
    let mut decision = Decision::default();
    let mut chosen = HashSet::new();
    let mut needed = 0u64;
    let mut conflict = false;
    let node_name = node.name_any();
    for claim in &volumes.to_bind {
        if let Some(selected) = claim.annotations().get(ANN_SELECTED_NODE) {
            // Being provisioned already: only for that node.
            conflict |= *selected != node_name;
            continue;
        }
        if let Some(volume) = find_best_match(claim, &snapshot.volumes, Some(node), true, &chosen) {
            chosen.insert(volume.name_any());
            decision.bind.push((claim.clone(), volume.name_any()));
            continue;
        }
        match snapshot.classes.get(&claim_class(claim)) {
            Some(class) if provisions_on(class, node) => {
                if is_local_provisioner(provisioner_for_class(&class.provisioner)) {
                    needed += requested_bytes(claim);
                }
                decision.provision.push(claim.clone());
            }
            _ => conflict = true,
        }
    }
    if conflict {
        reasons.push(ERR_BIND_CONFLICT.to_owned());
    }
    if needed > 0 && (!can_hold_volumes(node) || needed > free(node, &snapshot.booked)) {
        reasons.push(ERR_NOT_ENOUGH_SPACE.to_owned());
    }
    if reasons.is_empty() {
        Ok(decision)
    } else {
        Err(reasons)
    }
}

/// Whether the class can provision a volume reachable from the node.
fn provisions_on(class: &StorageClass, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    class.provisioner != NO_PROVISIONER
        && topology_allows(class.allowed_topologies.as_deref(), &labels)
}

impl VolumeBinding {
    /// PreBind: binds the chosen free volumes and selects the node for claims to provision.
    /// Returns whether the pod may be bound now (all its claims are); if not, the pod waits
    /// on the node.
    pub async fn pre_bind(
        &mut self,
        client: &Client,
        pod: &Pod,
        node: &str,
        volumes: &PodVolumes,
        decision: Decision,
        snapshot: &mut Snapshot,
    ) -> crate::Result<bool> {
        if volumes.all_bound() {
            self.forget(pod);
            return Ok(true);
        }
        self.waiting
            .insert(pod.uid().unwrap_or_default(), node.to_owned());
        for (claim, name) in decision.bind {
            let Some(mut volume) = snapshot
                .volumes
                .iter()
                .find(|v| v.name_any() == name)
                .cloned()
            else {
                continue;
            };
            volume.spec.get_or_insert_default().claim_ref = Some(ObjectReference {
                kind: Some("PersistentVolumeClaim".into()),
                api_version: Some("v1".into()),
                namespace: claim.namespace(),
                name: claim.metadata.name.clone(),
                uid: claim.metadata.uid.clone(),
                resource_version: claim.metadata.resource_version.clone(),
                ..ObjectReference::default()
            });
            volume
                .annotations_mut()
                .insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
            let written = Api::<PersistentVolume>::all(client.clone())
                .replace(&name, &PostParams::default(), &volume)
                .await?;
            self.assumed_volumes.insert(name, written);
        }
        for claim in decision.provision {
            let claims: Api<PersistentVolumeClaim> =
                Api::namespaced(client.clone(), &claim.namespace().unwrap_or_default());
            let patch = json!({"metadata": {
                "annotations": {ANN_SELECTED_NODE: node},
                "resourceVersion": claim.resource_version(),
            }});
            let written = claims
                .patch(
                    &claim.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await?;
            // The rest of this pass sees the node's storage as spoken for.
            let local = snapshot
                .classes
                .get(&claim_class(&written))
                .is_some_and(|c| is_local_provisioner(provisioner_for_class(&c.provisioner)));
            if local {
                *snapshot.booked.entry(node.to_owned()).or_default() += requested_bytes(&written);
            }
            snapshot.claims.insert(key(&written), written.clone());
            self.assumed_claims.insert(key(&written), written);
        }
        Ok(false)
    }
}
