//! Watch fan-out: 1,000 watchers on pods, each its own watch request (and connection); the
//! delay from the start of a write to its delivery at each watcher, and until every watcher
//! has it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

use super::{Ctx, Outcome};
use crate::kube_util::{self, NO_SCHEDULER};
use crate::report::{Latencies, Row};
use crate::server::Server;

const SUITE: &str = "watch";

/// Runs the suite.
pub async fn run(ctx: &Ctx) -> Result<Outcome> {
    let watchers = ctx.size.pick(10, 1000);
    let writes = ctx.size.pick(5, 30);
    let server = Server::start(&ctx.keg, &["--no-node-agent"]).await?;
    let client = server.client().await?;
    kube_util::namespace(&client, "bench-watch").await?;
    let api: Api<Pod> = Api::namespaced(client, "bench-watch");
    let version = api
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();

    // Each watcher reports once its watch is open, then each pod it is told of, by index.
    let (opened_tx, mut opened) = mpsc::channel::<()>(watchers);
    let opening = Arc::new(Semaphore::new(50));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let (api, version, opened_tx, opening) = (
            api.clone(),
            version.clone(),
            opened_tx.clone(),
            opening.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let permit = opening.acquire_owned().await?;
            let stream = api.watch(&WatchParams::default(), &version).await?;
            drop(permit);
            opened_tx.send(()).await?;
            let mut stream = stream.boxed();
            let mut received = vec![None; writes];
            let mut missing = writes;
            while missing > 0 {
                let Some(event) = stream.next().await else {
                    break;
                };
                if let WatchEvent::Added(pod) = event? {
                    let now = Instant::now();
                    if let Some(i) = pod
                        .name_any()
                        .strip_prefix("w-")
                        .and_then(|i| i.parse::<usize>().ok())
                        && i < writes
                        && received[i].is_none()
                    {
                        received[i] = Some(now);
                        missing -= 1;
                    }
                }
            }
            Ok::<_, anyhow::Error>(received)
        }));
    }
    drop(opened_tx);
    let open_started = Instant::now();
    for _ in 0..watchers {
        tokio::time::timeout(Duration::from_secs(120), opened.recv())
            .await
            .context("opening the watches")?
            .context("a watcher failed to open its watch")?;
    }
    let open_time = open_started.elapsed();
    let rss_watching = server.rss_bytes()?;

    let mut sent = Vec::new();
    for i in 0..writes {
        let pod = kube_util::pod(&format!("w-{i}"), Some(NO_SCHEDULER), json!({}))?;
        sent.push(Instant::now());
        api.create(&PostParams::default(), &pod).await?;
        // Spaced writes, so each delay is a write's own and not the queue of the ones before.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut each = Vec::new();
    let mut every = vec![Duration::ZERO; writes];
    let mut lost = 0usize;
    for task in tasks {
        let received = tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .context("watchers did not receive every write in 120 s")???;
        for (i, at) in received.into_iter().enumerate() {
            match at {
                Some(at) => {
                    let delay = at.saturating_duration_since(sent[i]);
                    each.push(delay);
                    every[i] = every[i].max(delay);
                }
                None => lost += 1,
            }
        }
    }
    let each = Latencies::new(each);
    let every = Latencies::new(every);
    let rows = vec![
        Row::new(
            SUITE,
            format!("open {watchers} watches"),
            open_time.as_secs_f64(),
            "s",
        ),
        Row::new(
            SUITE,
            format!("delivery delay p50 (each of {watchers} watchers)"),
            each.ms(0.5),
            "ms",
        ),
        Row::new(
            SUITE,
            format!("delivery delay p99 (each of {watchers} watchers)"),
            each.ms(0.99),
            "ms",
        ),
        Row::new(
            SUITE,
            format!("delay until all {watchers} have it, p50"),
            every.ms(0.5),
            "ms",
        ),
        Row::new(
            SUITE,
            format!("delay until all {watchers} have it, p99"),
            every.ms(0.99),
            "ms",
        )
        .anchor("no agreed Kubernetes SLO (the watch latency SLI is work in progress)"),
        Row::new(SUITE, "events lost", lost as f64, "events"),
        Row::new(
            SUITE,
            format!("server RSS with {watchers} watches open"),
            crate::report::mib(rss_watching),
            "MiB",
        ),
    ];
    let notes = vec![format!(
        "{writes} pod creations 100 ms apart; delay measured from the start of the create call \
         to the event's arrival at the watcher, all watchers in one kube-rs process (one HTTP/1.1 \
         connection each) on the same 2 cores as the server"
    )];
    drop(server);
    Ok(Outcome::Ran {
        rows,
        notes,
        table: None,
    })
}
