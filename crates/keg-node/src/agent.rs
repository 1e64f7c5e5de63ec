//! The node agent: watches the nodes labelled for it and the pods bound to them, keeps one
//! task per node (status, Lease) and one worker per pod, and removes what runs for pods it
//! no longer has.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use keg_runtime::Runtime;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{mpsc, watch};

use crate::events::EventRecorder;
use crate::logs::NodeLogs;
use crate::node::machine::{self, MachineFacts};
use crate::pod::{POD_UID_LABEL, PodWorker, Seen, remove_pod_dir, unmount_all_under};
use crate::util::TaskGuard;
use crate::{AGENT_LABEL, Config, Error, Result, io_err};

/// How often runtime sandboxes without a pod worker are looked for.
const ORPHAN_SWEEP: Duration = Duration::from_secs(30);

/// What every task of the agent shares.
pub(crate) struct Shared {
    /// The API.
    pub(crate) client: kube::Client,
    /// The container runtime.
    pub(crate) runtime: Arc<Runtime>,
    /// Settings.
    pub(crate) config: Config,
    /// Where events go.
    pub(crate) events: EventRecorder,
    /// Facts of the machine.
    pub(crate) facts: MachineFacts,
    /// Container logs.
    pub(crate) logs: NodeLogs,
}

/// The node agent (kubelet) of every node labelled `keg.dev/agent=<agent name>`; one per
/// process.
pub struct NodeAgent {
    shared: Arc<Shared>,
    events: Mutex<Option<mpsc::UnboundedReceiver<crate::events::EventRequest>>>,
}

impl NodeAgent {
    /// An agent talking to the API through `client`, running pods on `runtime`.
    pub fn new(client: kube::Client, runtime: Arc<Runtime>, config: Config) -> Result<Self> {
        for dir in ["pods", "logs"] {
            let path = config.root_dir.join(dir);
            std::fs::create_dir_all(&path).map_err(io_err(format!("create {}", path.display())))?;
        }
        let facts = MachineFacts::read(&config.root_dir, machine::runtime_version());
        let (events, rx) = EventRecorder::new();
        let logs = NodeLogs::new(config.root_dir.join("logs"), runtime.clone());
        let shared = Shared {
            client,
            runtime,
            config,
            events,
            facts,
            logs,
        };
        Ok(Self {
            shared: Arc::new(shared),
            events: Mutex::new(Some(rx)),
        })
    }

    /// The container runtime the agent runs pods on.
    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        self.shared.runtime.clone()
    }

    /// The logs of this agent's containers (for `kubectl logs`).
    pub fn logs(&self) -> NodeLogs {
        self.shared.logs.clone()
    }

    /// Serves nodes and pods until the future is dropped (which stops every task it started;
    /// containers go on running, to be adopted by the next agent) or a watch fails for good.
    pub async fn run(&self) -> Result<()> {
        let rx = self
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| Error::BadRequest("NodeAgent::run may run only once".into()))?;
        let _events = TaskGuard::spawn(crate::events::post_events(self.shared.client.clone(), rx));
        let mut dispatcher = Dispatcher::new(self.shared.clone());
        let selector = format!("{AGENT_LABEL}={}", self.shared.config.agent_name);
        let nodes = watcher::watcher(
            Api::<Node>::all(self.shared.client.clone()),
            watcher::Config::default().labels(&selector),
        )
        .default_backoff();
        let pods = watcher::watcher(
            Api::<Pod>::all(self.shared.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff();
        let mut nodes = std::pin::pin!(nodes.into_stream());
        let mut pods = std::pin::pin!(pods.into_stream());
        let mut sweep = tokio::time::interval(ORPHAN_SWEEP);
        tracing::info!(agent = %self.shared.config.agent_name, "node agent running");
        loop {
            tokio::select! {
                event = nodes.next() => match event {
                    Some(Ok(e)) => dispatcher.node_event(e),
                    Some(Err(e)) => tracing::warn!(error = %e, "watching nodes"),
                    None => return Ok(()),
                },
                event = pods.next() => match event {
                    Some(Ok(e)) => dispatcher.pod_event(e),
                    Some(Err(e)) => tracing::warn!(error = %e, "watching pods"),
                    None => return Ok(()),
                },
                _ = sweep.tick() => dispatcher.sweep().await,
            }
        }
    }

    /// Removes everything this agent's runtime runs and every file and mount of the agent
    /// (`keg delete cluster`). Call it after `run` has ended.
    pub async fn remove_everything(&self) -> Result<()> {
        let result = self.shared.runtime.remove_everything().await;
        let root = &self.shared.config.root_dir;
        unmount_all_under(root).map_err(io_err(format!("unmount under {}", root.display())))?;
        match std::fs::remove_dir_all(root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_err(format!("remove {}", root.display()))(e));
            }
            _ => {}
        }
        result.map_err(Error::from)
    }
}

/// The agent's view of its nodes and their pods.
struct Dispatcher {
    shared: Arc<Shared>,
    nodes: HashMap<String, (watch::Sender<Arc<Node>>, TaskGuard)>,
    pods: HashMap<String, Arc<Pod>>,
    workers: HashMap<String, PodWorker>,
    /// Objects listed since the last (re)start of a watch, replacing the old set when done.
    node_buffer: Option<Vec<Node>>,
    pod_buffer: Option<Vec<Pod>>,
    nodes_synced: bool,
    pods_synced: bool,
}

