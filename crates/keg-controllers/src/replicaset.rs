//! The ReplicaSet controller, as upstream's: keeps `spec.replicas` active pods with owner
//! references, adopts matching orphans and releases pods its selector no longer matches,
//! deletes the pods upstream would delete first, and reports status counts. The same code
//! keeps ReplicationControllers (core/v1), as upstream's replication manager does: a
//! [`Replicated`] kind is all it needs.
//!
//! Unlike upstream it reads pods from the API at each sync rather than from an informer
//! cache, so it needs no "expectations" to avoid acting twice on a stale cache.

mod ranking;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::events::Events;
use crate::pod_control::{PodControl, pod_from_template};
use crate::{Clock, Error, Result, owners, pods};

/// At most this many pods are created or deleted in one sync (upstream's burstReplicas).
const BURST: usize = 500;

/// What the controller needs of a kind it keeps pods for.
pub(crate) trait Replicated:
    crate::Object + Resource<Scope = NamespaceResourceScope> + Serialize
{
    /// The controller's name in events and logs (upstream's component).
    const CONTROLLER: &'static str;
    /// `spec.replicas` (default 1).
    fn replicas(&self) -> i32;
    /// `spec.minReadySeconds`.
    fn min_ready_seconds(&self) -> i32;
    /// The selector, as a LabelSelector (a ReplicationController's map is its matchLabels).
    fn selector(&self) -> Option<LabelSelector>;
    /// `spec.template`.
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// The status, in the ReplicaSet's shape (both kinds' statuses have the same fields).
    fn replica_status(&self) -> Option<ReplicaSetStatus>;
    /// This object with `status`.
    fn with_status(&self, status: ReplicaSetStatus) -> Self;
}

