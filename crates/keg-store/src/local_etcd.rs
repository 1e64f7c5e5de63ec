//! A throwaway etcd on loopback, for tests (this crate's and the server's): one member, or a
//! cluster of several ([`LocalEtcd::start_cluster`]).
//!
//! Each [`LocalEtcd`] is its own `etcd` process with free ports and a data directory of its
//! own (in `/dev/shm` where there is one, so fsync costs nothing; a benchmark names a real
//! disk with [`LocalEtcd::start_cluster_in`]); dropping it kills that process by its PID and
//! removes the directory. Where no `etcd` binary is installed,
//! [`LocalEtcd::start`] returns `None` after printing why, so a developer without Debian's
//! `etcd-server` can still run the other tests. With `CI=true` it panics instead: CI installs
//! etcd (scripts/install-deps.sh) and must never skip these tests silently.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use crate::etcd_member::MemberTls as ServerTls;
use crate::etcd_member::{Member, READY_LINE, etcd_binary};

/// A running local etcd member; killed when dropped.
pub struct LocalEtcd {
    child: Option<Child>,
    binary: PathBuf,
    /// Holds the member's data and its log.
    dir: PathBuf,
    member: Member,
    /// Every member of its cluster (itself included), for `--initial-cluster`.
    cluster: Vec<Member>,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Progress notifications often enough for a test to see one.
const PROGRESS_NOTIFY: Duration = Duration::from_secs(2);

/// The binary, or `None` after saying why the test is skipped (a panic under `CI=true`).
fn binary_or_skip() -> Option<PathBuf> {
    let Some(binary) = etcd_binary() else {
        let reason = "no etcd binary (Debian's etcd-server, installed by scripts/install-deps.sh)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason}, and CI=true does not allow skipping the etcd tests");
        }
        // Straight to the stderr stream, past the test harness's capture of eprintln!, so
        // the skip shows in a normal `cargo test` run.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "skipping an etcd test: {reason}");
        return None;
    };
    Some(binary)
}

/// Where data directories go: `/dev/shm` where there is one (fsync costs nothing).
fn base_dir() -> PathBuf {
    if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    }
}

/// A new empty directory under `base`, unique to this process.
fn fresh_dir(base: &Path) -> PathBuf {
    let dir = base.join(format!(
        "keg-etcd-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("creating {}: {e}", dir.display());
    }
    dir
}

/// A member with a fresh directory under `base` and free loopback ports.
fn planned_member(base: &Path, name: String, tls: Option<ServerTls>) -> (PathBuf, Member) {
    let dir = fresh_dir(base);
    let ports = free_port().and_then(|client| Ok((client, free_port()?)));
    let (client_port, peer_port) = ports.expect("free ports on loopback");
    let member = Member {
        name,
        data_dir: dir.join("data"),
        client_port,
        peer_port,
        tls,
        progress_notify: Some(PROGRESS_NOTIFY),
    };
    (dir, member)
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl LocalEtcd {
    /// Starts a plain-HTTP etcd; `None` (with the reason printed) where etcd is not installed.
    pub fn start() -> Option<LocalEtcd> {
        LocalEtcd::start_inner(None)
    }

    /// Starts an etcd serving clients over TLS; `None` as for [`LocalEtcd::start`].
    pub fn start_tls(tls: &ServerTls) -> Option<LocalEtcd> {
        LocalEtcd::start_inner(Some(tls))
    }

    /// Starts a cluster of `members` plain-HTTP members (each its own process, data and
    /// ports), returned once every member serves clients; `None` as for [`LocalEtcd::start`].
    pub fn start_cluster(members: usize) -> Option<Vec<LocalEtcd>> {
        LocalEtcd::start_cluster_in(members, &base_dir())
    }

    /// As [`LocalEtcd::start_cluster`], with each member's directory under `base` instead of
    /// `/dev/shm`: on a real disk, fsync costs what it costs there (for benchmarks).
    pub fn start_cluster_in(members: usize, base: &Path) -> Option<Vec<LocalEtcd>> {
        let binary = binary_or_skip()?;
        let mut last_error = String::new();
        for _ in 0..3 {
            let planned: Vec<(PathBuf, Member)> = (0..members)
                .map(|i| planned_member(base, format!("keg-test-{i}"), None))
                .collect();
            let cluster: Vec<Member> = planned.iter().map(|(_, m)| m.clone()).collect();
            // Every member first, then wait: a member serves once the cluster has a quorum.
            let mut running: Vec<LocalEtcd> = planned
                .into_iter()
                .map(|(dir, member)| LocalEtcd {
                    child: None,
                    binary: binary.clone(),
                    dir,
                    member,
                    cluster: cluster.clone(),
                })
                .collect();
            let mut failed = None;
            for member in &mut running {
                match member.launch() {
                    Ok(child) => member.child = Some(child),
                    Err(e) => failed = Some(e),
                }
            }
            for member in &mut running {
                if failed.is_some() {
                    break;
                }
                if let Err(e) = member.wait_ready() {
                    failed = Some(e);
                }
            }
            match failed {
                None => return Some(running),
                // Dropping them kills every member and removes its directory.
                Some(e) => last_error = e,
            }
        }
        panic!("starting an etcd cluster failed: {last_error}");
    }

    fn start_inner(tls: Option<&ServerTls>) -> Option<LocalEtcd> {
        let binary = binary_or_skip()?;
        let base = base_dir();
        // A port found free can be taken before etcd binds it; try again with new ones.
        let mut last_error = String::new();
        for _ in 0..3 {
            let (dir, member) = planned_member(&base, "keg-test".to_owned(), tls.cloned());
            let mut etcd = LocalEtcd {
                child: None,
                binary: binary.clone(),
                dir,
                cluster: vec![member.clone()],
                member,
            };
            match etcd.spawn() {
                Ok(()) => return Some(etcd),
                // Dropping it removes its directory.
                Err(e) => last_error = e,
            }
        }
        panic!("starting etcd failed: {last_error}");
    }

    /// Kills etcd (SIGKILL) and starts it again on the same data and ports, as a crash and a
    /// restart of the member would.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn()
            .unwrap_or_else(|e| panic!("restarting etcd failed: {e}"));
    }

    /// Kills this member (SIGKILL), as a crash would; [`LocalEtcd::restart`] starts it again.
    pub fn kill(&mut self) {
        // SIGKILL to this child only (std's kill), then reap it so no zombie is left.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs etcd on its directory and waits until it serves clients.
    fn spawn(&mut self) -> Result<(), String> {
        self.child = Some(self.launch()?);
        self.wait_ready()
    }

    /// Runs etcd on its directory (a fresh log each run, so readiness is read from this
    /// run's lines).
    fn launch(&self) -> Result<Child, String> {
        let log = std::fs::File::create(self.dir.join("etcd.log")).map_err(|e| e.to_string())?;
        self.member
            .command(&self.binary, &self.cluster)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("running {}: {e}", self.binary.display()))
    }

    /// Waits until the running member serves clients; kills it if it does not in 30 s.
    fn wait_ready(&mut self) -> Result<(), String> {
        let log_path = self.dir.join("etcd.log");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if log.contains(READY_LINE) {
                return Ok(());
            }
            let child = self.child.as_mut().ok_or("etcd is not running")?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!("etcd exited with {status}:\n{log}"));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!("etcd was not ready in 30s:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The client endpoint, `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.member.endpoint()
    }

    /// The member's directory: its data (`data/`) and its log (`etcd.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The etcd process's PID (0 while killed).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// What etcd logged so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
