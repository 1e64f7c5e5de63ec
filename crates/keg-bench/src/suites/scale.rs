//! Scale: 100,000 pod objects stored (named for a scheduler no one runs, so they are only
//! stored and watched, never placed): the server's resident memory, a full list's latency,
//! filtered lists' latency, and the time to restart and serve again.

use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use super::{Ctx, Outcome};
use crate::kube_util::{self, NO_SCHEDULER};
use crate::report::{Row, mib};
use crate::server::{self, Server};

const SUITE: &str = "scale";
const GROUPS: usize = 100;

/// Runs the suite.
pub async fn run(ctx: &Ctx) -> Result<Outcome> {
    let pods = ctx.size.pick(300, 100_000);
    let mut server = Server::start(&ctx.keg, &["--no-node-agent"]).await?;
    let client = server.client().await?;
    let rss_empty = server.rss_bytes()?;
    kube_util::namespace(&client, "bench-scale").await?;
    let api: Api<Pod> = Api::namespaced(client, "bench-scale");
    let a = api.clone();
    let (_, wall) = kube_util::run_pool(pods, 32, move |i| {
        let api = a.clone();
        async move {
            let labels = json!({"app": "bench-scale", "group": format!("g{}", i % GROUPS)});
            let pod = kube_util::pod(&format!("s-{i}"), Some(NO_SCHEDULER), labels)?;
            api.create(&PostParams::default(), &pod).await?;
            Ok(())
        }
    })
    .await?;
    // Let the controllers' caches take in the last pods before measuring memory.
    tokio::time::sleep(Duration::from_secs(ctx.size.pick(1, 10))).await;
    let rss_full = server.rss_bytes()?;

    let everywhere: Api<Pod> = Api::all(api.clone().into_client());
    let full = best_of(3, || async {
        let n = everywhere.list(&ListParams::default()).await?.items.len();
        anyhow::ensure!(n == pods, "a full list returned {n} of {pods} pods");
        Ok(())
    })
    .await?;
    let by_label = best_of(3, || async {
        let n = api
            .list(&ListParams::default().labels("group=g7"))
            .await?
            .items
            .len();
        anyhow::ensure!(n == pods / GROUPS, "group=g7 listed {n} pods");
        Ok(())
    })
    .await?;
    let by_field = best_of(3, || async {
        let n = api
            .list(&ListParams::default().fields("metadata.name=s-77"))
            .await?
            .items
            .len();
        anyhow::ensure!(n == 1, "metadata.name=s-77 listed {n} pods");
        Ok(())
    })
    .await?;
    // Lists hold whole responses in memory: the peak says what a machine must have.
    let peak = server.peak_rss_bytes()?;
    let data_bytes = dir_size(&server.dir);

    let stopping = Instant::now();
    server.stop().await?;
    let stopped = stopping.elapsed();
    let starting = Instant::now();
    server.restart(Duration::from_secs(600)).await?;
    let ready = starting.elapsed();
    let client = server.client().await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), "bench-scale");
    loop {
        if server::ready(&client).await && api.list(&ListParams::default().limit(500)).await.is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let serving = starting.elapsed();
    tokio::time::sleep(Duration::from_secs(ctx.size.pick(1, 10))).await;
    let rss_restarted = server.rss_bytes()?;

    let rows = vec![
        Row::new(
            SUITE,
            format!("create {pods} pods (32 clients)"),
            pods as f64 / wall.as_secs_f64(),
            "pods/s",
        ),
        Row::new(SUITE, "server RSS, empty", mib(rss_empty), "MiB"),
        Row::new(
            SUITE,
            format!("server RSS with {pods} pods"),
            mib(rss_full),
            "MiB",
        ),
        Row::new(
            SUITE,
            "server peak RSS (VmHWM), creates and lists",
            mib(peak),
            "MiB",
        ),
        Row::new(SUITE, "data dir size", mib(data_bytes), "MiB"),
        Row::new(
            SUITE,
            format!("full list, all namespaces ({pods} pods)"),
            full,
            "ms",
        )
        .anchor("Kubernetes SLO: cluster-scoped list p99 <= 30 s"),
        Row::new(
            SUITE,
            format!("label-selected list ({} pods)", pods / GROUPS),
            by_label,
            "ms",
        )
        .anchor("Kubernetes SLO: namespace-scoped list p99 <= 5 s"),
        Row::new(SUITE, "field-selected list (1 pod)", by_field, "ms"),
        Row::new(SUITE, "stop (SIGTERM → exit)", stopped.as_secs_f64(), "s"),
        Row::new(SUITE, "restart → /readyz 200", ready.as_secs_f64(), "s"),
        Row::new(
            SUITE,
            "restart → a pod list answered",
            serving.as_secs_f64(),
            "s",
        ),
        Row::new(SUITE, "server RSS after restart", mib(rss_restarted), "MiB"),
    ];
    let notes = vec![format!(
        "{pods} pods of one busybox container each in one namespace, schedulerName {NO_SCHEDULER} \
         so no scheduler works on them; lists are the best of 3"
    )];
    drop(server);
    Ok(Outcome::Ran {
        rows,
        notes,
        table: None,
    })
}

/// The fastest of `runs` calls, in milliseconds.
async fn best_of<F, Fut>(runs: usize, call: F) -> Result<f64>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut best = f64::MAX;
    for _ in 0..runs {
        let started = Instant::now();
        call().await?;
        best = best.min(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(best)
}

/// The bytes the files under `dir` take.
fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
