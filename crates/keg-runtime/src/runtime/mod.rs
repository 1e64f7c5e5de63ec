//! The runtime: pod sandboxes and their containers, with all state on disk so that a new
//! [`Runtime`] on the same root directory (after keg restarts) finds and adopts them.
//!
//! Layout under the root directory:
//!
//! ```text
//! sandboxes/<id>/sandbox.json     the sandbox record; hosts, resolv.conf, hostname
//! containers/<id>/meta.json       the container record; bundle/ (config.json, rootfs/),
//!                                 upper/ work/ (overlay), monitor files (see `shim`)
//! crun/                           crun's own state (--root)
//! ipam/                           pod IP allocations
//! ```

mod cleanup;
mod container;
mod exec;
mod exec_stream;
mod port;
mod sandbox;
pub mod types;

pub use exec_stream::{ExecProcess, ExecReader, ExecStdio, ExecWriter, Terminal};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cgroup::Cgroups;
use crate::crun::Crun;
use crate::image::ImageStore;
use crate::net::{Network, NetworkConfig};
use crate::{cgroup, crun, image, net, shim, spec};

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image problem (not found, unreadable).
    #[error(transparent)]
    Image(#[from] image::Error),
    /// A pod network problem.
    #[error(transparent)]
    Network(#[from] net::Error),
    /// A cgroup problem.
    #[error(transparent)]
    Cgroup(#[from] cgroup::Error),
    /// crun failed.
    #[error(transparent)]
    Crun(#[from] crun::Error),
    /// The container's configuration is invalid.
    #[error(transparent)]
    Spec(#[from] spec::Error),
    /// The container monitor failed (creating the container).
    #[error(transparent)]
    Shim(#[from] shim::Error),
    /// A file-system operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// No sandbox or container has this id.
    #[error("{kind} {id} not found")]
    NotFound {
        /// `sandbox` or `container`.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The operation does not fit the object's state (e.g. starting a running container).
    #[error("{0}")]
    InvalidState(String),
    /// A request is malformed (e.g. an invalid hostname or an empty command).
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// An exec did not finish in time; the process was killed.
    #[error("command {command:?} timed out after {seconds}s")]
    Timeout {
        /// The command.
        command: String,
        /// The timeout.
        seconds: u64,
    },
    /// The machine lacks something the runtime needs.
    #[error("{0}")]
    Setup(String),
}

/// Result of runtime operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// How a [`Runtime`] is set up.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where sandboxes, containers and crun's state live.
    pub root_dir: PathBuf,
    /// The pod network.
    pub network: NetworkConfig,
    /// The cgroup pods go under when their config names none (e.g. `/keg`).
    pub cgroup_root: String,
    /// The crun executable (none: `$KEG_CRUN`, else `crun` on `PATH`).
    pub crun: Option<PathBuf>,
    /// The executable started as container monitor (none: the running executable, which
    /// becomes the monitor through [`crate::shim::ENV`]).
    pub shim_exe: Option<PathBuf>,
}

impl RuntimeConfig {
    /// Defaults: network `keg0` on 10.42.0.0/16, pods under the cgroup `/keg`.
    pub fn new(root_dir: impl Into<PathBuf>) -> Self {
        Self {
            root_dir: root_dir.into(),
            network: NetworkConfig::default(),
            cgroup_root: "/keg".into(),
            crun: None,
            shim_exe: None,
        }
    }
}

/// A node's container runtime; cheap to clone, safe to share between tasks.
#[derive(Clone, Debug)]
pub struct Runtime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    images: ImageStore,
    network: Network,
    cgroups: Cgroups,
    crun: Crun,
    shim_exe: PathBuf,
    cgroup_root: String,
    /// One lock per sandbox or container id: operations on one object are serialised.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Runtime {
    /// Opens the runtime on `config.root_dir` (creating it), detects the cgroup layout, finds
    /// crun and sets up the bridge. Sandboxes and containers already there are adopted.
    pub async fn new(config: RuntimeConfig, images: ImageStore) -> Result<Self> {
        let root = config.root_dir.clone();
        for dir in ["sandboxes", "containers", "crun", "ipam"] {
            std::fs::create_dir_all(root.join(dir))
                .map_err(io_err(format!("create {}", root.join(dir).display())))?;
        }
        let cgroups = Cgroups::detect()?;
        let binary = config
            .crun
            .clone()
            .or_else(crun::find_binary)
            .ok_or_else(|| {
                Error::Setup("crun not found: install Debian's crun package or set KEG_CRUN".into())
            })?;
        let crun = Crun {
            binary,
            root: root.join("crun"),
            private_cgroup_view: cgroups.crun_needs_private_view(),
        };
        // /proc/self/exe names the running image even after an upgrade replaced or deleted
        // the file, so monitors always run the same code as the keg that starts them.
        let shim_exe = config
            .shim_exe
            .clone()
            .unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
        let network = Network::new(config.network.clone(), root.join("ipam"))?;
        network.ensure_bridge().await?;
        let inner = Inner {
            root,
            images,
            network,
            cgroups,
            crun,
            shim_exe,
            cgroup_root: config.cgroup_root,
            locks: Mutex::default(),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The image store containers are made from.
    pub fn images(&self) -> &ImageStore {
        &self.inner.images
    }

    /// The pod network's configuration.
    pub fn network(&self) -> &NetworkConfig {
        self.inner.network.config()
    }

    /// The memory limit of a cgroup (absolute path such as `/keg/pod<uid>`), for checks.
    pub fn cgroup_memory_limit(&self, cgroup: &str) -> Option<u64> {
        self.inner.cgroups.memory_limit(cgroup)
    }

    /// What a cgroup (a sandbox's or a container's `cgroup_path`) has used so far.
    pub fn cgroup_usage(&self, cgroup: &str) -> Option<crate::cgroup::CgroupUsage> {
        self.inner.cgroups.usage(cgroup)
    }

    fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.inner.root.join("sandboxes").join(id)
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.inner.root.join("containers").join(id)
    }

    /// The lock that serialises operations on `id`.
    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    fn forget_lock(&self, id: &str) {
        self.inner
            .locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// Ids are 64 hex digits; anything else cannot name a directory of ours.
fn check_id(kind: &'static str, id: &str) -> Result<()> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::NotFound {
            kind,
            id: id.to_string(),
        })
    }
}

/// Entries of a directory whose names are ids.
fn list_ids(dir: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(io_err(format!("list {}", dir.display()))(e)),
    };
    for entry in entries {
        let name = entry
            .map_err(io_err(format!("list {}", dir.display())))?
            .file_name();
        let name = name.to_string_lossy();
        if check_id("", &name).is_ok() {
            ids.push(name.into_owned());
        }
    }
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::runtime::types::{ContainerConfig, PodSandboxConfig};

    fn assert_send<T: Send>(_: &T) {}

    /// The node agent spawns these on tokio's multi-threaded runtime: they must be `Send`.
    #[allow(dead_code)]
    fn futures_are_send(rt: &Runtime, images: &ImageStore) {
        assert_send(&Runtime::new(RuntimeConfig::new("/x"), images.clone()));
        assert_send(&rt.run_pod_sandbox(PodSandboxConfig::default()));
        assert_send(&rt.stop_pod_sandbox("", Duration::ZERO));
        assert_send(&rt.remove_pod_sandbox(""));
        assert_send(&rt.create_container("", ContainerConfig::default()));
        assert_send(&rt.start_container(""));
        assert_send(&rt.stop_container("", Duration::ZERO));
        assert_send(&rt.remove_container(""));
        assert_send(&rt.exec("", &["true"], Duration::ZERO));
        assert_send(&rt.exec_stream("", &["true"], Default::default()));
        assert_send(&rt.remove_everything());
        assert_send(&images.import_archive("/x"));
        assert_send(&images.pull("x", None, &[]));
    }

    #[test]
    fn ids_must_be_64_hex_digits() {
        assert!(check_id("container", &"a".repeat(64)).is_ok());
        assert!(check_id("container", "../../etc").is_err());
        assert!(check_id("container", &"g".repeat(64)).is_err());
    }
}
