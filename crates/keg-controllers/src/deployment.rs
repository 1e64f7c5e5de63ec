//! The Deployment controller, as upstream's: one ReplicaSet per pod template (named
//! `<deployment>-<pod-template-hash>`), rolled by RollingUpdate or Recreate, with revision
//! annotations (which `kubectl rollout history` and `undo` read), proportional scaling,
//! pausing, history cleanup, and the status and conditions `kubectl rollout status` and
//! `kubectl wait` read.
//!
//! Each sync reads the Deployment, its ReplicaSets and (for Recreate) its pods from the API
//! rather than from informer caches, so it never acts on a stale view of its own writes.

mod recreate;
mod rolling;
mod scale;
mod status;
mod sync;
pub mod util;

use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::events::Events;
use crate::{Clock, Result, owners};

struct Context {
    client: Client,
    events: Events,
    clock: Arc<dyn Clock>,
}

/// Runs the controller until the process ends.
pub async fn run(client: Client, clock: Arc<dyn Clock>) {
    let deployments: Api<Deployment> = Api::all(client.clone());
    let controller = Controller::new(deployments, watcher::Config::default());
    let (by_rs, by_pod) = (controller.store(), controller.store());
    let events = Events::new(client.clone(), "deployment-controller");
    controller
        .watches(
            Api::<ReplicaSet>::all(client.clone()),
            watcher::Config::default(),
            move |rs: ReplicaSet| {
                match owners::controller_of(&rs.metadata) {
                    Some(r) if r.kind == "Deployment" => {
                        vec![ObjectRef::new(&r.name).within(&rs.namespace().unwrap_or_default())]
                    }
                    Some(_) => vec![],
                    None => selecting(&by_rs, &rs.metadata, |_| true), // an orphan some Deployment may adopt
                }
            },
        )
        // Recreate waits for the old pods to be gone, which only pod events tell.
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            move |pod: Pod| selecting(&by_pod, &pod.metadata, |d| !util::is_rolling(d)),
        )
        .run(
            reconcile,
            |_, error, _| crate::retry_after_error("deployment", error),
            Arc::new(Context {
                client,
                events,
                clock,
            }),
        )
        .for_each(|_| async {})
        .await;
}

/// The cached Deployments of the object's namespace whose selector matches it.
fn selecting(
    store: &Store<Deployment>,
    meta: &ObjectMeta,
    keep: impl Fn(&Deployment) -> bool,
) -> Vec<ObjectRef<Deployment>> {
    store
        .state()
        .iter()
        .filter(|d| d.metadata.namespace == meta.namespace && keep(d))
        .filter(|d| {
            let selector = d.spec.as_ref().map(|s| &s.selector);
            owners::selector(selector)
                .ok()
                .flatten()
                .is_some_and(|s| owners::selects(Some(&s), meta))
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action> {
    let deployments: Api<Deployment> =
        Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    // The triggering copy may be older than our own last write; act on the current one.
    let Some(d) = deployments.get_opt(&d.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let mut sync = Sync::load(&ctx, d).await?;
    sync.run().await?;
    Ok(sync
        .requeue()
        .map_or(Action::await_change(), Action::requeue))
}

/// One sync of one Deployment: its current state, and the writes it makes.
struct Sync<'a> {
    ctx: &'a Context,
    /// The Deployment as last read or written.
    d: Deployment,
    deployments: Api<Deployment>,
    sets: Api<ReplicaSet>,
    /// The ReplicaSets it controls (after adoption and release).
    owned: Vec<ReplicaSet>,
    now: Timestamp,
}

impl<'a> Sync<'a> {
    async fn load(ctx: &'a Context, d: Deployment) -> Result<Sync<'a>> {
        let ns = d.namespace().unwrap_or_default();
        let sets: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
        let selector = owners::selector(d.spec.as_ref().map(|s| &s.selector))?;
        let candidates = sets.list(&ListParams::default()).await?.items;
        let owned = owners::claim(&d, selector.as_ref(), &sets, candidates).await?;
        Ok(Sync {
            ctx,
            deployments: Api::namespaced(ctx.client.clone(), &ns),
            sets,
            d,
            owned,
            now: ctx.clock.now(),
        })
    }

    /// Upstream's syncDeployment: what a Deployment in this state needs.
    async fn run(&mut self) -> Result<()> {
        if self
            .d
            .spec
            .as_ref()
            .is_some_and(|s| s.selector == LabelSelector::default())
        {
            let message =
                "This deployment is selecting all pods. A non-empty selector is required."
                    .to_string();
            self.ctx
                .events
                .warning(&self.d.object_ref(&()), "SelectingAll", "Sync", message)
                .await;
            return self.observe_generation_only().await;
        }
        if self.d.metadata.deletion_timestamp.is_some() {
            let (new_rs, old) = self.get_all_and_sync_revision(false).await?;
            return self.sync_deployment_status(new_rs.as_ref(), &old).await;
        }
        self.check_paused_conditions().await?;
        if util::spec(&self.d).paused == Some(true) || self.is_scaling_event().await? {
            return self.sync().await;
        }
        if util::is_rolling(&self.d) {
            self.rollout_rolling().await
        } else {
            self.rollout_recreate().await
        }
    }

    /// The pods of this Deployment's ReplicaSets, by ReplicaSet uid (Recreate needs them).
    async fn pods_by_rs(&self) -> Result<Vec<(String, Pod)>> {
        let pods: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            &self.d.namespace().unwrap_or_default(),
        );
        let selector = owners::selector(self.d.spec.as_ref().map(|s| &s.selector))?;
        let owned: Vec<&str> = self
            .owned
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .collect();
        Ok(pods
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|p| owners::selects(selector.as_ref(), &p.metadata))
            .filter_map(|p| {
                let uid = owners::controller_of(&p.metadata).map(|r| r.uid.clone())?;
                owned.contains(&uid.as_str()).then_some((uid, p))
            })
            .collect())
    }
}

/// Puts an updated ReplicaSet in place of its earlier copy, the new one or an old one.
fn store(new_rs: &mut Option<ReplicaSet>, old: &mut [ReplicaSet], updated: ReplicaSet) {
    match new_rs {
        Some(rs) if rs.metadata.uid == updated.metadata.uid => *rs = updated,
        _ => replace_rs(old, &updated),
    }
}

/// Replaces the ReplicaSet with the same uid in `sets` by `rs`.
fn replace_rs(sets: &mut [ReplicaSet], rs: &ReplicaSet) {
    if let Some(slot) = sets.iter_mut().find(|s| s.metadata.uid == rs.metadata.uid) {
        *slot = rs.clone();
    }
}
