//! The Job controller, as upstream's: runs pods until `completions` succeed (each index once
//! for Indexed Jobs), at most `parallelism` at a time; counts every finished pod exactly once
//! through a tracking finalizer and `status.uncountedTerminatedPods`; retries failures after
//! an exponential back-off up to `backoffLimit`; honours the pod failure policy,
//! `activeDeadlineSeconds` and `suspend`; and, once the Job has finished,
//! `ttlSecondsAfterFinished` (upstream's TTL-after-finished controller).

pub mod status;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::events::Events;
use crate::pod_control::{PodControl, pod_from_template};
use crate::{Clock, Result, owners, pods};
use status::{INDEX_KEY, Outcome, TRACKING_FINALIZER, Verdict};

struct Context {
    client: Client,
    events: Events,
    clock: Arc<dyn Clock>,
    /// When each Job (by uid) last saw a pod fail, for the back-off before the next pod.
    last_failure: Mutex<HashMap<String, Timestamp>>,
}

/// Runs the controller until the process ends.
pub async fn run(client: Client, clock: Arc<dyn Clock>) {
    let context = Arc::new(Context {
        events: Events::new(client.clone(), "job-controller"),
        client: client.clone(),
        clock,
        last_failure: Mutex::default(),
    });
    let controller = crate::run_workload::<Job, Pod, _, _, _>(&client, "job", reconcile, context);
    tokio::join!(controller, release_orphans(client.clone()));
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Context>) -> Result<Action> {
    let ns = job.namespace().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(job) = jobs.get_opt(&job.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let spec = job.spec.clone().unwrap_or_default();
    let selector = owners::selector(spec.selector.as_ref())?;
    let all = pods_api.list(&ListParams::default()).await?.items;
    let claimed = owners::claim(&job, selector.as_ref(), &pods_api, all).await?;
    let now = ctx.clock.now();
    let mut status = job.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();
    let finished = status::has_condition(&conditions, "Complete")
        || status::has_condition(&conditions, "Failed");
    if finished || job.metadata.deletion_timestamp.is_some() {
        // Nothing more is counted: let every pod go.
        release(&pods_api, claimed.iter().filter(|p| status::is_tracked(p))).await?;
        return if finished {
            expire(&jobs, &job, ctx.clock.as_ref()).await
        } else {
            Ok(Action::await_change())
        };
    }

    // Count each finished pod once: first note it as uncounted, then let the pod go, then
    // fold it into the counts (all three survive a crash between them).
    let mut uncounted = status.uncounted_terminated_pods.take().unwrap_or_default();
    let mut completed = status::parse_indexes(status.completed_indexes.as_deref().unwrap_or(""));
    let already: BTreeSet<String> = uncounted
        .succeeded
        .iter()
        .chain(uncounted.failed.iter())
        .flatten()
        .cloned()
        .collect();
    let mut failure_target = None;
    let mut ignored = Vec::new();
    let mut new_failures = 0;
    for pod in claimed.iter().filter(|p| status::is_tracked(p)) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if already.contains(&uid) {
            continue;
        }
        match status::outcome(pod) {
            Some(Outcome::Succeeded) => {
                if spec.completion_mode.as_deref() == Some("Indexed") {
                    let within = |i: &u32| i64::from(*i) < i64::from(spec.completions.unwrap_or(0));
                    completed.extend(status::index_of(pod).filter(within));
                }
                uncounted.succeeded.get_or_insert_default().push(uid);
            }
            Some(Outcome::Failed) => match status::judge_failure(&spec, pod) {
                Verdict::Ignore => ignored.push(pod.clone()),
                verdict => {
                    if let Verdict::FailJob(message) = verdict {
                        failure_target.get_or_insert(("PodFailurePolicy", message));
                    }
                    new_failures += 1;
                    uncounted.failed.get_or_insert_default().push(uid);
                }
            },
            None => {}
        }
    }
    if new_failures > 0 {
        ctx.last_failure
            .lock()
            .expect("back-off lock")
            .insert(job.metadata.uid.clone().unwrap_or_default(), now);
    }
    let noted = uncounted_len(&uncounted) > already.len();
    if noted {
        let mut interim = job.status.clone().unwrap_or_default();
        interim.uncounted_terminated_pods = Some(uncounted.clone());
        interim.completed_indexes = Some(status::format_indexes(&completed));
        write_status(&jobs, &job, interim).await?;
    }
    let counted: BTreeSet<&String> = uncounted
        .succeeded
        .iter()
        .chain(uncounted.failed.iter())
        .flatten()
        .collect();
    let to_release = claimed.iter().filter(|p| {
        status::is_tracked(p) && p.metadata.uid.as_ref().is_some_and(|u| counted.contains(u))
    });
    release(&pods_api, to_release.chain(ignored.iter())).await?;
    let folded_succeeded = uncounted.succeeded.take().unwrap_or_default().len();
    let folded_failed = uncounted.failed.take().unwrap_or_default().len();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let succeeded = status.succeeded.unwrap_or(0) + count(folded_succeeded);
    let failed = status.failed.unwrap_or(0) + count(folded_failed);

    let active: Vec<&Pod> = claimed.iter().filter(|p| pods::is_active(p)).collect();
    let terminating = claimed
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && status::outcome(p).is_none())
        .count();
    let suspended = spec.suspend == Some(true);
    let control = PodControl::new(&ctx.client, &ctx.events, &job);
    let reference = job.object_ref(&());
    let mut requeue: Option<Duration> = None;

    if suspended {
        if !status::has_condition(&conditions, "Suspended") {
            status::set_condition(
                &mut conditions,
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
                now,
            );
            ctx.events
                .normal(&reference, "Suspended", "Suspend", "Job suspended".into())
                .await;
        }
        status.start_time = None;
        control.delete_all(&names(&active)).await?;
    } else {
        if status::has_condition(&conditions, "Suspended") {
            status::set_condition(
                &mut conditions,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
                now,
            );
            ctx.events
                .normal(&reference, "Resumed", "Resume", "Job resumed".into())
                .await;
        }
        let start = status.start_time.get_or_insert(Time(now)).0;
        let restarts: i32 = if restart_policy(&spec) == "OnFailure" {
            active.iter().map(|p| restart_count(p)).sum()
        } else {
            0
        };
        let deadline = spec
            .active_deadline_seconds
            .map(|s| start + jiff::SignedDuration::from_secs(s));
        if failure_target.is_none() && existing_target(&conditions).is_none() {
            if failed + restarts > spec.backoff_limit.unwrap_or(6) {
                failure_target = Some((
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit".into(),
                ));
            } else if let Some(deadline) = deadline {
                if now >= deadline {
                    failure_target = Some((
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline".into(),
                    ));
                } else {
                    requeue = Some(until(now, deadline));
                }
            }
        }
        if let Some((reason, message)) = &failure_target {
            status::set_condition(
                &mut conditions,
                "FailureTarget",
                "True",
                reason,
                message,
                now,
            );
            ctx.events
                .warning(&reference, reason, "Fail", message.clone())
                .await;
        }
        let done = succeeded_enough(&spec, succeeded, &completed, active.len());
        if done && !status::has_condition(&conditions, "SuccessCriteriaMet") {
            status::set_condition(
                &mut conditions,
                "SuccessCriteriaMet",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now,
            );
        }
        let ending = existing_target(&conditions).is_some()
            || status::has_condition(&conditions, "SuccessCriteriaMet");
        if ending {
            control.delete_all(&names(&active)).await?;
            let lingering = claimed.iter().any(|p| {
                status::is_tracked(p) || (pods::is_active(p) && status::outcome(p).is_none())
            });
            if !lingering && active.is_empty() {
                finish(&mut conditions, &mut status, now);
                if status::has_condition(&conditions, "Complete") {
                    ctx.events
                        .normal(&reference, "Completed", "Complete", "Job completed".into())
                        .await;
                }
            }
        } else {
            let wait = backoff_remaining(&ctx, &job, failed, now);
            if wait.is_zero() {
                manage(&job, &spec, &active, succeeded, &completed, &control).await?;
            } else {
                requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
            }
        }
    }

    let ready = active.iter().filter(|p| pods::is_ready(p)).count();
    status.active = Some(count(active.len()));
    status.ready = Some(count(ready));
    status.terminating = Some(count(terminating));
    status.succeeded = Some(succeeded);
    status.failed = Some(failed);
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    status.completed_indexes = (spec.completion_mode.as_deref() == Some("Indexed"))
        .then(|| status::format_indexes(&completed));
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    let latest = if noted {
        jobs.get(&job.name_any()).await?
    } else {
        job.clone()
    };
    write_status(&jobs, &latest, status).await?;
    Ok(requeue.map_or_else(Action::await_change, |d| {
        Action::requeue(ctx.clock.real_wait(d))
    }))
}

