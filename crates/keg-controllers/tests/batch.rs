//! Jobs and CronJobs against the real API server, with a kubelet stand-in that runs pods to
//! completion: completions and parallelism, back-off to the limit, indexes, the TTL after
//! finishing, and CronJob schedules on a clock the test moves (so nothing sleeps a minute).

mod common;

use common::*;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use keg_controllers::ManualClock;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

fn job(name: &str, command: &str, spec: Value) -> anyhow::Result<Job> {
    let mut job = json!({
        "metadata": {"name": name},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "img", "command": ["sh", "-c", command]}],
        }}},
    });
    for (k, v) in spec.as_object().cloned().unwrap_or_default() {
        job["spec"][k] = v;
    }
    Ok(serde_json::from_value(job)?)
}

fn condition(job: &Job, type_: &str) -> Option<(String, String)> {
    let c = job
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")?;
    Some((
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}

async fn finished(jobs: &Api<Job>, name: &str, type_: &str) -> Job {
    eventually(&format!("job {name} {type_}"), || async {
        let j = jobs.get(name).await?;
        Ok(condition(&j, type_).is_some().then_some(j))
    })
    .await
}

async fn job_pods(cluster: &Cluster, ns: &str, job: &str) -> anyhow::Result<Vec<Pod>> {
    let pods: Api<Pod> = cluster.api(ns);
    Ok(pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await?
        .items)
}

#[tokio::test]
async fn a_job_completes_its_completions_two_at_a_time() -> anyhow::Result<()> {
    let mut cluster = Cluster::start().await?;
    cluster.namespace("batch").await?;
    cluster.batch_kubelet("batch");
    let jobs: Api<Job> = cluster.api("batch");
    jobs.create(
        &PostParams::default(),
        &job("five", "true", json!({"completions": 5, "parallelism": 2}))?,
    )
    .await?;
    let done = finished(&jobs, "five", "Complete").await;
    let status = done.status.clone().unwrap_or_default();
    assert_eq!(status.succeeded, Some(5));
    assert_eq!(status.failed, Some(0));
    assert_eq!(status.active, Some(0));
    assert!(status.completion_time.is_some() && status.start_time.is_some());
    assert_eq!(
        condition(&done, "SuccessCriteriaMet"),
        Some((
            "CompletionsReached".into(),
            "Reached expected number of succeeded pods".into()
        ))
    );
    let pods = job_pods(&cluster, "batch", "five").await?;
    assert_eq!(pods.len(), 5, "one pod per completion, none extra");
    assert!(
        pods.iter().all(|p| p.finalizers().is_empty()),
        "every counted pod is let go"
    );
    event_seen(
        &cluster.client,
        "batch",
        "Job",
        "five",
        "Completed",
        "Job completed",
    )
    .await;
    // The generated selector and labels, as upstream makes them.
    let uid = done.metadata.uid.clone().unwrap_or_default();
    let selector = done.spec.as_ref().and_then(|s| s.selector.clone()).unwrap();
    assert_eq!(
        selector.match_labels.unwrap()["batch.kubernetes.io/controller-uid"],
        uid
    );
    Ok(())
}

#[tokio::test]
async fn a_failing_job_backs_off_and_stops_at_its_limit() -> anyhow::Result<()> {
    let clock = ManualClock::new(Timestamp::now());
    let mut cluster = Cluster::start_with_clock(clock.clone()).await?;
    cluster.namespace("backoff").await?;
    cluster.batch_kubelet("backoff");
    let jobs: Api<Job> = cluster.api("backoff");
    jobs.create(
        &PostParams::default(),
        &job("flaky", "fail", json!({"backoffLimit": 1}))?,
    )
    .await?;
    eventually("the first failure counted", || async {
        let j = jobs.get("flaky").await?;
        Ok((j.status.and_then(|s| s.failed) == Some(1)).then_some(()))
    })
    .await;
    // Back-off: no second pod until ten seconds have passed on the controller's clock.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(job_pods(&cluster, "backoff", "flaky").await?.len(), 1);
    clock.advance(SignedDuration::from_secs(11));
    let failed = finished(&jobs, "flaky", "Failed").await;
    assert_eq!(
        condition(&failed, "Failed"),
        Some((
            "BackoffLimitExceeded".into(),
            "Job has reached the specified backoff limit".into()
        ))
    );
    assert_eq!(failed.status.and_then(|s| s.failed), Some(2));
    event_seen(
        &cluster.client,
        "backoff",
        "Job",
        "flaky",
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
    )
    .await;
    Ok(())
}

#[tokio::test]
async fn indexed_jobs_give_each_pod_its_index_and_finished_jobs_expire() -> anyhow::Result<()> {
    let clock = ManualClock::new(Timestamp::now());
    let mut cluster = Cluster::start_with_clock(clock.clone()).await?;
    cluster.namespace("indexed").await?;
    cluster.batch_kubelet("indexed");
    let jobs: Api<Job> = cluster.api("indexed");
    let spec = json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed", "ttlSecondsAfterFinished": 30});
    jobs.create(&PostParams::default(), &job("idx", "true", spec)?)
        .await?;
    let done = finished(&jobs, "idx", "Complete").await;
    assert_eq!(
        done.status.and_then(|s| s.completed_indexes).as_deref(),
        Some("0-2")
    );
    let mut indexes = Vec::new();
    for pod in job_pods(&cluster, "indexed", "idx").await? {
        let index = pod.annotations()["batch.kubernetes.io/job-completion-index"].clone();
        let spec = pod.spec.clone().unwrap();
        assert_eq!(spec.hostname, Some(format!("idx-{index}")));
        assert!(pod.name_any().starts_with(&format!("idx-{index}-")));
        let env = spec.containers[0].env.clone().unwrap_or_default();
        let from = env
            .iter()
            .find(|e| e.name == "JOB_COMPLETION_INDEX")
            .and_then(|e| e.value_from.clone())
            .and_then(|v| v.field_ref)
            .map(|f| f.field_path);
        assert_eq!(
            from.as_deref(),
            Some("metadata.annotations['batch.kubernetes.io/job-completion-index']")
        );
        indexes.push(index);
    }
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2"]);

    // ttlSecondsAfterFinished: kept for 30 s of the clock, then deleted with its pods.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(jobs.get_opt("idx").await?.is_some());
    clock.advance(SignedDuration::from_secs(31));
    eventually("the finished job deleted", || async {
        Ok(jobs.get_opt("idx").await?.is_none().then_some(()))
    })
    .await;
    Ok(())
}

fn cron_job(name: &str, command: &str, spec: Value) -> anyhow::Result<CronJob> {
    let mut cj = json!({
        "metadata": {"name": name},
        "spec": {
            "schedule": "*/1 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "img", "command": ["sh", "-c", command]}],
            }}}},
        },
    });
    for (k, v) in spec.as_object().cloned().unwrap_or_default() {
        cj["spec"][k] = v;
    }
    Ok(serde_json::from_value(cj)?)
}

