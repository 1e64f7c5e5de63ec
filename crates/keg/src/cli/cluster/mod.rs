//! `keg create cluster`, `keg delete cluster`: a cluster is a background `keg server` with its
//! state under `$KEG_HOME/clusters/<name>/`, plus a context in the user's kubeconfig.

pub mod create;
pub mod delete;
pub mod kubeconfig;
pub mod progress;
pub mod user;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Where keg keeps clusters: `$KEG_HOME`, else `~/.keg`.
pub fn keg_home() -> PathBuf {
    match std::env::var_os("KEG_HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home),
        _ => home_dir().join(".keg"),
    }
}

/// The user's home directory (`$HOME`, else `/root`).
pub fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// The files of one cluster.
pub struct ClusterDir {
    /// `$KEG_HOME/clusters/<name>`.
    pub root: PathBuf,
}

impl ClusterDir {
    /// The directory of cluster `name`.
    pub fn new(name: &str) -> ClusterDir {
        ClusterDir {
            root: keg_home().join("clusters").join(name),
        }
    }

    /// The server's data dir (store, certificates, admin kubeconfig).
    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The admin kubeconfig the server writes.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.data().join("kubeconfig")
    }

    /// The cluster file as given at creation.
    pub fn config(&self) -> PathBuf {
        self.root.join("cluster.yaml")
    }

    /// The server's PID.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("keg.pid")
    }

    /// The server's log.
    pub fn log(&self) -> PathBuf {
        self.root.join("logs").join("keg.log")
    }

    /// The PID of the cluster's server, if it is running.
    pub fn running_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        process_alive(pid).then_some(pid)
    }
}

/// Whether a process with this PID exists (and is not a zombie).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_none_or(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// A kube client for the cluster's admin kubeconfig.
pub async fn admin_client(kubeconfig: &Path) -> Result<kube::Client> {
    let file = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .with_context(|| format!("loading {}", kubeconfig.display()))?;
    Ok(kube::Client::try_from(config)?)
}

/// The context name eksctl gives a cluster in the user's kubeconfig.
pub fn context_name(cluster: &str, region: &str) -> String {
    format!("admin@{cluster}.{region}.eksctl.io")
}