fn uncounted_len(u: &UncountedTerminatedPods) -> usize {
    u.succeeded.as_ref().map_or(0, Vec::len) + u.failed.as_ref().map_or(0, Vec::len)
}

fn names(pods: &[&Pod]) -> Vec<String> {
    pods.iter().map(|p| p.name_any()).collect()
}

fn restart_policy(spec: &JobSpec) -> &str {
    spec.template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Never")
}

fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum())
}

fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or_default() + Duration::from_millis(100)
}

/// The reason and message of a FailureTarget condition already set.
fn existing_target(conditions: &[k8s_openapi::api::batch::v1::JobCondition]) -> Option<&str> {
    conditions
        .iter()
        .find(|c| c.type_ == "FailureTarget" && c.status == "True")
        .and_then(|c| c.reason.as_deref())
}

/// Whether enough pods have succeeded: `completions` of them (every index, when Indexed),
/// or, for a work queue without completions, any one once none is still running.
fn succeeded_enough(
    spec: &JobSpec,
    succeeded: i32,
    completed: &BTreeSet<u32>,
    active: usize,
) -> bool {
    match (spec.completions, spec.completion_mode.as_deref()) {
        (Some(c), Some("Indexed")) => completed.len() >= usize::try_from(c).unwrap_or(0),
        (Some(c), _) => succeeded >= c,
        (None, _) => succeeded > 0 && active == 0,
    }
}