/// Converts between the two kinds' statuses, which have the same fields.
fn same_shape<A: Serialize, B: DeserializeOwned>(a: &A) -> Option<B> {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

impl Replicated for ReplicaSet {
    const CONTROLLER: &'static str = "replicaset-controller";
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn selector(&self) -> Option<LabelSelector> {
        self.spec.as_ref().map(|s| s.selector.clone())
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }
    fn replica_status(&self) -> Option<ReplicaSetStatus> {
        self.status.clone()
    }
    fn with_status(&self, status: ReplicaSetStatus) -> Self {
        let mut rs = self.clone();
        rs.status = Some(status);
        rs
    }
}

impl Replicated for ReplicationController {
    const CONTROLLER: &'static str = "replication-controller";
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn selector(&self) -> Option<LabelSelector> {
        let labels = self.spec.as_ref().and_then(|s| s.selector.clone())?;
        Some(LabelSelector {
            match_labels: Some(labels),
            match_expressions: None,
        })
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }
    fn replica_status(&self) -> Option<ReplicaSetStatus> {
        self.status.as_ref().and_then(same_shape)
    }
    fn with_status(&self, status: ReplicaSetStatus) -> Self {
        let mut rc = self.clone();
        rc.status = same_shape(&status);
        rc
    }
}

struct Context {
    client: Client,
    events: Events,
    clock: Arc<dyn Clock>,
}

/// Runs the ReplicaSet controller until the process ends.
pub async fn run(client: Client, clock: Arc<dyn Clock>) {
    run_for::<ReplicaSet>(client, clock).await;
}

/// Runs the ReplicationController manager until the process ends.
pub async fn run_replication_controllers(client: Client, clock: Arc<dyn Clock>) {
    run_for::<ReplicationController>(client, clock).await;
}

async fn run_for<K: Replicated>(client: Client, clock: Arc<dyn Clock>) {
    let sets: Api<K> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let events = Events::new(client.clone(), K::CONTROLLER);
    let controller = Controller::new(sets, watcher::Config::default());
    let store = controller.store();
    let kind = K::kind(&()).to_string();
    controller
        // A pod wakes its controller, or when it is an orphan every set that may adopt it.
        .watches(pods, watcher::Config::default(), move |pod: Pod| {
            let ns = pod.namespace().unwrap_or_default();
            match owners::controller_of(&pod.metadata) {
                Some(r) if r.kind == kind => vec![ObjectRef::new(&r.name).within(&ns)],
                Some(_) => vec![],
                None => store
                    .state()
                    .iter()
                    .filter(|rs| {
                        rs.namespace().as_deref() == Some(&ns)
                            && selects_pod(rs.as_ref(), &pod.metadata)
                    })
                    .map(|rs| ObjectRef::from_obj(rs.as_ref()))
                    .collect(),
            }
        })
        .run(
            reconcile::<K>,
            |_, error, _| crate::retry_after_error(K::CONTROLLER, error),
            Arc::new(Context {
                client,
                events,
                clock,
            }),
        )
        .for_each(|_| async {})
        .await;
}

fn selects_pod<K: Replicated>(rs: &K, meta: &ObjectMeta) -> bool {
    owners::selector(rs.selector().as_ref())
        .ok()
        .flatten()
        .is_some_and(|s| owners::selects(Some(&s), meta))
}

async fn reconcile<K: Replicated>(rs: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let ns = rs.namespace().unwrap_or_default();
    let sets: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    // The triggering copy may be older than our own last write; act on the current one.
    let Some(rs) = sets.get_opt(&rs.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let selector = owners::selector(rs.selector().as_ref())?;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let active: Vec<Pod> = pods_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(pods::is_active)
        .collect();
    let claimed = owners::claim(&rs, selector.as_ref(), &pods_api, active).await?;
    let managed = if rs.meta().deletion_timestamp.is_none() {
        manage(&rs, &claimed, &ctx).await
    } else {
        Ok(())
    };
    let now = ctx.clock.now();
    let status = calculate_status(&rs, &claimed, managed.as_ref().err(), now);
    update_status(&sets, &rs, status).await?;
    managed?;
    let min_ready = rs.min_ready_seconds();
    // Availability comes with time alone, which no watch event announces.
    Ok(match pods::next_available_in(&claimed, min_ready, now) {
        Some(wait) => Action::requeue(wait),
        None => Action::await_change(),
    })
}

/// Creates or deletes pods so that `spec.replicas` are active.
async fn manage<K: Replicated>(rs: &K, claimed: &[Pod], ctx: &Context) -> Result<()> {
    let desired = usize::try_from(rs.replicas()).unwrap_or(0);
    if claimed.len() < desired {
        create_pods(rs, (desired - claimed.len()).min(BURST), ctx).await
    } else if claimed.len() > desired {
        let related = related_pods(rs, claimed, ctx).await?;
        let doomed = ranking::pods_to_delete(
            claimed.to_vec(),
            &related,
            (claimed.len() - desired).min(BURST),
            ctx.clock.now(),
        );
        delete_pods(rs, doomed, ctx).await
    } else {
        Ok(())
    }
}

/// Creates `count` pods from the template.
async fn create_pods<K: Replicated>(rs: &K, count: usize, ctx: &Context) -> Result<()> {
    let template = pod_from_template(rs, rs.template());
    PodControl::new(&ctx.client, &ctx.events, rs)
        .create_all(vec![template; count])
        .await
        .map(|_| ())
}

/// Active pods of this set and of its siblings (the sets with the same controller), used to
/// spread deletions over nodes as upstream does.
async fn related_pods<K: Replicated>(rs: &K, claimed: &[Pod], ctx: &Context) -> Result<Vec<Pod>> {
    let Some(owner) = owners::controller_of(rs.meta()) else {
        return Ok(claimed.to_vec());
    };
    let ns = rs.namespace().unwrap_or_default();
    let sets: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let siblings: Vec<String> = sets
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|s| owners::is_controlled_by(s.meta(), &owner.uid))
        .filter_map(|s| s.meta().uid.clone())
        .collect();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pods = pods_api.list(&ListParams::default()).await?.items;
    Ok(pods
        .into_iter()
        .filter(|p| owners::controller_of(&p.metadata).is_some_and(|r| siblings.contains(&r.uid)))
        .collect())
}

async fn delete_pods<K: Replicated>(rs: &K, doomed: Vec<Pod>, ctx: &Context) -> Result<()> {
    let names: Vec<String> = doomed.iter().map(ResourceExt::name_any).collect();
    PodControl::new(&ctx.client, &ctx.events, rs)
        .delete_all(&names)
        .await
}

/// The status upstream computes: counts of active, fully labelled, ready and available
/// pods, and a ReplicaFailure condition while creating or deleting fails.
fn calculate_status<K: Replicated>(
    rs: &K,
    claimed: &[Pod],
    failure: Option<&Error>,
    now: jiff::Timestamp,
) -> ReplicaSetStatus {
    let min_ready = rs.min_ready_seconds();
    let template_labels = rs
        .template()
        .and_then(|t| t.metadata.clone())
        .and_then(|m| m.labels)
        .unwrap_or_default();
    let fully_labeled = claimed
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let ready = claimed.iter().filter(|p| pods::is_ready(p)).count();
    let available = claimed
        .iter()
        .filter(|p| pods::is_available(p, min_ready, now))
        .count();
    let mut status = rs.replica_status().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match failure {
        Some(error) if !has_failure => {
            let desired = usize::try_from(rs.replicas()).unwrap_or(0);
            let reason = if claimed.len() < desired {
                "FailedCreate"
            } else {
                "FailedDelete"
            };
            conditions.push(ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(error.message()),
                last_transition_time: Some(Time(now)),
            });
        }
        None => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        Some(_) => {}
    }
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    status.replicas = count(claimed.len());
    status.fully_labeled_replicas = Some(count(fully_labeled));
    status.ready_replicas = Some(count(ready));
    status.available_replicas = Some(count(available));
    status
}

/// Writes the status (with observedGeneration) when anything changed.
async fn update_status<K: Replicated>(
    sets: &Api<K>,
    rs: &K,
    mut status: ReplicaSetStatus,
) -> Result<()> {
    let generation = rs.meta().generation;
    let current = rs.replica_status();
    let observed = current.as_ref().and_then(|s| s.observed_generation);
    status.observed_generation = observed;
    if current.as_ref() == Some(&status) && observed >= generation {
        return Ok(());
    }
    status.observed_generation = generation;
    let updated = rs.with_status(status);
    match sets
        .replace_status(&rs.name_any(), &PostParams::default(), &updated)
        .await
    {
        Ok(_) => Ok(()),
        // Deleted meanwhile: nothing to report on.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