impl Dispatcher {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            nodes: HashMap::new(),
            pods: HashMap::new(),
            workers: HashMap::new(),
            node_buffer: None,
            pod_buffer: None,
            nodes_synced: false,
            pods_synced: false,
        }
    }

    fn node_event(&mut self, event: Event<Node>) {
        match event {
            Event::Apply(node) => self.set_node(node),
            Event::Delete(node) => self.remove_node(&node.metadata.name.unwrap_or_default()),
            Event::Init => self.node_buffer = Some(Vec::new()),
            Event::InitApply(node) => self.node_buffer.get_or_insert_with(Vec::new).push(node),
            Event::InitDone => {
                let listed = self.node_buffer.take().unwrap_or_default();
                let names: HashSet<String> = listed
                    .iter()
                    .filter_map(|n| n.metadata.name.clone())
                    .collect();
                let stale: Vec<String> = self
                    .nodes
                    .keys()
                    .filter(|n| !names.contains(*n))
                    .cloned()
                    .collect();
                for name in stale {
                    self.remove_node(&name);
                }
                for node in listed {
                    self.set_node(node);
                }
                self.nodes_synced = true;
            }
        }
    }

    fn set_node(&mut self, node: Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let node = Arc::new(node);
        match self.nodes.get(&name) {
            Some((tx, _)) => {
                tx.send_replace(node);
            }
            None => {
                tracing::info!(node = %name, "serving node");
                let (tx, rx) = watch::channel(node);
                let task = TaskGuard::spawn(crate::node::serve(self.shared.clone(), rx));
                self.nodes.insert(name.clone(), (tx, task));
            }
        }
        self.reconcile_node(&name);
    }

    fn remove_node(&mut self, name: &str) {
        // Dropping the sender ends the node's task.
        self.nodes.remove(name);
        self.reconcile_node(name);
    }

    fn reconcile_node(&mut self, name: &str) {
        let uids: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, p)| node_of(p) == Some(name))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in uids {
            self.reconcile_pod(&uid);
        }
    }

    fn pod_event(&mut self, event: Event<Pod>) {
        match event {
            Event::Apply(pod) => self.set_pod(pod),
            Event::Delete(pod) => {
                let uid = pod.metadata.uid.unwrap_or_default();
                self.pods.remove(&uid);
                self.reconcile_pod(&uid);
            }
            Event::Init => self.pod_buffer = Some(Vec::new()),
            Event::InitApply(pod) => self.pod_buffer.get_or_insert_with(Vec::new).push(pod),
            Event::InitDone => {
                let listed = self.pod_buffer.take().unwrap_or_default();
                let uids: HashSet<String> = listed
                    .iter()
                    .filter_map(|p| p.metadata.uid.clone())
                    .collect();
                let stale: Vec<String> = self
                    .pods
                    .keys()
                    .filter(|u| !uids.contains(*u))
                    .cloned()
                    .collect();
                for uid in stale {
                    self.pods.remove(&uid);
                    self.reconcile_pod(&uid);
                }
                for pod in listed {
                    self.set_pod(pod);
                }
                self.pods_synced = true;
            }
        }
    }

    fn set_pod(&mut self, pod: Pod) {
        // Only bound pods matter; unscheduled ones are not kept at all.
        if node_of(&pod).is_none() {
            return;
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.pods.insert(uid.clone(), Arc::new(pod));
        self.reconcile_pod(&uid);
    }

    /// Starts, feeds or stops the worker of a pod as its node is served or not.
    fn reconcile_pod(&mut self, uid: &str) {
        let bound = self.pods.get(uid).and_then(|pod| {
            let node = self.nodes.get(node_of(pod)?)?.0.borrow().clone();
            Some((pod.clone(), node))
        });
        let live = self.workers.get(uid).filter(|w| !w.is_finished());
        match (bound, live) {
            (Some((pod, node)), Some(worker)) => worker.update(Seen::Bound { pod, node }),
            (Some((pod, node)), None) => {
                let worker = PodWorker::start(self.shared.clone(), pod, node);
                self.workers.insert(uid.to_string(), worker);
            }
            (None, Some(worker)) => worker.update(Seen::Gone),
            (None, None) => {}
        }
    }

    /// Forgets finished workers, and removes sandboxes and pod directories of this agent
    /// that no worker owns (pods deleted while the agent was down).
    async fn sweep(&mut self) {
        self.workers.retain(|_, w| !w.is_finished());
        if !(self.nodes_synced && self.pods_synced) {
            return;
        }
        let runtime = &self.shared.runtime;
        let agent = &self.shared.config.agent_name;
        for sandbox in runtime.list_pod_sandboxes().unwrap_or_default() {
            let labels = &sandbox.config.labels;
            let uid = labels.get(POD_UID_LABEL).cloned().unwrap_or_default();
            if labels.get(AGENT_LABEL) != Some(agent) || self.workers.contains_key(&uid) {
                continue;
            }
            tracing::info!(sandbox = %sandbox.id, pod = %uid, "removing the sandbox of a pod this agent no longer has");
            if let Err(e) = runtime.remove_pod_sandbox(&sandbox.id).await {
                tracing::warn!(sandbox = %sandbox.id, error = %e, "removing an orphaned sandbox");
            }
        }
        let root = &self.shared.config.root_dir;
        let entries = std::fs::read_dir(root.join("pods"))
            .into_iter()
            .flatten()
            .flatten();
        for entry in entries {
            let uid = entry.file_name().to_string_lossy().into_owned();
            if !self.workers.contains_key(&uid)
                && let Err(e) = remove_pod_dir(root, &uid)
            {
                tracing::warn!(pod = %uid, error = %e, "removing an orphaned pod directory");
            }
        }
        // Log directories are `<ns>_<name>_<uid>`.
        let entries = std::fs::read_dir(root.join("logs"))
            .into_iter()
            .flatten()
            .flatten();
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let uid = name.rsplit('_').next().unwrap_or_default();
            if !self.workers.contains_key(uid) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}
