//! Starting: the app containers are created and started in the order of the spec, each
//! with its Created and Started events (and postStart hook, and probes).
//!
//! Next: Running.

use super::{Running, State};
use crate::pod::PodContext;
use crate::pod::containers::start;

/// Starting app containers.
pub(crate) struct Starting;

impl Starting {
    /// Starts every app container whose image is present and that has no instance yet.
    pub(crate) async fn next(self, ctx: &mut PodContext) -> State {
        for i in 0..ctx.slots.len() {
            if ctx.stopping() {
                break;
            }
            let slot = &ctx.slots[i];
            if slot.init || slot.id.is_some() || slot.image.is_none() {
                continue;
            }
            start(ctx, i).await;
            ctx.refresh();
        }
        ctx.publish().await;
        State::Running(Running::default())
    }
}
