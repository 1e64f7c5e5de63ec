//! What the suites share: namespaces, objects, a pool of concurrent clients, and a watch that
//! notes when each pod first reaches a state.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use keg_api::crds::FargateProfile;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The scheduler name no scheduler serves: pods that must only be stored, never placed, name
/// it so that neither of keg's schedulers works on them.
pub const NO_SCHEDULER: &str = "keg-bench-none";

/// Creates a namespace.
pub async fn namespace(client: &Client, name: &str) -> Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

/// Creates a Fargate profile that selects every pod of `namespace`.
pub async fn fargate_profile(client: &Client, name: &str, namespace: &str) -> Result<()> {
    let profile: FargateProfile = serde_json::from_value(json!({
        "apiVersion": "keg.dev/v1", "kind": "FargateProfile",
        "metadata": {"name": name},
        "spec": {"selectors": [{"namespace": namespace}]}
    }))?;
    Api::<FargateProfile>::all(client.clone())
        .create(&PostParams::default(), &profile)
        .await
        .with_context(|| format!("creating Fargate profile {name}"))?;
    Ok(())
}

/// A one-container busybox pod running `sleep`, with small requests (as scheduler_perf's).
pub fn pod(name: &str, scheduler: Option<&str>, labels: serde_json::Value) -> Result<Pod> {
    let mut spec = json!({
        "containers": [{
            "name": "main", "image": "busybox:bench", "command": ["sleep", "3600"],
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}
        }],
        "terminationGracePeriodSeconds": 1
    });
    if let Some(scheduler) = scheduler {
        spec["schedulerName"] = json!(scheduler);
    }
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": spec
    }))?)
}

/// Runs `op(0..n)` on `clients` concurrent tasks; returns each call's latency and the wall
/// time of all of them.
pub async fn run_pool<F, Fut>(n: usize, clients: usize, op: F) -> Result<(Vec<Duration>, Duration)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.min(n).max(1) {
        let (op, next) = (op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let t = Instant::now();
                op(i).await?;
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for task in tasks {
        all.extend(task.await??);
    }
    Ok((all, started.elapsed()))
}

/// When each pod of a namespace was first seen (by a watch) in a state.
#[derive(Clone)]
pub struct PodTracker {
    seen: Arc<Mutex<HashMap<String, (Instant, Pod)>>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl PodTracker {
    /// Starts watching `namespace`'s pods, noting the first moment each satisfies `state`.
    pub async fn start(
        client: &Client,
        namespace: &str,
        state: fn(&Pod) -> bool,
    ) -> Result<PodTracker> {
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let list = api.list(&ListParams::default()).await?;
        let mut version = list.metadata.resource_version.unwrap_or_default();
        note(&seen, list.items, state);
        let notes = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let stream = match api.watch(&WatchParams::default(), &version).await {
                    Ok(stream) => stream,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let mut stream = stream.boxed();
                let mut expired = false;
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod)) => {
                            version = pod.resource_version().unwrap_or(version);
                            note(&notes, vec![pod], state);
                        }
                        Ok(WatchEvent::Bookmark(b)) => version = b.metadata.resource_version,
                        Ok(WatchEvent::Deleted(_)) => {}
                        Ok(WatchEvent::Error(_)) | Err(_) => {
                            expired = true;
                            break;
                        }
                    }
                }
                if expired && let Ok(list) = api.list(&ListParams::default()).await {
                    version = list.metadata.resource_version.unwrap_or_default();
                    note(&notes, list.items, state);
                }
            }
        });
        Ok(PodTracker {
            seen,
            task: Arc::new(task),
        })
    }

    /// How many pods have reached the state.
    pub fn count(&self) -> usize {
        self.seen.lock().expect("not poisoned").len()
    }

    /// Waits until `n` pods have reached the state; fails after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration, what: &str) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.count() < n {
            if Instant::now() > deadline {
                bail!("{what}: {} of {n} after {timeout:?}", self.count());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Each pod's name, the moment it reached the state, and the pod as it was then.
    pub fn seen(&self) -> HashMap<String, (Instant, Pod)> {
        self.seen.lock().expect("not poisoned").clone()
    }
}

impl Drop for PodTracker {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

fn note(seen: &Mutex<HashMap<String, (Instant, Pod)>>, pods: Vec<Pod>, state: fn(&Pod) -> bool) {
    let now = Instant::now();
    let mut seen = seen.lock().expect("not poisoned");
    for pod in pods {
        if state(&pod) && !seen.contains_key(&pod.name_any()) {
            seen.insert(pod.name_any(), (now, pod));
        }
    }
}

/// Whether a pod is bound to a node.
pub fn is_bound(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some()
}

/// Whether a pod is Running.
pub fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Whether a pod is Running and Ready.
pub fn is_ready(pod: &Pod) -> bool {
    is_running(pod)
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
