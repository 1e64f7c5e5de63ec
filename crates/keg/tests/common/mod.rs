//! Shared harness of the end-to-end tests: a `keg server` process of the built binary and the
//! real kubectl binaries (1.27 to 1.33) installed beside `kubectl`.
//!
//! With `KEG_TEST_STORE=etcd` every server keeps its state in a three-member etcd cluster of
//! its own (`keg_store::test_store`), unless the test names a `--store` itself.
#![allow(dead_code)]

pub mod cluster;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use keg_store::test_store::SuiteEtcd;

/// The oldest and newest kubectl the tests drive.
pub const KUBECTL_VERSIONS: [&str; 2] = ["1.27", "1.33"];

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `keg server`, stopped (by its PID) when dropped, then its etcd if it has one.
pub struct Server {
    child: Option<Child>,
    /// The data dir.
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    /// The port it listens on.
    pub port: u16,
    flags: Vec<String>,
    /// The etcd cluster the server keeps its state in, under `KEG_TEST_STORE=etcd`: kept
    /// across restarts of the server, and dropped only after `drop` has stopped it.
    etcd: Option<SuiteEtcd>,
}

impl Server {
    /// Starts a server on a fresh data dir.
    pub fn start() -> Server {
        // These servers test the API; no pod runs, so no node agent (and no pod network).
        Server::start_with(&["--no-node-agent"])
    }

    /// Starts a server on a fresh data dir with extra `keg server` flags.
    pub fn start_with(flags: &[&str]) -> Server {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        let mut flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        // A test that chose its store (its own etcd) keeps it.
        let etcd = if flags.iter().any(|f| f == "--store") {
            None
        } else {
            SuiteEtcd::from_env()
        };
        if let Some(etcd) = &etcd {
            flags.extend([
                "--store".to_owned(),
                etcd.store_flag(),
                "--etcd-prefix".to_owned(),
                "/keg-suite".to_owned(),
            ]);
        }
        let mut server = Server {
            child: None,
            dir,
            _temp: Some(temp),
            port: free_port(),
            flags,
            etcd,
        };
        server.restart();
        server
    }

