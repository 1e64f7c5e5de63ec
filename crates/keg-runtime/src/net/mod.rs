//! The pod network: a Linux bridge on the host, one veth pair and network namespace per pod,
//! addresses from a persisted IPAM. Pods reach each other over the bridge and the host at the
//! bridge's address, which is every pod's default gateway.
//!
//! All privileged network changes go through [`ip`], which runs iproute2's `ip`.

mod cidr;
mod ipam;

use std::net::Ipv4Addr;
use std::path::PathBuf;

pub use cidr::Ipv4Cidr;
pub(crate) use ipam::Ipam;
use serde::{Deserialize, Serialize};

/// Errors of the pod network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An `ip` command failed; `message` is its error output.
    #[error("ip {args}: {message}")]
    Command {
        /// The arguments.
        args: String,
        /// What `ip` printed.
        message: String,
    },
    /// A file-system operation failed.
    #[error("pod network: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Every address of the pod range is in use.
    #[error("no free pod IP left in {0}")]
    Exhausted(Ipv4Cidr),
    /// The configuration is inconsistent.
    #[error("invalid network configuration: {0}")]
    Config(String),
}

impl Error {
    fn io(what: &str, source: std::io::Error) -> Self {
        Error::Io {
            what: what.to_string(),
            source,
        }
    }
}

/// Result of network operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How pods are networked on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// The host bridge pods attach to (at most 15 characters).
    pub bridge: String,
    /// The block all pods on the bridge share; the bridge takes its first address, which is
    /// the pods' gateway.
    pub cluster_cidr: Ipv4Cidr,
    /// The part of `cluster_cidr` this node hands out (Kubernetes' node `podCIDR`); several
    /// nodes on one machine share the bridge with disjoint ranges. None: all of it.
    pub pod_cidr: Option<Ipv4Cidr>,
    /// MTU of the pod interfaces (none: the kernel's default).
    pub mtu: Option<u32>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            bridge: "keg0".into(),
            cluster_cidr: "10.42.0.0/16".parse().expect("constant"),
            pod_cidr: None,
            mtu: None,
        }
    }
}

impl NetworkConfig {
    /// The bridge's address: the pods' gateway and the host as pods see it.
    pub fn gateway(&self) -> Ipv4Addr {
        self.cluster_cidr.nth(1).expect("a /30 or larger block")
    }

    fn validate(&self) -> Result<()> {
        if self.bridge.is_empty() || self.bridge.len() > 15 || self.bridge.contains(['/', ' ']) {
            return Err(Error::Config(format!(
                "bridge name {:?} is not a valid interface name",
                self.bridge
            )));
        }
        if let Some(pod) = self.pod_cidr
            && !self.cluster_cidr.covers(&pod)
        {
            return Err(Error::Config(format!(
                "pod CIDR {pod} is not inside {}",
                self.cluster_cidr
            )));
        }
        Ok(())
    }
}

/// A sandbox's place on the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Attachment {
    /// The pod IP.
    pub ip: Ipv4Addr,
    /// `ip netns` name of its namespace.
    pub netns: String,
    /// The host end of its veth pair.
    pub veth: String,
}

impl Attachment {
    /// The namespace file that containers join.
    pub(crate) fn netns_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.netns)
    }
}

/// The node's pod network.
#[derive(Clone, Debug)]
pub(crate) struct Network {
    config: NetworkConfig,
    ipam: Ipam,
}

