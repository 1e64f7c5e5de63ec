//! The horizontal pod autoscaler controller, as upstream's: every sync period (15 s) each
//! HorizontalPodAutoscaler reads its target's `scale`, the target's pods and their resource
//! metrics (metrics.k8s.io, served from the node agents' cgroup samples), works out the
//! replicas each metric asks for ([`replicas`]), takes the largest, normalizes it
//! ([`behavior`]) and writes it to the target's `scale`. Status, conditions and events carry
//! upstream's reasons and messages. On a Fargate profile's pods, each replica added is a new
//! Fargate node: supply follows demand.

mod behavior;
mod replicas;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus,
    MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use self::behavior::{Bounds, History, Policy, Rules, Select};
use self::replicas::{PodFacts, Sample, Tuning};
use crate::events::Events;
use crate::{Clock, Result, api_message, pods};

/// The controller's settings (upstream's `--horizontal-pod-autoscaler-*` flags).
pub struct Config {
    /// How often each autoscaler is synced (15 s).
    pub sync_period: Duration,
    /// How long scale-down waits for recommendations to agree when `behavior` does not say
    /// (5 minutes).
    pub downscale_stabilization: Duration,
    /// Where the time comes from.
    pub clock: Arc<dyn Clock>,
}

impl Config {
    /// Upstream's defaults.
    pub fn new(clock: Arc<dyn Clock>) -> Config {
        Config {
            sync_period: Duration::from_secs(15),
            downscale_stabilization: Duration::from_secs(300),
            clock,
        }
    }
}

const TUNING: Tuning = Tuning {
    tolerance: 0.1,
    cpu_initialization_period: SignedDuration::from_mins(5),
    initial_readiness_delay: SignedDuration::from_secs(30),
};

struct Context {
    client: Client,
    config: Config,
    events: Events,
    histories: Mutex<HashMap<(String, String), History>>,
    /// The resources of the target kinds found so far (a kind's resource does not change
    /// while it is served; discovery once per kind, not once per sync).
    kinds: Mutex<HashMap<GroupVersionKind, ApiResource>>,
}

/// Runs the controller until the process ends.
pub async fn run(client: Client, config: Config) {
    let autoscalers: Api<HorizontalPodAutoscaler> = Api::all(client.clone());
    let context = Arc::new(Context {
        events: Events::new(client.clone(), "horizontal-pod-autoscaler"),
        client,
        config,
        histories: Mutex::default(),
        kinds: Mutex::default(),
    });
    Controller::new(autoscalers, watcher::Config::default())
        .run(
            reconcile,
            |_, error, _| crate::retry_after_error("horizontal-pod-autoscaler", error),
            context,
        )
        .for_each(|_| async {})
        .await;
}

/// Conditions as upstream sets them: a condition keeps its transition time while its status
/// stays the same.
struct Conditions<'a> {
    list: Vec<HorizontalPodAutoscalerCondition>,
    now: &'a Time,
}

impl Conditions<'_> {
    fn set(&mut self, type_: &str, status: &str, reason: &str, message: String) {
        let transition = self
            .list
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| self.now.clone());
        let condition = HorizontalPodAutoscalerCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(transition),
        };
        match self.list.iter_mut().find(|c| c.type_ == type_) {
            Some(existing) => *existing = condition,
            None => self.list.push(condition),
        }
    }
}

/// Why the metrics gave no answer: the ScalingActive condition's reason and message.
struct Failure {
    reason: &'static str,
    message: String,
}

