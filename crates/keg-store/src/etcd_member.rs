//! How to run one etcd member on loopback: its name, data, ports and TLS, turned into the
//! `etcd` command line. Serves both the etcd keg starts for a cluster of several servers
//! (`keg create cluster --servers N`) and the throwaway etcd of the tests ([`crate::local_etcd`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What etcd logs once it serves clients (it does so only once its cluster has a quorum).
pub const READY_LINE: &str = "ready to serve client requests";

/// The etcd binary: `$ETCD_BIN`, else `etcd` on the `PATH` (Debian's `etcd-server`).
pub fn etcd_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ETCD_BIN") {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("etcd"))
        .find(|path| path.is_file())
}

/// TLS of a member: PEM files.
#[derive(Debug, Clone)]
pub struct MemberTls {
    /// The certificate it serves clients (and, with `peers`, other members) with, for 127.0.0.1.
    pub cert_file: PathBuf,
    /// Its key.
    pub key_file: PathBuf,
    /// With a CA, clients must present certificates it signed (`--client-cert-auth`).
    pub client_ca_file: Option<PathBuf>,
    /// Whether members talk to each other over TLS too, each proving itself with `cert_file`
    /// (which then needs both the serverAuth and clientAuth usages) to `client_ca_file`.
    pub peers: bool,
}

/// One member of a local etcd cluster.
#[derive(Debug, Clone)]
pub struct Member {
    /// Its name in `--initial-cluster`.
    pub name: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// The loopback port clients use.
    pub client_port: u16,
    /// The loopback port the other members use.
    pub peer_port: u16,
    /// TLS, or plain HTTP with `None`.
    pub tls: Option<MemberTls>,
    /// How often idle watches get a progress notification (etcd's default is ten minutes).
    pub progress_notify: Option<Duration>,
}

impl Member {
    /// `127.0.0.1:PORT`, as `keg server --store etcd://…` takes it.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    fn client_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        let scheme = if self.tls.as_ref().is_some_and(|t| t.peers) {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.peer_port)
    }

    /// The command that runs this member of a new cluster of `members` (which includes it);
    /// stdio is left for the caller to set.
    pub fn command(&self, binary: &Path, members: &[Member]) -> Command {
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let (client_url, peer_url) = (self.client_url(), self.peer_url());
        let mut command = Command::new(binary);
        command
            .arg(format!("--name={}", self.name))
            .arg(format!("--data-dir={}", self.data_dir.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg("--initial-cluster-state=new");
        if let Some(every) = self.progress_notify {
            command.arg(format!(
                "--experimental-watch-progress-notify-interval={}ms",
                every.as_millis()
            ));
        }
        if let Some(tls) = &self.tls {
            command
                .arg(format!("--cert-file={}", tls.cert_file.display()))
                .arg(format!("--key-file={}", tls.key_file.display()));
            if let Some(ca) = &tls.client_ca_file {
                command
                    .arg("--client-cert-auth")
                    .arg(format!("--trusted-ca-file={}", ca.display()));
                if tls.peers {
                    command
                        .arg(format!("--peer-cert-file={}", tls.cert_file.display()))
                        .arg(format!("--peer-key-file={}", tls.key_file.display()))
                        .arg("--peer-client-cert-auth")
                        .arg(format!("--peer-trusted-ca-file={}", ca.display()));
                }
            }
        }
        command
    }
}
