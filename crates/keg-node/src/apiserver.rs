//! keg-apiserver's `PodLogs` over [`NodeLogs`] and `PodExec` over the runtime, so the
//! in-process wiring can serve `kubectl logs` and `kubectl exec` (feature `apiserver`).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use keg_apiserver::error::{ApiError, Result};
use keg_apiserver::state::Connection;
use keg_apiserver::{ExecOptions, ExecSession, LogOptions, PodExec, PodLogs};
use keg_runtime::{ExecStdio, Runtime, SandboxState};
use serde_json::Value;

use crate::pod::{ID_PREFIX, POD_UID_LABEL};
use crate::{Error, LogRequest, NodeAgent, NodeLogs};

impl NodeAgent {
    /// This agent's logs as the API server's `pods/log` provider.
    pub fn pod_logs(&self) -> Arc<dyn PodLogs> {
        Arc::new(self.logs())
    }

    /// What this agent's containers use, sampled from now on, for metrics.k8s.io.
    pub fn pod_usage(&self) -> Arc<dyn keg_apiserver::UsageSource> {
        crate::usage::Sampler::start(self.runtime())
    }

    /// This agent's runtime as the API server's `pods/exec` provider.
    pub fn pod_exec(&self) -> Arc<dyn PodExec> {
        Arc::new(NodeExec {
            runtime: self.runtime(),
        })
    }
}

/// Runs `kubectl exec` commands in this agent's containers.
struct NodeExec {
    runtime: Arc<Runtime>,
}

#[async_trait]
impl PodExec for NodeExec {
    async fn exec(&self, pod: &Value, options: ExecOptions) -> Result<ExecSession> {
        let not_found =
            || ApiError::bad_request(format!("container not found ({:?})", options.container));
        let id = ["containerStatuses", "initContainerStatuses"]
            .iter()
            .flat_map(|key| pod["status"][key].as_array().into_iter().flatten())
            .find(|s| s["name"] == options.container.as_str())
            .and_then(|s| s["containerID"].as_str())
            .and_then(|id| id.strip_prefix(ID_PREFIX))
            .ok_or_else(not_found)?;
        // The status read may be stale: the id must still name this pod's running container.
        let status = self.runtime.container_status(id).map_err(|_| not_found())?;
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        if status.config.labels.get(POD_UID_LABEL).map(String::as_str) != Some(uid) {
            return Err(not_found());
        }
        let stdio = ExecStdio {
            stdin: options.stdin,
            stdout: options.stdout,
            stderr: options.stderr,
            tty: options.tty,
            terminal_size: options.terminal_size,
        };
        let mut process = match self.runtime.exec_stream(id, &options.command, stdio).await {
            Ok(p) => p,
            Err(keg_runtime::Error::InvalidState(_)) => return Err(not_found()),
            Err(e) => {
                return Err(ApiError::internal(format!(
                    "error executing command in container: {e}"
                )));
            }
        };
        let (stdin, stdout, stderr, terminal) = (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
            process.terminal.take(),
        );
        let exit = async move {
            process.wait().await.map_err(|e| {
                ApiError::internal(format!("error executing command in container: {e}"))
            })
        };
        Ok(ExecSession {
            stdin,
            stdout,
            stderr,
            exit: exit.boxed(),
            resize: terminal.map(|t| {
                Box::new(move |width, height| t.resize(width, height))
                    as Box<dyn Fn(u16, u16) + Send + Sync>
            }),
        })
    }

    async fn connect(&self, pod: &Value, port: u16) -> Result<Box<dyn Connection>> {
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let sandbox = self
            .runtime
            .list_pod_sandboxes()
            .map_err(|e| ApiError::internal(e.to_string()))?
            .into_iter()
            .find(|s| s.config.uid == uid && s.state == SandboxState::Ready)
            .ok_or_else(|| ApiError::bad_request(format!("pod {name} has no running sandbox")))?;
        let stream = self
            .runtime
            .connect_to_port(&sandbox.id, port)
            .await
            .map_err(|e| {
                ApiError::internal(format!(
                    "error forwarding port {port} to pod {}, uid {uid}: {e}",
                    sandbox.id
                ))
            })?;
        Ok(Box::new(stream))
    }
}

#[async_trait]
impl PodLogs for NodeLogs {
    async fn logs(&self, pod: &Value, options: LogOptions) -> Result<BoxStream<'static, Bytes>> {
        let pod: Pod = serde_json::from_value(pod.clone())
            .map_err(|e| ApiError::bad_request(format!("unreadable pod: {e}")))?;
        let since = match (&options.since_time, options.since_seconds) {
            (Some(t), _) => Some(
                t.parse::<Timestamp>()
                    .map_err(|e| ApiError::bad_request(format!("invalid sinceTime {t:?}: {e}")))?,
            ),
            (None, Some(s)) => Some(Timestamp::now() - jiff::SignedDuration::from_secs(s.max(0))),
            (None, None) => None,
        };
        let request = LogRequest {
            container: options.container.unwrap_or_default(),
            follow: options.follow,
            previous: options.previous,
            tail_lines: options.tail_lines.map(|t| t.max(0) as usize),
            since,
            timestamps: options.timestamps,
            limit_bytes: options.limit_bytes.map(|l| l.max(0) as u64),
        };
        match self.stream(&pod, request).await {
            Ok(stream) => Ok(stream.map(Bytes::from).boxed()),
            Err(Error::BadRequest(message)) => Err(ApiError::bad_request(message)),
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    }
}
