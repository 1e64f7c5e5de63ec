//! The metering controller: one `UsageRecord` per pod that started and per node-group node
//! that became Ready, opened when it starts and closed when it ends, kept in the store so
//! the bill survives restarts (of metering and of the cluster).
//!
//! When things start and end is decided in [`observe`]. How an end is learnt, best first:
//! 1. the pod's final status (its last container's `finishedAt`), which the node agent posts
//!    before it removes a pod, and which the watch's DELETED event still carries;
//! 2. the moment metering saw the pod or node removed (a node has no final status);
//! 3. for what went while metering was not running, its last [`checkpoint`].
//!
//! Records are only ever created and closed (an end set once), never rewritten, so a
//! record's bill can only grow while it runs and is fixed once it ended.

pub mod checkpoint;
pub mod observe;
mod writes;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use keg_api::nodes::ClusterInfo;
use keg_api::prices::PriceTable;
use keg_api::usage::{EndReason, Subject, UsageRecord, UsageRecordSpec, record_name};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch;

use self::checkpoint::Checkpoint;
use self::observe::{Pricing, node_record, pod_record};
use crate::cache::follow;
use crate::{Clock, RETRY, SystemClock};

/// How often metering records its checkpoint by default.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// How metering runs.
pub struct Config {
    /// The region whose prices apply.
    pub region: String,
    /// The prices (the built-in table, or with a user's price file over it).
    pub prices: PriceTable,
    /// Where "now" comes from (the end of what was seen removed, the checkpoint).
    pub clock: Arc<dyn Clock>,
    /// How often the checkpoint is written.
    pub checkpoint_interval: Duration,
}

impl Config {
    /// Metering for `cluster`'s region at `prices`, on the system clock.
    pub fn new(cluster: &ClusterInfo, prices: PriceTable) -> Config {
        Config {
            region: cluster.region.clone(),
            prices,
            clock: Arc::new(SystemClock),
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
        }
    }
}

/// Objects seen deleted (their last state, as the watch delivered it) and when.
type Removals<K> = Arc<Mutex<Vec<(K, Timestamp)>>>;

/// Runs metering until the process ends.
pub async fn run(client: Client, config: Config) {
    let (changed, mut changes) = watch::channel(0u64);
    let changed = Arc::new(changed);
    let clock = config.clock.clone();
    let (pods, gone_pods) = follow_removals::<Pod>(&client, changed.clone(), clock.clone());
    let (nodes, gone_nodes) = follow_removals::<Node>(&client, changed.clone(), clock.clone());
    let records: Store<UsageRecord> = follow(Api::all(client.clone()), changed);
    let _ = pods.wait_until_ready().await;
    let _ = nodes.wait_until_ready().await;
    let _ = records.wait_until_ready().await;
    let (mut checkpoint, previous) = loop {
        match Checkpoint::open(client.clone()).await {
            Ok(opened) => break opened,
            Err(e) => tracing::warn!("metering: reading the checkpoint: {e}"),
        }
        tokio::time::sleep(RETRY).await;
    };
    let interval = config.checkpoint_interval;
    let mut meter = Meter {
        writes: writes::Writes::new(client),
        config,
        previous_checkpoint: previous,
        seen: HashSet::new(),
    };
    let mut last_checkpoint: Option<tokio::time::Instant> = None;
    loop {
        changes.borrow_and_update();
        let removed_pods = std::mem::take(&mut *gone_pods.lock().expect("not poisoned"));
        let removed_nodes = std::mem::take(&mut *gone_nodes.lock().expect("not poisoned"));
        let now = clock.now();
        let complete = meter
            .pass(
                Observed {
                    pods: &pods.state(),
                    nodes: &nodes.state(),
                    removed_pods,
                    removed_nodes,
                },
                &records.state(),
                now,
            )
            .await;
        // The checkpoint vouches that everything was looked at, so only a clean pass moves it.
        if complete && last_checkpoint.is_none_or(|t| t.elapsed() >= interval) {
            match checkpoint.write(now).await {
                Ok(()) => last_checkpoint = Some(tokio::time::Instant::now()),
                Err(e) => tracing::warn!("metering: writing the checkpoint: {e}"),
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(if complete { interval } else { RETRY }) => {}
        }
        // Changes come in bursts (a pod's status, then its deletion): take them together.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Like [`follow`], and also keeps what the watch reports deleted, with when it was seen.
fn follow_removals<K>(
    client: &Client,
    changes: Arc<watch::Sender<u64>>,
    clock: Arc<dyn Clock>,
) -> (Store<K>, Removals<K>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let removals: Removals<K> = Arc::default();
    let stream = watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    let sink = removals.clone();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    if let watcher::Event::Delete(object) = event {
                        sink.lock()
                            .expect("not poisoned")
                            .push((object, clock.now()));
                    }
                    changes.send_modify(|n| *n += 1);
                }
                Err(e) => tracing::debug!("metering watch: {e}"),
            }
        }
    });
    (reader, removals)
}

