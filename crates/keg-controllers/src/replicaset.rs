//! The ReplicaSet controller, as upstream's: keeps `spec.replicas` active pods with owner
//! references, adopts matching orphans and releases pods its selector no longer matches,
//! deletes the pods upstream would delete first, and reports status counts.
//!
//! Unlike upstream it reads pods from the API at each sync rather than from an informer
//! cache, so it needs no "expectations" to avoid acting twice on a stale cache.

mod ranking;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::events::Events;
use crate::pod_control::{PodControl, pod_from_template};
use crate::{Clock, Error, Result, owners, pods};

/// At most this many pods are created or deleted in one sync (upstream's burstReplicas).
const BURST: usize = 500;

struct Context {
    client: Client,
    events: Events,
    clock: Arc<dyn Clock>,
}

/// Runs the controller until the process ends.
pub async fn run(client: Client, clock: Arc<dyn Clock>) {
    let sets: Api<ReplicaSet> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let events = Events::new(client.clone(), "replicaset-controller");
    let controller = Controller::new(sets, watcher::Config::default());
    let store = controller.store();
    controller
        // A pod wakes its controller, or when it is an orphan every ReplicaSet that may adopt it.
        .watches(pods, watcher::Config::default(), move |pod: Pod| {
            let ns = pod.namespace().unwrap_or_default();
            match owners::controller_of(&pod.metadata) {
                Some(r) if r.kind == "ReplicaSet" => vec![ObjectRef::new(&r.name).within(&ns)],
                Some(_) => vec![],
                None => store
                    .state()
                    .iter()
                    .filter(|rs| {
                        rs.namespace().as_deref() == Some(&ns) && selects_pod(rs, &pod.metadata)
                    })
                    .map(|rs| ObjectRef::from_obj(rs.as_ref()))
                    .collect(),
            }
        })
        .run(
            reconcile,
            |_, error, _| crate::retry_after_error("replicaset", error),
            Arc::new(Context {
                client,
                events,
                clock,
            }),
        )
        .for_each(|_| async {})
        .await;
}

fn selects_pod(rs: &ReplicaSet, meta: &ObjectMeta) -> bool {
    let selector = rs.spec.as_ref().map(|s| &s.selector);
    owners::selector(selector)
        .ok()
        .flatten()
        .is_some_and(|s| owners::selects(Some(&s), meta))
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Context>) -> Result<Action> {
    let ns = rs.namespace().unwrap_or_default();
    let sets: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    // The triggering copy may be older than our own last write; act on the current one.
    let Some(rs) = sets.get_opt(&rs.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let spec = rs.spec.clone().unwrap_or_default();
    let selector = owners::selector(Some(&spec.selector))?;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let active: Vec<Pod> = pods_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(pods::is_active)
        .collect();
    let claimed = owners::claim(&rs, selector.as_ref(), &pods_api, active).await?;
    let managed = if rs.metadata.deletion_timestamp.is_none() {
        manage(&rs, &claimed, &ctx).await
    } else {
        Ok(())
    };
    let now = ctx.clock.now();
    let status = calculate_status(&rs, &claimed, managed.as_ref().err(), now);
    update_status(&sets, &rs, status).await?;
    managed?;
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    // Availability comes with time alone, which no watch event announces.
    Ok(match pods::next_available_in(&claimed, min_ready, now) {
        Some(wait) => Action::requeue(wait),
        None => Action::await_change(),
    })
}

/// Creates or deletes pods so that `spec.replicas` are active.
async fn manage(rs: &ReplicaSet, claimed: &[Pod], ctx: &Context) -> Result<()> {
    let desired =
        usize::try_from(rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)).unwrap_or(0);
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
async fn create_pods(rs: &ReplicaSet, count: usize, ctx: &Context) -> Result<()> {
    let template = pod_from_template(rs, rs.spec.as_ref().and_then(|s| s.template.as_ref()));
    PodControl::new(&ctx.client, &ctx.events, rs)
        .create_all(vec![template; count])
        .await
        .map(|_| ())
}

/// Active pods of this ReplicaSet and of its siblings (the ReplicaSets with the same
/// controller), used to spread deletions over nodes as upstream does.
async fn related_pods(rs: &ReplicaSet, claimed: &[Pod], ctx: &Context) -> Result<Vec<Pod>> {
    let Some(owner) = owners::controller_of(&rs.metadata) else {
        return Ok(claimed.to_vec());
    };
    let ns = rs.namespace().unwrap_or_default();
    let sets: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let siblings: Vec<String> = sets
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|s| owners::is_controlled_by(&s.metadata, &owner.uid))
        .filter_map(|s| s.metadata.uid)
        .collect();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pods = pods_api.list(&ListParams::default()).await?.items;
    Ok(pods
        .into_iter()
        .filter(|p| owners::controller_of(&p.metadata).is_some_and(|r| siblings.contains(&r.uid)))
        .collect())
}

async fn delete_pods(rs: &ReplicaSet, doomed: Vec<Pod>, ctx: &Context) -> Result<()> {
    let names: Vec<String> = doomed.iter().map(ResourceExt::name_any).collect();
    PodControl::new(&ctx.client, &ctx.events, rs)
        .delete_all(&names)
        .await
}

/// The status upstream computes: counts of active, fully labelled, ready and available
/// pods, and a ReplicaFailure condition while creating or deleting fails.
fn calculate_status(
    rs: &ReplicaSet,
    claimed: &[Pod],
    failure: Option<&Error>,
    now: jiff::Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template_labels = spec
        .template
        .and_then(|t| t.metadata)
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
    let mut status = rs.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match failure {
        Some(error) if !has_failure => {
            let desired = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
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
async fn update_status(
    sets: &Api<ReplicaSet>,
    rs: &ReplicaSet,
    mut status: ReplicaSetStatus,
) -> Result<()> {
    let generation = rs.metadata.generation;
    let observed = rs.status.as_ref().and_then(|s| s.observed_generation);
    status.observed_generation = observed;
    if rs.status.as_ref() == Some(&status) && observed >= generation {
        return Ok(());
    }
    status.observed_generation = generation;
    let mut updated = rs.clone();
    updated.status = Some(status);
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