/// The final condition, once no pod of the Job runs: Failed after a failure target,
/// Complete (with its completion time) after success.
fn finish(
    conditions: &mut Vec<k8s_openapi::api::batch::v1::JobCondition>,
    status: &mut JobStatus,
    now: Timestamp,
) {
    let target = conditions
        .iter()
        .find(|c| c.type_ == "FailureTarget" && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        });
    match target {
        Some((reason, message)) => {
            status::set_condition(conditions, "Failed", "True", &reason, &message, now)
        }
        None => {
            status::set_condition(
                conditions,
                "Complete",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now,
            );
            status.completion_time = Some(Time(now));
        }
    }
}

fn backoff_remaining(ctx: &Context, job: &Job, failed: i32, now: Timestamp) -> Duration {
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let last = ctx
        .last_failure
        .lock()
        .expect("back-off lock")
        .get(&uid)
        .copied();
    match last {
        Some(at) => {
            let ready_at =
                at + jiff::SignedDuration::try_from(status::backoff(failed)).unwrap_or_default();
            if now >= ready_at {
                Duration::ZERO
            } else {
                until(now, ready_at)
            }
        }
        None => Duration::ZERO,
    }
}

/// Creates pods up to `parallelism` (for what is left to complete) or deletes the excess.
async fn manage(
    job: &Job,
    spec: &JobSpec,
    active: &[&Pod],
    succeeded: i32,
    completed: &BTreeSet<u32>,
    control: &PodControl<'_>,
) -> Result<()> {
    let parallelism = usize::try_from(spec.parallelism.unwrap_or(1)).unwrap_or(0);
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let to_make: Vec<Option<u32>> = if indexed {
        let running: BTreeSet<u32> = active.iter().filter_map(|p| status::index_of(p)).collect();
        let total = u32::try_from(spec.completions.unwrap_or(0)).unwrap_or(0);
        let room = parallelism.saturating_sub(active.len());
        (0..total)
            .filter(|i| !completed.contains(i) && !running.contains(i))
            .take(room)
            .map(Some)
            .collect()
    } else {
        let wanted = match spec.completions {
            Some(c) => parallelism.min(usize::try_from(c - succeeded).unwrap_or(0)),
            None if succeeded > 0 => 0,
            None => parallelism,
        };
        if active.len() > wanted {
            let mut newest: Vec<&&Pod> = active.iter().collect();
            newest.sort_by_key(|p| {
                (
                    pods::is_ready(p),
                    std::cmp::Reverse(p.metadata.creation_timestamp.clone()),
                )
            });
            let doomed: Vec<String> = newest
                .iter()
                .take(active.len() - wanted)
                .map(|p| p.name_any())
                .collect();
            return control.delete_all(&doomed).await;
        }
        vec![None; wanted - active.len()]
    };
    let pods: Vec<Pod> = to_make
        .into_iter()
        .map(|index| job_pod(job, spec, index))
        .collect();
    control.create_all(pods).await.map(|_| ())
}