async fn reconcile(hpa: Arc<HorizontalPodAutoscaler>, ctx: Arc<Context>) -> Result<Action> {
    let ns = hpa.namespace().unwrap_or_default();
    let key = (ns.clone(), hpa.name_any());
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(hpa) = api.get_opt(&hpa.name_any()).await? else {
        ctx.histories.lock().expect("not poisoned").remove(&key);
        return Ok(Action::await_change());
    };
    let requeue = Action::requeue(ctx.config.clock.real_wait(ctx.config.sync_period));
    let now = ctx.config.clock.now();
    let now_time = Time(now);
    let reference = hpa.object_ref(&());
    let spec = hpa.spec.clone().unwrap_or_default();
    let old_status = hpa.status.clone().unwrap_or_default();
    let mut status = old_status.clone();
    let mut conditions = Conditions {
        list: old_status.conditions.clone().unwrap_or_default(),
        now: &now_time,
    };
    status.observed_generation = hpa.metadata.generation;

    let target = &spec.scale_target_ref;
    let scale = match scale_api(&ctx, &ns, &target.api_version, &target.kind).await {
        Ok(api) => api
            .get_scale(&target.name)
            .await
            .map(|s| (api, s))
            .map_err(|e| api_message(&e)),
        Err(e) => Err(e),
    };
    let (scale_api, scale) = match scale {
        Ok(found) => found,
        Err(e) => {
            ctx.events
                .warning(&reference, "FailedGetScale", "GetScale", e.clone())
                .await;
            conditions.set(
                "AbleToScale",
                "False",
                "FailedGetScale",
                format!("the HPA controller was unable to get the target's current scale: {e}"),
            );
            status.conditions = Some(conditions.list);
            write_status(&api, &hpa, &old_status, status).await?;
            return Ok(requeue);
        }
    };
    conditions.set(
        "AbleToScale",
        "True",
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".into(),
    );
    let current = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
    let scale_status = scale.status.unwrap_or_default();
    let (min, max) = (spec.min_replicas.unwrap_or(1), spec.max_replicas);

    let mut reason = String::new();
    let desired = if current == 0 && min != 0 {
        conditions.set(
            "ScalingActive",
            "False",
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero".into(),
        );
        0
    } else if current > max {
        reason = "Current number of replicas above Spec.MaxReplicas".into();
        max
    } else if current < min {
        reason = "Current number of replicas below Spec.MinReplicas".into();
        min
    } else {
        let metrics = effective_metrics(&spec.metrics);
        let selector = scale_status.selector.clone().unwrap_or_default();
        let computed = compute(&ctx, &ns, &metrics, current, &selector, now).await;
        status.current_metrics = Some(computed.statuses);
        for failure in &computed.failures {
            ctx.events
                .warning(
                    &reference,
                    failure.reason,
                    "ComputeMetrics",
                    failure.message.clone(),
                )
                .await;
        }
        let Some((proposal, metric)) = computed.proposal else {
            let first = computed
                .failures
                .first()
                .expect("a failure when nothing is proposed");
            conditions.set(
                "ScalingActive",
                "False",
                first.reason,
                format!(
                    "the HPA was unable to compute the replica count: {}",
                    first.message
                ),
            );
            let message = format!(
                "invalid metrics ({} invalid out of {}), first error is: {}",
                computed.failures.len(),
                metrics.len(),
                first.message
            );
            ctx.events
                .warning(
                    &reference,
                    "FailedComputeMetricsReplicas",
                    "ComputeMetrics",
                    message,
                )
                .await;
            status.current_replicas = Some(scale_status.replicas);
            status.conditions = Some(conditions.list);
            write_status(&api, &hpa, &old_status, status).await?;
            return Ok(requeue);
        };
        conditions.set(
            "ScalingActive",
            "True",
            "ValidMetricFound",
            format!("the HPA was able to successfully calculate a replica count from {metric}"),
        );
        if proposal > current {
            reason = format!("{metric} above target");
        } else if proposal < current {
            reason = "All metrics below target".into();
        }
        let bounds = Bounds { current, min, max };
        let mut histories = ctx.histories.lock().expect("not poisoned");
        let history = histories.entry(key.clone()).or_default();
        let normalized = match &spec.behavior {
            None => history.normalize_default(
                proposal,
                bounds,
                signed(ctx.config.downscale_stabilization),
                now,
            ),
            Some(b) => {
                let down_default = signed(ctx.config.downscale_stabilization);
                let up = rules(b.scale_up.as_ref(), SignedDuration::ZERO);
                let down = rules(b.scale_down.as_ref(), down_default);
                history.normalize(proposal, bounds, &up, &down, now)
            }
        };
        let (able_reason, able_message) = normalized.able;
        conditions.set("AbleToScale", "True", able_reason, able_message.into());
        let (limited, (limit_reason, limit_message)) = normalized.limited;
        conditions.set(
            "ScalingLimited",
            if limited { "True" } else { "False" },
            limit_reason,
            limit_message.into(),
        );
        normalized.replicas
    };

    if desired != current {
        let patch = Patch::Merge(json!({"spec": {"replicas": desired}}));
        match scale_api
            .patch_scale(&target.name, &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => {
                conditions.set(
                    "AbleToScale",
                    "True",
                    "SucceededRescale",
                    format!("the HPA controller was able to update the target scale to {desired}"),
                );
                ctx.events
                    .normal(
                        &reference,
                        "SuccessfulRescale",
                        "Scale",
                        format!("New size: {desired}; reason: {reason}"),
                    )
                    .await;
                status.last_scale_time = Some(now_time.clone());
                if let Some(b) = &spec.behavior {
                    let rules = if desired > current {
                        &b.scale_up
                    } else {
                        &b.scale_down
                    };
                    let keep = longest_period(rules.as_ref());
                    ctx.histories
                        .lock()
                        .expect("not poisoned")
                        .entry(key)
                        .or_default()
                        .scaled(current, desired, keep, now);
                }
            }
            Err(e) => {
                let e = api_message(&e);
                ctx.events
                    .warning(
                        &reference,
                        "FailedRescale",
                        "Scale",
                        format!("New size: {desired}; reason: {reason}; error: {e}"),
                    )
                    .await;
                conditions.set(
                    "AbleToScale",
                    "False",
                    "FailedUpdateScale",
                    format!("the HPA controller was unable to update the target scale: {e}"),
                );
            }
        }
    }
    status.current_replicas = Some(scale_status.replicas);
    status.desired_replicas = desired;
    status.conditions = Some(conditions.list);
    write_status(&api, &hpa, &old_status, status).await?;
    Ok(requeue)
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// The metrics an autoscaler scales on: as given, or upstream's default of CPU at 80%.
fn effective_metrics(metrics: &Option<Vec<MetricSpec>>) -> Vec<MetricSpec> {
    match metrics {
        Some(m) if !m.is_empty() => m.clone(),
        _ => serde_json::from_value(json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}]))
        .expect("a valid metric"),
    }
}

