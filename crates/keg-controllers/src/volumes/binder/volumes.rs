//! The PV controller's volume side, as upstream's `syncVolume`: a volume with no claim is
//! Available; one whose claim is gone is Released and reclaimed by its policy (Retain keeps
//! it Released; Delete is left to the provisioner that made it, as upstream leaves it to an
//! external provisioner); one bound by the controller to a claim that took another volume is
//! unbound again.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::{CONTROLLER, Context, RESYNC};
use crate::Result;
use crate::events::Events;
use crate::volumes::{ANN_BOUND_BY_CONTROLLER, ANN_PROVISIONED_BY, annotation};

/// Runs the volume side of the PV controller until the process ends.
pub async fn run_volumes(client: Client) {
    let controller = Controller::new(
        Api::<PersistentVolume>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    let ctx = Arc::new(Context {
        client: client.clone(),
        events: Events::new(client.clone(), CONTROLLER),
    });
    controller
        .watches(
            Api::<PersistentVolumeClaim>::all(client),
            watcher::Config::default(),
            // A claim's volume, and every volume naming the claim (a deleted claim releases
            // them; a claim bound elsewhere frees them).
            move |claim: PersistentVolumeClaim| {
                let mut refs: Vec<ObjectRef<PersistentVolume>> = store
                    .state()
                    .iter()
                    .filter(|v| {
                        v.spec
                            .as_ref()
                            .and_then(|s| s.claim_ref.as_ref())
                            .is_some_and(|r| {
                                r.name == claim.metadata.name
                                    && r.namespace == claim.metadata.namespace
                            })
                    })
                    .map(|v| ObjectRef::from_obj(v.as_ref()))
                    .collect();
                if let Some(name) = claim.spec.and_then(|s| s.volume_name) {
                    refs.push(ObjectRef::new(&name));
                }
                refs
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

async fn reconcile(volume: Arc<PersistentVolume>, ctx: Arc<Context>) -> Result<Action> {
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let Some(volume) = volumes.get_opt(&volume.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let Some(claim_ref) = volume.spec.as_ref().and_then(|s| s.claim_ref.clone()) else {
        set_volume_phase(&ctx, &volume, "Available", None).await?;
        return Ok(Action::await_change());
    };
    if claim_ref.uid.as_deref().unwrap_or_default().is_empty() {
        // Pre-bound by its author; the claim side finishes the binding.
        set_volume_phase(&ctx, &volume, "Available", None).await?;
        return Ok(Action::await_change());
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(
        ctx.client.clone(),
        claim_ref.namespace.as_deref().unwrap_or_default(),
    );
    let claim = claims
        .get_opt(claim_ref.name.as_deref().unwrap_or_default())
        .await?
        // A claim of the same name made after the old one was deleted is another claim.
        .filter(|c| c.metadata.uid == claim_ref.uid);
    let Some(claim) = claim else {
        release(&ctx, volume).await?;
        return Ok(Action::requeue(RESYNC));
    };
    let claimed = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .unwrap_or_default();
    if claimed.is_empty() {
        // Binding in progress (or a freshly provisioned volume): the claim side binds.
        return Ok(Action::await_change());
    }
    if claimed == volume.name_any() {
        set_volume_phase(&ctx, &volume, "Bound", None).await?;
        return Ok(Action::await_change());
    }
    // The claim is bound to another volume.
    let provisioned = annotation(&volume.metadata, ANN_PROVISIONED_BY).is_some();
    if provisioned && reclaim_policy(&volume) == "Delete" {
        release(&ctx, volume).await?;
    } else {
        unbind(&ctx, volume).await?;
    }
    Ok(Action::await_change())
}

fn reclaim_policy(volume: &PersistentVolume) -> &str {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain")
}

fn volume_phase(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// The claim is gone: mark the volume Released (a Failed one stays Failed, so the user sees
/// what went wrong) and apply its reclaim policy.
async fn release(ctx: &Context, volume: PersistentVolume) -> Result<()> {
    let volume = if matches!(volume_phase(&volume), "Released" | "Failed") {
        volume
    } else {
        tracing::info!(volume = %volume.name_any(), policy = reclaim_policy(&volume), "released");
        set_volume_phase(ctx, &volume, "Released", None).await?
    };
    match reclaim_policy(&volume) {
        "Retain" => Ok(()),
        "Delete" => {
            let external = annotation(&volume.metadata, ANN_PROVISIONED_BY)
                .is_some_and(|p| !p.starts_with("kubernetes.io/"))
                || volume.spec.as_ref().is_some_and(|s| s.csi.is_some());
            if external {
                // Its provisioner deletes it (keg's local volumes: the deleter).
                return Ok(());
            }
            let message = format!(
                "error getting deleter volume plugin for volume {:?}: no deletable volume plugin matched",
                volume.name_any()
            );
            fail(ctx, &volume, "VolumeFailedDelete", &message).await
        }
        "Recycle" => {
            let message = "No recycler plugin found for the volume!";
            fail(ctx, &volume, "VolumeFailedRecycle", message).await
        }
        _ => {
            let message = "Volume has unrecognized PersistentVolumeReclaimPolicy";
            fail(ctx, &volume, "VolumeUnknownReclaimPolicy", message).await
        }
    }
}

/// Marks the volume Failed with a Warning event, once (upstream's
/// `updateVolumePhaseWithEvent`).
async fn fail(ctx: &Context, volume: &PersistentVolume, reason: &str, message: &str) -> Result<()> {
    if volume_phase(volume) == "Failed" {
        return Ok(());
    }
    let volume = set_volume_phase(ctx, volume, "Failed", Some(message)).await?;
    ctx.events
        .warning(
            &volume.object_ref(&()),
            reason,
            "Reclaiming",
            message.into(),
        )
        .await;
    Ok(())
}

/// Upstream's `unbindVolume`: a volume the controller bound forgets the claim; one its
/// author pre-bound keeps the claim's name but not its uid.
async fn unbind(ctx: &Context, mut volume: PersistentVolume) -> Result<()> {
    let by_controller = annotation(&volume.metadata, ANN_BOUND_BY_CONTROLLER).is_some();
    let spec = volume.spec.get_or_insert_default();
    if by_controller {
        spec.claim_ref = None;
        volume.annotations_mut().remove(ANN_BOUND_BY_CONTROLLER);
    } else if let Some(r) = spec.claim_ref.as_mut() {
        r.uid = None;
    }
    let volume = Api::<PersistentVolume>::all(ctx.client.clone())
        .replace(&volume.name_any(), &PostParams::default(), &volume)
        .await?;
    set_volume_phase(ctx, &volume, "Available", None).await?;
    Ok(())
}

/// Sets a volume's phase (and message, and the time of the transition, as upstream does
/// since 1.31) unless it is so already; returns the volume as now stored.
pub(crate) async fn set_volume_phase(
    ctx: &Context,
    volume: &PersistentVolume,
    phase: &str,
    message: Option<&str>,
) -> Result<PersistentVolume> {
    if volume_phase(volume) == phase {
        return Ok(volume.clone());
    }
    let patch = json!({"status": {
        "phase": phase,
        "message": message,
        "lastPhaseTransitionTime": Time(jiff::Timestamp::now()),
    }});
    Ok(Api::<PersistentVolume>::all(ctx.client.clone())
        .patch_status(
            &volume.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?)
}
