//! `keg delete cluster`: ends the cluster's workloads gracefully, stops its control plane
//! (which removes every container, mount, network device and cgroup it made) and the etcd
//! keg started for it, then removes its state and its kubeconfig contexts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use keg_api::cluster_config::ClusterConfig;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::create::server_context;
use super::progress::Progress;
use super::{ClusterDir, admin_client, context_name, etcd, kubeconfig};

/// Options of `keg delete cluster`.
#[derive(clap::Args)]
pub struct DeleteClusterArgs {
    /// The cluster file the cluster was created from.
    #[arg(short = 'f', long = "config-file", conflicts_with = "name")]
    config_file: Option<PathBuf>,
    /// The cluster's name.
    #[arg(long, required_unless_present = "config_file")]
    name: Option<String>,
    /// The kubeconfig holding the cluster's context (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// How long pods get to terminate before the control plane stops anyway.
    #[arg(long, default_value = "2m", value_parser = super::create::parse_duration)]
    timeout: Duration,
}

/// Deletes the cluster.
pub async fn run(args: DeleteClusterArgs) -> Result<()> {
    let progress = Progress::new();
    let name = match (&args.name, &args.config_file) {
        (Some(name), _) => name.clone(),
        (None, Some(file)) => {
            ClusterConfig::from_file(file)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .metadata
                .name
        }
        (None, None) => bail!("--name or --config-file is required"),
    };
    let dir = ClusterDir::new(&name);
    if !dir.root.exists() {
        bail!("no cluster found for name: {name:?}");
    }
    let region = ClusterConfig::from_file(dir.config())
        .map(|c| c.metadata.region)
        .unwrap_or_default();
    progress.info(format!("deleting EKS cluster {name:?}"));
    let servers = dir.servers();
    if let Some(server) = dir.running_server() {
        match admin_client(&server.admin_kubeconfig()).await {
            Ok(client) => {
                match tokio::time::timeout(args.timeout, end_workloads(&client, &progress)).await {
                    Ok(result) => result?,
                    Err(_) => progress.info(format!(
                        "pods did not end within {:?}; stopping anyway",
                        args.timeout
                    )),
                }
            }
            Err(e) => progress.info(format!(
                "cannot reach the control plane ({e:#}); stopping it"
            )),
        }
    }
    // Every server before the store they share; the first (which runs the nodes) removes
    // their containers as it stops.
    for server in &servers {
        if let Some(pid) = server.running_pid() {
            stop_process(pid).await?;
            progress.info(format!("stopped the control plane (pid {pid})"));
        }
    }
    for pid in etcd::running_members(&dir) {
        stop_process(pid).await?;
        progress.info(format!("stopped etcd member (pid {pid})"));
    }
    if nix::unistd::Uid::effective().is_root() {
        // A server that was killed rather than stopped could not clean up after its pods.
        crate::cli::node::remove_leftovers(&dir.data(), &super::keg_home().join("images"))
            .await
            .context("removing what the cluster's pods left behind")?;
    }
    let external = std::fs::read_to_string(dir.external_store()).ok();
    remove_state(&dir)?;
    if let Some((store, keys)) = external.as_deref().and_then(|s| s.trim().split_once(' ')) {
        // As k3s leaves an external datastore alone: keg did not start it, and it may hold more.
        progress.info(format!(
            "the cluster's data stays in {store} under {keys}; `etcdctl del --prefix {keys}` removes it"
        ));
    }
    if !region.is_empty() {
        let target = kubeconfig::user_kubeconfig(args.kubeconfig.as_deref());
        let context = context_name(&name, &region);
        for server in &servers {
            kubeconfig::remove(&target, &server_context(&context, server.index))?;
        }
    }
    progress.done("all cluster resources were deleted".to_string());
    Ok(())
}

/// Deletes the workload controllers (so nothing replaces pods), then every pod, gracefully.
async fn end_workloads(client: &Client, progress: &Progress) -> Result<()> {
    delete_all::<Deployment>(client).await?;
    delete_all::<StatefulSet>(client).await?;
    delete_all::<DaemonSet>(client).await?;
    delete_all::<ReplicaSet>(client).await?;
    delete_all::<Job>(client).await?;
    let pods = delete_all::<Pod>(client).await?;
    if pods > 0 {
        progress.info(format!("waiting for {pods} pod(s) to terminate"));
    }
    let api: Api<Pod> = Api::all(client.clone());
    while !api.list(&ListParams::default()).await?.items.is_empty() {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

async fn delete_all<K>(client: &Client) -> Result<usize>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let all: Api<K> = Api::all(client.clone());
    let objects = match all.list(&ListParams::default()).await {
        Ok(list) => list.items,
        // A kind this server does not serve has nothing to delete.
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    for obj in &objects {
        let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
        match api
            .delete(&obj.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(objects.len())
}

/// SIGTERM, then up to a minute for the process (a server, an etcd member) to clean up,
/// then SIGKILL.
async fn stop_process(pid: i32) -> Result<()> {
    signal(pid, Signal::SIGTERM)?;
    for _ in 0..600 {
        if !super::process_alive(pid) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal(pid, Signal::SIGKILL)?;
    Ok(())
}

fn signal(pid: i32, signal: Signal) -> Result<()> {
    match kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => bail!("could not send {signal} to {pid}: {e}"),
    }
}

/// Removes the cluster's directory, refusing to if anything is still mounted inside it.
fn remove_state(dir: &ClusterDir) -> Result<()> {
    let root = dir.root.canonicalize().unwrap_or_else(|_| dir.root.clone());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let inside: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| std::path::Path::new(m).starts_with(&root))
        .collect();
    if !inside.is_empty() {
        bail!(
            "{} still has mounts ({}); not removing it",
            root.display(),
            inside.join(", ")
        );
    }
    std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))
}
