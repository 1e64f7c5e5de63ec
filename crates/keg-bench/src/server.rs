//! A `keg server` process the harness starts on a fresh data dir, and kube clients for it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running `keg server`; stopped with SIGTERM (by its PID) when dropped, so a server with a
/// node agent removes its containers, mounts, bridge and cgroups even when a suite fails.
pub struct Server {
    child: Option<Child>,
    /// The data dir (inside a temporary directory removed on drop).
    pub dir: PathBuf,
    temp: Option<tempfile::TempDir>,
    port: u16,
    keg: PathBuf,
    flags: Vec<String>,
}

impl Server {
    /// Starts `keg server` on a fresh data dir with extra flags and waits until it is ready.
    pub async fn start(keg: &Path, flags: &[&str]) -> Result<Server> {
        let temp = tempfile::Builder::new()
            .prefix("keg-bench-")
            .tempdir()
            .context("creating a data dir")?;
        let mut server = Server {
            child: None,
            dir: temp.path().join("data"),
            temp: Some(temp),
            port: free_port()?,
            keg: keg.to_owned(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
        };
        server.spawn()?;
        server.wait_ready(Duration::from_secs(120)).await?;
        Ok(server)
    }

    /// A scratch directory beside the data dir, removed with it.
    pub fn scratch(&self) -> PathBuf {
        self.temp
            .as_ref()
            .map(|t| t.path().to_owned())
            .unwrap_or_else(std::env::temp_dir)
    }

    fn spawn(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(&self.keg)
            .args(["server", "--data-dir"])
            .arg(&self.dir)
            .args(["--port", &self.port.to_string()])
            .args(&self.flags)
            .env(
                "RUST_LOG",
                std::env::var("KEG_BENCH_LOG").unwrap_or("warn".into()),
            )
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} server", self.keg.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.scratch().join("server.log")
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until the kubeconfig exists and `/readyz` answers 200.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("keg server exited with {status}:\n{}", self.log_tail());
            }
            if self.kubeconfig().exists()
                && let Ok(client) = self.client().await
                && ready(&client).await
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("keg server not ready in {timeout:?}:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The admin kubeconfig the server wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// A kube client with the admin kubeconfig.
    pub async fn client(&self) -> Result<kube::Client> {
        let file = kube::config::Kubeconfig::read_from(self.kubeconfig())?;
        let mut config =
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await?;
        // Lists of 100,000 pods and stalled watches must not time out on the client side.
        config.read_timeout = None;
        config.write_timeout = None;
        Ok(kube::Client::try_from(config)?)
    }

    /// The server's PID.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's resident memory in bytes (VmRSS).
    pub fn rss_bytes(&self) -> Result<u64> {
        let pid = self.pid().context("server not running")?;
        rss_of(pid)
    }

    /// The most resident memory the server has had, in bytes (VmHWM).
    pub fn peak_rss_bytes(&self) -> Result<u64> {
        let pid = self.pid().context("server not running")?;
        status_kib(pid, "VmHWM:").map(|kib| kib * 1024)
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub async fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        sigterm(child.id());
        tokio::task::spawn_blocking(move || child.wait())
            .await?
            .context("waiting for keg server")?;
        Ok(())
    }

    /// Starts the server again on the same data dir and port; waits until it is ready.
    pub async fn restart(&mut self, timeout: Duration) -> Result<()> {
        self.stop().await?;
        self.spawn()?;
        self.wait_ready(timeout).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            sigterm(child.id());
            let _ = child.wait();
        }
    }
}

fn sigterm(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a PID of a child this process started and has not reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

/// Whether the server answers `/readyz` with 200.
pub async fn ready(client: &kube::Client) -> bool {
    let request = http::Request::get("/readyz").body(Vec::new());
    match request {
        Ok(request) => client.request_text(request).await.is_ok(),
        Err(_) => false,
    }
}

/// The resident memory (VmRSS) of a process, in bytes.
pub fn rss_of(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS:").map(|kib| kib * 1024)
}

/// A `kB` field of /proc/PID/status.
fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("{field} without a value"))?
        .parse()?)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The keg binary: `--keg`, else `$KEG_BIN`, else `keg` beside this executable (or beside
/// its parent directory, where test binaries live in `deps/`).
pub fn find_keg(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(path) = explicit.or_else(|| std::env::var_os("KEG_BIN").map(PathBuf::from)) {
        return Ok(path);
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("executable without a directory")?;
    for candidate in [dir.join("keg"), dir.join("../keg")] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "no keg binary beside {}: build it (cargo build --release -p keg) or pass --keg PATH",
        exe.display()
    )
}