fn rules(given: Option<&HPAScalingRules>, default_window: SignedDuration) -> Rules {
    let given = given.cloned().unwrap_or_default();
    let policies = given.policies.unwrap_or_default();
    Rules {
        window: given
            .stabilization_window_seconds
            .map_or(default_window, |s| SignedDuration::from_secs(s.into())),
        select: match given.select_policy.as_deref() {
            Some("Min") => Select::Min,
            Some("Disabled") => Select::Disabled,
            _ => Select::Max,
        },
        policies: policies
            .iter()
            .map(|p| Policy {
                percent: p.type_ == "Percent",
                value: p.value,
                period: SignedDuration::from_secs(p.period_seconds.into()),
            })
            .collect(),
    }
}

fn longest_period(rules: Option<&HPAScalingRules>) -> SignedDuration {
    rules
        .and_then(|r| r.policies.as_ref())
        .into_iter()
        .flatten()
        .map(|p| SignedDuration::from_secs(p.period_seconds.into()))
        .max()
        .unwrap_or(SignedDuration::from_secs(15))
}

/// The API of the target's kind, found through discovery (any kind with a `scale`).
async fn scale_api(
    ctx: &Context,
    ns: &str,
    api_version: &Option<String>,
    kind: &str,
) -> std::result::Result<Api<DynamicObject>, String> {
    let api_version = api_version.as_deref().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let known = ctx.kinds.lock().expect("not poisoned").get(&gvk).cloned();
    let resource = match known {
        Some(resource) => resource,
        None => {
            let (resource, _) = kube::discovery::pinned_kind(&ctx.client, &gvk)
                .await
                .map_err(|_| {
                    format!(
                        "the server could not find the requested resource (kind {kind} in {api_version})"
                    )
                })?;
            ctx.kinds
                .lock()
                .expect("not poisoned")
                .insert(gvk, resource.clone());
            resource
        }
    };
    Ok(Api::namespaced_with(ctx.client.clone(), ns, &resource))
}

