//! How a node agent is set up.

use std::path::PathBuf;
use std::time::Duration;

/// Settings of a [`crate::NodeAgent`].
#[derive(Clone, Debug)]
pub struct Config {
    /// This agent's name: it serves the nodes labelled `keg.dev/agent=<agent_name>`.
    pub agent_name: String,
    /// Where pod volumes (`pods/<uid>/`) and container logs (`logs/`) live.
    pub root_dir: PathBuf,
    /// Name servers of the cluster DNS for `dnsPolicy: ClusterFirst` (empty: the host's).
    pub cluster_dns: Vec<String>,
    /// The cluster's DNS domain.
    pub cluster_domain: String,
    /// Registries (`host[:port]`) spoken to over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// How often each node's Lease is renewed.
    pub lease_renew_interval: Duration,
    /// The Lease's `leaseDurationSeconds`.
    pub lease_duration_seconds: i32,
    /// How often node status is posted when nothing changed.
    pub node_status_report_interval: Duration,
    /// How often a pod's containers are looked at for exits.
    pub sync_interval: Duration,
    /// How often configMap, secret, downwardAPI and projected volumes are brought up to date.
    pub volume_refresh_interval: Duration,
    /// Log files larger than this are rotated.
    pub container_log_max_size: u64,
    /// Rotated log files kept per container, the live one included.
    pub container_log_max_files: usize,
}

impl Config {
    /// Upstream's defaults: leases every 10 s lasting 40 s, cluster domain `cluster.local`.
    pub fn new(agent_name: impl Into<String>, root_dir: impl Into<PathBuf>) -> Self {
        Self {
            agent_name: agent_name.into(),
            root_dir: root_dir.into(),
            cluster_dns: Vec::new(),
            cluster_domain: "cluster.local".into(),
            insecure_registries: Vec::new(),
            lease_renew_interval: Duration::from_secs(10),
            lease_duration_seconds: 40,
            node_status_report_interval: Duration::from_secs(60),
            sync_interval: Duration::from_secs(1),
            volume_refresh_interval: Duration::from_secs(60),
            container_log_max_size: 10 << 20,
            container_log_max_files: 5,
        }
    }
}
