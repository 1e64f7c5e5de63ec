//! The StatefulSet controller, as upstream's: pods with stable names `<set>-<ordinal>` and
//! hostnames under the set's Service, each with its own claims from `volumeClaimTemplates`
//! (kept when the pod goes, deleted as `persistentVolumeClaimRetentionPolicy` says). Under
//! OrderedReady pods start in ordinal order, each once the one before is Running and Ready,
//! and go in reverse order; under Parallel all at once. RollingUpdate replaces pods from the
//! highest ordinal down to `partition`, at most `maxUnavailable` at a time; OnDelete only
//! when a pod is deleted. ControllerRevisions keep the template history for `kubectl
//! rollout history/undo`.

mod identity;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};

use crate::events::Events;
use crate::pod_control::PodControl;
use crate::{Clock, Result, history, owners, pods};
use identity::REVISION_LABEL;

struct Context {
    client: Client,
    events: Events,
    clock: Arc<dyn Clock>,
}

/// Runs the controller until the process ends.
pub async fn run(client: Client, clock: Arc<dyn Clock>) {
    let context = Arc::new(Context {
        events: Events::new(client.clone(), "statefulset-controller"),
        client: client.clone(),
        clock,
    });
    crate::run_workload::<StatefulSet, Pod, _, _, _>(&client, "statefulset", reconcile, context)
        .await;
}

/// What one sync sees of the set.
struct View<'a> {
    set: &'a StatefulSet,
    current: ControllerRevision,
    update: ControllerRevision,
    /// The pods whose ordinals are within the set's range, by ordinal.
    replicas: BTreeMap<i32, Pod>,
    /// Its other pods, which are to go.
    condemned: Vec<(i32, Pod)>,
    min_ready: i32,
    now: jiff::Timestamp,
}

