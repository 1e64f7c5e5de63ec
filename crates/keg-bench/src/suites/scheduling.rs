//! Scheduling throughput, as upstream's scheduler_perf measures it: nodes exist as API
//! objects only (created Ready by the harness; the server runs no node agent), pods are
//! created as fast as the API takes them, and what counts is pods bound per second. First
//! onto node-group nodes (the default scheduler), then pods a Fargate profile selects, each
//! onto a new node of its own (the Fargate scheduler creates the node, then binds).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use super::{Ctx, Outcome};
use crate::kube_util::{self, PodTracker};
use crate::report::{Latencies, Row};
use crate::server::Server;

const SUITE: &str = "scheduling";

/// Runs the suite.
pub async fn run(ctx: &Ctx) -> Result<Outcome> {
    let nodes = ctx.size.pick(5, 100);
    let pods = ctx.size.pick(50, 10_000);
    let fargate_pods = ctx.size.pick(10, 1000);
    let timeout = Duration::from_secs(ctx.size.pick(120, 600));
    let server = Server::start(&ctx.keg, &["--no-node-agent"]).await?;
    let client = server.client().await?;
    kube_util::namespace(&client, "bench-sched").await?;
    kube_util::namespace(&client, "bench-fargate").await?;
    kube_util::fargate_profile(&client, "bench-fp", "bench-fargate").await?;
    create_nodes(&client, nodes).await?;

    let group = schedule(&client, "bench-sched", pods, timeout).await?;
    let mut rows = group.rows(
        format!("{pods} pods onto {nodes} node-group nodes"),
        "node-group",
        "kube-scheduler scheduler_perf thresholds: ~680 to 1,100 pods/s at 5,000 nodes",
    );
    let used: HashSet<&String> = group.nodes.iter().collect();
    rows.push(Row::new(
        SUITE,
        "node-group nodes used",
        used.len() as f64,
        "nodes",
    ));

    let fargate = schedule(&client, "bench-fargate", fargate_pods, timeout).await?;
    rows.extend(fargate.rows(
        format!("{fargate_pods} Fargate pods, each onto a new node"),
        "Fargate",
        "Fargate launch rate: 20 pods/s; kwok: 20 nodes or pods/s",
    ));
    let distinct: HashSet<&String> = fargate.nodes.iter().collect();
    if distinct.len() != fargate_pods {
        bail!(
            "{fargate_pods} Fargate pods landed on {} distinct nodes",
            distinct.len()
        );
    }

    // Nothing may have marked the API-only nodes NotReady while the pods were placed.
    let still_ready = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels("keg-bench/node"))
        .await?
        .items
        .iter()
        .filter(|n| ready(n))
        .count();
    rows.push(Row::new(
        SUITE,
        format!("node-group nodes still Ready at the end (of {nodes})"),
        still_ready as f64,
        "nodes",
    ));
    let notes = vec![
        format!(
            "nodes are API objects only, as in scheduler_perf: {nodes} Nodes created Ready by the \
             harness (4 CPU, 16 GiB, 110 pods each), server without node agent; pods request 10m \
             CPU and 32 MiB"
        ),
        "rate = pods / (first create sent → last binding seen by a watch), pods created by 32 \
         concurrent clients"
            .to_owned(),
    ];
    drop(server);
    Ok(Outcome::Ran {
        rows,
        notes,
        table: None,
    })
}

struct Scheduled {
    rate: f64,
    latencies: Latencies,
    nodes: Vec<String>,
}

impl Scheduled {
    /// Its rate (beside `anchor`) and its create → bound p99, as rows.
    fn rows(&self, rate_metric: String, kind: &str, anchor: &str) -> Vec<Row> {
        vec![
            Row::new(SUITE, rate_metric, self.rate, "pods/s").anchor(anchor),
            Row::new(
                SUITE,
                format!("{kind} pod create → bound p99"),
                self.latencies.ms(0.99),
                "ms",
            ),
        ]
    }
}

/// Creates `n` pods in `namespace` and waits until a watch has seen each bound.
async fn schedule(
    client: &Client,
    namespace: &str,
    n: usize,
    timeout: Duration,
) -> Result<Scheduled> {
    let tracker = PodTracker::start(client, namespace, kube_util::is_bound).await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let sent: Arc<Vec<Mutex<Option<Instant>>>> =
        Arc::new((0..n).map(|_| Mutex::new(None)).collect());
    let started = Instant::now();
    let times = sent.clone();
    kube_util::run_pool(n, 32, move |i| {
        let (api, times) = (api.clone(), times.clone());
        async move {
            let pod = kube_util::pod(&format!("p-{i}"), None, json!({"app": "bench"}))?;
            *times[i].lock().expect("not poisoned") = Some(Instant::now());
            api.create(&PostParams::default(), &pod).await?;
            Ok(())
        }
    })
    .await?;
    tracker
        .wait_for(n, timeout, &format!("pods bound in {namespace}"))
        .await?;
    let seen = tracker.seen();
    let last = seen.values().map(|(at, _)| *at).max().context("no pods")?;
    let mut latencies = Vec::new();
    let mut nodes = Vec::new();
    for (name, (at, pod)) in &seen {
        let i: usize = name.trim_start_matches("p-").parse()?;
        if let Some(sent) = *sent[i].lock().expect("not poisoned") {
            latencies.push(at.saturating_duration_since(sent));
        }
        nodes.push(
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
        );
    }
    Ok(Scheduled {
        rate: n as f64 / last.duration_since(started).as_secs_f64(),
        latencies: Latencies::new(latencies),
        nodes,
    })
}

/// Creates `n` Ready nodes the default scheduler places pods on, as kwok's fake nodes look.
async fn create_nodes(client: &Client, n: usize) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let api2 = api.clone();
    kube_util::run_pool(n, 8, move |i| {
        let api = api2.clone();
        async move {
            let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            );
            let name = format!("bench-node-{i:03}");
            let resources = json!({"cpu": "4", "memory": "16Gi", "pods": "110"});
            let node: Node = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {
                    "keg-bench/node": "true", "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
                "spec": {},
                "status": {
                    "capacity": resources, "allocatable": resources,
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                    "message": "API-only node of keg-bench",
                                    "lastHeartbeatTime": now, "lastTransitionTime": now}],
                    "addresses": [{"type": "InternalIP", "address": format!("10.254.{}.{}", i / 250, i % 250 + 1)}]
                }
            }))?;
            let made = api.create(&PostParams::default(), &node).await?;
            if !ready(&made) {
                // The API dropped the status on create, as upstream may: set it as a kubelet does.
                let status = json!({"status": node.status});
                api.patch_status(
                    &name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(status),
                )
                .await?;
            }
            Ok(())
        }
    })
    .await?;
    let listed = api
        .list(&ListParams::default().labels("keg-bench/node"))
        .await?;
    let ready_nodes = listed.items.iter().filter(|n| ready(n)).count();
    if ready_nodes != n {
        bail!("{ready_nodes} of {n} API-only nodes are Ready");
    }
    Ok(())
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
