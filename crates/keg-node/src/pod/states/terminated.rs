//! Terminated: nothing of the pod runs. Its sandbox (containers, network, cgroup) and
//! volumes are removed, its final status (Succeeded or Failed) is posted; a pod being
//! deleted is then deleted for good (grace period 0), as the kubelet's status manager
//! does. Logs stay until the pod object is gone.
//!
//! Next: Terminated again (waiting for the pod object to go), or done.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};

use super::State;
use crate::pod::{PodContext, remove_pod_dir};
use crate::util::is_not_found;

/// How often a finished pod is looked at while nothing happens to it.
const IDLE: Duration = Duration::from_secs(60);

/// Finished.
#[derive(Default)]
pub(crate) struct Terminated {
    cleaned: bool,
    reported: bool,
}

impl Terminated {
    /// For a pod whose final status an earlier agent already posted.
    pub(crate) fn already_reported() -> Self {
        Self {
            cleaned: false,
            reported: true,
        }
    }

    /// Cleans up, reports, and deletes the pod object once it is being deleted.
    pub(crate) async fn next(mut self, ctx: &mut PodContext) -> State {
        if !self.cleaned {
            clean_up(ctx).await;
            self.cleaned = true;
        }
        if !self.reported {
            ctx.publish().await;
            self.reported = true;
        }
        if ctx.gone {
            let _ = std::fs::remove_dir_all(ctx.log_dir());
            return State::Done;
        }
        if ctx.pod.metadata.deletion_timestamp.is_some() {
            delete_pod(ctx).await;
        }
        ctx.wait(IDLE).await;
        State::Terminated(self)
    }
}

/// Removes the sandbox (with its containers) and the pod's volumes.
async fn clean_up(ctx: &mut PodContext) {
    for slot in &mut ctx.slots {
        slot.probes = None;
    }
    let runtime = ctx.shared.runtime.clone();
    for sandbox in runtime.list_pod_sandboxes().unwrap_or_default() {
        if sandbox.config.labels.get(crate::pod::POD_UID_LABEL) == Some(&ctx.uid)
            && let Err(e) = runtime.remove_pod_sandbox(&sandbox.id).await
        {
            tracing::warn!(pod = %ctx.pod_ref(), error = %e, "removing the pod sandbox");
        }
    }
    ctx.sandbox = None;
    if let Err(e) = remove_pod_dir(&ctx.shared.config.root_dir, &ctx.uid) {
        tracing::warn!(pod = %ctx.pod_ref(), error = %e, "removing the pod's volumes");
    }
}

/// Deletes the pod object with grace period 0, for this UID only.
async fn delete_pod(ctx: &mut PodContext) {
    let api: Api<Pod> = Api::namespaced(ctx.shared.client.clone(), ctx.namespace());
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(ctx.uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(ctx.name(), &params).await {
        Ok(_) => tracing::info!(pod = %ctx.pod_ref(), "deleted pod"),
        Err(e) if is_not_found(&e) => ctx.gone = true,
        Err(e) => tracing::warn!(pod = %ctx.pod_ref(), error = %e, "could not delete pod"),
    }
}
