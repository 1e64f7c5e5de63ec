//! The garbage collector, as upstream's: it watches every deletable resource (metadata only),
//! keeps a graph of owners and dependents, and
//! - deletes objects whose owners are all gone (background propagation),
//! - for an owner deleted in the foreground (finalizer `foregroundDeletion`), deletes its
//!   dependents and removes the finalizer once no dependent blocks it any more,
//! - for an owner deleted with the `orphan` finalizer, removes the dependents' references to
//!   it, then the finalizer.
//!
//! Resources are rediscovered every 30 seconds, so custom resources are collected too.

mod graph;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use graph::{Graph, Identity, Work};

/// How often served resources are rediscovered (upstream's monitor resync).
const REDISCOVER: Duration = Duration::from_secs(30);
/// How many objects are looked at concurrently.
const WORKERS: usize = 8;

/// A served kind: how to reach it.
#[derive(Clone)]
struct Kind {
    resource: ApiResource,
    namespaced: bool,
}

/// A change the watches report.
enum Change {
    Upsert(Box<(Identity, ObjectMeta)>),
    Remove(String),
    /// A full relist of one kind: (group, kind, uids listed).
    Relisted(String, String, HashSet<String>),
}

/// A queue of uids to work on, each at most once until taken, with retries backing off.
struct Queue {
    tx: mpsc::UnboundedSender<String>,
    pending: Mutex<HashSet<String>>,
    failures: Mutex<HashMap<String, u32>>,
}

impl Queue {
    fn new() -> (Arc<Queue>, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Queue {
                tx,
                pending: Mutex::default(),
                failures: Mutex::default(),
            }),
            rx,
        )
    }

    fn add(&self, uid: String) {
        if self.pending.lock().expect("queue lock").insert(uid.clone()) {
            let _ = self.tx.send(uid);
        }
    }

    /// Marks a uid as being worked on: changes from now on queue it again.
    fn take(&self, uid: &str) {
        self.pending.lock().expect("queue lock").remove(uid);
    }

    fn succeeded(&self, uid: &str) {
        self.failures.lock().expect("queue lock").remove(uid);
    }

    fn retry(self: &Arc<Self>, uid: String) {
        let attempts = {
            let mut failures = self.failures.lock().expect("queue lock");
            let n = failures.entry(uid.clone()).or_default();
            *n = n.saturating_add(1);
            *n
        };
        let delay = Duration::from_millis(250)
            .saturating_mul(1 << attempts.min(10))
            .min(Duration::from_secs(300));
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(uid);
        });
    }
}

/// The collector's shared state.
struct Collector {
    client: Client,
    graph: Mutex<Graph>,
    kinds: RwLock<HashMap<(String, String), Kind>>,
    deletes: Arc<Queue>,
    orphans: Arc<Queue>,
}

impl Collector {
    fn apply(&self, change: Change) {
        let work = {
            let mut graph = self.graph.lock().expect("graph lock");
            match change {
                Change::Upsert(upsert) => graph.upsert(upsert.0, &upsert.1),
                Change::Remove(uid) => graph.remove(&uid),
                Change::Relisted(group, kind, present) => graph.resync(&group, &kind, &present),
            }
        };
        for item in work {
            match item {
                Work::Delete(uid) => self.deletes.add(uid),
                Work::Orphan(uid) => self.orphans.add(uid),
            }
        }
    }

    /// How to reach objects of a group and kind, if served.
    fn kind(&self, group: &str, kind: &str) -> Option<Kind> {
        self.kinds
            .read()
            .expect("kinds lock")
            .get(&(group.to_string(), kind.to_string()))
            .cloned()
    }
}

/// Runs the collector until the process ends.
pub async fn run(client: Client) {
    let (deletes, delete_rx) = Queue::new();
    let (orphans, orphan_rx) = Queue::new();
    let (changes_tx, mut changes_rx) = mpsc::unbounded_channel();
    let gc = Arc::new(Collector {
        client,
        graph: Mutex::default(),
        kinds: RwLock::default(),
        deletes,
        orphans,
    });
    let apply = {
        let gc = gc.clone();
        async move {
            while let Some(change) = changes_rx.recv().await {
                gc.apply(change);
            }
        }
    };
    tokio::join!(
        discover(gc.clone(), changes_tx),
        apply,
        work(gc.clone(), delete_rx, false),
        work(gc.clone(), orphan_rx, true),
    );
}

