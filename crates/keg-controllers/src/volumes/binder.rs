//! The PV controller's claim side, as upstream's `syncClaim`: an unbound claim gets the best
//! matching volume; with none, a WaitForFirstConsumer claim waits for the scheduler (and says
//! so every resync, as upstream: `waiting for first consumer to be created before binding`),
//! any other claim with a class asks that class's provisioner. Binding writes the volume
//! first (claimRef, CAS on its resourceVersion, so two claims never get one volume), then the
//! claim. A bound claim whose volume is gone or taken is Lost.
//!
//! Like keg's other controllers (decision 0004), the watches only say when to sync; each sync
//! reads the claim, the volumes and the class fresh from the API.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::matching::{check_satisfies, find_best_match, is_bound_to};
use super::{
    ANN_BETA_STORAGE_PROVISIONER, ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER, ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER, AWS_EBS_IN_TREE, annotation, claim_class, provisioner_for_class,
};
use crate::Result;
use crate::events::Events;

mod volumes;

pub use volumes::run_volumes;

/// How often unbound claims and released volumes are synced again, as upstream's resync.
pub const RESYNC: Duration = Duration::from_secs(15);
/// The component upstream's PV controller reports events as.
pub const CONTROLLER: &str = "persistentvolume-controller";

pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) events: Events,
}

