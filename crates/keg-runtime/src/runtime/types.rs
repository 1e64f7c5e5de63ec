//! The CRI-shaped request and status types of the runtime.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use crate::cgroup::Resources;

/// DNS settings written to a pod's `/etc/resolv.conf`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    /// `nameserver` lines.
    pub servers: Vec<String>,
    /// The `search` list.
    pub searches: Vec<String>,
    /// `options`, e.g. `ndots:5`.
    pub options: Vec<String>,
}

impl DnsConfig {
    /// What the kubelet writes for `dnsPolicy: ClusterFirst`: the cluster DNS servers, the
    /// search path `<ns>.svc.<domain> svc.<domain> <domain>` and `ndots:5`.
    pub fn cluster_first(namespace: &str, cluster_domain: &str, servers: Vec<String>) -> Self {
        Self {
            servers,
            searches: vec![
                format!("{namespace}.svc.{cluster_domain}"),
                format!("svc.{cluster_domain}"),
                cluster_domain.to_string(),
            ],
            options: vec!["ndots:5".into()],
        }
    }

    /// The `resolv.conf` text.
    pub fn to_resolv_conf(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for server in &self.servers {
            out.push_str(&format!("nameserver {server}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// What a pod sandbox is made from (CRI `PodSandboxConfig`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSandboxConfig {
    /// The pod's UID.
    pub uid: String,
    /// The pod's name.
    pub name: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The hostname its containers see (empty: the pod name).
    pub hostname: String,
    /// Its `/etc/resolv.conf`.
    pub dns: DnsConfig,
    /// Cgroup under which the pod cgroup `pod<uid>` is made (empty: the runtime's default).
    pub cgroup_parent: String,
    /// Bounds of the pod as a whole.
    pub resources: Resources,
    /// Labels, kept for the caller (e.g. to find its pods again after a restart).
    pub labels: BTreeMap<String, String>,
}

/// Whether a sandbox can run containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxState {
    /// Its network and cgroup are in place.
    Ready,
    /// It was stopped; its containers are stopped.
    NotReady,
}

/// A pod sandbox: the network namespace and cgroup its containers share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// Its id (64 hex digits).
    pub id: String,
    /// What it was made from.
    pub config: PodSandboxConfig,
    /// The pod IP.
    pub ip: Ipv4Addr,
    /// Its network namespace, as a bind-mounted file.
    pub netns_path: PathBuf,
    /// Its cgroup (absolute, e.g. `/keg/pod<uid>`), which bounds the whole pod.
    pub cgroup_path: String,
    /// Its state.
    pub state: SandboxState,
    /// When it was made.
    pub created_at: Timestamp,
}

/// A bind mount into a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// The file or directory on the host.
    pub host_path: PathBuf,
    /// Where it appears in the container.
    pub container_path: String,
    /// Mounted read-only.
    pub readonly: bool,
}

/// The identity a container's process runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Group id (none: the user's group in the image's `/etc/passwd`, else 0).
    pub gid: Option<u32>,
}

/// Capabilities to add to or drop from the default set (names with or without `CAP_`, or
/// `ALL`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Added capabilities.
    pub add: Vec<String>,
    /// Dropped capabilities.
    pub drop: Vec<String>,
}

/// What a container is made from (CRI `ContainerConfig`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// The container's name in its pod.
    pub name: String,
    /// The image, by reference or id; it must be in the image store.
    pub image: String,
    /// Overrides the image's entrypoint (Kubernetes `command`).
    pub command: Vec<String>,
    /// Overrides the image's cmd (Kubernetes `args`).
    pub args: Vec<String>,
    /// Environment, added to (and overriding) the image's.
    pub env: Vec<(String, String)>,
    /// Working directory (none: the image's).
    pub working_dir: Option<String>,
    /// User (none: the image's).
    pub user: Option<User>,
    /// Supplementary group ids.
    pub supplemental_groups: Vec<u32>,
    /// Bind mounts.
    pub mounts: Vec<Mount>,
    /// The container's own bounds.
    pub resources: Resources,
    /// All capabilities, all devices allowed, no seccomp, writable `/sys`.
    pub privileged: bool,
    /// Changes to the default capabilities.
    pub capabilities: Capabilities,
    /// Where its CRI-format log goes.
    pub log_path: PathBuf,
    /// Restart attempt (Kubernetes restartCount), kept for the caller.
    pub attempt: u32,
    /// Labels, kept for the caller.
    pub labels: BTreeMap<String, String>,
}

/// Where a container is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Made but not started.
    Created,
    /// Its process runs.
    Running,
    /// Its process ended.
    Exited {
        /// Exit status, or 128 + signal number.
        exit_code: i32,
        /// When it ended.
        finished_at: Timestamp,
        /// `Completed` (0), `Error`, or `OOMKilled`, as the kubelet reports them.
        reason: String,
        /// More detail where there is some.
        message: String,
    },
}

/// What [`crate::Runtime::container_status`] reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// Container id (64 hex digits).
    pub id: String,
    /// The sandbox it belongs to.
    pub sandbox_id: String,
    /// Where it is in its life.
    pub state: ContainerState,
    /// Its init process while it runs.
    pub pid: Option<u32>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it was started.
    pub started_at: Option<Timestamp>,
    /// The image reference it was made from.
    pub image: String,
    /// The image id.
    pub image_id: String,
    /// What it was made from.
    pub config: ContainerConfig,
}

/// The result of [`crate::Runtime::exec`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status (128 + signal when killed, e.g. on timeout).
    pub exit_code: i32,
    /// What it wrote to stdout.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr.
    pub stderr: Vec<u8>,
}
