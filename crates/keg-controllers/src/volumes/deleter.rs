//! The local provisioner's deleter, as an external provisioner deletes what it made: a keg
//! volume whose reclaim policy is Delete is removed, directory and PV, once it is released
//! (its claim gone) or once the PV itself is deleted while no claim holds it. A volume whose
//! policy is Retain is never touched: it stays Released, its directory and data kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use super::is_local_provisioner;
use super::{ANN_PROVISIONED_BY, Config, PROVISIONER_FINALIZER, annotation, has_finalizer};
use crate::events::Events;
use crate::{Result, gone_is_fine};

struct Context {
    client: Client,
    config: Arc<Config>,
    events: Events,
}

/// Runs the deleter until the process ends.
pub async fn run(client: Client, config: Arc<Config>) {
    let ctx = Arc::new(Context {
        client: client.clone(),
        config,
        events: Events::new(client.clone(), "keg-local-provisioner"),
    });
    Controller::new(
        Api::<PersistentVolume>::all(client),
        watcher::Config::default(),
    )
    .run(
        reconcile,
        |_, error, _| crate::retry_after_error("volume deleter", error),
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
    let ours =
        annotation(&volume.metadata, ANN_PROVISIONED_BY).is_some_and(|p| is_local_provisioner(p));
    if !ours {
        return Ok(Action::await_change());
    }
    let policy = volume
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain");
    if policy != "Delete" {
        // Changed to Retain after provisioning: the storage is no longer ours to delete.
        if has_finalizer(&volume.metadata, PROVISIONER_FINALIZER) {
            remove_finalizer(&volumes, volume).await?;
        }
        return Ok(Action::await_change());
    }
    if !released(&ctx.client, &volume).await? {
        return Ok(Action::await_change());
    }
    let path = local_path(&volume);
    if let Err(message) = remove_directory(&ctx.config.root, &volume, path.as_deref()) {
        ctx.events
            .warning(
                &volume.object_ref(&()),
                "VolumeFailedDelete",
                "Deleting",
                message,
            )
            .await;
        return Ok(Action::requeue(super::binder::RESYNC));
    }
    tracing::info!(volume = %volume.name_any(), path = ?path, "deleted volume");
    let name = volume.name_any();
    if has_finalizer(&volume.metadata, PROVISIONER_FINALIZER) {
        remove_finalizer(&volumes, volume).await?;
    }
    gone_is_fine(volumes.delete(&name, &DeleteParams::default()).await)?;
    Ok(Action::await_change())
}

/// Upstream's `isVolumeReleased` (and, for a deleted PV, not held by a live claim): the
/// claim the volume was bound to is gone, replaced, or bound to another volume.
async fn released(client: &Client, volume: &PersistentVolume) -> Result<bool> {
    let phase = volume.status.as_ref().and_then(|s| s.phase.as_deref());
    let deleting = volume.metadata.deletion_timestamp.is_some();
    if !matches!(phase, Some("Released" | "Failed")) && !deleting {
        return Ok(false);
    }
    let Some(claim_ref) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return Ok(deleting);
    };
    if claim_ref.uid.as_deref().unwrap_or_default().is_empty() {
        return Ok(deleting);
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(
        client.clone(),
        claim_ref.namespace.as_deref().unwrap_or_default(),
    );
    let claim = claims
        .get_opt(claim_ref.name.as_deref().unwrap_or_default())
        .await?;
    Ok(match claim {
        None => true,
        Some(c) if c.metadata.uid != claim_ref.uid => true,
        Some(c) => c
            .spec
            .and_then(|s| s.volume_name)
            .is_some_and(|v| !v.is_empty() && v != volume.name_any()),
    })
}

fn local_path(volume: &PersistentVolume) -> Option<PathBuf> {
    let spec = volume.spec.as_ref()?;
    spec.local
        .as_ref()
        .map(|l| PathBuf::from(&l.path))
        .or_else(|| spec.host_path.as_ref().map(|h| PathBuf::from(&h.path)))
}

/// Removes the volume's directory, only if it is one keg made: `<root>/<node>/<volume>`.
/// A volume on another machine's disk (its directory not here) counts as removed here.
fn remove_directory(
    root: &Path,
    volume: &PersistentVolume,
    path: Option<&Path>,
) -> std::result::Result<(), String> {
    let Some(path) = path else {
        return Ok(());
    };
    let root = std::path::absolute(root).map_err(|e| e.to_string())?;
    let expected_name = volume.name_any();
    let is_ours = path.parent().and_then(Path::parent) == Some(root.as_path())
        && path.file_name().and_then(|n| n.to_str()) == Some(expected_name.as_str());
    if !is_ours {
        return Err(format!(
            "refusing to delete {}: not a keg volume directory under {}",
            path.display(),
            root.display()
        ));
    }
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("delete {}: {e}", path.display())),
    }
}

async fn remove_finalizer(
    volumes: &Api<PersistentVolume>,
    mut volume: PersistentVolume,
) -> Result<()> {
    if let Some(finalizers) = volume.metadata.finalizers.as_mut() {
        finalizers.retain(|f| f != PROVISIONER_FINALIZER);
    }
    let name = volume.name_any();
    gone_is_fine(
        volumes
            .replace(&name, &PostParams::default(), &volume)
            .await,
    )
}