impl View<'_> {
    fn healthy(&self, pod: &Pod) -> bool {
        pods::phase(pod) == "Running"
            && pod.metadata.deletion_timestamp.is_none()
            && pods::is_available(pod, self.min_ready, self.now)
    }
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Context>) -> Result<Action> {
    let ns = set.namespace().unwrap_or_default();
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(set) = sets.get_opt(&set.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let spec = set.spec.clone().unwrap_or_default();
    let revisions_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let (revisions, update) = history::sync(&revisions_api, &set, &spec.template).await?;
    let status = set.status.clone().unwrap_or_default();
    let current = revisions
        .iter()
        .find(|r| Some(r.name_any()) == status.current_revision)
        .cloned()
        .unwrap_or_else(|| update.clone());

    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = owners::selector(Some(&spec.selector))?;
    let all = pods_api.list(&ListParams::default()).await?.items;
    let claimed = owners::claim(&set, selector.as_ref(), &pods_api, all).await?;
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    let count = spec.replicas.unwrap_or(1);
    let range = start..start.saturating_add(count);
    let mut replicas = BTreeMap::new();
    let mut condemned = Vec::new();
    for pod in claimed {
        match identity::ordinal_of(&set.name_any(), &pod.name_any()) {
            Some(o) if range.contains(&o) => {
                replicas.insert(o, pod);
            }
            Some(o) => condemned.push((o, pod)),
            None => condemned.push((i32::MAX, pod)),
        }
    }
    condemned.sort_by_key(|(o, _)| std::cmp::Reverse(*o));
    let view = View {
        set: &set,
        current,
        update,
        replicas,
        condemned,
        min_ready: spec.min_ready_seconds.unwrap_or(0),
        now: ctx.clock.now(),
    };
    let synced = sync(&view, range.clone(), &ctx).await;

    let new_status = compute_status(&view);
    if set.status.as_ref() != Some(&new_status) {
        let mut updated = set.clone();
        updated.status = Some(new_status.clone());
        let result = sets
            .replace_status(&set.name_any(), &PostParams::default(), &updated)
            .await;
        crate::gone_is_fine(result)?;
    }
    let mut live: BTreeSet<String> = [
        new_status.current_revision.clone(),
        new_status.update_revision.clone(),
    ]
    .into_iter()
    .flatten()
    .collect();
    live.extend(
        view.replicas
            .values()
            .chain(view.condemned.iter().map(|(_, p)| p))
            .filter_map(|p| p.labels().get(REVISION_LABEL).cloned()),
    );
    history::truncate(
        &revisions_api,
        &revisions,
        &live,
        spec.revision_history_limit.unwrap_or(10),
    )
    .await?;
    synced?;
    let all_pods = view.replicas.values().collect::<Vec<_>>();
    Ok(
        match pods::next_available_in(all_pods, view.min_ready, view.now) {
            Some(wait) => Action::requeue(ctx.clock.real_wait(wait)),
            None => Action::await_change(),
        },
    )
}

/// One pass of upstream's sync: create what is missing, replace what failed, remove the
/// condemned, then roll the update on; under OrderedReady each step waits for the last.
async fn sync(view: &View<'_>, range: std::ops::Range<i32>, ctx: &Context) -> Result<()> {
    let set = view.set;
    let spec = set.spec.clone().unwrap_or_default();
    let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
    let control = PodControl::for_stateful_set(&ctx.client, &ctx.events, set);
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let partition = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);

    for ordinal in range.clone() {
        match view.replicas.get(&ordinal) {
            None => {
                // Below the partition a missing pod comes back at the current revision.
                let (revision, template) = if rolling && ordinal < range.start + partition {
                    (&view.current, template_of(&view.current, set))
                } else {
                    (&view.update, template_of(&view.update, set))
                };
                create_claims(set, ordinal, ctx).await?;
                let pod = identity::new_pod(set, &template, &revision.name_any(), ordinal);
                control.create(&pod).await?;
                if ordered {
                    return Ok(());
                }
            }
            Some(pod) if matches!(pods::phase(pod), "Failed" | "Succeeded") => {
                if pod.metadata.deletion_timestamp.is_none() {
                    control.delete_all(&[pod.name_any()]).await?;
                }
                if ordered {
                    return Ok(());
                }
            }
            Some(pod) if ordered && !view.healthy(pod) => return Ok(()),
            Some(_) => {}
        }
    }

    for (ordinal, pod) in &view.condemned {
        if pod.metadata.deletion_timestamp.is_some() {
            if ordered {
                return Ok(());
            }
            continue;
        }
        if identity::retention(set, "whenScaled") == "Delete" {
            hand_claims_to_pod(set, *ordinal, pod, ctx).await?;
        }
        control.delete_all(&[pod.name_any()]).await?;
        if ordered {
            return Ok(());
        }
    }

    if !rolling {
        return Ok(());
    }
    let max_unavailable = max_unavailable(set, range.len());
    let unavailable = range
        .clone()
        .filter(|o| view.replicas.get(o).is_none_or(|p| !view.healthy(p)))
        .count();
    let mut budget = max_unavailable.saturating_sub(unavailable);
    for ordinal in range.clone().rev() {
        if ordinal < range.start + partition || budget == 0 {
            break;
        }
        let Some(pod) = view.replicas.get(&ordinal) else {
            continue;
        };
        let outdated =
            pod.labels().get(REVISION_LABEL).map(String::as_str) != Some(&view.update.name_any());
        if outdated && pod.metadata.deletion_timestamp.is_none() {
            control.delete_all(&[pod.name_any()]).await?;
            budget -= 1;
        }
    }
    Ok(())
}

fn template_of(revision: &ControllerRevision, set: &StatefulSet) -> PodTemplateSpec {
    history::template_of(revision)
        .or_else(|| set.spec.as_ref().map(|s| s.template.clone()))
        .unwrap_or_default()
}

/// `maxUnavailable` of the rolling update (a number or a percentage of the replicas,
/// rounded down), at least one.
fn max_unavailable(set: &StatefulSet, replicas: usize) -> usize {
    let value = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.clone());
    let n = match value {
        Some(IntOrString::Int(n)) => usize::try_from(n).unwrap_or(0),
        Some(IntOrString::String(p)) => {
            let percent: usize = p.trim_end_matches('%').parse().unwrap_or(0);
            replicas * percent / 100
        }
        None => 1,
    };
    n.max(1)
}

