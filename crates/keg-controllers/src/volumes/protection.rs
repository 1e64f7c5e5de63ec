//! Storage object in-use protection, as upstream's pvc-protection and pv-protection
//! controllers: every claim carries `kubernetes.io/pvc-protection` and every volume
//! `kubernetes.io/pv-protection`; a deleted claim keeps its finalizer while a scheduled pod
//! uses it (so `kubectl delete pvc` waits for the pod to go), a deleted volume while it is
//! Bound.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use super::{PV_PROTECTION, PVC_PROTECTION, has_finalizer};
use crate::{Result, gone_is_fine};

struct Context {
    client: Client,
}

/// Runs pvc-protection until the process ends.
pub async fn run_claims(client: Client) {
    Controller::new(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        // A pod's claims: its going (or being scheduled) changes whether they are in use.
        |pod: Pod| {
            let namespace = pod.namespace().unwrap_or_default();
            claim_names(&pod)
                .into_iter()
                .map(|name| ObjectRef::new(&name).within(&namespace))
                .collect::<Vec<_>>()
        },
    )
    .run(
        reconcile_claim,
        |_, error, _| crate::retry_after_error("pvc-protection", error),
        Arc::new(Context { client }),
    )
    .for_each(|_| async {})
    .await;
}

/// Runs pv-protection until the process ends.
pub async fn run_volumes(client: Client) {
    Controller::new(
        Api::<PersistentVolume>::all(client.clone()),
        watcher::Config::default(),
    )
    .run(
        reconcile_volume,
        |_, error, _| crate::retry_after_error("pv-protection", error),
        Arc::new(Context { client }),
    )
    .for_each(|_| async {})
    .await;
}

/// The claims a pod's volumes name (ephemeral volumes' claims are `<pod>-<volume>`).
pub fn claim_names(pod: &Pod) -> Vec<String> {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| {
            if let Some(claim) = &v.persistent_volume_claim {
                Some(claim.claim_name.clone())
            } else {
                v.ephemeral
                    .as_ref()
                    .map(|_| format!("{}-{}", pod.name_any(), v.name))
            }
        })
        .collect()
}

async fn reconcile_claim(claim: Arc<PersistentVolumeClaim>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = claim.namespace().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(mut claim) = claims.get_opt(&claim.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let protected = has_finalizer(&claim.metadata, PVC_PROTECTION);
    if claim.metadata.deletion_timestamp.is_none() {
        if !protected {
            claim.finalizers_mut().push(PVC_PROTECTION.to_owned());
            claims
                .replace(&claim.name_any(), &PostParams::default(), &claim)
                .await?;
        }
        return Ok(Action::await_change());
    }
    if !protected || in_use(&ctx.client, &claim).await? {
        return Ok(Action::await_change());
    }
    tracing::info!(claim = %format!("{namespace}/{}", claim.name_any()), "claim no longer in use; removing pvc-protection");
    claim.finalizers_mut().retain(|f| f != PVC_PROTECTION);
    gone_is_fine(
        claims
            .replace(&claim.name_any(), &PostParams::default(), &claim)
            .await,
    )?;
    Ok(Action::await_change())
}

/// Upstream's `podUsesPVC`: a pod uses the claim once it is scheduled (the kubelet sees
/// only scheduled pods, and refuses to start one whose claim is being deleted).
async fn in_use(client: &Client, claim: &PersistentVolumeClaim) -> Result<bool> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &claim.namespace().unwrap_or_default());
    let name = claim.name_any();
    Ok(pods
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .any(|pod| {
            let scheduled = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty());
            scheduled && claim_names(pod).contains(&name)
        }))
}

async fn reconcile_volume(volume: Arc<PersistentVolume>, ctx: Arc<Context>) -> Result<Action> {
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let Some(mut volume) = volumes.get_opt(&volume.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let protected = has_finalizer(&volume.metadata, PV_PROTECTION);
    if volume.metadata.deletion_timestamp.is_none() {
        if !protected {
            volume.finalizers_mut().push(PV_PROTECTION.to_owned());
            volumes
                .replace(&volume.name_any(), &PostParams::default(), &volume)
                .await?;
        }
        return Ok(Action::await_change());
    }
    let bound = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    if !protected || bound {
        return Ok(Action::await_change());
    }
    volume.finalizers_mut().retain(|f| f != PV_PROTECTION);
    gone_is_fine(
        volumes
            .replace(&volume.name_any(), &PostParams::default(), &volume)
            .await,
    )?;
    Ok(Action::await_change())
}
