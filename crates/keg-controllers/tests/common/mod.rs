//! The fixture of the controller tests: a real API server in-process (no socket), every
//! controller of `run_all` running against it, and polling helpers with a deadline.
//!
//! There is no node agent here. Where a test needs pods running and ready, a stand-in for the
//! kubelet writes their status (phase, IP, Ready condition) through the API, as the kubelet
//! would; that is the only thing it fakes.
//!
//! With `KEG_TEST_STORE=etcd` the API server keeps its state in a three-member etcd cluster
//! of its own (`keg_store::test_store`) instead of the embedded store.

#![allow(dead_code)] // each test binary uses a different part of the fixture

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// How long any awaited state may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// An API server with the controllers running.
pub struct Cluster {
    /// An admin client.
    pub client: Client,
    tasks: Vec<JoinHandle<()>>,
    _api: TestApi,
}

/// The API server of the suites, shared with keg-apiserver's own tests.
#[path = "../../../keg-apiserver/tests/common/mod.rs"]
mod api;
pub use api::TestApi;

impl TestApi {
    /// An admin client of the server, in-process.
    pub fn client(&self) -> Client {
        keg_apiserver::client::in_process_client(self.server.router(), self.server.tokens.admin())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Cluster {
    /// Starts the API server in a temporary directory and every controller.
    pub async fn start() -> anyhow::Result<Cluster> {
        Cluster::start_with_clock(std::sync::Arc::new(keg_controllers::SystemClock)).await
    }

    /// Starts the API server and every controller, the controllers reading `clock`.
    pub async fn start_with_clock(
        clock: std::sync::Arc<dyn keg_controllers::Clock>,
    ) -> anyhow::Result<Cluster> {
        let api = TestApi::open().await;
        let client = api.client();
        let tasks = vec![tokio::spawn(keg_controllers::run_all_with_clock(
            client.clone(),
            clock,
        ))];
        Ok(Cluster {
            client,
            tasks,
            _api: api,
        })
    }

    /// Creates a namespace.
    pub async fn namespace(&self, name: &str) -> anyhow::Result<()> {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(())
    }

    /// Starts the kubelet stand-in for a namespace: every pod that is not being deleted is
    /// made Running and Ready, with an address, as soon as it is seen.
    pub fn kubelet(&mut self, ns: &str) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        self.tasks.push(tokio::spawn(async move {
            let mut events = watcher(pods.clone(), watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                let (Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod))) = event
                else {
                    continue;
                };
                if pod.metadata.deletion_timestamp.is_none() && !is_ready(&pod) {
                    let _ = set_pod_status(&pods, &pod.name_any(), true).await;
                }
            }
        }));
    }

    /// Starts a kubelet stand-in for a namespace whose pods run to completion: a pod whose
    /// first container's command holds `fail` exits 1, one holding `sleep` keeps running,
    /// any other exits 0. Pods being deleted are not touched.
    pub fn batch_kubelet(&mut self, ns: &str) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        self.tasks.push(tokio::spawn(async move {
            let mut events = watcher(pods.clone(), watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                let (Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod))) = event
                else {
                    continue;
                };
                let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
                if pod.metadata.deletion_timestamp.is_some()
                    || matches!(phase.as_deref(), Some("Succeeded" | "Failed" | "Running"))
                {
                    continue;
                }
                let command = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.first())
                    .and_then(|c| c.command.clone())
                    .unwrap_or_default()
                    .join(" ");
                let (phase, code) = if command.contains("fail") {
                    ("Failed", 1)
                } else if command.contains("sleep") {
                    ("Running", 0)
                } else {
                    ("Succeeded", 0)
                };
                let state = if phase == "Running" {
                    json!({"running": {}})
                } else {
                    json!({"terminated": {"exitCode": code}})
                };
                let status = json!({"status": {
                    "phase": phase,
                    "containerStatuses": [{"name": "main", "ready": phase == "Running", "restartCount": 0,
                        "image": "img", "imageID": "", "state": state}],
                }});
                let _ = pods
                    .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&status))
                    .await;
            }
        }));
    }

    /// A namespaced API.
    pub fn api<K>(&self, ns: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), ns)
    }
}

