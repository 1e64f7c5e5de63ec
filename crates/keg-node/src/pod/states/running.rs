//! Running: the pod's containers are watched. Exits are restarted as restartPolicy says,
//! with CrashLoopBackOff; probe results set readiness and kill containers whose liveness
//! or startup probe failed; containers that could not start are tried again; logs are
//! rotated; status is posted when it changes.
//!
//! Next: Running again, or Terminated once every container has ended for good.

use std::time::Duration;

use tokio::time::Instant;

use super::{State, Terminated};
use crate::events::EventType::Warning;
use crate::pod::PodContext;
use crate::pod::containers::{kill, restart_or_back_off, should_restart, start, stop};
use crate::pod::probes::{ProbeKind, ProbeOutcome};

/// How often log sizes are checked for rotation.
const LOG_CHECK: Duration = Duration::from_secs(10);

/// Watching a running pod.
#[derive(Default)]
pub(crate) struct Running {
    next_log_check: Option<Instant>,
    next_volume_refresh: Option<Instant>,
}

impl Running {
    /// One look at the pod.
    pub(crate) async fn next(mut self, ctx: &mut PodContext) -> State {
        ctx.observe_all();
        handle_probes(ctx);
        restart_changed(ctx);
        let policy = ctx.restart_policy().to_string();
        for i in 0..ctx.slots.len() {
            if ctx.stopping() {
                break;
            }
            let slot = &ctx.slots[i];
            if (slot.init && !slot.sidecar()) || slot.is_running() {
                continue;
            }
            // Sidecars always restart, whatever the pod's policy.
            let policy = if slot.sidecar() {
                "Always"
            } else {
                policy.as_str()
            };
            let restart = match slot.terminated() {
                Some(t) => should_restart(policy, t.exit_code),
                None => false,
            };
            if restart || slot.waiting_reason() == Some("CrashLoopBackOff") {
                restart_or_back_off(ctx, i).await;
            } else if slot.state.waiting.is_some() {
                start(ctx, i).await;
            }
        }
        self.housekeeping(ctx).await;
        let finished = ctx.slots.iter().filter(|s| !s.init).all(|s| {
            s.terminated()
                .is_some_and(|t| !should_restart(&policy, t.exit_code))
        });
        if finished {
            // The app containers are done: the sidecars go too, last started first.
            let grace = ctx.grace_period();
            for i in (0..ctx.slots.len())
                .rev()
                .filter(|i| ctx.slots[*i].sidecar())
            {
                stop(ctx, i, grace).await;
            }
            ctx.observe_all();
            ctx.terminal = true;
            return State::Terminated(Terminated::default());
        }
        ctx.publish().await;
        ctx.wait(ctx.shared.config.sync_interval).await;
        State::Running(self)
    }
}

impl Running {
    /// Log rotation and volume refreshes, each on its own period.
    async fn housekeeping(&mut self, ctx: &mut PodContext) {
        let now = Instant::now();
        if self.next_log_check.is_none_or(|t| t <= now) {
            rotate_logs(ctx);
            self.next_log_check = Some(now + LOG_CHECK);
        }
        // The first refresh is a period after start: the volumes were just made.
        let period = ctx.shared.config.volume_refresh_interval;
        let refresh = *self.next_volume_refresh.get_or_insert(now + period);
        if refresh <= now {
            super::mounting::refresh_volumes(ctx).await;
            self.next_volume_refresh = Some(now + period);
        }
    }
}

/// A container whose image was changed in the pod (the one field of a running container
/// that may change) is stopped, to be started again from the new image.
fn restart_changed(ctx: &mut PodContext) {
    let Some(spec) = ctx.pod.spec.clone() else {
        return;
    };
    for i in 0..ctx.slots.len() {
        let slot = &ctx.slots[i];
        let Some(new) = spec.containers.iter().find(|c| c.name == slot.name()) else {
            continue;
        };
        if slot.init || new.image == slot.spec.image {
            continue;
        }
        let running = slot.is_running();
        let slot = &mut ctx.slots[i];
        slot.spec = new.clone();
        slot.image = None;
        slot.pull_backoff = Default::default();
        slot.crash_backoff = Default::default();
        if running {
            let name = slot.name().to_string();
            kill(
                ctx,
                i,
                &format!("Container {name} definition changed, will be restarted"),
            );
        }
    }
}

/// Applies the probe reports that came in.
pub(crate) fn handle_probes(ctx: &mut PodContext) {
    for report in std::mem::take(&mut ctx.probe_reports) {
        let i = report.slot;
        if ctx.slots[i].id.as_deref() != Some(report.container_id.as_str())
            || !ctx.slots[i].is_running()
        {
            continue; // about an instance that is gone
        }
        let name = ctx.slots[i].name().to_string();
        match (report.kind, report.outcome) {
            (kind, ProbeOutcome::Failed(message)) => {
                ctx.event_for(
                    &name,
                    Warning,
                    "Unhealthy",
                    &format!("{} probe failed: {message}", kind.title()),
                );
            }
            (ProbeKind::Readiness, ProbeOutcome::Verdict(ready)) => {
                let slot = &mut ctx.slots[i];
                slot.ready = ready && slot.started;
            }
            (ProbeKind::Startup, ProbeOutcome::Verdict(true)) => {
                let slot = &mut ctx.slots[i];
                slot.started = true;
                slot.ready = slot.spec.readiness_probe.is_none();
            }
            (ProbeKind::Liveness, ProbeOutcome::Verdict(true)) => {}
            (kind, ProbeOutcome::Verdict(false)) => {
                let which = if kind == ProbeKind::Startup {
                    "startup"
                } else {
                    "liveness"
                };
                kill(
                    ctx,
                    i,
                    &format!("Container {name} failed {which} probe, will be restarted"),
                );
            }
        }
    }
}

/// Rotates the logs of running containers that grew past the limit.
fn rotate_logs(ctx: &PodContext) {
    let config = &ctx.shared.config;
    for slot in ctx.slots.iter().filter(|s| s.is_running()) {
        let path = ctx.log_path(slot.name(), slot.restart_count);
        if let Err(e) = crate::logs::rotate_if_needed(
            &path,
            config.container_log_max_size,
            config.container_log_max_files,
        ) {
            tracing::warn!(pod = %ctx.pod_ref(), container = slot.name(), error = %e, "log rotation");
        }
    }
}
