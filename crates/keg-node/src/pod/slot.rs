//! What the agent knows of each container of a pod: its current instance in the runtime, the
//! state the status shows, restarts, readiness and back-off.

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting,
};
use keg_runtime::{ContainerState as RuntimeState, Runtime};
use tokio::time::Instant;

use super::backoff::Backoff;
use crate::util::{TaskGuard, time};

/// The prefix of container ids in pod status (`<runtime>://<id>`).
pub(crate) const ID_PREFIX: &str = "crun://";

/// One container of the pod.
#[derive(Debug)]
pub(crate) struct Slot {
    /// Its spec.
    pub(crate) spec: Container,
    /// An init container (run to completion before the others).
    pub(crate) init: bool,
    /// The runtime id of its current (or last) instance.
    pub(crate) id: Option<String>,
    /// Restarts so far (the attempt number of the current instance).
    pub(crate) restart_count: i32,
    /// The state the status reports.
    pub(crate) state: ContainerState,
    /// How the previous instance ended.
    pub(crate) last_state: Option<ContainerStateTerminated>,
    /// Readiness (readiness probe, or running when there is none).
    pub(crate) ready: bool,
    /// Startup (startup probe passed, or running when there is none).
    pub(crate) started: bool,
    /// The image it runs, once present.
    pub(crate) image: Option<keg_runtime::Image>,
    /// When the agent saw the current instance exit.
    pub(crate) exited_at: Option<Instant>,
    /// Back-off of restarts after crashes.
    pub(crate) crash_backoff: Backoff,
    /// Back-off of image pulls.
    pub(crate) pull_backoff: Backoff,
    /// The last pull error, for the ImagePullBackOff message.
    pub(crate) pull_error: Option<String>,
    /// The probes of the current instance.
    pub(crate) probes: Option<TaskGuard>,
    /// A failed start is not tried again before this.
    pub(crate) retry_at: Option<Instant>,
}

impl Slot {
    /// A container not started yet, waiting for `reason`.
    pub(crate) fn new(spec: Container, init: bool, reason: &str) -> Self {
        Self {
            spec,
            init,
            id: None,
            restart_count: 0,
            state: waiting(reason, None),
            last_state: None,
            ready: false,
            started: false,
            image: None,
            exited_at: None,
            crash_backoff: Backoff::default(),
            pull_backoff: Backoff::default(),
            pull_error: None,
            probes: None,
            retry_at: None,
        }
    }

    /// The container's name.
    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    /// Whether its current instance runs.
    pub(crate) fn is_running(&self) -> bool {
        self.state.running.is_some()
    }

    /// The reason it waits, if it does.
    pub(crate) fn waiting_reason(&self) -> Option<&str> {
        self.state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.as_deref())
    }

    /// How its current instance ended, if it has.
    pub(crate) fn terminated(&self) -> Option<&ContainerStateTerminated> {
        self.state.terminated.as_ref()
    }

    /// A restartable init container (a sidecar): started in init order, then kept running
    /// beside the app containers.
    pub(crate) fn sidecar(&self) -> bool {
        self.init && self.spec.restart_policy.as_deref() == Some("Always")
    }

    /// An init container that let initialization go on: completed, or (a sidecar) started.
    pub(crate) fn init_done(&self) -> bool {
        if self.sidecar() {
            self.is_running() && self.started
        } else {
            self.succeeded()
        }
    }

    /// An init container that completed.
    pub(crate) fn succeeded(&self) -> bool {
        self.terminated().is_some_and(|t| t.exit_code == 0)
    }

    /// Shows `reason` (and `message`) as the waiting state.
    pub(crate) fn wait_for(&mut self, reason: &str, message: Option<String>) {
        self.state = waiting(reason, message);
        self.ready = false;
        self.started = false;
    }

    /// Reads the current instance's state from the runtime. Returns true when it was seen to
    /// exit just now. A missing instance (removed behind the agent's back) counts as exited.
    pub(crate) fn observe(
        &mut self,
        runtime: &Runtime,
        message: impl FnOnce() -> Option<String>,
    ) -> bool {
        let Some(id) = self.id.clone() else {
            return false;
        };
        if self.terminated().is_some() || self.state.waiting.is_some() && !self.created_pending() {
            return false;
        }
        let status = match runtime.container_status(&id) {
            Ok(s) => s,
            Err(_) => {
                self.exit(ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some("ContainerStatusUnknown".into()),
                    message: Some(
                        "The container could not be located when the pod was terminated".into(),
                    ),
                    container_id: Some(format!("{ID_PREFIX}{id}")),
                    ..Default::default()
                });
                return true;
            }
        };
        match status.state {
            RuntimeState::Created => false,
            RuntimeState::Running => {
                if !self.is_running() {
                    self.state = ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: status.started_at.map(time),
                        }),
                        ..Default::default()
                    };
                    self.ready =
                        self.spec.readiness_probe.is_none() && self.spec.startup_probe.is_none();
                    self.started = self.spec.startup_probe.is_none();
                }
                false
            }
            RuntimeState::Exited {
                exit_code,
                finished_at,
                reason,
                message: runtime_message,
            } => {
                let message =
                    message().or((!runtime_message.is_empty()).then_some(runtime_message));
                self.exit(ContainerStateTerminated {
                    exit_code,
                    signal: None,
                    reason: Some(reason),
                    message,
                    started_at: status.started_at.map(time),
                    finished_at: Some(time(finished_at)),
                    container_id: Some(format!("{ID_PREFIX}{id}")),
                });
                true
            }
        }
    }

    /// A created instance still shows ContainerCreating until it runs.
    fn created_pending(&self) -> bool {
        self.state
            .waiting
            .as_ref()
            .is_some_and(|w| w.reason.as_deref() == Some("ContainerCreating"))
    }

    /// Records the end of the current instance.
    pub(crate) fn exit(&mut self, terminated: ContainerStateTerminated) {
        self.state = ContainerState {
            terminated: Some(terminated),
            ..Default::default()
        };
        self.ready = false;
        self.started = false;
        self.exited_at = Some(Instant::now());
        self.probes = None;
    }

    /// Moves the ended instance to `last_state` before a new one is made.
    pub(crate) fn retire(&mut self) {
        if let Some(t) = self.state.terminated.take() {
            self.last_state = Some(t);
        }
    }
}

/// A waiting state.
pub(crate) fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..Default::default()
    }
}
