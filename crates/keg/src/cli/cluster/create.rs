//! `keg create cluster -f FILE`: starts the cluster's control plane as a background process,
//! creates its Fargate profiles and node groups, waits for the nodes, and adds a context.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Node;
use keg_api::cluster_config::ClusterConfig;
use keg_api::crds::{FargateProfile, NodeGroup};
use keg_api::nodes::NODEGROUP_LABEL;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};

use super::progress::Progress;
use super::{ClusterDir, admin_client, context_name, kubeconfig};

/// Options of `keg create cluster`.
#[derive(clap::Args)]
pub struct CreateClusterArgs {
    /// The eksctl ClusterConfig file (eksctl.io/v1alpha5).
    #[arg(short = 'f', long = "config-file")]
    config_file: PathBuf,
    /// The kubeconfig to add the cluster's context to (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// How long to wait for the control plane and the nodes.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
}

/// Parses `90s`, `5m`, `1h` (the forms eksctl's `--timeout` takes).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    match unit {
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("invalid duration {text:?}: use s, m or h")),
    }
}

/// Creates the cluster.
pub async fn run(args: CreateClusterArgs) -> Result<()> {
    let progress = Progress::new();
    let config = ClusterConfig::from_file(&args.config_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (name, region) = (config.metadata.name.clone(), config.metadata.region.clone());
    let dir = ClusterDir::new(&name);
    if dir.root.exists() {
        bail!(
            "cluster {name:?} already exists (its state is in {}); delete it first with `keg delete cluster --name {name}`",
            dir.root.display()
        );
    }
    progress.info(format!("keg version {}", env!("CARGO_PKG_VERSION")));
    progress.info(format!("using region {region}"));
    progress.info(format!("creating cluster {name:?} in {region:?} region with {} nodegroup(s) and {} Fargate profile(s)",
        config.node_groups.len() + config.managed_node_groups.len(), config.fargate_profiles.len()));
    std::fs::create_dir_all(dir.log().parent().expect("log has a dir"))
        .with_context(|| format!("creating {}", dir.root.display()))?;
    std::fs::copy(&args.config_file, dir.config())
        .with_context(|| format!("copying {}", args.config_file.display()))?;
    let pid = start_server(&dir, &name, &region)?;
    progress.info(format!(
        "started the control plane (pid {pid}, logs in {})",
        dir.log().display()
    ));
    let client = tokio::time::timeout(args.timeout, wait_for_api(&dir, pid))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "the control plane did not become ready within {:?}; see {}",
                args.timeout,
                dir.log().display()
            )
        })??;
    progress.done(format!("control plane of cluster {name:?} is ready"));

    let profiles: Api<FargateProfile> = Api::all(client.clone());
    for profile in config.fargate_profile_objects() {
        progress.info(format!(
            "creating Fargate profile {:?} on EKS cluster {name:?}",
            profile.name_any()
        ));
        create_if_missing(&profiles, &profile).await?;
        progress.done(format!(
            "created Fargate profile {:?} on EKS cluster {name:?}",
            profile.name_any()
        ));
    }
    let groups: Api<NodeGroup> = Api::all(client.clone());
    for group in config.node_group_objects() {
        progress.info(format!(
            "creating nodegroup {:?} ({} x {})",
            group.name_any(),
            group.spec.desired_capacity,
            group.spec.instance_type
        ));
        create_if_missing(&groups, &group).await?;
    }
    for group in config.node_group_objects() {
        let count = usize::try_from(group.spec.desired_capacity).unwrap_or(0);
        progress.info(format!(
            "waiting for at least {count} node(s) to become ready in {:?}",
            group.name_any()
        ));
        let nodes = tokio::time::timeout(
            args.timeout,
            wait_for_nodes(&client, &group.name_any(), count),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "nodegroup {:?} did not become ready within {:?}; see {}",
                group.name_any(),
                args.timeout,
                dir.log().display()
            )
        })??;
        progress.info(format!(
            "nodegroup {:?} has {} node(s)",
            group.name_any(),
            nodes.len()
        ));
        for node in nodes {
            progress.info(format!("node {node:?} is ready"));
        }
    }
    let target = kubeconfig::user_kubeconfig(args.kubeconfig.as_deref());
    kubeconfig::merge(
        &dir.admin_kubeconfig(),
        &target,
        &context_name(&name, &region),
    )?;
    progress.done(format!(
        "saved kubeconfig as {:?}",
        target.display().to_string()
    ));
    progress.done(format!(
        "EKS cluster {name:?} in {region:?} region is ready"
    ));
    Ok(())
}

/// Starts `keg server` for the cluster in its own process group, logging to the cluster dir.
fn start_server(dir: &ClusterDir, name: &str, region: &str) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.log())
        .with_context(|| format!("opening {}", dir.log().display()))?;
    let exe = std::env::current_exe().context("finding the keg executable")?;
    let child = Command::new(exe)
        .arg("server")
        .arg("--data-dir")
        .arg(dir.data())
        .args(["--port", "0", "--cluster-name", name, "--region", region])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C in the user's terminal does not reach the cluster.
        .process_group(0)
        .spawn()
        .context("starting the control plane")?;
    std::fs::write(dir.pid_file(), child.id().to_string())
        .with_context(|| format!("writing {}", dir.pid_file().display()))?;
    Ok(child.id())
}

async fn wait_for_api(dir: &ClusterDir, pid: u32) -> Result<Client> {
    loop {
        if !super::process_alive(i32::try_from(pid).unwrap_or(i32::MAX)) {
            bail!(
                "the control plane exited during start-up; see {}",
                dir.log().display()
            );
        }
        if dir.admin_kubeconfig().exists() {
            let client = admin_client(&dir.admin_kubeconfig()).await?;
            if client.apiserver_version().await.is_ok() {
                return Ok(client);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create_if_missing<K>(api: &Api<K>, obj: &K) -> Result<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", obj.name_any())),
    }
}

/// Waits until the group has `count` Ready nodes; returns their names.
async fn wait_for_nodes(client: &Client, group: &str, count: usize) -> Result<Vec<String>> {
    let nodes: Api<Node> = Api::all(client.clone());
    loop {
        let list = nodes
            .list(&ListParams::default().labels(&format!("{NODEGROUP_LABEL}={group}")))
            .await?;
        let ready: Vec<String> = list
            .items
            .iter()
            .filter(|n| keg_controllers::nodegroup::is_ready(n))
            .map(|n| n.name_any())
            .collect();
        if ready.len() >= count {
            return Ok(ready);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
