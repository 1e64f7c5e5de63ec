//! Pulling: the app containers' images are made present (as imagePullPolicy says). A
//! container whose image cannot be had shows ErrImagePull / ImagePullBackOff; the others go
//! on, and Running tries it again after its back-off.
//!
//! Next: Starting.

use super::{Starting, State};
use crate::pod::PodContext;
use crate::pod::images::ensure_image;

/// Pulling images.
pub(crate) struct Pulling;

impl Pulling {
    /// Pulls what is missing.
    pub(crate) async fn next(self, ctx: &mut PodContext) -> State {
        for i in 0..ctx.slots.len() {
            if ctx.stopping() {
                break;
            }
            let slot = &ctx.slots[i];
            if slot.init || slot.id.is_some() {
                continue;
            }
            ensure_image(ctx, i).await;
            ctx.refresh();
        }
        ctx.publish().await;
        State::Starting(Starting)
    }
}