/// What the metrics said: the statuses to show, each failed metric's failure, and the
/// proposal with the metric that made it — or `None` when the failures decide.
struct Computed {
    statuses: Vec<MetricStatus>,
    failures: Vec<Failure>,
    proposal: Option<(i32, String)>,
}

/// Upstream's `computeReplicasForMetrics`: each metric proposes; the largest wins. A metric
/// that cannot be read fails the whole sync when every metric fails, or when the others
/// would scale in (scaling in on partial information could be wrong).
async fn compute(
    ctx: &Context,
    ns: &str,
    metrics: &[MetricSpec],
    current: i32,
    selector: &str,
    now: Timestamp,
) -> Computed {
    let fail = |reason, message: String| Computed {
        statuses: Vec::new(),
        failures: vec![Failure { reason, message }],
        proposal: None,
    };
    if selector.is_empty() {
        return fail(
            "InvalidSelector",
            "the HPA target's scale is missing a selector".into(),
        );
    }
    let listed = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await;
    let pods = match listed {
        Ok(list) => list.items,
        Err(e) => return fail("FailedGetResourceMetric", api_message(&e)),
    };
    let usage = pod_usage(&ctx.client, ns, selector).await;
    let mut computed = Computed {
        statuses: Vec::new(),
        failures: Vec::new(),
        proposal: None,
    };
    for metric in metrics {
        match resource_proposal(metric, current, &pods, &usage, now) {
            Ok((proposal, name, status)) => {
                computed.statuses.push(status);
                if computed
                    .proposal
                    .as_ref()
                    .is_none_or(|(b, _)| proposal > *b)
                {
                    computed.proposal = Some((proposal, name));
                }
            }
            Err(failure) => computed.failures.push(failure),
        }
    }
    let scale_in = computed
        .proposal
        .as_ref()
        .is_some_and(|(p, _)| *p < current);
    if !computed.failures.is_empty() && scale_in {
        computed.proposal = None;
    }
    computed
}

/// One pod's containers' use: (container, resource) -> milli-units, with the sample's time.
struct PodUsage {
    containers: Vec<(String, BTreeMap<String, i64>)>,
    timestamp: Timestamp,
    window: SignedDuration,
}

/// The pods' metrics from metrics.k8s.io; an error leaves them empty (upstream reports it
/// as "no metrics returned").
async fn pod_usage(
    client: &Client,
    ns: &str,
    selector: &str,
) -> Result<BTreeMap<String, PodUsage>, String> {
    let path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods");
    let request = kube::core::Request::new(path)
        .list(&ListParams::default().labels(selector))
        .map_err(|e| e.to_string())?;
    let list: Value = client.request(request).await.map_err(|e| {
        format!(
            "unable to fetch metrics from resource metrics API: {}",
            api_message(&e)
        )
    })?;
    let mut usage = BTreeMap::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let Some(name) = item["metadata"]["name"].as_str() else {
            continue;
        };
        let timestamp = item["timestamp"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(Timestamp::now);
        let window = item["window"]
            .as_str()
            .and_then(|w| w.trim_end_matches('s').parse::<f64>().ok())
            .map_or(SignedDuration::ZERO, SignedDuration::from_secs_f64);
        let containers = item["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let resources = c["usage"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(r, q)| {
                        let milli = keg_api::quantity::parse_millis(q.as_str()?).ok()?;
                        Some((r.clone(), i64::try_from(milli).ok()?))
                    })
                    .collect();
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    resources,
                )
            })
            .collect();
        usage.insert(
            name.to_string(),
            PodUsage {
                containers,
                timestamp,
                window,
            },
        );
    }
    Ok(usage)
}

