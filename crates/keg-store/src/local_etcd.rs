//! A throwaway single-member etcd on loopback, for tests (this crate's and the server's).
//!
//! Each [`LocalEtcd`] is its own `etcd` process with free ports and a data directory of its
//! own (in `/dev/shm` where there is one, so fsync costs nothing); dropping it kills that
//! process by its PID and removes the directory. Where no `etcd` binary is installed,
//! [`LocalEtcd::start`] returns `None` after printing why, so a developer without Debian's
//! `etcd-server` can still run the other tests. With `CI=true` it panics instead: CI installs
//! etcd (scripts/install-deps.sh) and must never skip these tests silently.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// TLS for a local etcd's client port: PEM files.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The serving certificate (for 127.0.0.1).
    pub cert_file: PathBuf,
    /// Its key.
    pub key_file: PathBuf,
    /// With a CA, etcd requires client certificates signed by it (`--client-cert-auth`).
    pub client_ca_file: Option<PathBuf>,
}

/// A running local etcd; killed when dropped.
pub struct LocalEtcd {
    child: Child,
    dir: PathBuf,
    client_port: u16,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// The etcd binary: `$ETCD_BIN`, else `etcd` on the `PATH`.
fn etcd_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ETCD_BIN") {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("etcd"))
        .find(|path| path.is_file())
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

    fn start_inner(tls: Option<&ServerTls>) -> Option<LocalEtcd> {
        let Some(binary) = etcd_binary() else {
            let reason =
                "no etcd binary (Debian's etcd-server, installed by scripts/install-deps.sh)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{reason}, and CI=true does not allow skipping the etcd tests");
            }
            eprintln!("skipping: {reason}");
            return None;
        };
        // A port found free can be taken before etcd binds it; try again with new ones.
        let mut last_error = String::new();
        for _ in 0..3 {
            match LocalEtcd::spawn(&binary, tls) {
                Ok(etcd) => return Some(etcd),
                Err(e) => last_error = e,
            }
        }
        panic!("starting etcd failed: {last_error}");
    }

    fn spawn(binary: &Path, tls: Option<&ServerTls>) -> Result<LocalEtcd, String> {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "keg-etcd-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let client_port = free_port().map_err(|e| e.to_string())?;
        let peer_port = free_port().map_err(|e| e.to_string())?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let client_url = format!("{scheme}://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log_path = dir.join("etcd.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let mut command = Command::new(binary);
        command
            .arg("--name=keg-test")
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=keg-test={peer_url}"))
            .arg("--initial-cluster-state=new")
            // Progress notifications often enough for a test to see one.
            .arg("--experimental-watch-progress-notify-interval=2s")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(tls) = tls {
            command
                .arg(format!("--cert-file={}", tls.cert_file.display()))
                .arg(format!("--key-file={}", tls.key_file.display()));
            if let Some(ca) = &tls.client_ca_file {
                command
                    .arg("--client-cert-auth")
                    .arg(format!("--trusted-ca-file={}", ca.display()));
            }
        }
        let child = command
            .spawn()
            .map_err(|e| format!("running {}: {e}", binary.display()))?;
        let mut etcd = LocalEtcd {
            child,
            dir,
            client_port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if log.contains("ready to serve client requests") {
                return Ok(etcd);
            }
            if let Ok(Some(status)) = etcd.child.try_wait() {
                return Err(format!("etcd exited with {status}:\n{log}"));
            }
            if Instant::now() > deadline {
                return Err(format!("etcd was not ready in 30s:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The client endpoint, `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The etcd process's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What etcd logged so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        // SIGKILL to this child only (std's kill), then reap it so no zombie is left.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