async fn owned_jobs(cluster: &Cluster, ns: &str, cj: &CronJob) -> anyhow::Result<Vec<Job>> {
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let mut jobs: Vec<Job> = cluster
        .api::<Job>(ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|j| j.owner_references().iter().any(|r| r.uid == uid))
        .collect();
    jobs.sort_by_key(|j| j.name_any());
    Ok(jobs)
}

#[tokio::test]
async fn cron_jobs_run_on_schedule_keep_history_and_forbid_overlap() -> anyhow::Result<()> {
    // Each minute the clock moves on passes exactly one scheduled time.
    let clock = ManualClock::new(Timestamp::now());
    let mut cluster = Cluster::start_with_clock(clock.clone()).await?;
    cluster.namespace("cron").await?;
    cluster.batch_kubelet("cron");
    let cronjobs: Api<CronJob> = cluster.api("cron");
    let every = cronjobs
        .create(
            &PostParams::default(),
            &cron_job("tick", "true", json!({"successfulJobsHistoryLimit": 2}))?,
        )
        .await?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        owned_jobs(&cluster, "cron", &every).await?.is_empty(),
        "nothing runs before the schedule says"
    );
    let mut names = Vec::new();
    for run in 1..=3 {
        clock.advance(SignedDuration::from_secs(60));
        let due = clock_minute(&clock);
        let name = format!("tick-{due}");
        eventually(&format!("run {run}: job {name}"), || async {
            let jobs = owned_jobs(&cluster, "cron", &every).await?;
            let done = jobs.iter().any(|j| {
                j.name_any() == name
                    && condition(j, "Complete").is_some()
                    && j.annotations()
                        .contains_key("batch.kubernetes.io/cronjob-scheduled-timestamp")
            });
            Ok(done.then_some(()))
        })
        .await;
        names.push(name);
    }
    // History: the two newest successful Jobs are kept.
    let kept = eventually("the oldest job deleted", || async {
        let jobs = owned_jobs(&cluster, "cron", &every).await?;
        let names: Vec<String> = jobs.iter().map(ResourceExt::name_any).collect();
        Ok((names.len() == 2).then_some(names))
    })
    .await;
    assert_eq!(kept, names[1..].to_vec());
    let status = eventually("lastSuccessfulTime", || async {
        let cj = cronjobs.get("tick").await?;
        Ok(cj
            .status
            .filter(|s| s.last_successful_time.is_some())
            .map(|s| s.last_schedule_time))
    })
    .await;
    assert_eq!(
        status.map(|t| t.0.as_second()),
        Some(clock_minute(&clock) * 60)
    );

    // Forbid: while the first Job runs, the next times are skipped.
    let forbid = cronjobs
        .create(
            &PostParams::default(),
            &cron_job(
                "single",
                "sleep 3600",
                json!({"concurrencyPolicy": "Forbid"}),
            )?,
        )
        .await?;
    clock.advance(SignedDuration::from_secs(60));
    eventually("the first forbid job", || async {
        Ok((owned_jobs(&cluster, "cron", &forbid).await?.len() == 1).then_some(()))
    })
    .await;
    clock.advance(SignedDuration::from_secs(60));
    event_seen(
        &cluster.client,
        "cron",
        "CronJob",
        "single",
        "JobAlreadyActive",
        "Not starting job because prior execution is running and concurrency policy is Forbid",
    )
    .await;
    assert_eq!(owned_jobs(&cluster, "cron", &forbid).await?.len(), 1);
    Ok(())
}