/// Creates the pod's claims that do not exist yet.
async fn create_claims(set: &StatefulSet, ordinal: i32, ctx: &Context) -> Result<()> {
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    let pod = identity::pod_name(set, ordinal);
    for template in identity::claim_templates(set) {
        let claim = identity::new_claim(set, &template, ordinal);
        let name = claim.name_any();
        if claims.get_opt(&name).await?.is_some() {
            continue;
        }
        let reference = set.object_ref(&());
        let set_name = set.name_any();
        match claims.create(&PostParams::default(), &claim).await {
            Ok(_) => {
                ctx.events
                    .normal(
                        &reference,
                        "SuccessfulCreate",
                        "Create",
                        format!("create Claim {name} Pod {pod} in StatefulSet {set_name} success"),
                    )
                    .await
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                ctx.events
                    .warning(
                        &reference,
                        "FailedCreate",
                        "Create",
                        format!(
                            "create Claim {name} for Pod {pod} in StatefulSet {set_name} failed error: {}",
                            crate::api_message(&e)
                        ),
                    )
                    .await;
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// Under `whenScaled: Delete`, a scaled-down pod's claims are owned by the pod (and no longer
/// by the set), so they go with it.
async fn hand_claims_to_pod(
    set: &StatefulSet,
    ordinal: i32,
    pod: &Pod,
    ctx: &Context,
) -> Result<()> {
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    for template in identity::claim_templates(set) {
        let name = identity::claim_name(set, &template.name_any(), ordinal);
        let Some(claim) = claims.get_opt(&name).await? else {
            continue;
        };
        // The pod alone: an owner reference to the set would keep the claim while it lives.
        let set_uid = set.metadata.uid.clone().unwrap_or_default();
        let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut refs: Vec<_> = claim
            .owner_references()
            .iter()
            .filter(|r| r.uid != set_uid)
            .cloned()
            .collect();
        let has_pod = refs.iter().any(|r| r.uid == pod_uid);
        if has_pod && refs.len() == claim.owner_references().len() {
            continue;
        }
        if !has_pod {
            refs.push(identity::pod_owner(pod));
        }
        crate::gone_is_fine(owners::set_owner_references(&claims, &claim, refs).await)?;
    }
    Ok(())
}

/// Upstream's status: counts of created, ready, available, current and updated pods, and
/// the revisions; a finished rolling update makes the update revision current.
fn compute_status(view: &View<'_>) -> StatefulSetStatus {
    let set = view.set;
    let mut status = set.status.clone().unwrap_or_default();
    let mut counts = StatefulSetStatus::default();
    let current = view.current.name_any();
    let update = view.update.name_any();
    for pod in view
        .replicas
        .values()
        .chain(view.condemned.iter().map(|(_, p)| p))
    {
        counts.replicas += 1;
        if pods::phase(pod) == "Running" && pods::is_ready(pod) {
            *counts.ready_replicas.get_or_insert(0) += 1;
            if pods::is_available(pod, view.min_ready, view.now) {
                *counts.available_replicas.get_or_insert(0) += 1;
            }
        }
        if pod.metadata.deletion_timestamp.is_none() {
            let revision = pod.labels().get(REVISION_LABEL);
            if revision == Some(&current) {
                *counts.current_replicas.get_or_insert(0) += 1;
            }
            if revision == Some(&update) {
                *counts.updated_replicas.get_or_insert(0) += 1;
            }
        }
    }
    status.replicas = counts.replicas;
    status.ready_replicas = Some(counts.ready_replicas.unwrap_or(0));
    status.available_replicas = Some(counts.available_replicas.unwrap_or(0));
    status.current_replicas = Some(counts.current_replicas.unwrap_or(0));
    status.updated_replicas = Some(counts.updated_replicas.unwrap_or(0));
    status.current_revision = Some(current);
    status.update_revision = Some(update.clone());
    status.observed_generation = set.metadata.generation;
    status.collision_count = Some(status.collision_count.unwrap_or(0));
    let rolling = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    if rolling
        && status.updated_replicas == Some(status.replicas)
        && status.ready_replicas == Some(status.replicas)
    {
        status.current_revision = Some(update);
        status.current_replicas = status.updated_replicas;
    }
    status
}
