//! Pending: the pod was just handed to the agent. A sandbox left by an earlier agent process
//! is adopted with its containers, which go on running untouched; otherwise the pod starts
//! from scratch.
//!
//! Next: Mounting (fresh), Running or Initializing (adopted), Terminated (the pod had
//! already finished before the agent restarted).

use std::collections::HashMap;

use keg_runtime::{ContainerStatus, SandboxState};

use super::{Initializing, Mounting, Running, State, Terminated};
use crate::pod::containers::start_probes;
use crate::pod::{ID_PREFIX, POD_UID_LABEL, PodContext, volumes};

/// The pod's first state.
pub(crate) struct Pending;

impl Pending {
    /// Adopts or starts fresh.
    pub(crate) async fn next(self, ctx: &mut PodContext) -> State {
        let phase = ctx.pod.status.as_ref().and_then(|s| s.phase.clone());
        if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
            // Finished before this agent started: nothing to run, nothing to re-report.
            remove_sandboxes(ctx).await;
            ctx.terminal = true;
            return State::Terminated(Terminated::already_reported());
        }
        if let Some(next) = adopt(ctx).await {
            tracing::info!(pod = %ctx.pod_ref(), "adopted running pod");
            ctx.publish().await;
            return next;
        }
        remove_sandboxes(ctx).await;
        ctx.publish().await;
        State::Mounting(Mounting::default())
    }
}

/// Removes what is left of earlier sandboxes of the pod that cannot be adopted.
async fn remove_sandboxes(ctx: &PodContext) {
    let runtime = &ctx.shared.runtime;
    for sandbox in runtime.list_pod_sandboxes().unwrap_or_default() {
        if sandbox.config.labels.get(POD_UID_LABEL) == Some(&ctx.uid)
            && let Err(e) = runtime.remove_pod_sandbox(&sandbox.id).await
        {
            tracing::warn!(pod = %ctx.pod_ref(), error = %e, "removing a stale sandbox");
        }
    }
}

/// Takes over a ready sandbox of the pod and its containers; none when there is none.
async fn adopt(ctx: &mut PodContext) -> Option<State> {
    let runtime = ctx.shared.runtime.clone();
    let sandbox = runtime.list_pod_sandboxes().ok()?.into_iter().find(|s| {
        s.config.labels.get(POD_UID_LABEL) == Some(&ctx.uid) && s.state == SandboxState::Ready
    })?;
    let mut latest: HashMap<String, ContainerStatus> = HashMap::new();
    for c in runtime.list_containers().unwrap_or_default() {
        if c.sandbox_id != sandbox.id {
            continue;
        }
        let older = match latest.get(&c.config.name) {
            Some(seen) if seen.config.attempt > c.config.attempt => Some(c),
            _ => latest.insert(c.config.name.clone(), c),
        };
        // Only the newest instance of each container matters; older ones are leftovers.
        if let Some(old) = older {
            let _ = runtime.remove_container(&old.id).await;
        }
    }
    ctx.sandbox = Some(sandbox);
    let allocatable = ctx.allocatable();
    // The volumes exist already; this finds them again (and refreshes their content).
    let prepared = volumes::prepare(&super::mounting::volume_context(ctx, &allocatable)).await;
    ctx.volumes = prepared.unwrap_or_default();
    let statuses = ctx.pod.status.clone().unwrap_or_default();
    let previous = statuses
        .container_statuses
        .iter()
        .flatten()
        .chain(statuses.init_container_statuses.iter().flatten())
        .cloned()
        .collect::<Vec<_>>();
    for slot in &mut ctx.slots {
        let Some(found) = latest.remove(slot.name()) else {
            continue;
        };
        slot.id = Some(found.id.clone());
        slot.restart_count = found.config.attempt as i32;
        slot.image = runtime.images().get(&found.image_id).ok();
        slot.wait_for("ContainerCreating", None);
        slot.last_state = previous
            .iter()
            .find(|p| p.name == slot.name() && p.restart_count == slot.restart_count)
            .and_then(|p| p.last_state.clone())
            .and_then(|l| l.terminated);
    }
    ctx.observe_all();
    for i in 0..ctx.slots.len() {
        if !ctx.slots[i].is_running() {
            continue;
        }
        // What the last agent knew of this very instance stays true until probes say else,
        // so an agent restart does not take ready pods out of their Services.
        let id = ctx.slots[i].id.clone().map(|id| format!("{ID_PREFIX}{id}"));
        if let Some(p) = previous
            .iter()
            .find(|p| p.name == ctx.slots[i].name() && p.container_id == id)
        {
            ctx.slots[i].ready = p.ready;
            ctx.slots[i].started = p.started == Some(true);
        }
        start_probes(ctx, i);
    }
    let initialized = ctx.slots.iter().filter(|s| s.init).all(|s| s.init_done());
    Some(if initialized {
        State::Running(Running::default())
    } else {
        State::Initializing(Initializing)
    })
}