/// The pod's request of `resource` in milli-units, over its containers (and sidecars) or the
/// one named.
fn pod_request(
    pod: &Pod,
    resource: &str,
    container: Option<&str>,
) -> std::result::Result<i64, String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let sidecars = spec
        .init_containers
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let mut total = 0i64;
    for c in spec.containers.into_iter().chain(sidecars) {
        if container.is_some_and(|name| name != c.name) {
            continue;
        }
        let request = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(resource))
            .and_then(|q| keg_api::quantity::parse_millis(&q.0).ok());
        match request {
            Some(milli) => total += i64::try_from(milli).unwrap_or(i64::MAX),
            None => {
                return Err(format!(
                    "missing request for {resource} in container {} of Pod {}",
                    c.name,
                    pod.name_any()
                ));
            }
        }
    }
    Ok(total)
}

fn facts(pod: &Pod, resource: &str, container: Option<&str>) -> PodFacts {
    PodFacts {
        name: pod.name_any(),
        phase: pods::phase(pod).to_string(),
        deleting: pod.metadata.deletion_timestamp.is_some(),
        ready: pods::ready_condition(pod).map(|c| {
            let changed = c
                .last_transition_time
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
            (c.status == "True", changed)
        }),
        started: pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0),
        request: pod_request(pod, resource, container),
    }
}

/// A quantity of milli-units as upstream prints a DecimalSI milli-quantity.
fn milli_quantity(milli: i64) -> Quantity {
    if milli % 1000 != 0 {
        return Quantity(format!("{milli}m"));
    }
    let mut value = milli / 1000;
    let mut suffix = 0;
    const SUFFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    while value != 0 && value % 1000 == 0 && suffix + 1 < SUFFIXES.len() {
        value /= 1000;
        suffix += 1;
    }
    Quantity(format!("{value}{}", SUFFIXES[suffix]))
}