fn clock_minute(clock: &ManualClock) -> i64 {
    use keg_controllers::Clock;
    clock.now().as_second() / 60
}

#[tokio::test]
async fn suspended_jobs_wait_deadlines_fail_and_deleted_jobs_let_their_pods_go()
-> anyhow::Result<()> {
    let clock = ManualClock::new(Timestamp::now());
    let mut cluster = Cluster::start_with_clock(clock.clone()).await?;
    cluster.namespace("life").await?;
    cluster.batch_kubelet("life");
    let jobs: Api<Job> = cluster.api("life");
    // Suspended: no pod, a Suspended condition; resumed: it runs.
    jobs.create(
        &PostParams::default(),
        &job(
            "later",
            "sleep 3600",
            json!({"suspend": true, "activeDeadlineSeconds": 60}),
        )?,
    )
    .await?;
    let suspended = finished(&jobs, "later", "Suspended").await;
    assert_eq!(
        condition(&suspended, "Suspended"),
        Some(("JobSuspended".into(), "Job suspended".into()))
    );
    assert!(job_pods(&cluster, "life", "later").await?.is_empty());
    let resume = json!({"spec": {"suspend": false}});
    jobs.patch(
        "later",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&resume),
    )
    .await?;
    eventually("a running pod", || async {
        let pods = job_pods(&cluster, "life", "later").await?;
        Ok((pods.len() == 1).then_some(()))
    })
    .await;
    // activeDeadlineSeconds on the controller's clock.
    clock.advance(SignedDuration::from_secs(61));
    let failed = finished(&jobs, "later", "Failed").await;
    assert_eq!(
        condition(&failed, "Failed"),
        Some((
            "DeadlineExceeded".into(),
            "Job was active longer than specified deadline".into()
        ))
    );
    // A deleted Job's pods lose the tracking finalizer and go with it.
    jobs.create(
        &PostParams::default(),
        &job("gone", "sleep 3600", json!({}))?,
    )
    .await?;
    eventually("the pod of the job to delete", || async {
        Ok((job_pods(&cluster, "life", "gone").await?.len() == 1).then_some(()))
    })
    .await;
    jobs.delete("gone", &kube::api::DeleteParams::background())
        .await?;
    eventually("the deleted job's pod gone", || async {
        Ok(job_pods(&cluster, "life", "gone")
            .await?
            .is_empty()
            .then_some(()))
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn cron_jobs_read_their_schedule_in_their_time_zone() -> anyhow::Result<()> {
    // 09:00 in Tokyo is 00:00 UTC: put the clock just past the next UTC midnight.
    let now = Timestamp::now();
    let midnight = (now.as_second() / 86_400 + 1) * 86_400;
    let clock = ManualClock::new(Timestamp::from_second(midnight + 30)?);
    let mut cluster = Cluster::start_with_clock(clock.clone()).await?;
    cluster.namespace("zone").await?;
    cluster.batch_kubelet("zone");
    let cronjobs: Api<CronJob> = cluster.api("zone");
    let tokyo = cronjobs
        .create(
            &PostParams::default(),
            &cron_job(
                "tokyo",
                "true",
                json!({"schedule": "0 9 * * *", "timeZone": "Asia/Tokyo"}),
            )?,
        )
        .await?;
    let jobs = eventually("the 09:00 Tokyo job", || async {
        let jobs = owned_jobs(&cluster, "zone", &tokyo).await?;
        Ok((!jobs.is_empty()).then_some(jobs))
    })
    .await;
    assert_eq!(jobs.len(), 1, "only the most recent time runs");
    assert_eq!(jobs[0].name_any(), format!("tokyo-{}", midnight / 60));
    assert_eq!(
        jobs[0].annotations()["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        Timestamp::from_second(midnight)?.to_string()
    );
    Ok(())
}

#[tokio::test]
async fn cron_jobs_replace_a_running_job_when_told() -> anyhow::Result<()> {
    let clock = ManualClock::new(Timestamp::now());
    let mut cluster = Cluster::start_with_clock(clock.clone()).await?;
    cluster.namespace("zone").await?;
    cluster.batch_kubelet("zone");
    let cronjobs: Api<CronJob> = cluster.api("zone");
    let replace = cronjobs
        .create(
            &PostParams::default(),
            &cron_job(
                "swap",
                "sleep 3600",
                json!({"concurrencyPolicy": "Replace"}),
            )?,
        )
        .await?;
    clock.advance(SignedDuration::from_secs(60));
    let first = eventually("the first job", || async {
        let jobs = owned_jobs(&cluster, "zone", &replace).await?;
        Ok((jobs.len() == 1).then(|| jobs[0].name_any()))
    })
    .await;
    clock.advance(SignedDuration::from_secs(60));
    eventually("the first job replaced by the second", || async {
        let jobs = owned_jobs(&cluster, "zone", &replace).await?;
        let names: Vec<String> = jobs
            .iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .map(ResourceExt::name_any)
            .collect();
        Ok((names.len() == 1 && names[0] != first).then_some(()))
    })
    .await;
    event_seen(
        &cluster.client,
        "zone",
        "CronJob",
        "swap",
        "SuccessfulDelete",
        &format!("Deleted job {first}"),
    )
    .await;
    Ok(())
}