/// A pod of the Job: the template, the tracking finalizer and, for Indexed Jobs, the index
/// in the name, an annotation, a label, the hostname and `JOB_COMPLETION_INDEX`.
fn job_pod(job: &Job, spec: &JobSpec, index: Option<u32>) -> Pod {
    let mut pod = pod_from_template(job, Some(&spec.template));
    pod.metadata
        .finalizers
        .get_or_insert_default()
        .push(TRACKING_FINALIZER.into());
    let Some(index) = index else {
        return pod;
    };
    let name = job.name_any();
    pod.metadata.generate_name = Some(format!("{name}-{index}-"));
    pod.metadata
        .annotations
        .get_or_insert_default()
        .insert(INDEX_KEY.into(), index.to_string());
    pod.metadata
        .labels
        .get_or_insert_default()
        .insert(INDEX_KEY.into(), index.to_string());
    if let Some(pod_spec) = pod.spec.as_mut() {
        pod_spec.hostname = Some(format!("{name}-{index}"));
        let env = EnvVar {
            name: "JOB_COMPLETION_INDEX".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: format!("metadata.annotations['{INDEX_KEY}']"),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let inits = pod_spec.init_containers.iter_mut().flatten();
        for c in pod_spec.containers.iter_mut().chain(inits) {
            c.env.get_or_insert_default().push(env.clone());
        }
    }
    pod
}

/// Removes the tracking finalizer from pods (the pod's resourceVersion guards the write).
async fn release<'a>(api: &Api<Pod>, pods: impl Iterator<Item = &'a Pod>) -> Result<()> {
    for pod in pods {
        let rest: Vec<&String> = pod
            .metadata
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != TRACKING_FINALIZER)
            .collect();
        let patch = json!({"metadata": {
            "finalizers": rest,
            "resourceVersion": pod.metadata.resource_version,
        }});
        let result = api
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await;
        crate::gone_is_fine(result)?;
    }
    Ok(())
}

/// Writes the status when anything changed.
async fn write_status(jobs: &Api<Job>, job: &Job, status: JobStatus) -> Result<()> {
    if job.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let mut updated = job.clone();
    updated.status = Some(status);
    let result = jobs
        .replace_status(&job.name_any(), &PostParams::default(), &updated)
        .await;
    crate::gone_is_fine(result)
}

/// Deletes a finished Job whose `ttlSecondsAfterFinished` has run out (with its pods, in the
/// foreground, as upstream's TTL controller), or waits until it does.
async fn expire(jobs: &Api<Job>, job: &Job, clock: &dyn Clock) -> Result<Action> {
    let now = clock.now();
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return Ok(Action::await_change());
    };
    let finished_at = job.status.as_ref().and_then(|s| {
        s.completion_time.clone().or_else(|| {
            s.conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Failed" && c.status == "True")
                .and_then(|c| c.last_transition_time.clone())
        })
    });
    let Some(Time(finished_at)) = finished_at else {
        return Ok(Action::await_change());
    };
    let expires = finished_at + jiff::SignedDuration::from_secs(i64::from(ttl));
    if now < expires {
        return Ok(Action::requeue(clock.real_wait(until(now, expires))));
    }
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(kube::api::Preconditions {
            uid: job.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    crate::gone_is_fine(jobs.delete(&job.name_any(), &params).await)?;
    Ok(Action::await_change())
}

/// Lets go of finished or deleted pods whose Job is gone, which no Job reconcile will see.
async fn release_orphans(client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    let stream = watcher(pods, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let Ok(pod) = event else { continue };
        if !status::is_tracked(&pod) {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let owner = owners::controller_of(&pod.metadata)
            .filter(|r| r.kind == "Job")
            .cloned();
        let orphaned = match &owner {
            None => true,
            Some(r) => {
                let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
                match jobs.get_opt(&r.name).await {
                    Ok(Some(job)) => job.metadata.uid.as_deref() != Some(r.uid.as_str()),
                    Ok(None) => true,
                    Err(_) => false,
                }
            }
        };
        if orphaned
            && (pod.metadata.deletion_timestamp.is_some() || status::outcome(&pod).is_some())
        {
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            if let Err(e) = release(&api, std::iter::once(&pod)).await {
                tracing::debug!("job controller: releasing an orphaned pod: {e}");
            }
        }
    }
}