/// What one pass looks at.
struct Observed<'a> {
    pods: &'a [Arc<Pod>],
    nodes: &'a [Arc<Node>],
    removed_pods: Vec<(Pod, Timestamp)>,
    removed_nodes: Vec<(Node, Timestamp)>,
}

struct Meter {
    writes: writes::Writes,
    config: Config,
    previous_checkpoint: Option<Timestamp>,
    /// Records whose pod or node this process has seen alive: if it vanishes unseen (a
    /// deletion lost to a watch restart), it went after it was last seen, so "now" is fair.
    seen: HashSet<String>,
}

impl Meter {
    /// Brings the records up to date with what is observed; false if some write failed.
    async fn pass(
        &mut self,
        observed: Observed<'_>,
        records: &[Arc<UsageRecord>],
        now: Timestamp,
    ) -> bool {
        let pricing = Pricing {
            region: &self.config.region,
            prices: &self.config.prices,
        };
        let existing: HashMap<String, &UsageRecordSpec> =
            records.iter().map(|r| (r.name_any(), &r.spec)).collect();
        let nodes_by_name: HashMap<String, &Node> = observed
            .nodes
            .iter()
            .map(|n| (n.name_any(), n.as_ref()))
            .collect();
        let mut wanted: Vec<UsageRecordSpec> = Vec::new();
        for pod in observed.pods {
            let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
            let node = node.and_then(|n| nodes_by_name.get(n).copied());
            wanted.extend(pod_record(pod, node, &pricing));
        }
        wanted.extend(
            observed
                .nodes
                .iter()
                .filter_map(|n| node_record(n, &pricing)),
        );
        let live: HashSet<String> = wanted.iter().map(UsageRecordSpec::object_name).collect();
        for (pod, at) in &observed.removed_pods {
            let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
            let node = node.and_then(|n| nodes_by_name.get(n).copied());
            wanted.extend(pod_record(pod, node, &pricing).map(|r| ended(r, *at)));
        }
        for (node, at) in &observed.removed_nodes {
            wanted.extend(node_record(node, &pricing).map(|r| ended(r, *at)));
        }
        let mut complete = true;
        for record in &wanted {
            let name = record.object_name();
            if live.contains(&name) {
                self.seen.insert(name.clone());
            }
            complete &= self
                .writes
                .apply(record, existing.get(&name).copied())
                .await;
        }
        let accounted: HashSet<String> = wanted.iter().map(UsageRecordSpec::object_name).collect();
        for (name, record) in &existing {
            if record.is_open() && !accounted.contains(name) {
                let (end, reason) = self.lost_end(name, record, now);
                complete &= self.writes.close(name, end, reason).await;
                self.seen.remove(name);
            }
        }
        complete
    }

    /// The end of an open record whose pod or node is no longer there, unannounced.
    fn lost_end(
        &self,
        name: &str,
        record: &UsageRecordSpec,
        now: Timestamp,
    ) -> (Timestamp, EndReason) {
        if self.seen.contains(name) {
            return (now, EndReason::Removed);
        }
        let checkpoint = self.previous_checkpoint.unwrap_or(record.start);
        (checkpoint.max(record.start), EndReason::Unobserved)
    }
}

/// A record of something seen removed at `at`: its own end if it had one, else `at`.
fn ended(mut record: UsageRecordSpec, at: Timestamp) -> UsageRecordSpec {
    if record.end.is_none() {
        record.end = Some(at.max(record.start));
        record.end_reason = Some(EndReason::Removed);
    }
    record
}

/// The record name of the pod with `uid` (for tests and tools that look records up).
pub fn pod_record_name(uid: &str) -> String {
    record_name(Subject::Pod, uid)
}

/// The record name of the node with `uid`.
pub fn node_record_name(uid: &str) -> String {
    record_name(Subject::Node, uid)
}
