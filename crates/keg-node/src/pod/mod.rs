//! Pods: one worker task per pod bound to a served node, driving it through the states of
//! [`states`] and publishing its status through the `pods/status` subresource.

mod backoff;
mod containers;
mod downward;
mod env;
mod http;
mod images;
mod probes;
mod resources;
mod slot;
mod spec;
pub(crate) mod states;
mod status;
mod volumes;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use keg_runtime::Sandbox;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::{mpsc, watch};

pub(crate) use slot::ID_PREFIX;
pub(crate) use spec::POD_UID_LABEL;
pub(crate) use volumes::{remove_pod_dir, unmount_all_under};

use crate::agent::Shared;
use crate::events::{EventRequest, EventType};
use crate::util::{TaskGuard, is_not_found, now};
use probes::ProbeReport;
use slot::Slot;
use volumes::PodVolumes;

/// What the dispatcher tells a pod's worker.
#[derive(Clone, Debug)]
pub(crate) enum Seen {
    /// The pod as last seen, and the served node it is bound to.
    Bound {
        /// The pod.
        pod: Arc<Pod>,
        /// Its node.
        node: Arc<Node>,
    },
    /// The pod is deleted, or its node is no longer served.
    Gone,
}

/// A pod's worker: the task that drives it, and the channel that feeds it the pod.
#[derive(Debug)]
pub(crate) struct PodWorker {
    tx: watch::Sender<Seen>,
    task: TaskGuard,
}

impl PodWorker {
    /// Starts driving a pod.
    pub(crate) fn start(shared: Arc<Shared>, pod: Arc<Pod>, node: Arc<Node>) -> Self {
        let (tx, rx) = watch::channel(Seen::Bound {
            pod: pod.clone(),
            node: node.clone(),
        });
        let ctx = PodContext::new(shared, rx, pod, node);
        Self {
            tx,
            task: TaskGuard::spawn(states::drive(ctx)),
        }
    }

    /// Hands the worker the latest news of its pod.
    pub(crate) fn update(&self, seen: Seen) {
        self.tx.send_replace(seen);
    }

    /// Whether the worker is done (its pod is gone and cleaned up).
    pub(crate) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Everything a pod's states work with.
pub(crate) struct PodContext {
    /// The agent's shared parts.
    pub(crate) shared: Arc<Shared>,
    rx: watch::Receiver<Seen>,
    /// The pod's UID.
    pub(crate) uid: String,
    /// The pod as last seen (kept after it is gone).
    pub(crate) pod: Arc<Pod>,
    /// Its node as last seen.
    pub(crate) node: Arc<Node>,
    /// The pod was deleted, or its node is no longer served: no more API writes.
    pub(crate) gone: bool,
    /// Its sandbox, once made.
    pub(crate) sandbox: Option<Sandbox>,
    /// Its containers, init containers first.
    pub(crate) slots: Vec<Slot>,
    /// Its volumes, once set up.
    pub(crate) volumes: PodVolumes,
    /// When the agent took it on.
    pub(crate) start_time: Time,
    /// No container will run again.
    pub(crate) terminal: bool,
    /// The agent failed the pod itself: (reason, message).
    pub(crate) failure: Option<(String, String)>,
    posted: Option<PodStatus>,
    probe_tx: mpsc::UnboundedSender<ProbeReport>,
    probe_rx: mpsc::UnboundedReceiver<ProbeReport>,
    /// Probe reports not yet handled.
    pub(crate) probe_reports: Vec<ProbeReport>,
}

impl PodContext {
    fn new(shared: Arc<Shared>, rx: watch::Receiver<Seen>, pod: Arc<Pod>, node: Arc<Node>) -> Self {
        let spec = pod.spec.clone().unwrap_or_default();
        let has_init = spec.init_containers.as_ref().is_some_and(|c| !c.is_empty());
        let app_reason = if has_init {
            "PodInitializing"
        } else {
            "ContainerCreating"
        };
        let slots = spec
            .init_containers
            .into_iter()
            .flatten()
            .map(|c| Slot::new(c, true, "PodInitializing"))
            .chain(
                spec.containers
                    .into_iter()
                    .map(|c| Slot::new(c, false, app_reason)),
            )
            .collect();
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.clone())
            .unwrap_or_else(now);
        let (probe_tx, probe_rx) = mpsc::unbounded_channel();
        Self {
            shared,
            rx,
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            pod,
            node,
            gone: false,
            sandbox: None,
            slots,
            volumes: PodVolumes::default(),
            start_time,
            terminal: false,
            failure: None,
            posted: None,
            probe_tx,
            probe_rx,
            probe_reports: Vec::new(),
        }
    }