/// Keeps one metadata watch per deletable resource, following what the server serves.
async fn discover(gc: Arc<Collector>, changes: mpsc::UnboundedSender<Change>) {
    let mut monitors: HashMap<(String, String), JoinHandle<()>> = HashMap::new();
    loop {
        match Discovery::new(gc.client.clone()).run().await {
            Ok(discovery) => {
                let mut kinds = HashMap::new();
                for group in discovery.groups() {
                    for (resource, caps) in group.recommended_resources() {
                        let deletable = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                            .iter()
                            .all(|v| caps.supports_operation(v));
                        // Events own nothing and are never owned; upstream ignores them too.
                        if !deletable || resource.plural == "events" {
                            continue;
                        }
                        let namespaced = matches!(caps.scope, Scope::Namespaced);
                        kinds.insert(
                            (resource.group.clone(), resource.kind.clone()),
                            Kind {
                                resource,
                                namespaced,
                            },
                        );
                    }
                }
                monitors.retain(|key, handle| {
                    let keep = kinds.contains_key(key);
                    if !keep {
                        handle.abort();
                    }
                    keep
                });
                for (key, kind) in &kinds {
                    if !monitors.contains_key(key) {
                        let task =
                            monitor(gc.client.clone(), kind.resource.clone(), changes.clone());
                        monitors.insert(key.clone(), tokio::spawn(task));
                    }
                }
                *gc.kinds.write().expect("kinds lock") = kinds;
            }
            Err(e) => tracing::warn!("garbage collector: discovery failed: {e}"),
        }
        tokio::time::sleep(REDISCOVER).await;
    }
}

/// Reports the objects of one resource to the graph.
async fn monitor(client: Client, resource: ApiResource, changes: mpsc::UnboundedSender<Change>) {
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &resource);
    let identity = |meta: &ObjectMeta| Identity {
        group: resource.group.clone(),
        version: resource.version.clone(),
        kind: resource.kind.clone(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
    };
    let mut relisted: Option<HashSet<String>> = None;
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        let change = match event {
            Ok(watcher::Event::Apply(obj)) => {
                Change::Upsert(Box::new((identity(&obj.metadata), obj.metadata)))
            }
            Ok(watcher::Event::Delete(obj)) => Change::Remove(obj.metadata.uid.unwrap_or_default()),
            Ok(watcher::Event::Init) => {
                relisted = Some(HashSet::new());
                continue;
            }
            Ok(watcher::Event::InitApply(obj)) => {
                relisted
                    .get_or_insert_with(HashSet::new)
                    .insert(obj.metadata.uid.clone().unwrap_or_default());
                Change::Upsert(Box::new((identity(&obj.metadata), obj.metadata)))
            }
            Ok(watcher::Event::InitDone) => Change::Relisted(
                resource.group.clone(),
                resource.kind.clone(),
                relisted.take().unwrap_or_default(),
            ),
            Err(e) => {
                tracing::debug!(kind = %resource.kind, "garbage collector watch: {e}");
                continue;
            }
        };
        if changes.send(change).is_err() {
            return;
        }
    }
}

/// Works through one queue, a few objects at a time.
async fn work(gc: Arc<Collector>, mut rx: mpsc::UnboundedReceiver<String>, orphan: bool) {
    let uids = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    uids.for_each_concurrent(WORKERS, |uid| {
        let gc = gc.clone();
        async move {
            let queue = if orphan {
                gc.orphans.clone()
            } else {
                gc.deletes.clone()
            };
            queue.take(&uid);
            let result = if orphan {
                worker::orphan(&gc, &uid).await
            } else {
                worker::attempt_to_delete(&gc, &uid).await
            };
            match result {
                Ok(()) => queue.succeeded(&uid),
                Err(e) => {
                    tracing::debug!(%uid, "garbage collector: {e}");
                    queue.retry(uid);
                }
            }
        }
    })
    .await;
}
