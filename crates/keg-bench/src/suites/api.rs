//! Create, update and get of single ConfigMaps at 1, 16 and 128 concurrent clients: latency
//! p50 and p99 and throughput of each, as upstream's API call latency SLOs measure them.

use std::sync::{Arc, Mutex};

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

/// Runs the suite.
pub async fn run(ctx: &Ctx) -> Result<Outcome> {
    let server = Server::start(&ctx.keg, &["--no-node-agent"]).await?;
    let client = server.client().await?;
    kube_util::namespace(&client, "bench-api").await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "bench-api");
    let ops = ctx.size.pick(32, 2000);
    let mut rows = Vec::new();
    for clients in [1, 16, 128] {
        let n = ops.max(clients);
        let created: Arc<Vec<Mutex<Option<ConfigMap>>>> =
            Arc::new((0..n).map(|_| Mutex::new(None)).collect());

        let (a, store) = (api.clone(), created.clone());
        let create = kube_util::run_pool(n, clients, move |i| {
            let (api, store) = (a.clone(), store.clone());
            async move {
                let cm: ConfigMap = serde_json::from_value(json!({
                    "metadata": {"name": format!("c{clients}-{i}"), "labels": {"bench": "api"}},
                    "data": {"key": format!("value {i}"), "payload": "x".repeat(100)}
                }))?;
                let made = api.create(&PostParams::default(), &cm).await?;
                *store[i].lock().expect("not poisoned") = Some(made);
                Ok(())
            }
        })
        .await?;

        let (a, store) = (api.clone(), created.clone());
        let update = kube_util::run_pool(n, clients, move |i| {
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

        let a = api.clone();
        let get = kube_util::run_pool(n, clients, move |i| {
            let api = a.clone();
            async move {
                api.get(&format!("c{clients}-{i}")).await?;
                Ok(())
            }
        })
        .await?;

        for (verb, (latencies, wall), anchor) in [
            ("create", create, MUTATING_SLO),
            ("update", update, MUTATING_SLO),
            ("get", get, READ_SLO),
        ] {
            let latencies = Latencies::new(latencies);
            let who = format!("{clients} client{}", if clients == 1 { "" } else { "s" });
            rows.push(Row::new(
                SUITE,
                format!("{verb} p50 ({who})"),
                latencies.ms(0.5),
                "ms",
            ));
            rows.push(
                Row::new(
                    SUITE,
                    format!("{verb} p99 ({who})"),
                    latencies.ms(0.99),
                    "ms",
                )
                .anchor(anchor),
            );
            rows.push(Row::new(
                SUITE,
                format!("{verb} throughput ({who})"),
                latencies.len() as f64 / wall.as_secs_f64(),
                "ops/s",
            ));
        }
    }
    let notes = vec![format!(
        "{ops} calls per verb and client count, ConfigMaps of ~150 bytes, over HTTPS from \
         kube-rs on the same machine"
    )];
    drop(server);
    Ok(Outcome::Ran { rows, notes })
}
