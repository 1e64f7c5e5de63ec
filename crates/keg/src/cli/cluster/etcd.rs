//! The etcd keg starts for a cluster of several servers when the user names none: three
//! members on loopback, each a background process with its PID file, talking to clients and
//! to each other over TLS with certificates of a CA of the cluster's own. `keg delete
//! cluster` stops them after the servers.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keg_store::EtcdTls;
use keg_store::etcd_member::{Member, READY_LINE, etcd_binary};
use keg_store::etcd_pki::EtcdPki;

use super::{ClusterDir, running_pid};

/// Members of the etcd keg starts: the smallest cluster that survives losing one.
pub const MEMBERS: usize = 3;

/// A started etcd: where keg's servers reach it, and how they prove themselves to it.
pub struct ManagedEtcd {
    /// `127.0.0.1:PORT` of each member.
    pub endpoints: Vec<String>,
    /// The client certificate and the CA.
    pub tls: EtcdTls,
}

fn pid_file(dir: &ClusterDir, member: usize) -> std::path::PathBuf {
    dir.etcd().join(format!("member-{member}.pid"))
}

fn log_file(dir: &ClusterDir, member: usize) -> std::path::PathBuf {
    dir.logs().join(format!("etcd-{member}.log"))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts the members and waits until they serve clients (which takes a quorum).
pub fn start(dir: &ClusterDir, timeout: Duration) -> Result<ManagedEtcd> {
    use std::os::unix::fs::DirBuilderExt;
    use std::os::unix::process::CommandExt;
    let binary = etcd_binary().context(
        "several servers need etcd, and no `etcd` binary was found (Debian's etcd-server; \
         scripts/install-deps.sh installs it), nor was --store given",
    )?;
    // The members' data and keys are the cluster's secrets: only their owner reads them.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.etcd())
        .with_context(|| format!("creating {}", dir.etcd().display()))?;
    let pki = EtcdPki::create(&dir.etcd(), "etcd-ca").context("making etcd's certificates")?;
    let members = (1..=MEMBERS)
        .map(|i| {
            Ok(Member {
                name: format!("member-{i}"),
                data_dir: dir.etcd().join(format!("member-{i}")),
                client_port: free_port()?,
                peer_port: free_port()?,
                tls: Some(pki.member_tls()),
                // Bookmarks for idle watches every few seconds, as kube-apiserver's own
                // progress requests would give.
                progress_notify: Some(Duration::from_secs(5)),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    for (i, member) in members.iter().enumerate() {
        let log_path = log_file(dir, i + 1);
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let child = member
            .command(&binary, &members)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group, as the servers: a Ctrl-C in the terminal does not reach it.
            .process_group(0)
            .spawn()
            .with_context(|| format!("running {}", binary.display()))?;
        std::fs::write(pid_file(dir, i + 1), child.id().to_string())?;
    }
    let deadline = Instant::now() + timeout;
    for i in 1..=MEMBERS {
        wait_ready(dir, i, deadline)?;
    }
    Ok(ManagedEtcd {
        endpoints: members.iter().map(Member::endpoint).collect(),
        tls: pki.client_tls(),
    })
}

fn wait_ready(dir: &ClusterDir, member: usize, deadline: Instant) -> Result<()> {
    let log_path = log_file(dir, member);
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains(READY_LINE) {
            return Ok(());
        }
        if running_pid(&pid_file(dir, member)).is_none() {
            bail!(
                "etcd member {member} exited during start-up; see {}",
                log_path.display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "etcd member {member} did not serve clients in time; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The PIDs of the members still running.
pub fn running_members(dir: &ClusterDir) -> Vec<i32> {
    (1..=MEMBERS)
        .filter_map(|i| running_pid(&pid_file(dir, i)))
        .collect()
}