impl Network {
    /// The network of `config`, with IPAM state under `state_dir`.
    pub(crate) fn new(config: NetworkConfig, state_dir: PathBuf) -> Result<Self> {
        config.validate()?;
        let range = config.pod_cidr.unwrap_or(config.cluster_cidr);
        let ipam = Ipam::new(state_dir, range, vec![config.gateway()]);
        Ok(Self { config, ipam })
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// Creates the bridge with the gateway address, unless it is there.
    pub(crate) async fn ensure_bridge(&self) -> Result<()> {
        let bridge = self.config.bridge.as_str();
        if ip(&["link", "show", "dev", bridge]).await.is_err()
            && let Err(e) = ip(&["link", "add", bridge, "type", "bridge"]).await
            && !e.to_string().contains("File exists")
        {
            return Err(e);
        }
        let gateway = format!(
            "{}/{}",
            self.config.gateway(),
            self.config.cluster_cidr.prefix
        );
        ip(&["addr", "replace", &gateway, "dev", bridge]).await?;
        ip(&["link", "set", bridge, "up"]).await.map(drop)
    }

    /// The names sandbox `id`'s namespace and veth get (its address is not known yet), so a
    /// record written before [`Network::attach`] lets a crashed attach be cleaned up.
    pub(crate) fn planned(id: &str) -> Attachment {
        Attachment {
            ip: Ipv4Addr::UNSPECIFIED,
            netns: format!("keg-{id}"),
            veth: format!("veth{}", &id[..11]),
        }
    }

    /// Gives sandbox `id` a namespace, a veth pair on the bridge and an address.
    pub(crate) async fn attach(&self, id: &str) -> Result<Attachment> {
        self.ensure_bridge().await?;
        let attachment = Attachment {
            ip: self.ipam.allocate(id)?,
            ..Self::planned(id)
        };
        if let Err(e) = self.plumb(&attachment).await {
            let _ = self.detach(&attachment, id).await;
            return Err(e);
        }
        Ok(attachment)
    }

    async fn plumb(&self, a: &Attachment) -> Result<()> {
        let ns = a.netns.as_str();
        ip(&["netns", "add", ns]).await?;
        let mut add = vec!["link", "add", &a.veth];
        let mtu = self.config.mtu.map(|m| m.to_string());
        if let Some(mtu) = &mtu {
            add.extend(["mtu", mtu.as_str()]);
        }
        add.extend(["type", "veth", "peer", "name", "eth0", "netns", ns]);
        if let Some(mtu) = &mtu {
            add.extend(["mtu", mtu.as_str()]);
        }
        ip(&add).await?;
        ip(&["link", "set", &a.veth, "master", &self.config.bridge, "up"]).await?;
        let address = format!("{}/{}", a.ip, self.config.cluster_cidr.prefix);
        ip(&["-n", ns, "addr", "add", &address, "dev", "eth0"]).await?;
        ip(&["-n", ns, "link", "set", "lo", "up"]).await?;
        ip(&["-n", ns, "link", "set", "eth0", "up"]).await?;
        ip(&[
            "-n",
            ns,
            "route",
            "add",
            "default",
            "via",
            &self.config.gateway().to_string(),
        ])
        .await
        .map(drop)
    }

    /// Removes the veth pair and namespace and frees the address; parts already gone are fine.
    pub(crate) async fn detach(&self, a: &Attachment, id: &str) -> Result<()> {
        let mut first_error = None;
        for args in [
            vec!["link", "del", a.veth.as_str()],
            vec!["netns", "del", a.netns.as_str()],
        ] {
            if let Err(e) = ip(&args).await
                && !is_missing(&e)
            {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = self.ipam.release(a.ip, id) {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Deletes the bridge if no interface is attached to it any more (another node on this
    /// machine may still use it).
    pub(crate) async fn remove_bridge_if_unused(&self) -> Result<()> {
        let bridge = self.config.bridge.as_str();
        match ip(&["-o", "link", "show", "master", bridge]).await {
            Ok(out) if out.trim().is_empty() => match ip(&["link", "del", bridge]).await {
                Err(e) if !is_missing(&e) => Err(e),
                _ => Ok(()),
            },
            Ok(_) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn is_missing(e: &Error) -> bool {
    let text = e.to_string();
    ["Cannot find device", "No such file", "does not exist"]
        .iter()
        .any(|m| text.contains(m))
}

/// Runs `ip <args>`; its stderr becomes the error.
pub(crate) async fn ip(args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::io("run ip (is iproute2 installed?)", e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