    /// (Re)starts the server process on the same data dir and port; waits until it is ready.
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_keg"))
            .args(["server", "--data-dir"])
            .arg(&self.dir)
            .args(["--port", &self.port.to_string()])
            .args(&self.flags)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start keg server");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "keg server exited with {status}: {}{}",
                    self.log(),
                    self.etcd_logs()
                );
            }
            if self.kubeconfig().exists() {
                let out = self.kubectl("1.33").run(&["get", "--raw", "/readyz"]);
                if out.status.success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "keg server not ready in time: {}{}",
                self.log(),
                self.etcd_logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The logs of the server's etcd members, if it runs on one of its own.
    fn etcd_logs(&self) -> String {
        self.etcd.as_ref().map(SuiteEtcd::logs).unwrap_or_default()
    }

    /// The admin kubeconfig the server wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The admin bearer token.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The HTTPS base URL.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// A kubectl of the given version pointed at this server.
    pub fn kubectl(&self, version: &str) -> Kubectl {
        Kubectl {
            bin: kubectl_binary(version),
            kubeconfig: self.kubeconfig(),
        }
    }

    /// `keg create kubeconfig` for `user` in `groups` (a client certificate from the
    /// cluster CA), written under the server's data dir.
    pub fn user_kubeconfig(&self, user: &str, groups: &[&str]) -> PathBuf {
        let path = self.dir.join(format!("{user}.kubeconfig"));
        let mut keg = Command::new(env!("CARGO_BIN_EXE_keg"));
        keg.args(["create", "kubeconfig", "--data-dir"])
            .arg(&self.dir)
            .args(["--user", user, "-o"])
            .arg(&path);
        for group in groups {
            keg.args(["--group", group]);
        }
        let out = keg.output().unwrap();
        assert!(
            out.status.success(),
            "keg create kubeconfig: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    }

    /// Kills the server with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe_sigterm(child.id());
            let _ = child.wait();
        }
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

impl Drop for Server {
    /// SIGTERM, so a server with a node agent removes its pods, mounts, network devices and
    /// cgroups even when a test fails.
    fn drop(&mut self) {
        self.stop();
    }
}

/// A server whose node agent runs pods for real from an image store that holds
/// `busybox:test`: what every test with real pods starts from.
pub struct PodServer {
    /// The server.
    pub server: Server,
    _images: tempfile::TempDir,
}

impl std::ops::Deref for PodServer {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl PodServer {
    /// Starts one with extra `keg server` flags; `None` (with the reason printed) where the
    /// test cannot run pods: they need root.
    pub fn start(test: &str, flags: &[&str]) -> Option<PodServer> {
        if !keg_runtime::testing::require_root(test) {
            return None;
        }
        let work = tempfile::tempdir().unwrap();
        let images = work.path().join("images");
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(keg_runtime::testing::busybox_in_store(
                work.path(),
                &images,
                "busybox:test",
            ))
            .unwrap();
        let mut all = vec!["--images-dir", images.to_str().unwrap()];
        all.extend(flags);
        Some(PodServer {
            server: Server::start_with(&all),
            _images: work,
        })
    }

    /// Adds node group `name` of `nodes` nodes of `instance` (minSize 1, maxSize `max`).
    pub fn node_group(&self, name: &str, instance: &str, nodes: u32, max: u32) {
        self.kubectl("1.33").ok_stdin(
            &["apply", "-f", "-"],
            &format!(
                "apiVersion: keg.dev/v1\nkind: NodeGroup\nmetadata: {{name: {name}}}\nspec: {{instanceType: {instance}, desiredCapacity: {nodes}, minSize: 1, maxSize: {max}}}\n"
            ),
        );
    }
}

/// The kubectl binary of a version (`kubectl.1.27` beside the real `kubectl`).
pub fn kubectl_binary(version: &str) -> PathBuf {
    let which = Command::new("sh")
        .args(["-c", "readlink -f \"$(command -v kubectl)\""])
        .output()
        .unwrap();
    let real = PathBuf::from(String::from_utf8(which.stdout).unwrap().trim());
    let bin = real.parent().unwrap().join(format!("kubectl.{version}"));
    assert!(bin.exists(), "{} is not installed", bin.display());
    bin
}

/// One kubectl binary with a kubeconfig.
#[derive(Clone)]
pub struct Kubectl {
    /// The binary.
    pub bin: PathBuf,
    /// The kubeconfig.
    pub kubeconfig: PathBuf,
}

/// What a command printed.
pub struct Run {
    /// Exit status.
    pub status: std::process::ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Kubectl {
    /// The same kubectl with another kubeconfig.
    pub fn with_kubeconfig(&self, kubeconfig: &Path) -> Kubectl {
        Kubectl {
            bin: self.bin.clone(),
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd.env("HOME", std::env::temp_dir()); // no user cache or config leaks in
        cmd
    }

    /// Runs kubectl and returns what it printed.
    pub fn run(&self, args: &[&str]) -> Run {
        self.command(args).output().expect("run kubectl").into()
    }

    /// Runs kubectl with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &str) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap().into()
    }

    /// Runs kubectl, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(
            run.status.success(),
            "kubectl {} failed:\nstdout: {}\nstderr: {}",
            args.join(" "),
            run.stdout,
            run.stderr
        );
        run.stdout
    }

    /// Runs kubectl with stdin, asserting success; returns stdout.
    pub fn ok_stdin(&self, args: &[&str], input: &str) -> String {
        let run = self.run_stdin(args, input);
        assert!(
            run.status.success(),
            "kubectl {} failed:\nstdout: {}\nstderr: {}",
            args.join(" "),
            run.stdout,
            run.stderr
        );
        run.stdout
    }

    /// Runs kubectl, asserting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(
            !run.status.success(),
            "kubectl {} should have failed:\n{}",
            args.join(" "),
            run.stdout
        );
        run.stderr
    }

    /// The Running pods a label selector selects, leaving out those being deleted.
    pub fn running_pods(&self, selector: &str) -> Vec<serde_json::Value> {
        let pods = self.json(&["get", "pods", "-l", selector]);
        pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| {
                p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
            })
            .cloned()
            .collect()
    }

    /// A JSON value from `kubectl get ... -o json`.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

/// Polls `check` until it returns Some or the timeout passes (for eventual outcomes, not timing).
pub fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Writes a file into a directory and returns its path.
pub fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}
