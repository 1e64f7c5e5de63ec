//! Terminating: the pod is being deleted (or is gone, or its node is). Every running
//! container gets its preStop hook and stop signal, then SIGKILL once the grace period
//! (the deletion's, else terminationGracePeriodSeconds) has passed: the app containers
//! all at once, then the sidecars in reverse order.
//!
//! Next: Terminated.

use super::{State, Terminated};
use crate::pod::PodContext;
use crate::pod::containers::stop;

/// Stopping the pod's containers.
pub(crate) struct Terminating;

impl Terminating {
    /// Stops everything and waits for it.
    pub(crate) async fn next(self, ctx: &mut PodContext) -> State {
        ctx.observe_all();
        let grace = ctx.grace_period();
        for slot in &mut ctx.slots {
            slot.probes = None;
        }
        // App (and plain init) containers all at once; then sidecars, last started first,
        // so that they serve the others to the end.
        let stops = (0..ctx.slots.len())
            .filter(|i| !ctx.slots[*i].sidecar())
            .map(|i| stop(ctx, i, grace));
        futures::future::join_all(stops).await;
        for i in (0..ctx.slots.len())
            .rev()
            .filter(|i| ctx.slots[*i].sidecar())
        {
            stop(ctx, i, grace).await;
        }
        ctx.observe_all();
        ctx.terminal = true;
        State::Terminated(Terminated::default())
    }
}
