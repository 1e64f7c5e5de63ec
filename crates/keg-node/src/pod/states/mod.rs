//! A pod's life as explicit states, one file each (krustlet style). Each state does one
//! step and names the next state; the driver checks before every step whether the pod is to
//! be stopped (deleted, being deleted, or its node no longer served).
//!
//! Allowed transitions:
//!
//! ```text
//! Pending          -> Mounting | Running (adopted after an agent restart)
//!                     | Initializing (adopted while init containers ran)
//! Mounting         -> Mounting (retry after FailedMount) | CreatingSandbox
//! CreatingSandbox  -> CreatingSandbox (retry) | Initializing | Pulling
//! Initializing     -> Initializing (next step) | Pulling | Terminated (an init container
//!                     failed under restartPolicy Never)
//! Pulling          -> Starting
//! Starting         -> Running
//! Running          -> Running (next look) | Terminated (every container ended for good)
//! any of the above -> Terminating (deleted, being deleted, or node gone)
//! Terminating      -> Terminated
//! Terminated       -> Terminated (waiting for deletion) | done (the pod object is gone)
//! ```

mod creating_sandbox;
mod initializing;
mod mounting;
mod pending;
mod pulling;
mod running;
mod starting;
mod terminated;
mod terminating;

pub(crate) use creating_sandbox::CreatingSandbox;
pub(crate) use initializing::Initializing;
pub(crate) use mounting::Mounting;
pub(crate) use pending::Pending;
pub(crate) use pulling::Pulling;
pub(crate) use running::Running;
pub(crate) use starting::Starting;
pub(crate) use terminated::Terminated;
pub(crate) use terminating::Terminating;

use super::PodContext;

/// Where a pod is in its life.
pub(crate) enum State {
    /// Just handed to the agent: adopt what runs, or start fresh.
    Pending(Pending),
    /// Setting up volumes.
    Mounting(Mounting),
    /// Making the sandbox (network namespace, IP, pod cgroup).
    CreatingSandbox(CreatingSandbox),
    /// Running init containers one after another, each to completion.
    Initializing(Initializing),
    /// Making sure the app containers' images are present.
    Pulling(Pulling),
    /// Creating and starting the app containers in order.
    Starting(Starting),
    /// Watching containers: probes, restarts with back-off, status.
    Running(Running),
    /// Stopping containers gracefully.
    Terminating(Terminating),
    /// Nothing runs any more; waiting for the pod object to go.
    Terminated(Terminated),
    /// The pod is gone and everything of it removed.
    Done,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Pending(_) => "Pending",
            State::Mounting(_) => "Mounting",
            State::CreatingSandbox(_) => "CreatingSandbox",
            State::Initializing(_) => "Initializing",
            State::Pulling(_) => "Pulling",
            State::Starting(_) => "Starting",
            State::Running(_) => "Running",
            State::Terminating(_) => "Terminating",
            State::Terminated(_) => "Terminated",
            State::Done => "Done",
        }
    }

    /// States that stopping must not interrupt.
    fn is_ending(&self) -> bool {
        matches!(
            self,
            State::Terminating(_) | State::Terminated(_) | State::Done
        )
    }

    async fn next(self, ctx: &mut PodContext) -> State {
        match self {
            State::Pending(s) => s.next(ctx).await,
            State::Mounting(s) => s.next(ctx).await,
            State::CreatingSandbox(s) => s.next(ctx).await,
            State::Initializing(s) => s.next(ctx).await,
            State::Pulling(s) => s.next(ctx).await,
            State::Starting(s) => s.next(ctx).await,
            State::Running(s) => s.next(ctx).await,
            State::Terminating(s) => s.next(ctx).await,
            State::Terminated(s) => s.next(ctx).await,
            State::Done => State::Done,
        }
    }
}

/// Drives a pod from Pending to Done.
pub(crate) async fn drive(mut ctx: PodContext) {
    let mut state = State::Pending(Pending);
    let mut last = "";
    loop {
        ctx.refresh();
        ctx.check_deadline();
        if ctx.stopping() && !state.is_ending() {
            state = State::Terminating(Terminating);
        }
        if state.name() != last {
            tracing::debug!(pod = %ctx.pod_ref(), state = state.name(), "pod state");
            last = state.name();
        }
        state = state.next(&mut ctx).await;
        if matches!(state, State::Done) {
            tracing::debug!(pod = %ctx.pod_ref(), "pod worker done");
            return;
        }
    }
}
