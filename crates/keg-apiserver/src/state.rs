//! The API server's shared state: storage, the resource registry, and pluggable providers.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::admission::Admission;
use crate::error::Result;
use crate::resources::Registry;
use crate::storage::Objects;

/// Options of a `pods/log` request.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Container name; the only container when unset.
    pub container: Option<String>,
    /// Stream new lines as they come.
    pub follow: bool,
    /// The previous (terminated) instance's log.
    pub previous: bool,
    /// Only the last N lines.
    pub tail_lines: Option<i64>,
    /// Only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
    /// Only lines after this RFC 3339 time.
    pub since_time: Option<String>,
    /// Prefix each line with its timestamp.
    pub timestamps: bool,
    /// Stop after this many bytes.
    pub limit_bytes: Option<i64>,
}

/// Serves container logs (the node agent provides it).
#[async_trait]
pub trait PodLogs: Send + Sync {
    /// The log of a container of a pod, as a byte stream.
    async fn logs(&self, pod: &Value, options: LogOptions) -> Result<BoxStream<'static, Bytes>>;
}

/// Options of a `pods/exec` request (upstream's PodExecOptions).
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The container, already checked against the pod's spec.
    pub container: String,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Connect the command's standard input.
    pub stdin: bool,
    /// Connect its standard output.
    pub stdout: bool,
    /// Connect its standard error.
    pub stderr: bool,
    /// Run it on a terminal.
    pub tty: bool,
    /// The terminal's first size (width, height), when the client sent one in time.
    pub terminal_size: Option<(u16, u16)>,
}

/// A command a [`PodExec`] started: its streams and its end.
pub struct ExecSession {
    /// Its standard input, when asked for; dropping it closes the input.
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Its standard output, when asked for.
    pub stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Its standard error, when asked for.
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Resolves to the exit code once the command ended; dropping it first kills the command.
    pub exit: BoxFuture<'static, Result<i32>>,
    /// Sets the size (width, height) of its terminal, when it runs on one.
    pub resize: Option<Box<dyn Fn(u16, u16) + Send + Sync>>,
}

/// A byte stream both ways, such as a TCP connection.
pub trait Connection: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Connection for T {}

/// Runs commands in containers and connects to pods' ports (the node agent provides it).
#[async_trait]
pub trait PodExec: Send + Sync {
    /// Starts `options.command` in a running container of `pod`.
    async fn exec(&self, pod: &Value, options: ExecOptions) -> Result<ExecSession>;

    /// Connects to `port` in the network namespace of `pod` (`pods/portforward`).
    async fn connect(&self, pod: &Value, port: u16) -> Result<Box<dyn Connection>> {
        let _ = (pod, port);
        Err(crate::error::ApiError::bad_request(
            "port forwarding is not supported by this node",
        ))
    }
}

/// One container's use of CPU and memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerUsage {
    /// The container's name in its pod.
    pub name: String,
    /// CPU in use, averaged over the window, in billionths of a core.
    pub nano_cores: u64,
    /// Memory working set, in bytes.
    pub memory_bytes: u64,
    /// CPU time used since the container started, in seconds (a counter).
    pub cpu_seconds: f64,
}

/// One pod's usage, as a node agent measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodUsage {
    /// The pod's uid.
    pub uid: String,
    /// When the latest sample was taken.
    pub timestamp: jiff::Timestamp,
    /// The span the CPU figures average over.
    pub window: std::time::Duration,
    /// Its containers.
    pub containers: Vec<ContainerUsage>,
}

/// What the node agents measure of running pods (the kubelet's resource metrics).
pub trait UsageSource: Send + Sync {
    /// The usage of every pod with at least two samples.
    fn pods(&self) -> Vec<PodUsage>;
}

/// Everything request handlers share.
pub struct ApiState {
    /// Object storage.
    pub objects: Objects,
    /// Served resources.
    pub registry: Registry,
    /// Admission plugins.
    pub admission: Admission,
    /// The provider of container logs, once a node agent registers one.
    pub pod_logs: RwLock<Option<Arc<dyn PodLogs>>>,
    /// The provider of `pods/exec`, once a node agent registers one.
    pub pod_exec: RwLock<Option<Arc<dyn PodExec>>>,
    /// What pods use, for metrics.k8s.io, once a node agent registers it.
    pub pod_usage: RwLock<Option<Arc<dyn UsageSource>>>,
    /// Whether start-up finished (for /readyz).
    pub ready: AtomicBool,
    /// What `/metrics` reports of the server's own work.
    pub metrics: crate::metrics::Metrics,
    /// Who requests are: tokens and the service-account token issuer.
    pub auth: crate::auth::Authenticator,
    /// What they may do.
    pub authz: crate::authz::Authorizer,
    /// The cluster CA certificate (PEM), published to pods as `kube-root-ca.crt`.
    pub ca_pem: String,
}
