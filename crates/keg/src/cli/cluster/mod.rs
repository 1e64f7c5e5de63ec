//! `keg create cluster`, `keg delete cluster`: a cluster is one background `keg server` (or
//! several, on an etcd keg starts or the user names) with its state under
//! `$KEG_HOME/clusters/<name>/`, plus a context in the user's kubeconfig.

pub mod create;
pub mod delete;
pub mod etcd;
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

    /// The first server's data dir (store, certificates, admin kubeconfig, and the node
    /// agent's state: that server runs the cluster's nodes).
    pub fn data(&self) -> PathBuf {
        self.server(1).data
    }

    /// The cluster file as given at creation.
    pub fn config(&self) -> PathBuf {
        self.root.join("cluster.yaml")
    }

    /// Where the etcd keg started for the cluster keeps its members, PID files and
    /// certificates (clusters of several servers without an external etcd).
    pub fn etcd(&self) -> PathBuf {
        self.root.join("etcd")
    }

    /// For a cluster on the user's etcd: that store and the prefix of the cluster's keys.
    pub fn external_store(&self) -> PathBuf {
        self.root.join("external-store")
    }

    /// The logs of the servers and of etcd's members.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// Server `index` (from 1). The first keeps the names of a one-server cluster.
    pub fn server(&self, index: usize) -> ServerFiles {
        let suffix = if index == 1 {
            String::new()
        } else {
            format!("-{index}")
        };
        ServerFiles {
            index,
            data: self.root.join(format!("data{suffix}")),
            pid_file: self.root.join(format!("keg{suffix}.pid")),
            log: self.logs().join(format!("keg{suffix}.log")),
        }
    }

    /// Every server the cluster was started with (each left a PID file).
    pub fn servers(&self) -> Vec<ServerFiles> {
        (1..)
            .map(|i| self.server(i))
            .take_while(|s| s.pid_file.exists())
            .collect()
    }

    /// The first server that is running: the one keg's commands talk to.
    pub fn running_server(&self) -> Option<ServerFiles> {
        self.servers()
            .into_iter()
            .find(|s| s.running_pid().is_some())
    }
}

/// The files of one of a cluster's `keg server`s.
pub struct ServerFiles {
    /// 1, 2, …
    pub index: usize,
    /// Its data dir.
    pub data: PathBuf,
    /// Its PID.
    pub pid_file: PathBuf,
    /// Its log.
    pub log: PathBuf,
}

impl ServerFiles {
    /// The admin kubeconfig the server writes (its own port; credentials every server of
    /// the cluster accepts).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.data.join("kubeconfig")
    }

    /// Its PID, if it is running.
    pub fn running_pid(&self) -> Option<i32> {
        running_pid(&self.pid_file)
    }
}

/// The PID a PID file names, if that process is running.
pub fn running_pid(pid_file: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    process_alive(pid).then_some(pid)
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

/// An admin client of the cluster's first running server, or the error users of eksctl see.
pub async fn running_cluster_client(cluster: &str) -> Result<kube::Client> {
    match ClusterDir::new(cluster).running_server() {
        Some(server) => admin_client(&server.admin_kubeconfig()).await,
        None => anyhow::bail!("no cluster found for name: {cluster:?}"),
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
