//! Serverless pod start: real pods (busybox `sleep`) that a Fargate profile selects, created
//! together; each gets a node of its own and runs as a container. Measured: from each pod's
//! create call to a watch seeing it Running, and pods started per second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::future::try_join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::{Ctx, Outcome, is_root};
use crate::kube_util::{self, PodTracker};
use crate::report::{Latencies, Row};
use crate::server::Server;

const SUITE: &str = "pod-start";

/// Runs the suite.
pub async fn run(ctx: &Ctx) -> Result<Outcome> {
    if !is_root() {
        return Ok(Outcome::Skipped(
            "needs root: the node agent runs containers (crun, cgroups, overlay mounts)".into(),
        ));
    }
    let pods = ctx.size.pick(3, 100);
    let timeout = Duration::from_secs(ctx.size.pick(180, 600));
    let scratch = tempfile::Builder::new()
        .prefix("keg-bench-images-")
        .tempdir()?;
    let images = import_busybox(scratch.path()).await?;
    let mut server = Server::start(&ctx.keg, &["--images-dir", path_str(&images)?]).await?;
    let client = server.client().await?;
    kube_util::namespace(&client, "bench-start").await?;
    kube_util::fargate_profile(&client, "bench-start", "bench-start").await?;
    let tracker = PodTracker::start(&client, "bench-start", kube_util::is_running).await?;
    let api: Api<Pod> = Api::namespaced(client, "bench-start");
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let started = Instant::now();
    try_join_all((0..pods).map(|i| {
        let (api, sent) = (api.clone(), sent.clone());
        async move {
            let name = format!("start-{i}");
            let pod = kube_util::pod(&name, None, json!({"app": "bench-start"}))?;
            sent.lock()
                .expect("not poisoned")
                .insert(name, Instant::now());
            api.create(&PostParams::default(), &pod).await?;
            Ok::<_, anyhow::Error>(())
        }
    }))
    .await?;
    tracker
        .wait_for(pods, timeout, "pods Running")
        .await
        .with_context(|| server.log_tail())?;
    let seen = tracker.seen();
    let sent = sent.lock().expect("not poisoned").clone();
    let latencies: Vec<Duration> = seen
        .iter()
        .filter_map(|(name, (at, _))| Some(at.saturating_duration_since(*sent.get(name)?)))
        .collect();
    let last = seen.values().map(|(at, _)| *at).max().context("no pods")?;
    let latencies = Latencies::new(latencies);
    let rss = server.rss_bytes()?;
    let rows = vec![
        Row::new(
            SUITE,
            format!("creation → Running p50 ({pods} pods together)"),
            latencies.ms(0.5) / 1000.0,
            "s",
        )
        .anchor("Fargate: 30 to 60 s per pod, as users report"),
        Row::new(
            SUITE,
            format!("creation → Running p99 ({pods} pods together)"),
            latencies.ms(0.99) / 1000.0,
            "s",
        )
        .anchor("Kubernetes SLO: pod start-up p99 <= 5 s (image pre-pulled)"),
        Row::new(
            SUITE,
            "pods started per second",
            pods as f64 / last.duration_since(started).as_secs_f64(),
            "pods/s",
        )
        .anchor("Fargate launch rate: 20 pods/s"),
        Row::new(
            SUITE,
            format!("server RSS with {pods} pods running"),
            crate::report::mib(rss),
            "MiB",
        ),
    ];
    let stop = Instant::now();
    server.stop().await?;
    let notes = vec![format!(
        "each pod a busybox `sleep` on a Fargate node of its own (image already in the store, \
         as the SLO assumes); stopping the server and removing {pods} pods took {:.1} s",
        stop.elapsed().as_secs_f64()
    )];
    Ok(Outcome::Ran {
        rows,
        notes,
        table: None,
    })
}

/// Builds the busybox image and imports it into a fresh image store under `dir`.
pub async fn import_busybox(dir: &std::path::Path) -> Result<std::path::PathBuf> {
    let images = dir.join("images");
    keg_runtime::testing::busybox_in_store(dir, &images, "busybox:bench").await?;
    Ok(images)
}

/// A path as the UTF-8 a command-line flag needs.
pub fn path_str(path: &std::path::Path) -> Result<&str> {
    path.to_str().context("a path that is not UTF-8")
}
