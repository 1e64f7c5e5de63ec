//! Initializing: the init containers run one after another, each to completion. A failed
//! one is restarted with back-off, unless the pod's restartPolicy is Never: then the pod
//! has failed. A sidecar (an init container with restartPolicy Always) need only start
//! (pass its startup probe); it then runs beside the others, restarted whenever it ends.
//!
//! Next: Pulling (all init containers succeeded), Terminated (one failed for good), or
//! Initializing again (one step at a time, so the driver can stop the pod in between).

use super::{Pulling, State, Terminated};
use crate::pod::PodContext;
use crate::pod::containers::{restart_or_back_off, start};

/// Running init containers.
pub(crate) struct Initializing;

impl Initializing {
    /// Looks at the first unfinished init container and moves it on.
    pub(crate) async fn next(self, ctx: &mut PodContext) -> State {
        ctx.observe_all();
        super::running::handle_probes(ctx);
        keep_sidecars_running(ctx).await;
        let Some(i) = ctx.slots.iter().position(|s| s.init && !s.init_done()) else {
            for slot in ctx.slots.iter_mut().filter(|s| !s.init) {
                if slot.waiting_reason() == Some("PodInitializing") {
                    slot.wait_for("ContainerCreating", None);
                }
            }
            ctx.publish().await;
            return State::Pulling(Pulling);
        };
        let slot = &ctx.slots[i];
        if let Some(exit_code) = slot.terminated().map(|t| t.exit_code) {
            if ctx.restart_policy() == "Never" && !slot.sidecar() {
                tracing::info!(pod = %ctx.pod_ref(), container = slot.name(), exit_code, "init container failed");
                ctx.terminal = true;
                return State::Terminated(Terminated::default());
            }
            restart_or_back_off(ctx, i).await;
        } else if slot.waiting_reason() == Some("CrashLoopBackOff") {
            restart_or_back_off(ctx, i).await;
        } else if !slot.is_running() {
            start(ctx, i).await;
        }
        ctx.publish().await;
        ctx.wait(ctx.shared.config.sync_interval).await;
        State::Initializing(self)
    }
}

/// Sidecars started earlier that ended are started again (they always restart).
async fn keep_sidecars_running(ctx: &mut PodContext) {
    for i in 0..ctx.slots.len() {
        let slot = &ctx.slots[i];
        let ended =
            slot.terminated().is_some() || slot.waiting_reason() == Some("CrashLoopBackOff");
        if slot.sidecar() && slot.id.is_some() && ended {
            restart_or_back_off(ctx, i).await;
        }
    }
}
