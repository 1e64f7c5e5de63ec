//! The disruption controller, as upstream's: keeps each PodDisruptionBudget's status — how
//! many of its pods are healthy, how many must be, and so how many disruptions are allowed —
//! which the `pods/eviction` subresource reads and takes from. Pods an eviction has just
//! taken (`disruptedPods`) do not count as healthy until they are gone or two minutes pass.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::{Clock, Result, owners, pods};

/// How long an evicted pod that is not yet being deleted is kept out of the healthy count.
const DISRUPTION_TIMEOUT: jiff::SignedDuration = jiff::SignedDuration::from_secs(120);

struct Context {
    client: Client,
    clock: Arc<dyn Clock>,
}

/// Runs the controller until the process ends.
pub async fn run(client: Client, clock: Arc<dyn Clock>) {
    let budgets: Api<PodDisruptionBudget> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let controller = Controller::new(budgets, watcher::Config::default());
    let store = controller.store();
    controller
        // A pod changes the budgets of its namespace that select it.
        .watches(pods, watcher::Config::default(), move |pod: Pod| {
            let ns = pod.namespace();
            store
                .state()
                .iter()
                .filter(|b| b.namespace() == ns)
                .filter(|b| {
                    let selector = b.spec.as_ref().and_then(|s| s.selector.as_ref());
                    selector.is_some()
                        && owners::selector(selector)
                            .ok()
                            .flatten()
                            .is_some_and(|s| owners::selects(Some(&s), &pod.metadata))
                })
                .map(|b| ObjectRef::from_obj(b.as_ref()))
                .collect::<Vec<_>>()
        })
        .run(
            reconcile,
            |_, error, _| crate::retry_after_error("disruption", error),
            Arc::new(Context { client, clock }),
        )
        .for_each(|_| async {})
        .await;
}

fn percent_of(value: &IntOrString, total: i32) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(p) => {
            let percent: i64 = p.trim_end_matches('%').parse().unwrap_or(0);
            i32::try_from((i64::from(total) * percent + 99) / 100).unwrap_or(i32::MAX)
        }
    }
}

/// The replicas the pods' controllers ask for (upstream's expected scale), or None when a
/// pod has no controller whose scale is known.
async fn expected_scale(client: &Client, ns: &str, selected: &[Pod]) -> Result<Option<i32>> {
    let mut controllers = BTreeSet::new();
    for pod in selected {
        let Some(owner) = owners::controller_of(&pod.metadata) else {
            return Ok(None);
        };
        controllers.insert((owner.kind.clone(), owner.name.clone()));
    }
    let mut total = 0;
    for (kind, name) in controllers {
        let replicas = match kind.as_str() {
            "ReplicaSet" => Api::<ReplicaSet>::namespaced(client.clone(), ns)
                .get_opt(&name)
                .await?
                .and_then(|o| o.spec.and_then(|s| s.replicas)),
            "StatefulSet" => Api::<StatefulSet>::namespaced(client.clone(), ns)
                .get_opt(&name)
                .await?
                .and_then(|o| o.spec.and_then(|s| s.replicas)),
            "ReplicationController" => Api::<ReplicationController>::namespaced(client.clone(), ns)
                .get_opt(&name)
                .await?
                .and_then(|o| o.spec.and_then(|s| s.replicas)),
            _ => return Ok(None),
        };
        total += replicas.unwrap_or(1);
    }
    Ok(Some(total))
}

async fn reconcile(budget: Arc<PodDisruptionBudget>, ctx: Arc<Context>) -> Result<Action> {
    let ns = budget.namespace().unwrap_or_default();
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(budget) = budgets.get_opt(&budget.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let spec = budget.spec.clone().unwrap_or_default();
    let now = ctx.clock.now();
    // A budget without a selector selects nothing (policy/v1); an empty one, every pod.
    let selected: Vec<Pod> = match owners::selector(spec.selector.as_ref())? {
        Some(selector) if spec.selector.is_some() => {
            Api::<Pod>::namespaced(ctx.client.clone(), &ns)
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|p| owners::selects(Some(&selector), &p.metadata))
                .filter(|p| !matches!(pods::phase(p), "Succeeded" | "Failed"))
                .collect()
        }
        _ => Vec::new(),
    };
    let status = budget.status.clone().unwrap_or_default();
    // Evicted pods stay unhealthy until they are being deleted or the timeout passes.
    let mut disrupted = BTreeMap::new();
    let mut next_expiry: Option<jiff::Timestamp> = None;
    for (name, at) in status.disrupted_pods.clone().unwrap_or_default() {
        let expires = at.0 + DISRUPTION_TIMEOUT;
        let waiting = selected
            .iter()
            .any(|p| p.name_any() == name && p.metadata.deletion_timestamp.is_none());
        if waiting && expires > now {
            next_expiry = Some(next_expiry.map_or(expires, |e| e.min(expires)));
            disrupted.insert(name, at);
        }
    }
    let healthy = selected
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && pods::is_ready(p)
                && !disrupted.contains_key(&p.name_any())
        })
        .count();
    let healthy = i32::try_from(healthy).unwrap_or(i32::MAX);
    let count = i32::try_from(selected.len()).unwrap_or(i32::MAX);
    let (expected, desired) = match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(n)), _) => (count, *n),
        (Some(min), _) => {
            let expected = expected_scale(&ctx.client, &ns, &selected)
                .await?
                .unwrap_or(count);
            (expected, percent_of(min, expected))
        }
        (None, Some(max)) => {
            let expected = expected_scale(&ctx.client, &ns, &selected)
                .await?
                .unwrap_or(count);
            (expected, (expected - percent_of(max, expected)).max(0))
        }
        (None, None) => (count, 0),
    };
    let allowed = if expected <= 0 {
        0
    } else {
        (healthy - desired).max(0)
    };
    let (condition_status, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let old_condition = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed");
    let transition = match old_condition {
        Some(c) if c.status == condition_status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let new_status = PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        disruptions_allowed: allowed,
        expected_pods: expected,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: budget.metadata.generation,
        conditions: Some(vec![Condition {
            type_: "DisruptionAllowed".into(),
            status: condition_status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: transition,
            observed_generation: budget.metadata.generation,
        }]),
    };
    if budget.status.as_ref() != Some(&new_status) {
        let mut updated = budget.clone();
        updated.status = Some(new_status);
        let result = budgets
            .replace_status(&budget.name_any(), &PostParams::default(), &updated)
            .await;
        crate::gone_is_fine(result)?;
    }
    Ok(match next_expiry {
        Some(at) => Action::requeue(ctx.clock.real_wait(
            Duration::try_from(at.duration_since(now)).unwrap_or_default()
                + Duration::from_millis(100),
        )),
        None => Action::await_change(),
    })
}
