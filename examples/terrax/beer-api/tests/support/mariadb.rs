//! A throwaway MariaDB server for the tests: its own data directory, socket and loopback port,
//! stopped and removed when the guard drops.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
use sqlx::{ConnectOptions, Connection, Executor};

/// Database the tests' application user owns.
pub const DATABASE: &str = "beers";
/// The application user; a real account with a password, as in the cluster.
pub const USER: &str = "beer";
/// Its password.
pub const PASSWORD: &str = "terrax-test-pw";

/// How long the server may take to accept connections on a slow, busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The server binaries, found on PATH or in the sbin directories Debian installs them to.
pub struct Binaries {
    install_db: PathBuf,
    server: PathBuf,
}

impl Binaries {
    /// Finds the binaries, or says why they are missing. With CI=true a missing server fails
    /// the run: CI installs it, so its absence there is a broken setup, not a reason to skip.
    pub fn find_or_skip() -> Option<Self> {
        let found = find_binary(&["mariadb-install-db", "mysql_install_db"])
            .zip(find_binary(&["mariadbd", "mysqld"]));
        match found {
            Some((install_db, server)) => Some(Self { install_db, server }),
            None if std::env::var("CI").as_deref() == Ok("true") => {
                panic!(
                    "mariadb-install-db/mariadbd not found and CI=true: run scripts/install-deps.sh"
                )
            }
            None => {
                eprintln!(
                    "SKIPPED: mariadb-install-db/mariadbd not found \
                     (install mariadb-server, e.g. with scripts/install-deps.sh)"
                );
                None
            }
        }
    }
}

/// Looks for the first of `names` on PATH, then in /usr/sbin and /usr/local/sbin, which a
/// non-root PATH often lacks.
fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A free TCP port on loopback. Another process could take it before it is used, which is
/// unlikely enough for tests.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A running MariaDB server; dropping it kills the server by PID and deletes its files.
pub struct MariaDb {
    child: Child,
    dir: tempfile::TempDir,
    /// TCP port on 127.0.0.1.
    pub port: u16,
}

impl MariaDb {
    /// Initialises a data directory and starts a server on `port`, with only root in it (see
    /// `create_app_user`). Panics, with the server's log, when that fails.
    pub async fn start(binaries: &Binaries, port: u16) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("beer-api-mariadb-")
            .tempdir()
            .expect("temporary directory");
        let datadir = dir.path().join("data");
        // mariadbd refuses to run as root unless told to; as anyone else it runs as itself.
        let as_root = fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        install_datadir(binaries, &datadir, as_root);

        let mut command = Command::new(&binaries.server);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", datadir.display()))
            .arg(format!("--socket={}", socket_path(dir.path()).display()))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mariadbd.pid").display()
            ))
            .arg(format!("--log-error={}", log_path(dir.path()).display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--skip-name-resolve")
            // Small and fast: a test database needs no big buffers or durable commits.
            .arg("--innodb-buffer-pool-size=32M")
            .arg("--innodb-log-file-size=16M")
            .arg("--innodb-flush-log-at-trx-commit=0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if as_root {
            command.arg("--user=root");
        }
        let child = command.spawn().expect("start mariadbd");
        let mut db = Self { child, dir, port };
        db.wait_until_up().await;
        db
    }

    /// Where the server's unix socket is.
    pub fn socket(&self) -> PathBuf {
        socket_path(self.dir.path())
    }

    /// The server's error log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(log_path(self.dir.path())).unwrap_or_default()
    }

    /// Root over the unix socket: root@localhost has no password after
    /// `--auth-root-authentication-method=normal`, and needs no TCP grant.
    fn root_options(&self) -> MySqlConnectOptions {
        MySqlConnectOptions::new()
            .socket(self.socket())
            .username("root")
            .ssl_mode(MySqlSslMode::Disabled)
    }

    async fn wait_until_up(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("mariadbd exited early ({status}); log:\n{}", self.log());
            }
            match self.root_options().connect().await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    return;
                }
                Err(err) if started.elapsed() > START_TIMEOUT => {
                    panic!(
                        "mariadbd not up after {START_TIMEOUT:?}: {err}; log:\n{}",
                        self.log()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Creates the application database and its user, as the image's entrypoint does.
    pub async fn create_app_user(&self) {
        let mut conn = self
            .root_options()
            .connect()
            .await
            .expect("connect as root");
        let statements = [
            format!("CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4"),
            format!("CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'"),
            format!("GRANT ALL PRIVILEGES ON `{DATABASE}`.* TO '{USER}'@'%'"),
        ];
        for sql in statements {
            conn.execute(sqlx::AssertSqlSafe(sql))
                .await
                .expect("set up the test database");
        }
        let _ = conn.close().await;
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // SIGKILL is enough: the data directory is deleted right after, so there is nothing to
        // shut down cleanly for.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn socket_path(dir: &Path) -> PathBuf {
    dir.join("mariadbd.sock")
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("mariadbd.err")
}

/// Creates the system tables in `datadir`, with a password-less root for the socket.
fn install_datadir(binaries: &Binaries, datadir: &Path, as_root: bool) {
    let mut command = Command::new(&binaries.install_db);
    command
        .arg("--no-defaults")
        .arg(format!("--datadir={}", datadir.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .stdin(Stdio::null());
    if as_root {
        command.arg("--user=root");
    }
    let output = command.output().expect("run mariadb-install-db");
    if !output.status.success() {
        panic!(
            "mariadb-install-db failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
