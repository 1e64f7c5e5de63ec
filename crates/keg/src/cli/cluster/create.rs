//! `keg create cluster -f FILE`: starts the cluster's control plane as background processes
//! (one `keg server` on the embedded store; or several on an etcd, the user's or three members
//! keg starts), creates its Fargate profiles and node groups, waits for the nodes, and adds
//! a context for each server.

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
use super::{ClusterDir, ServerFiles, admin_client, context_name, etcd, kubeconfig};

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
    /// How many `keg server`s serve the cluster (each its own port and data dir; the first
    /// runs the nodes). More than one needs an etcd: the one `--store` names, else three
    /// members keg starts on loopback.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=9))]
    servers: u16,
    /// The servers' store: `embedded` (one server only) or `etcd://HOST:PORT[,HOST:PORT...]`,
    /// an etcd cluster of the user's.
    #[arg(long)]
    store: Option<String>,
    /// The CA that signed the named etcd's serving certificate.
    #[arg(long, requires = "store")]
    etcd_cafile: Option<PathBuf>,
    /// A client certificate for the named etcd (with --etcd-keyfile).
    #[arg(long, requires = "store")]
    etcd_certfile: Option<PathBuf>,
    /// The key of --etcd-certfile.
    #[arg(long, requires = "store")]
    etcd_keyfile: Option<PathBuf>,
    /// Prepended to every key keg writes in the named etcd (several clusters may share one).
    #[arg(long, requires = "store")]
    etcd_prefix: Option<String>,
}

impl CreateClusterArgs {
    /// The `keg server` flags naming the store, starting keg's own etcd where one is needed.
    fn store_flags(&self, dir: &ClusterDir, progress: &Progress) -> Result<Vec<String>> {
        let mut flags = Vec::new();
        let path = |p: &PathBuf| -> Result<String> {
            let full = std::path::absolute(p).with_context(|| format!("{}", p.display()))?;
            Ok(full.display().to_string())
        };
        match self.store.as_deref() {
            Some("embedded") | None if self.servers == 1 => {}
            Some("embedded") => bail!(
                "--servers {} needs a store they share: --store etcd://HOST:PORT, or no --store to have keg start an etcd",
                self.servers
            ),
            Some(store) => {
                flags.extend(["--store".to_owned(), store.to_owned()]);
                for (flag, file) in [
                    ("--etcd-cafile", &self.etcd_cafile),
                    ("--etcd-certfile", &self.etcd_certfile),
                    ("--etcd-keyfile", &self.etcd_keyfile),
                ] {
                    if let Some(file) = file {
                        flags.extend([flag.to_owned(), path(file)?]);
                    }
                }
                if let Some(prefix) = &self.etcd_prefix {
                    flags.extend(["--etcd-prefix".to_owned(), prefix.clone()]);
                }
                // The user's etcd outlives the cluster; `keg delete cluster` says where its
                // data stays.
                let prefix = self.etcd_prefix.as_deref().unwrap_or_default();
                std::fs::write(
                    dir.external_store(),
                    format!("{store} {prefix}/registry/\n"),
                )?;
            }
            None => {
                progress.info(format!(
                    "starting a {}-member etcd for {} servers",
                    etcd::MEMBERS,
                    self.servers
                ));
                let etcd = etcd::start(dir, self.timeout)?;
                progress.info(format!("etcd serves on {}", etcd.endpoints.join(",")));
                flags.extend([
                    "--store".to_owned(),
                    format!("etcd://{}", etcd.endpoints.join(",")),
                ]);
                for (flag, file) in [
                    ("--etcd-cafile", &etcd.tls.ca_file),
                    ("--etcd-certfile", &etcd.tls.cert_file),
                    ("--etcd-keyfile", &etcd.tls.key_file),
                ] {
                    if let Some(file) = file {
                        flags.extend([flag.to_owned(), file.display().to_string()]);
                    }
                }
            }
        }
        Ok(flags)
    }
}

/// The context of server `index` in the user's kubeconfig: the cluster's own for the first,
/// `<context>/server-N` for the others.
pub fn server_context(context: &str, index: usize) -> String {
    if index == 1 {
        context.to_owned()
    } else {
        format!("{context}/server-{index}")
    }
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
    std::fs::create_dir_all(dir.logs())
        .with_context(|| format!("creating {}", dir.root.display()))?;
    std::fs::copy(&args.config_file, dir.config())
        .with_context(|| format!("copying {}", args.config_file.display()))?;
    let store = args.store_flags(&dir, &progress)?;
    let servers: Vec<ServerFiles> = (1..=usize::from(args.servers))
        .map(|i| dir.server(i))
        .collect();
    for server in &servers {
        let pid = start_server(server, &name, &region, &store)?;
        progress.info(format!(
            "started the control plane{} (pid {pid}, logs in {})",
            if servers.len() > 1 {
                format!(" server {}", server.index)
            } else {
                String::new()
            },
            server.log.display()
        ));
    }
    let mut clients = Vec::new();
    for server in &servers {
        let client = tokio::time::timeout(args.timeout, wait_for_api(server))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the control plane did not become ready within {:?}; see {}",
                    args.timeout,
                    server.log.display()
                )
            })??;
        clients.push(client);
    }
    let client = clients.swap_remove(0);
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
                servers[0].log.display()
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
    let context = context_name(&name, &region);
    // The first server's context last, so it is the current one.
    for server in servers.iter().rev() {
        kubeconfig::merge(
            &server.admin_kubeconfig(),
            &target,
            &server_context(&context, server.index),
        )?;
    }
    progress.done(format!(
        "saved kubeconfig as {:?}",
        target.display().to_string()
    ));
    progress.done(format!(
        "EKS cluster {name:?} in {region:?} region is ready"
    ));
    Ok(())
}

/// Starts one of the cluster's `keg server`s in its own process group, logging to the
/// cluster dir. Only the first runs a node agent: the cluster's nodes live on this machine once.
fn start_server(server: &ServerFiles, name: &str, region: &str, store: &[String]) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&server.log)
        .with_context(|| format!("opening {}", server.log.display()))?;
    let exe = std::env::current_exe().context("finding the keg executable")?;
    let mut command = Command::new(exe);
    command
        .arg("server")
        .arg("--data-dir")
        .arg(&server.data)
        .args(["--port", "0", "--cluster-name", name, "--region", region])
        .args(store);
    if server.index > 1 {
        command.arg("--no-node-agent");
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C in the user's terminal does not reach the cluster.
        .process_group(0)
        .spawn()
        .context("starting the control plane")?;
    std::fs::write(&server.pid_file, child.id().to_string())
        .with_context(|| format!("writing {}", server.pid_file.display()))?;
    Ok(child.id())
}

async fn wait_for_api(server: &ServerFiles) -> Result<Client> {
    loop {
        if server.running_pid().is_none() {
            bail!(
                "the control plane exited during start-up; see {}",
                server.log.display()
            );
        }
        if server.admin_kubeconfig().exists() {
            let client = admin_client(&server.admin_kubeconfig()).await?;
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
