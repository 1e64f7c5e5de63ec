//! Mounting: the pod's volumes are set up. A volume that cannot be (a missing config map, an
//! unbound claim) is a FailedMount event, retried with back-off while the pod shows
//! ContainerCreating.
//!
//! Next: CreatingSandbox, or Mounting again.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{CreatingSandbox, State};
use crate::events::EventType::Warning;
use crate::pod::PodContext;
use crate::pod::volumes::{self, VolumeContext};

/// Setting up volumes.
#[derive(Default)]
pub(crate) struct Mounting {
    failures: u32,
    retry_at: Option<Instant>,
}

/// The first retry after a FailedMount; it doubles up to two minutes.
const FIRST_RETRY: Duration = Duration::from_secs(2);
const LAST_RETRY: Duration = Duration::from_secs(120);

/// What volumes of this pod are made from.
pub(crate) fn volume_context<'a>(
    ctx: &'a PodContext,
    allocatable: &'a BTreeMap<String, String>,
) -> VolumeContext<'a> {
    VolumeContext {
        pod: &ctx.pod,
        root: &ctx.shared.config.root_dir,
        client: &ctx.shared.client,
        pod_ip: None,
        host_ip: None,
        allocatable,
        fargate: crate::pod::resources::is_fargate(&ctx.node),
        node_memory: allocatable
            .get("memory")
            .and_then(|m| keg_api::quantity::parse_bytes(m).ok()),
    }
}

impl Mounting {
    /// Sets up every volume, or waits to try again.
    pub(crate) async fn next(mut self, ctx: &mut PodContext) -> State {
        if let Some(at) = self.retry_at.filter(|at| *at > Instant::now()) {
            ctx.wait(at - Instant::now()).await;
            return State::Mounting(self);
        }
        let allocatable = ctx.allocatable();
        let (pod_ip, host_ip) = (ctx.pod_ip(), ctx.host_ip());
        let mut cx = volume_context(ctx, &allocatable);
        cx.pod_ip = pod_ip.as_deref();
        cx.host_ip = host_ip.as_deref();
        match volumes::prepare(&cx).await {
            Ok(prepared) => {
                ctx.volumes = prepared;
                if let Some(gid) = ctx
                    .pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.security_context.as_ref())
                    .and_then(|s| s.fs_group)
                {
                    volumes::apply_fs_group(&ctx.shared.config.root_dir, &ctx.uid, gid as u32);
                }
                State::CreatingSandbox(CreatingSandbox::default())
            }
            Err(e) => {
                ctx.event(Warning, "FailedMount", &e.to_string());
                let delay = (FIRST_RETRY * 2u32.saturating_pow(self.failures)).min(LAST_RETRY);
                self.failures += 1;
                self.retry_at = Some(Instant::now() + delay);
                State::Mounting(self)
            }
        }
    }
}

/// Brings the pod's volumes up to date (config maps and secrets change); a failure keeps
/// what the volumes hold, as the kubelet does.
pub(crate) async fn refresh_volumes(ctx: &mut PodContext) {
    let allocatable = ctx.allocatable();
    let (pod_ip, host_ip) = (ctx.pod_ip(), ctx.host_ip());
    let mut cx = volume_context(ctx, &allocatable);
    cx.pod_ip = pod_ip.as_deref();
    cx.host_ip = host_ip.as_deref();
    if let Err(e) = volumes::prepare(&cx).await {
        tracing::warn!(pod = %ctx.pod_ref(), error = %e, "refreshing volumes");
    }
}
