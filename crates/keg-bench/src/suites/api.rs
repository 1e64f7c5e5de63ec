//! Create, update and get of single ConfigMaps at 1, 16 and 128 concurrent clients: latency
//! p50 and p99 and throughput of each, as upstream's API call latency SLOs measure them.
//!
//! The workload itself ([`workload`], and its three phases) also serves the `etcd` suite,
//! which runs it against keg on etcd and on the embedded store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::{Ctx, Outcome};
use crate::kube_util;
use crate::report::{Latencies, Row};
use crate::server::Server;

const SUITE: &str = "api";
const MUTATING_SLO: &str = "Kubernetes SLO: mutating API calls p99 <= 1 s";
const READ_SLO: &str = "Kubernetes SLO: single-object reads p99 <= 1 s";

/// The concurrent client counts the workload runs at.
pub const CLIENTS: [usize; 3] = [1, 16, 128];

/// The namespace the workload's ConfigMaps are created in.
pub const NAMESPACE: &str = "bench-api";

/// One verb at one client count: each call's latency and the wall time of all the calls.
pub struct Measured {
    /// `create`, `update` or `get`.
    pub verb: &'static str,
    /// How many clients made the calls concurrently.
    pub clients: usize,
    /// Each call's latency.
    pub latencies: Latencies,
    /// From the first call's start to the last one's end.
    pub wall: Duration,
}

impl Measured {
    /// Calls and their timing from [`kube_util::run_pool`].
    pub fn new(
        verb: &'static str,
        clients: usize,
        (samples, wall): (Vec<Duration>, Duration),
    ) -> Self {
        Measured {
            verb,
            clients,
            latencies: Latencies::new(samples),
            wall,
        }
    }

    /// Calls per second over the wall time.
    pub fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }

    /// `1 client`, `16 clients`.
    pub fn who(&self) -> String {
        clients_label(self.clients)
    }
}

/// `1 client`, `16 clients`.
pub fn clients_label(clients: usize) -> String {
    format!("{clients} client{}", if clients == 1 { "" } else { "s" })
}

/// The calls made at one client count: how many, and ConfigMaps created by the create phase.
pub struct Phase {
    api: Api<ConfigMap>,
    clients: usize,
    n: usize,
    /// Each ConfigMap as created (the update phase replaces these).
    created: Arc<Vec<Mutex<Option<ConfigMap>>>>,
    /// Names are `{tag}{clients}-{i}`, so phases of different tags do not collide.
    tag: &'static str,
}

impl Phase {
    /// `n` calls per verb (at least one per client) on `clients` concurrent clients.
    pub fn new(api: &Api<ConfigMap>, tag: &'static str, clients: usize, n: usize) -> Phase {
        let n = n.max(clients);
        Phase {
            api: api.clone(),
            clients,
            n,
            created: Arc::new((0..n).map(|_| Mutex::new(None)).collect()),
            tag,
        }
    }

    fn name(tag: &str, clients: usize, i: usize) -> String {
        format!("{tag}{clients}-{i}")
    }

    /// Creates the phase's `n` ConfigMaps of ~150 bytes.
    pub async fn create(&self) -> Result<Measured> {
        let (a, store, tag, clients) = (
            self.api.clone(),
            self.created.clone(),
            self.tag,
            self.clients,
        );
        let timing = kube_util::run_pool(self.n, clients, move |i| {
            let (api, store) = (a.clone(), store.clone());
            async move {
                let cm: ConfigMap = serde_json::from_value(json!({
                    "metadata": {"name": Phase::name(tag, clients, i), "labels": {"bench": "api"}},
                    "data": {"key": format!("value {i}"), "payload": "x".repeat(100)}
                }))?;
                let made = api.create(&PostParams::default(), &cm).await?;
                *store[i].lock().expect("not poisoned") = Some(made);
                Ok(())
            }
        })
        .await?;
        Ok(Measured::new("create", clients, timing))
    }

    /// Replaces (PUT) each ConfigMap the create phase made, one key changed.
    pub async fn update(&self) -> Result<Measured> {
        let (a, store) = (self.api.clone(), self.created.clone());
        let timing = kube_util::run_pool(self.n, self.clients, move |i| {
            let (api, store) = (a.clone(), store.clone());
            async move {
                let mut cm = store[i]
                    .lock()
                    .expect("not poisoned")
                    .clone()
                    .expect("created");
                cm.data
                    .get_or_insert_default()
                    .insert("key".into(), format!("updated {i}"));
                let name = cm.metadata.name.clone().unwrap_or_default();
                api.replace(&name, &PostParams::default(), &cm).await?;
                Ok(())
            }
        })
        .await?;
        Ok(Measured::new("update", self.clients, timing))
    }

    /// Gets each ConfigMap by name.
    pub async fn get(&self) -> Result<Measured> {
        let (a, tag, clients) = (self.api.clone(), self.tag, self.clients);
        let timing = kube_util::run_pool(self.n, clients, move |i| {
            let api = a.clone();
            async move {
                api.get(&Phase::name(tag, clients, i)).await?;
                Ok(())
            }
        })
        .await?;
        Ok(Measured::new("get", clients, timing))
    }
}

/// The workload: in a new namespace [`NAMESPACE`], at each of [`CLIENTS`], `ops` creates,
/// then `ops` updates of those, then `ops` gets of them (at least one call per client).
pub async fn workload(client: &kube::Client, ops: usize) -> Result<Vec<Measured>> {
    kube_util::namespace(client, NAMESPACE).await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let mut measured = Vec::new();
    for clients in CLIENTS {
        let phase = Phase::new(&api, "c", clients, ops);
        measured.push(phase.create().await?);
        measured.push(phase.update().await?);
        measured.push(phase.get().await?);
    }
    Ok(measured)
}

/// What the workload measured, as the `api` suite's rows.
fn rows(measured: &[Measured]) -> Vec<Row> {
    let mut rows = Vec::new();
    for m in measured {
        let anchor = if m.verb == "get" {
            READ_SLO
        } else {
            MUTATING_SLO
        };
        let (verb, who) = (m.verb, m.who());
        rows.push(Row::new(
            SUITE,
            format!("{verb} p50 ({who})"),
            m.latencies.ms(0.5),
            "ms",
        ));
        rows.push(
            Row::new(
                SUITE,
                format!("{verb} p99 ({who})"),
                m.latencies.ms(0.99),
                "ms",
            )
            .anchor(anchor),
        );
        rows.push(Row::new(
            SUITE,
            format!("{verb} throughput ({who})"),
            m.throughput(),
            "ops/s",
        ));
    }
    rows
}

/// Runs the suite.
pub async fn run(ctx: &Ctx) -> Result<Outcome> {
    let server = Server::start(&ctx.keg, &["--no-node-agent"]).await?;
    let client = server.client().await?;
    let ops = ctx.size.pick(32, 2000);
    let measured = workload(&client, ops).await?;
    let notes = vec![format!(
        "{ops} calls per verb and client count, ConfigMaps of ~150 bytes, over HTTPS from \
         kube-rs on the same machine"
    )];
    drop(server);
    Ok(Outcome::Ran {
        rows: rows(&measured),
        notes,
        table: None,
    })
}
