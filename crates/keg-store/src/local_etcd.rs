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
    binary: PathBuf,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    tls: Option<ServerTls>,
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
            // Straight to the stderr stream, past the test harness's capture of eprintln!, so
            // the skip shows in a normal `cargo test` run.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "skipping an etcd test: {reason}");
            return None;
        };
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        // A port found free can be taken before etcd binds it; try again with new ones.
        let mut last_error = String::new();
        for _ in 0..3 {
            let dir = base.join(format!(
                "keg-etcd-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            if let Err(e) = std::fs::create_dir_all(&dir) {
                panic!("creating {}: {e}", dir.display());
            }
            let ports = free_port().and_then(|client| Ok((client, free_port()?)));
            let (client_port, peer_port) = ports.expect("free ports on loopback");
            match LocalEtcd::spawn(&binary, &dir, client_port, peer_port, tls) {
                Ok(child) => {
                    return Some(LocalEtcd {
                        child,
                        binary,
                        dir,
                        client_port,
                        peer_port,
                        tls: tls.cloned(),
                    });
                }
                Err(e) => {
                    last_error = e;
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        panic!("starting etcd failed: {last_error}");
    }

    /// Kills etcd (SIGKILL) and starts it again on the same data and ports, as a crash and a
    /// restart of the member would.
    pub fn restart(&mut self) {
        self.kill();
        self.child = LocalEtcd::spawn(
            &self.binary,
            &self.dir,
            self.client_port,
            self.peer_port,
            self.tls.as_ref(),
        )
        .unwrap_or_else(|e| panic!("restarting etcd failed: {e}"));
    }

    fn kill(&mut self) {
        // SIGKILL to this child only (std's kill), then reap it so no zombie is left.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Runs etcd on `dir` and waits until it serves clients; the process, or why not.
    fn spawn(
        binary: &Path,
        dir: &Path,
        client_port: u16,
        peer_port: u16,
        tls: Option<&ServerTls>,
    ) -> Result<Child, String> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let client_url = format!("{scheme}://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log_path = dir.join("etcd.log");
        // A fresh log each run, so readiness is read from this run's lines.
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
        let mut child = command
            .spawn()
            .map_err(|e| format!("running {}: {e}", binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if log.contains("ready to serve client requests") {
                return Ok(child);
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("etcd exited with {status}:\n{log}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
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
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
