//! Scheduling latency and pod starts, read from the store's stream of pod changes (each
//! change carries the value before it, so transitions are plain to see). The server sees
//! every write first-hand, whichever scheduler or node agent made it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use keg_store::{EventKind, WatchEvent};
use serde_json::Value;

use super::exposition::{Exposition, Histogram, Labels};
use crate::state::ApiState;

/// Upstream's scheduling buckets (0.01 s doubling), cut at about three minutes.
const SCHEDULING_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92, 163.84,
];

/// Pod scheduling and start metrics.
#[derive(Default)]
pub struct PodMetrics {
    scheduling: Mutex<BTreeMap<Labels, Histogram>>,
    started: Mutex<BTreeMap<Labels, f64>>,
    /// When this server saw each unscheduled pod created (more precise than the
    /// creationTimestamp's whole seconds).
    created: Mutex<HashMap<String, Instant>>,
}

impl PodMetrics {
    /// Takes one change of a pod into account.
    pub fn observe(&self, event: &WatchEvent) {
        let Ok(new) = serde_json::from_slice::<Value>(&event.kv.value) else {
            return;
        };
        let uid = new["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut created = self.created.lock().expect("not poisoned");
        if event.kind == EventKind::Delete {
            created.remove(&uid);
            return;
        }
        let old = event
            .prev
            .as_ref()
            .and_then(|kv| serde_json::from_slice::<Value>(&kv.value).ok());
        let Some(old) = old else {
            if node_name(&new).is_none() {
                created.insert(uid, Instant::now());
            }
            return;
        };
        if node_name(&old).is_none() && node_name(&new).is_some() {
            let seconds = match created.remove(&uid) {
                Some(at) => at.elapsed().as_secs_f64(),
                None => since_creation(&new),
            };
            let scheduler = new["spec"]["schedulerName"]
                .as_str()
                .unwrap_or("default-scheduler");
            self.scheduling
                .lock()
                .expect("not poisoned")
                .entry(vec![("scheduler", scheduler.to_owned())])
                .or_insert_with(|| Histogram::new(SCHEDULING_BUCKETS))
                .observe(seconds);
        }
        if phase(&old) != Some("Running") && phase(&new) == Some("Running") {
            let compute = if new["metadata"]["annotations"]["CapacityProvisioned"].is_string() {
                "fargate"
            } else {
                "nodegroup"
            };
            *self
                .started
                .lock()
                .expect("not poisoned")
                .entry(vec![("compute", compute.to_owned())])
                .or_default() += 1.0;
        }
    }

    /// How many bindings were timed (for tests).
    pub fn scheduled(&self) -> u64 {
        let scheduling = self.scheduling.lock().expect("not poisoned");
        scheduling.values().map(Histogram::count).sum()
    }

    pub(super) fn write(&self, out: &mut Exposition) {
        out.histograms(
            "scheduler_pod_scheduling_duration_seconds",
            "Time from a pod's creation to its binding to a node, by scheduler.",
            &self.scheduling.lock().expect("not poisoned"),
        );
        out.values(
            "keg_pods_started_total",
            "counter",
            "Pods that reached phase Running, by where they run (fargate or nodegroup).",
            &self.started.lock().expect("not poisoned"),
        );
    }
}

fn node_name(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
}

fn phase(pod: &Value) -> Option<&str> {
    pod["status"]["phase"].as_str()
}

/// Seconds since the pod's creationTimestamp (for pods created before this server started).
fn since_creation(pod: &Value) -> f64 {
    pod["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(0.0, |t| {
            jiff::Timestamp::now()
                .duration_since(t)
                .as_secs_f64()
                .max(0.0)
        })
}

/// Follows pod changes in the store for as long as the process runs.
pub fn spawn_observer(state: Arc<ApiState>) {
    let Some(pods) = state.registry.get("", "v1", "pods") else {
        return;
    };
    let prefix = pods.key_prefix(None);
    tokio::spawn(async move {
        loop {
            // From now on: pods changed before are not counted again after a restart.
            let from = state.objects.store().current_revision();
            match state.objects.store().watch(&prefix, from).await {
                Ok(mut events) => {
                    while let Some(Ok(event)) = events.next().await {
                        state.metrics.pods.observe(&event);
                    }
                }
                Err(e) => tracing::debug!("metrics: watching pods: {e}"),
            }
            // The watch ended (compaction overtook it): take up again from the present.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}