    /// The pod's namespace.
    pub(crate) fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The pod's name.
    pub(crate) fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }

    /// The node's name.
    pub(crate) fn node_name(&self) -> String {
        self.node.metadata.name.clone().unwrap_or_default()
    }

    /// The kubelet's `format.Pod`: `name_namespace(uid)`.
    pub(crate) fn pod_ref(&self) -> String {
        format!("{}_{}({})", self.name(), self.namespace(), self.uid)
    }

    /// The pod's address, once its sandbox has one.
    pub(crate) fn pod_ip(&self) -> Option<String> {
        self.sandbox.as_ref().map(|s| s.ip.to_string())
    }

    /// The node's InternalIP (else ExternalIP).
    pub(crate) fn host_ip(&self) -> Option<String> {
        let addresses = self.node.status.as_ref()?.addresses.as_ref()?;
        ["InternalIP", "ExternalIP"].iter().find_map(|t| {
            addresses
                .iter()
                .find(|a| a.type_ == *t)
                .map(|a| a.address.clone())
        })
    }

    /// The node's allocatable resources (else its capacity), as quantities.
    pub(crate) fn allocatable(&self) -> BTreeMap<String, String> {
        let status = self.node.status.clone().unwrap_or_default();
        status
            .allocatable
            .or(status.capacity)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()
    }

    /// The pod's log directory, as the kubelet's `/var/log/pods/<ns>_<name>_<uid>`.
    pub(crate) fn log_dir(&self) -> PathBuf {
        self.shared
            .logs
            .pod_dir(self.namespace(), self.name(), &self.uid)
    }

    /// The log file of a container attempt.
    pub(crate) fn log_path(&self, container: &str, attempt: i32) -> PathBuf {
        self.log_dir()
            .join(container)
            .join(format!("{attempt}.log"))
    }

    /// The pod's restart policy.
    pub(crate) fn restart_policy(&self) -> &str {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always")
    }

    /// The grace period for stopping: the deletion's, else the spec's (30 s by default); at
    /// least 2 s, as the kubelet allows no less.
    pub(crate) fn grace_period(&self) -> Duration {
        let seconds = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        Duration::from_secs(seconds.max(2) as u64)
    }

    /// Records an event about the pod.
    pub(crate) fn event(&self, type_: EventType, reason: &str, message: &str) {
        self.record(None, type_, reason, message);
    }

    /// Records an event about one of its containers.
    pub(crate) fn event_for(&self, container: &str, type_: EventType, reason: &str, message: &str) {
        self.record(Some(container), type_, reason, message);
    }

    fn record(&self, container: Option<&str>, type_: EventType, reason: &str, message: &str) {
        if self.gone {
            return;
        }
        let field_path = container.map(|name| {
            let init = self.slots.iter().any(|s| s.init && s.name() == name);
            let list = if init { "initContainers" } else { "containers" };
            format!("spec.{list}{{{name}}}")
        });
        self.shared.events.record(EventRequest {
            object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(self.name().into()),
                namespace: Some(self.namespace().into()),
                uid: Some(self.uid.clone()),
                field_path,
                ..Default::default()
            },
            host: self.node_name(),
            type_,
            reason: reason.into(),
            message: message.into(),
        });
    }

    /// Takes in news of the pod without waiting.
    pub(crate) fn refresh(&mut self) {
        if self.rx.has_changed().unwrap_or(true) {
            self.apply_news();
        }
    }

    fn apply_news(&mut self) {
        let seen = self.rx.borrow_and_update().clone();
        match seen {
            Seen::Bound { pod, node } if !self.gone => {
                self.pod = pod;
                self.node = node;
            }
            _ => self.gone = true,
        }
    }

    /// Whether the pod is to be stopped: deleted, being deleted, its node unserved, or
    /// failed by the agent.
    pub(crate) fn stopping(&self) -> bool {
        self.gone || self.pod.metadata.deletion_timestamp.is_some() || self.failure.is_some()
    }

    /// Fails the pod if it has been active longer than its activeDeadlineSeconds.
    pub(crate) fn check_deadline(&mut self) {
        let deadline = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds);
        let Some(seconds) = deadline.filter(|_| self.failure.is_none() && !self.terminal) else {
            return;
        };
        let active = jiff::Timestamp::now().duration_since(self.start_time.0);
        if active.as_secs() >= seconds {
            let message = "Pod was active on the node longer than the specified deadline";
            self.event(EventType::Normal, "DeadlineExceeded", message);
            self.failure = Some(("DeadlineExceeded".into(), message.into()));
        }
    }

    /// Waits up to `timeout` for news of the pod or a probe report.
    pub(crate) async fn wait(&mut self, timeout: Duration) {
        tokio::select! {
            changed = self.rx.changed() => match changed {
                Ok(()) => self.apply_news(),
                // The dispatcher dropped this worker's feed: the pod is not ours any more.
                Err(_) => self.gone = true,
            },
            Some(report) = self.probe_rx.recv() => self.probe_reports.push(report),
            () = tokio::time::sleep(timeout) => {}
        }
        while let Ok(report) = self.probe_rx.try_recv() {
            self.probe_reports.push(report);
        }
    }

    /// A sender for probe reports.
    pub(crate) fn probe_sender(&self) -> mpsc::UnboundedSender<ProbeReport> {
        self.probe_tx.clone()
    }

    /// Posts the pod's status if it changed since last posted.
    pub(crate) async fn publish(&mut self) {
        if self.gone {
            return;
        }
        let input = status::StatusInput {
            pod: &self.pod,
            previous: self.posted.as_ref(),
            slots: &self.slots,
            pod_ip: self
                .pod_ip()
                .or_else(|| self.posted.as_ref().and_then(|s| s.pod_ip.clone())),
            sandbox_ready: self.sandbox.is_some(),
            host_ip: self.host_ip(),
            start_time: self.start_time.clone(),
            terminal: self.terminal,
            failure: self.failure.clone(),
            now: now(),
        };
        let status = status::build(&input);
        if self.posted.as_ref() == Some(&status) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), self.namespace());
        let patch = json!({ "status": status });
        match api
            .patch_status(self.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => self.posted = Some(status),
            Err(e) if is_not_found(&e) => self.gone = true,
            Err(e) => {
                tracing::warn!(pod = %self.pod_ref(), error = %e, "could not post pod status")
            }
        }
    }

    /// Reads every container's state from the runtime; returns the slots that just exited.
    pub(crate) fn observe_all(&mut self) -> Vec<usize> {
        let mut exited = Vec::new();
        for i in 0..self.slots.len() {
            let messages = containers::termination_message_source(self, i);
            if self.slots[i].observe(&self.shared.runtime, move || messages.read()) {
                exited.push(i);
            }
        }
        exited
    }
}
