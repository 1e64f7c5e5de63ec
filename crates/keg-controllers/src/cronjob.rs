//! The CronJob controller, as upstream's (v2): at each scheduled time (in `timeZone`, read
//! from the injected clock) it creates a Job named `<cronjob>-<minutes since the epoch>`
//! unless the time was missed by more than `startingDeadlineSeconds`; `concurrencyPolicy`
//! Forbid skips while a Job runs and Replace deletes the running ones; finished Jobs beyond
//! the history limits are deleted; `status.active`, `lastScheduleTime` and
//! `lastSuccessfulTime` follow its Jobs.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};

use crate::events::Events;
use crate::{Clock, Error, Result, owners};

/// The annotation a Job gets with the time it was scheduled for.
const SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// More missed times than this and the controller says so instead of counting.
const MISSED_LIMIT: usize = 100;

struct Context {
    client: Client,
    events: Events,
    clock: Arc<dyn Clock>,
}

/// Runs the controller until the process ends.
pub async fn run(client: Client, clock: Arc<dyn Clock>) {
    let context = Arc::new(Context {
        events: Events::new(client.clone(), "cronjob-controller"),
        client: client.clone(),
        clock,
    });
    crate::run_workload::<CronJob, Job, _, _, _>(&client, "cronjob", reconcile, context).await;
}