/// Runs the claim side of the PV controller until the process ends.
pub async fn run_claims(client: Client) {
    let controller = Controller::new(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    let ctx = Arc::new(Context {
        client: client.clone(),
        events: Events::new(client.clone(), CONTROLLER),
    });
    controller
        .watches(
            Api::<PersistentVolume>::all(client.clone()),
            watcher::Config::default(),
            |volume: PersistentVolume| {
                let claim_ref = volume.spec.and_then(|s| s.claim_ref)?;
                Some(
                    ObjectRef::new(claim_ref.name.as_deref()?)
                        .within(claim_ref.namespace.as_deref()?),
                )
            },
        )
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            waiting_pod_claims,
        )
        .watches(
            Api::<StorageClass>::all(client),
            watcher::Config::default(),
            move |class: StorageClass| {
                let name = class.name_any();
                store
                    .state()
                    .iter()
                    .filter(|c| claim_class(c) == name)
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .run(
            reconcile,
            |_, error, _| crate::retry_after_error("persistentvolume", error),
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

/// The claims of a pod not yet scheduled: their WaitForPodScheduled event names it.
fn waiting_pod_claims(pod: Pod) -> Vec<ObjectRef<PersistentVolumeClaim>> {
    let namespace = pod.namespace().unwrap_or_default();
    let spec = pod.spec.unwrap_or_default();
    if spec.node_name.as_deref().is_some_and(|n| !n.is_empty()) {
        return vec![];
    }
    spec.volumes
        .iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| ObjectRef::new(&c.claim_name).within(&namespace))
        .collect()
}

async fn reconcile(claim: Arc<PersistentVolumeClaim>, ctx: Arc<Context>) -> Result<Action> {
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &claim.namespace().unwrap_or_default());
    let Some(claim) = claims.get_opt(&claim.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if annotation(&claim.metadata, ANN_BIND_COMPLETED).is_none() {
        sync_unbound(&ctx, claim).await
    } else {
        sync_bound(&ctx, claim).await?;
        Ok(Action::await_change())
    }
}

async fn sync_unbound(ctx: &Context, claim: PersistentVolumeClaim) -> Result<Action> {
    let volumes = Api::<PersistentVolume>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let wanted = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .unwrap_or_default();
    if !wanted.is_empty() {
        return sync_asking_for(ctx, claim, &volumes, &wanted).await;
    }
    let class_name = claim_class(&claim);
    let class = if class_name.is_empty() {
        None
    } else {
        Api::<StorageClass>::all(ctx.client.clone())
            .get_opt(&class_name)
            .await?
    };
    // A missing class counts as Immediate, as upstream's IsDelayBindingMode says.
    let delay = class
        .as_ref()
        .is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
    if let Some(volume) = find_best_match(&claim, &volumes, None, delay, &HashSet::new()) {
        bind(ctx, volume.clone(), claim).await?;
        return Ok(Action::await_change());
    }
    let reference = claim.object_ref(&());
    if delay && annotation(&claim.metadata, ANN_SELECTED_NODE).is_none() {
        wait_for_consumer(ctx, &claim).await?;
    } else if !class_name.is_empty() {
        ask_provisioner(ctx, &claim, class.as_ref(), &class_name).await?;
        return Ok(Action::requeue(RESYNC));
    } else {
        let message = "no persistent volumes available for this claim and no storage class is set";
        ctx.events
            .normal(&reference, "FailedBinding", "Binding", message.into())
            .await;
    }
    set_claim_phase(ctx, &claim, "Pending", None).await?;
    Ok(Action::requeue(RESYNC))
}

/// A claim that names its volume: bind it if it is free (or already ours) and fits.
async fn sync_asking_for(
    ctx: &Context,
    claim: PersistentVolumeClaim,
    volumes: &[PersistentVolume],
    wanted: &str,
) -> Result<Action> {
    let reference = claim.object_ref(&());
    let Some(volume) = volumes.iter().find(|v| v.name_any() == wanted) else {
        // Maybe not created yet: try again later.
        set_claim_phase(ctx, &claim, "Pending", None).await?;
        return Ok(Action::requeue(RESYNC));
    };
    let claimed = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    if claimed.is_none() {
        if let Err(why) = check_satisfies(volume, &claim) {
            let message = format!("Cannot bind to requested volume {wanted:?}: {why}");
            ctx.events
                .warning(&reference, "VolumeMismatch", "Binding", message)
                .await;
            set_claim_phase(ctx, &claim, "Pending", None).await?;
            return Ok(Action::requeue(RESYNC));
        }
        bind(ctx, volume.clone(), claim).await?;
        return Ok(Action::await_change());
    }
    if is_bound_to(volume, &claim) {
        bind(ctx, volume.clone(), claim).await?;
        return Ok(Action::await_change());
    }
    let message = format!("volume {wanted:?} already bound to a different claim.");
    ctx.events
        .warning(&reference, "FailedBinding", "Binding", message)
        .await;
    set_claim_phase(ctx, &claim, "Pending", None).await?;
    Ok(Action::requeue(RESYNC))
}

/// Upstream's `emitEventForUnboundDelayBindingClaim`: WaitForFirstConsumer while no pod
/// uses the claim, WaitForPodScheduled naming the pods that do but are not scheduled yet.
async fn wait_for_consumer(ctx: &Context, claim: &PersistentVolumeClaim) -> Result<()> {
    let pods: Api<Pod> =
        Api::namespaced(ctx.client.clone(), &claim.namespace().unwrap_or_default());
    let name = claim.name_any();
    let waiting: Vec<String> = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| {
            !matches!(crate::pods::phase(p), "Succeeded" | "Failed")
                && p.spec.as_ref().is_some_and(|s| {
                    s.node_name.as_deref().unwrap_or_default().is_empty()
                        && s.volumes.iter().flatten().any(|v| {
                            v.persistent_volume_claim
                                .as_ref()
                                .is_some_and(|c| c.claim_name == name)
                        })
                })
        })
        .map(|p| p.name_any())
        .collect();
    let (reason, message) = match waiting.as_slice() {
        [] => (
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding".to_owned(),
        ),
        [one] => (
            "WaitForPodScheduled",
            format!("waiting for pod {one} to be scheduled"),
        ),
        many => (
            "WaitForPodScheduled",
            format!("waiting for pods {} to be scheduled", many.join(",")),
        ),
    };
    ctx.events
        .normal(&claim.object_ref(&()), reason, "Binding", message)
        .await;
    Ok(())
}

/// Upstream's `provisionClaim` for an external provisioner: name the provisioner on the
/// claim (which is what it waits for) and say so in an ExternalProvisioning event.
async fn ask_provisioner(
    ctx: &Context,
    claim: &PersistentVolumeClaim,
    class: Option<&StorageClass>,
    class_name: &str,
) -> Result<()> {
    let reference = claim.object_ref(&());
    let Some(class) = class else {
        let message = format!("storageclass.storage.k8s.io {class_name:?} not found");
        ctx.events
            .warning(&reference, "ProvisioningFailed", "Provisioning", message)
            .await;
        return Ok(());
    };
    let provisioner = provisioner_for_class(&class.provisioner);
    if provisioner.starts_with("kubernetes.io/") && provisioner != AWS_EBS_IN_TREE {
        // In-tree names keg has no plugin for, no-provisioner among them.
        let message = format!("no volume plugin matched name: {provisioner}");
        ctx.events
            .warning(&reference, "ProvisioningFailed", "Provisioning", message)
            .await;
        return Ok(());
    }
    if annotation(&claim.metadata, ANN_STORAGE_PROVISIONER).map(String::as_str) != Some(provisioner)
        || annotation(&claim.metadata, ANN_BETA_STORAGE_PROVISIONER).map(String::as_str)
            != Some(provisioner)
    {
        let patch = json!({"metadata": {
            "annotations": {ANN_STORAGE_PROVISIONER: provisioner, ANN_BETA_STORAGE_PROVISIONER: provisioner},
            "resourceVersion": claim.resource_version(),
        }});
        Api::<PersistentVolumeClaim>::namespaced(
            ctx.client.clone(),
            &claim.namespace().unwrap_or_default(),
        )
        .patch(
            &claim.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
    }
    let message = format!(
        "Waiting for a volume to be created either by the external provisioner '{provisioner}' \
         or manually by the system administrator. If volume creation is delayed, please verify \
         that the provisioner is running and correctly registered."
    );
    ctx.events
        .normal(&reference, "ExternalProvisioning", "Provisioning", message)
        .await;
    Ok(())
}

/// Upstream's `syncBoundClaim`: keep a bound claim bound, or mark it Lost.
async fn sync_bound(ctx: &Context, claim: PersistentVolumeClaim) -> Result<()> {
    let volume_name = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .unwrap_or_default();
    if volume_name.is_empty() {
        let message =
            "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!";
        return lose_claim(ctx, &claim, "ClaimLost", message).await;
    }
    let volume = Api::<PersistentVolume>::all(ctx.client.clone())
        .get_opt(&volume_name)
        .await?;
    let Some(volume) = volume else {
        let message = "Bound claim has lost its PersistentVolume. Data on the volume is lost!";
        return lose_claim(ctx, &claim, "ClaimLost", message).await;
    };
    let claim_ref = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    match claim_ref {
        None => bind(ctx, volume, claim).await,
        Some(r) if r.uid == claim.metadata.uid => bind(ctx, volume, claim).await,
        Some(_) => {
            let message = "Two claims are bound to the same volume, this one is bound incorrectly";
            lose_claim(ctx, &claim, "ClaimMisbound", message).await
        }
    }
}

async fn lose_claim(
    ctx: &Context,
    claim: &PersistentVolumeClaim,
    reason: &str,
    message: &str,
) -> Result<()> {
    if claim_phase(claim) == "Lost" {
        return Ok(());
    }
    set_claim_phase(ctx, claim, "Lost", None).await?;
    ctx.events
        .warning(&claim.object_ref(&()), reason, "Binding", message.into())
        .await;
    Ok(())
}

/// Upstream's `bind`: the volume's claimRef (CAS) and phase first, then the claim's
/// volumeName and annotations (CAS) and phase. Writes only what is not so already.
pub(crate) async fn bind(
    ctx: &Context,
    volume: PersistentVolume,
    claim: PersistentVolumeClaim,
) -> Result<()> {
    let volume = bind_volume_to_claim(ctx, volume, &claim).await?;
    let volume = super::binder::volumes::set_volume_phase(ctx, &volume, "Bound", None).await?;
    let claim = bind_claim_to_volume(ctx, claim, &volume).await?;
    set_claim_phase(ctx, &claim, "Bound", Some(&volume)).await?;
    tracing::info!(claim = %claim_key(&claim), volume = %volume.name_any(), "bound");
    Ok(())
}

async fn bind_volume_to_claim(
    ctx: &Context,
    mut volume: PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Result<PersistentVolume> {
    let spec = volume.spec.get_or_insert_default();
    let current = spec.claim_ref.as_ref();
    if current.is_some_and(|r| {
        r.name == claim.metadata.name
            && r.namespace == claim.metadata.namespace
            && r.uid == claim.metadata.uid
    }) {
        return Ok(volume);
    }
    let bound_by_controller = !is_bound_to(&volume, claim);
    let spec = volume.spec.get_or_insert_default();
    spec.claim_ref = Some(ObjectReference {
        kind: Some("PersistentVolumeClaim".into()),
        api_version: Some("v1".into()),
        namespace: claim.metadata.namespace.clone(),
        name: claim.metadata.name.clone(),
        uid: claim.metadata.uid.clone(),
        resource_version: claim.metadata.resource_version.clone(),
        ..ObjectReference::default()
    });
    if bound_by_controller {
        volume
            .annotations_mut()
            .insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
    }
    let name = volume.name_any();
    Ok(Api::<PersistentVolume>::all(ctx.client.clone())
        .replace(&name, &PostParams::default(), &volume)
        .await?)
}

async fn bind_claim_to_volume(
    ctx: &Context,
    mut claim: PersistentVolumeClaim,
    volume: &PersistentVolume,
) -> Result<PersistentVolumeClaim> {
    let name = volume.name_any();
    let mut dirty = false;
    let spec = claim.spec.get_or_insert_default();
    if spec.volume_name.as_deref() != Some(name.as_str()) {
        spec.volume_name = Some(name.clone());
        dirty = true;
        claim
            .annotations_mut()
            .entry(ANN_BOUND_BY_CONTROLLER.into())
            .or_insert_with(|| "yes".into());
    }
    if annotation(&claim.metadata, ANN_BIND_COMPLETED).is_none() {
        claim
            .annotations_mut()
            .insert(ANN_BIND_COMPLETED.into(), "yes".into());
        dirty = true;
    }
    if !dirty {
        return Ok(claim);
    }
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &claim.namespace().unwrap_or_default());
    Ok(claims
        .replace(&claim.name_any(), &PostParams::default(), &claim)
        .await?)
}

/// The claim's phase ("" before it has one).
pub(crate) fn claim_phase(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// Upstream's `updateClaimStatus`: the phase, and the bound volume's access modes and
/// capacity (cleared while unbound). Writes nothing when all is so already.
async fn set_claim_phase(
    ctx: &Context,
    claim: &PersistentVolumeClaim,
    phase: &str,
    volume: Option<&PersistentVolume>,
) -> Result<()> {
    let status = claim.status.clone().unwrap_or_default();
    let (modes, capacity) = match volume {
        Some(v) => {
            let spec = v.spec.clone().unwrap_or_default();
            (spec.access_modes, spec.capacity)
        }
        None => (None, None),
    };
    let becoming = claim_phase(claim) != phase;
    // Capacity is set as the claim becomes bound, not after: a difference later can be a
    // resize in progress, which is not this controller's to undo.
    let capacity_stale = match volume {
        None => status.capacity.is_some(),
        Some(_) => becoming && status.capacity != capacity,
    };
    if !becoming && status.access_modes == modes && !capacity_stale {
        return Ok(());
    }
    let mut patch = json!({"status": {"phase": phase, "accessModes": modes}});
    if capacity_stale {
        patch["status"]["capacity"] = json!(capacity);
    }
    Api::<PersistentVolumeClaim>::namespaced(
        ctx.client.clone(),
        &claim.namespace().unwrap_or_default(),
    )
    .patch_status(
        &claim.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    Ok(())
}

/// `namespace/name` of a claim, for logs.
pub(crate) fn claim_key(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.namespace().unwrap_or_default(),
        claim.name_any()
    )
}