/// One Resource or ContainerResource metric's proposal, the name its reason uses, and its
/// status.
fn resource_proposal(
    metric: &MetricSpec,
    current: i32,
    pods: &[Pod],
    usage: &std::result::Result<BTreeMap<String, PodUsage>, String>,
    now: Timestamp,
) -> std::result::Result<(i32, String, MetricStatus), Failure> {
    let (resource, container, target) = match (
        metric.type_.as_str(),
        &metric.resource,
        &metric.container_resource,
    ) {
        ("Resource", Some(r), _) => (r.name.clone(), None, r.target.clone()),
        ("ContainerResource", _, Some(c)) => {
            (c.name.clone(), Some(c.container.clone()), c.target.clone())
        }
        (kind, _, _) => {
            let reason = match kind {
                "Pods" => "FailedGetPodsMetric",
                "Object" => "FailedGetObjectMetric",
                _ => "FailedGetExternalMetric",
            };
            return Err(Failure {
                reason,
                message: format!(
                    "unable to get {} metric: no custom or external metrics API is served",
                    kind.to_lowercase()
                ),
            });
        }
    };
    let failure = |message: String| Failure {
        reason: if container.is_some() {
            "FailedGetContainerResourceMetric"
        } else {
            "FailedGetResourceMetric"
        },
        message,
    };
    let what = if container.is_some() {
        format!("{resource} container resource")
    } else {
        format!("{resource} resource")
    };
    let usage = usage.as_ref().map_err(|e| failure(format!("failed to get {resource} utilization: unable to get metrics for resource {resource}: {e}")))?;
    let samples: BTreeMap<String, Sample> = usage
        .iter()
        .filter_map(|(pod, u)| {
            let milli = u
                .containers
                .iter()
                .filter(|(c, _)| container.as_deref().is_none_or(|name| name == c))
                .map(|(_, r)| r.get(&resource).copied())
                .sum::<Option<i64>>()?;
            Some((
                pod.clone(),
                Sample {
                    milli,
                    timestamp: u.timestamp,
                    window: u.window,
                },
            ))
        })
        .collect();
    if samples.is_empty() {
        return Err(failure(format!(
            "failed to get {resource} utilization: unable to get metrics for resource {resource}: no metrics returned from resource metrics API"
        )));
    }
    let pod_facts: Vec<PodFacts> = pods
        .iter()
        .map(|p| facts(p, &resource, container.as_deref()))
        .collect();
    let cpu = resource == "cpu";
    let (goal, name) = match target.average_utilization {
        Some(percent) => (
            replicas::Target::Utilization(percent),
            format!("{what} utilization (percentage of request)"),
        ),
        None => {
            let milli = target
                .average_value
                .as_ref()
                .and_then(|q| keg_api::quantity::parse_millis(&q.0).ok())
                .and_then(|m| i64::try_from(m).ok())
                .unwrap_or(0)
                .max(1);
            (replicas::Target::AverageValue(milli), what)
        }
    };
    let measured = if target.average_utilization.is_some() {
        "utilization"
    } else {
        "usage"
    };
    let proposal = replicas::calculate(current, goal, &pod_facts, samples, cpu, &TUNING, now)
        .map_err(|e| failure(format!("failed to get {resource} {measured}: {e}")))?;
    let value = MetricValueStatus {
        average_utilization: proposal.utilization,
        average_value: Some(milli_quantity(proposal.average_milli)),
        value: None,
    };
    let status = match container {
        None => MetricStatus {
            type_: "Resource".into(),
            resource: Some(ResourceMetricStatus {
                name: resource,
                current: value,
            }),
            ..MetricStatus::default()
        },
        Some(container) => MetricStatus {
            type_: "ContainerResource".into(),
            container_resource: Some(ContainerResourceMetricStatus {
                name: resource,
                container,
                current: value,
            }),
            ..MetricStatus::default()
        },
    };
    Ok((proposal.replicas, name, status))
}

/// Writes the status when it changed.
async fn write_status(
    api: &Api<HorizontalPodAutoscaler>,
    hpa: &HorizontalPodAutoscaler,
    old: &HorizontalPodAutoscalerStatus,
    status: HorizontalPodAutoscalerStatus,
) -> Result<()> {
    if *old == status {
        return Ok(());
    }
    let mut updated = hpa.clone();
    updated.status = Some(status);
    let result = api
        .replace_status(&hpa.name_any(), &PostParams::default(), &updated)
        .await;
    crate::gone_is_fine(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_print_as_upstream() {
        assert_eq!(milli_quantity(125).0, "125m");
        assert_eq!(milli_quantity(2000).0, "2");
        assert_eq!(milli_quantity(268_435_456_000).0, "268435456");
        assert_eq!(milli_quantity(5_000_000_000).0, "5M");
    }

    #[test]
    fn the_default_metric_is_cpu_at_80_percent() {
        let m = effective_metrics(&None);
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].resource.as_ref().unwrap().target.average_utilization,
            Some(80)
        );
    }

    #[test]
    fn requests_sum_containers_and_name_the_one_missing() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1"},
            "spec": {"containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m"}}},
                {"name": "b", "resources": {"requests": {"cpu": "1"}}},
            ]},
        }))
        .unwrap();
        assert_eq!(pod_request(&pod, "cpu", None), Ok(1250));
        assert_eq!(pod_request(&pod, "cpu", Some("b")), Ok(1000));
        assert_eq!(
            pod_request(&pod, "memory", None),
            Err("missing request for memory in container a of Pod web-1".into())
        );
    }
}