/// Whether a Job has finished, and how: `Some("Complete")` or `Some("Failed")`.
fn finished(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

fn time_zone(cj: &CronJob) -> TimeZone {
    cj.spec
        .as_ref()
        .and_then(|s| s.time_zone.as_deref())
        .and_then(|z| TimeZone::get(z).ok())
        .unwrap_or_else(TimeZone::system)
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Context>) -> Result<Action> {
    let ns = cj.namespace().unwrap_or_default();
    let cronjobs: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cj) = cronjobs.get_opt(&cj.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let spec = cj.spec.clone().unwrap_or_default();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let mut jobs: Vec<Job> = jobs_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|j| owners::is_controlled_by(&j.metadata, &uid))
        .collect();
    let reference = cj.object_ref(&());
    let mut status = cj.status.clone().unwrap_or_default();

    // Follow the Jobs: the running ones are active; a finished one is seen once.
    let mut active = Vec::new();
    for job in &jobs {
        let was_active = status
            .active
            .iter()
            .flatten()
            .any(|r| r.uid == job.metadata.uid);
        match finished(job) {
            None => active.push(job_ref(job)),
            Some(how) if was_active => {
                ctx.events
                    .normal(
                        &reference,
                        "SawCompletedJob",
                        "Complete",
                        format!("Saw completed job: {}, status: {how}", job.name_any()),
                    )
                    .await;
                if how == "Complete" {
                    let done = job.status.as_ref().and_then(|s| s.completion_time.clone());
                    if done > status.last_successful_time {
                        status.last_successful_time = done;
                    }
                }
            }
            Some(_) => {}
        }
    }
    status.active = Some(active);

    let now = ctx.clock.now();
    let tz = time_zone(&cj);
    let schedule = keg_apimachinery::cron::parse(&spec.schedule).map_err(Error::Invalid)?;
    let mut wait = None;
    if spec.suspend != Some(true) {
        let earliest = status
            .last_schedule_time
            .clone()
            .or_else(|| cj.metadata.creation_timestamp.clone())
            .map_or(now, |t| t.0);
        let earliest = match spec.starting_deadline_seconds {
            Some(d) => earliest.max(now - jiff::SignedDuration::from_secs(d)),
            None => earliest,
        };
        let (due, missed) = most_recent(&schedule, &tz, earliest, now);
        if missed > MISSED_LIMIT {
            ctx.events
                .warning(&reference, "TooManyMissedTimes", "Schedule", "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into())
                .await;
        }
        if let Some(due) = due {
            start_job(&cj, &spec, due, &mut status, &mut jobs, &ctx).await?;
        }
        wait = schedule
            .next_after(now, &tz)
            .map(|next| Duration::try_from(next.duration_since(now)).unwrap_or_default());
    }
    trim_history(&cj, &jobs, &ctx).await?;
    if cj.status.as_ref() != Some(&status) {
        let mut updated = cj.clone();
        updated.status = Some(status);
        let result = cronjobs
            .replace_status(&cj.name_any(), &PostParams::default(), &updated)
            .await;
        crate::gone_is_fine(result)?;
    }
    Ok(match wait {
        Some(d) => Action::requeue(ctx.clock.real_wait(d + Duration::from_millis(100))),
        None => Action::await_change(),
    })
}

/// The most recent scheduled time after `earliest` and not after `now`, and how many
/// scheduled times there were in between.
fn most_recent(
    schedule: &keg_apimachinery::cron::Schedule,
    tz: &TimeZone,
    earliest: Timestamp,
    now: Timestamp,
) -> (Option<Timestamp>, usize) {
    let mut last = None;
    let mut count = 0;
    let mut t = earliest;
    while let Some(next) = schedule.next_after(t, tz) {
        if next > now {
            break;
        }
        last = Some(next);
        count += 1;
        t = next;
        if count > MISSED_LIMIT * 10 {
            break;
        }
    }
    (last, count)
}

/// Starts the Job of scheduled time `due`, as the deadline and concurrency policy allow.
async fn start_job(
    cj: &CronJob,
    spec: &CronJobSpec,
    due: Timestamp,
    status: &mut CronJobStatus,
    jobs: &mut Vec<Job>,
    ctx: &Context,
) -> Result<()> {
    let now = ctx.clock.now();
    let reference = cj.object_ref(&());
    if let Some(deadline) = spec.starting_deadline_seconds
        && due + jiff::SignedDuration::from_secs(deadline) < now
    {
        ctx.events
            .warning(
                &reference,
                "MissSchedule",
                "Schedule",
                format!("Missed scheduled time to start a job: {due}"),
            )
            .await;
        return Ok(());
    }
    let name = format!("{}-{}", cj.name_any(), due.as_second() / 60);
    if jobs.iter().any(|j| j.name_any() == name) {
        return Ok(()); // this time's Job exists already
    }
    let running: Vec<&Job> = jobs.iter().filter(|j| finished(j).is_none()).collect();
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !running.is_empty() => {
            ctx.events
                .normal(
                    &reference,
                    "JobAlreadyActive",
                    "Schedule",
                    "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
                )
                .await;
            return Ok(());
        }
        Some("Replace") => {
            let names: Vec<String> = running.iter().map(|j| j.name_any()).collect();
            for job in names {
                delete_job(cj, &job, ctx).await?;
                status
                    .active
                    .get_or_insert_default()
                    .retain(|r| r.name.as_deref() != Some(job.as_str()));
            }
        }
        _ => {}
    }
    let template = spec.job_template.clone();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_AT.into(),
        due.to_zoned(time_zone(cj)).timestamp().to_string(),
    );
    let job = Job {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![owners::controller_ref(cj)]),
            ..Default::default()
        },
        spec: Some(template.spec.unwrap_or_default()),
        status: None,
    };
    let jobs_api: Api<Job> =
        Api::namespaced(ctx.client.clone(), &cj.namespace().unwrap_or_default());
    match jobs_api.create(&PostParams::default(), &job).await {
        Ok(created) => {
            ctx.events
                .normal(
                    &reference,
                    "SuccessfulCreate",
                    "Create",
                    format!("Created job {name}"),
                )
                .await;
            status
                .active
                .get_or_insert_default()
                .push(job_ref(&created));
            jobs.push(created);
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => {
            ctx.events
                .warning(
                    &reference,
                    "FailedCreate",
                    "Create",
                    format!("Error creating job: {}", crate::api_message(&e)),
                )
                .await;
            return Err(e.into());
        }
    }
    status.last_schedule_time = Some(Time(due));
    Ok(())
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

async fn delete_job(cj: &CronJob, name: &str, ctx: &Context) -> Result<()> {
    let jobs_api: Api<Job> =
        Api::namespaced(ctx.client.clone(), &cj.namespace().unwrap_or_default());
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    crate::gone_is_fine(jobs_api.delete(name, &params).await)?;
    ctx.events
        .normal(
            &cj.object_ref(&()),
            "SuccessfulDelete",
            "Delete",
            format!("Deleted job {name}"),
        )
        .await;
    Ok(())
}

/// Deletes the oldest finished Jobs beyond the successful and failed history limits.
async fn trim_history(cj: &CronJob, jobs: &[Job], ctx: &Context) -> Result<()> {
    let spec = cj.spec.clone().unwrap_or_default();
    for (how, limit) in [
        ("Complete", spec.successful_jobs_history_limit.unwrap_or(3)),
        ("Failed", spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut done: Vec<&Job> = jobs.iter().filter(|j| finished(j) == Some(how)).collect();
        let keep = usize::try_from(limit).unwrap_or(0);
        if done.len() <= keep {
            continue;
        }
        done.sort_by_key(|j| {
            (
                j.status.as_ref().and_then(|s| s.start_time.clone()),
                j.metadata.creation_timestamp.clone(),
            )
        });
        let excess = done.len() - keep;
        for job in done.into_iter().take(excess) {
            delete_job(cj, &job.name_any(), ctx).await?;
        }
    }
    Ok(())
}