/// Whether a pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Writes a pod's status as the kubelet would: Running with an address, Ready or not.
pub async fn set_pod_status(pods: &Api<Pod>, name: &str, ready: bool) -> anyhow::Result<Pod> {
    static NEXT_IP: AtomicU32 = AtomicU32::new(2);
    let current = pods.get(name).await?;
    let ip = current
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_else(|| {
            let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
            format!("10.244.{}.{}", n / 250, n % 250 + 2)
        });
    let now = Timestamp::now().to_string();
    let status = json!({"status": {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now},
        ],
    }});
    Ok(pods
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?)
}

/// Polls `check` until it gives a value; fails the test with `what` after the deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let mut last_error = None;
    let polled = tokio::time::timeout(DEADLINE, async {
        loop {
            match check().await {
                Ok(Some(value)) => return value,
                Ok(None) => {}
                Err(e) => last_error = Some(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    match polled {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what} (last error: {last_error:?})"),
    }
}

/// A Deployment of `replicas` pods running `image`, labelled `app: <name>`.
pub fn deployment(
    name: &str,
    replicas: i32,
    image: &str,
    extra_spec: Value,
) -> anyhow::Result<Deployment> {
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": image, "ports": [{"name": "http", "containerPort": 8080}]}]},
        },
    });
    merge(&mut spec, extra_spec);
    Ok(serde_json::from_value(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}),
    )?)
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, value) => *slot = value,
    }
}

/// Waits until `kubectl rollout status` would say the Deployment successfully rolled out,
/// by the same fields it reads, and returns the Deployment.
pub async fn rolled_out(deployments: &Api<Deployment>, name: &str) -> Deployment {
    eventually(&format!("deployment {name} to roll out"), || async {
        let d = deployments.get(name).await?;
        let status = d.status.clone().unwrap_or_default();
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let observed = status.observed_generation >= d.metadata.generation;
        let done = status.updated_replicas.unwrap_or(0) >= desired
            && status.replicas.unwrap_or(0) <= status.updated_replicas.unwrap_or(0)
            && status.available_replicas.unwrap_or(0) >= status.updated_replicas.unwrap_or(0);
        Ok((observed && done).then_some(d))
    })
    .await
}

/// The Deployment's condition of a type: (status, reason, message).
pub fn condition(d: &Deployment, type_: &str) -> Option<(String, String, String)> {
    let c = d
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}

/// The ReplicaSets in a namespace, by revision (creation times only have seconds).
pub async fn replica_sets(client: &Client, ns: &str) -> anyhow::Result<Vec<ReplicaSet>> {
    let mut sets = Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items;
    let revision = |rs: &ReplicaSet| {
        rs.annotations()
            .get("deployment.kubernetes.io/revision")
            .and_then(|r| r.parse::<i64>().ok())
    };
    sets.sort_by(|a, b| {
        revision(a).cmp(&revision(b)).then(
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp),
        )
    });
    Ok(sets)
}

/// The pods in a namespace that are not being deleted.
pub async fn live_pods(client: &Client, ns: &str) -> anyhow::Result<Vec<Pod>> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items;
    Ok(pods
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

/// The (reason, message) of the events about an object, oldest first, read as `kubectl
/// describe` reads them: core/v1 events selected by involvedObject.
pub async fn events_about(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), ns);
    let selector = format!("involvedObject.kind={kind},involvedObject.name={name}");
    let mut list = events
        .list(&ListParams::default().fields(&selector))
        .await?
        .items;
    list.sort_by(|a, b| {
        a.event_time.cmp(&b.event_time).then(
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp),
        )
    });
    Ok(list
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect())
}

/// Waits until an event with this reason and message exists about the object.
pub async fn event_seen(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
    reason: &str,
    message: &str,
) {
    eventually(
        &format!("event {reason} \"{message}\" about {kind} {name}"),
        || async {
            let events = events_about(client, ns, kind, name).await?;
            Ok(events
                .iter()
                .any(|(r, m)| r == reason && m == message)
                .then_some(()))
        },
    )
    .await
}

/// The events.k8s.io view of events, to check both groups serve them.
pub async fn new_style_events(client: &Client, ns: &str) -> anyhow::Result<Vec<Event>> {
    Ok(Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items)
}
