//! The node agent inside `keg server`: one container runtime serving every node of the
//! cluster (node-group and Fargate alike). Its pod network and cgroup are chosen once per
//! cluster and kept in the data dir, so a restarted server (or `keg delete cluster`, which
//! cleans up after it) finds the same bridge, block and cgroup again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use keg_runtime::{ImageStore, Ipv4Cidr, NetworkConfig, Runtime, RuntimeConfig};
use serde::{Deserialize, Serialize};

/// What distinguishes this cluster's pods on the machine from other clusters'.
#[derive(Debug, Serialize, Deserialize)]
struct NodeNetwork {
    bridge: String,
    cluster_cidr: Ipv4Cidr,
    cgroup_root: String,
}

/// Where the node agent keeps its state under the server's data dir.
fn node_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("node")
}

fn settings_file(data_dir: &Path) -> PathBuf {
    node_dir(data_dir).join("network.json")
}

/// The runtime settings of the cluster whose data dir this is, chosen on first use.
pub fn runtime_config(data_dir: &Path) -> Result<RuntimeConfig> {
    let file = settings_file(data_dir);
    let network: NodeNetwork = match std::fs::read(&file) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).with_context(|| format!("reading {}", file.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let chosen = choose_network()?;
            std::fs::create_dir_all(node_dir(data_dir))?;
            std::fs::write(&file, serde_json::to_vec_pretty(&chosen)?)
                .with_context(|| format!("writing {}", file.display()))?;
            chosen
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    Ok(RuntimeConfig {
        network: NetworkConfig {
            bridge: network.bridge,
            cluster_cidr: network.cluster_cidr,
            ..NetworkConfig::default()
        },
        cgroup_root: network.cgroup_root,
        ..RuntimeConfig::new(node_dir(data_dir).join("runtime"))
    })
}

/// A bridge name and cgroup of this cluster's own, and the first `10.N.0.0/16` (N from 42,
/// k3s's pod block) that no route or address of the machine uses yet.
fn choose_network() -> Result<NodeNetwork> {
    let taken = command_output("ip", &["-4", "route", "show"])?
        + &command_output("ip", &["-4", "addr", "show"])?;
    let second_octet = (42u8..=250)
        .find(|n| !taken.contains(&format!("10.{n}.")))
        .context("no free 10.N.0.0/16 block for the pod network")?;
    let tag = random_tag();
    Ok(NodeNetwork {
        bridge: format!("keg-{tag}"),
        cluster_cidr: format!("10.{second_octet}.0.0/16")
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))?,
        cgroup_root: format!("/keg-{tag}"),
    })
}

fn command_output(program: &str, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn random_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("{:08x}", hasher.finish() as u32)
}

/// The cluster's pod network as service networking sees it: cluster IPs go on its bridge
/// and the cluster DNS listens on its gateway.
pub fn pod_network(data_dir: &Path) -> Result<keg_controllers::services::PodNetwork> {
    let network = runtime_config(data_dir)?.network;
    Ok(keg_controllers::services::PodNetwork::new(
        network.bridge.clone(),
        network.gateway(),
        "cluster.local".into(),
    ))
}

/// Opens the runtime and makes the agent serving nodes labelled `keg.dev/agent=<agent>`.
pub async fn open(
    client: kube::Client,
    data_dir: &Path,
    images_dir: &Path,
    agent: &str,
    settings: impl FnOnce(&mut keg_node::Config),
) -> Result<Arc<keg_node::NodeAgent>> {
    let images = ImageStore::open(images_dir)
        .with_context(|| format!("opening the image store {}", images_dir.display()))?;
    let runtime = Runtime::new(runtime_config(data_dir)?, images)
        .await
        .context("starting the container runtime")?;
    let mut config = keg_node::Config::new(agent, node_dir(data_dir).join("agent"));
    settings(&mut config);
    let agent = keg_node::NodeAgent::new(client, Arc::new(runtime), config)
        .context("starting the node agent")?;
    Ok(Arc::new(agent))
}

/// Removes every container, mount, network device and cgroup a cluster's runtime made,
/// for `keg delete cluster` when the server could not do it itself.
pub async fn remove_leftovers(data_dir: &Path, images_dir: &Path) -> Result<()> {
    if !settings_file(data_dir).exists() {
        return Ok(()); // no node agent ever ran
    }
    let images = ImageStore::open(images_dir)?;
    let runtime = Runtime::new(runtime_config(data_dir)?, images).await?;
    runtime.remove_everything().await?;
    Ok(())
}
