//! The container monitor ("shim"): one small process per container that outlives keg.
//!
//! crun's detached containers need a parent that reaps their init process, or the exit code
//! is lost; and their output needs a reader that turns it into the CRI log format, or the
//! container blocks on a full pipe. keg itself may restart at any time, so neither can be a
//! task inside keg. Instead keg starts its own executable again with [`ENV`] set; a
//! constructor that runs before `main` (`ENTRY`, in `.init_array`) turns that process into
//! the monitor:
//!
//! 1. it forks; the parent waits for the child's report and exits 0 ("created") or 1 with the
//!    error on stderr, which is what keg waits for;
//! 2. the child calls `setsid`, becomes a child subreaper, runs `crun create` with pipes as
//!    the container's stdout and stderr, and so becomes the parent of the container's init
//!    process once crun exits;
//! 3. it writes the output to the log file, and when init exits, its wait status (and
//!    whether the cgroup saw an OOM kill) to `exit.json`, then exits.
//!
//! Every binary that links this crate can therefore be the monitor: the keg binary, and
//! the test binaries of this and other crates, without a separate executable.

mod monitor;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::crun::Crun;

/// Errors of launching a monitor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The monitor process could not be started.
    #[error("cannot start the container monitor {exe}: {source}")]
    Spawn {
        /// The executable started as monitor.
        exe: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The monitor started but creating the container failed.
    #[error("{0}")]
    Create(String),
    /// The monitor's configuration could not be written.
    #[error("cannot write the monitor configuration {path}: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Result of monitor operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The environment variable that turns a process into a container monitor; its value is the
/// container's state directory.
pub const ENV: &str = "KEG_RUNTIME_SHIM";

/// What the monitor needs to know, written by keg to `shim.json` in the container directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ShimConfig {
    /// Container id, as crun knows it.
    pub id: String,
    /// How to run crun.
    pub crun: Crun,
    /// The OCI bundle directory.
    pub bundle: PathBuf,
    /// Where the CRI-format log goes.
    pub log_path: PathBuf,
    /// The cgroup file that counts OOM kills of the container.
    pub oom_file: Option<PathBuf>,
}

/// How the container's init process ended, written by the monitor to `exit.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExitRecord {
    /// Exit status, or 128 + signal number when killed by a signal.
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// When the monitor saw it end.
    pub finished_at: Timestamp,
    /// Whether the container's cgroup recorded an OOM kill.
    pub oom_killed: bool,
}

/// The monitor process, as written to `monitor.json`, so that keg can tell whether it lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MonitorRecord {
    /// Its pid.
    pub pid: i32,
    /// Its start time in clock ticks since boot, to tell it from a later process with its pid.
    pub start_time: u64,
}

impl MonitorRecord {
    /// Whether the recorded process is still the monitor and still running.
    pub(crate) fn alive(&self) -> bool {
        process_start_time(self.pid) == Some(self.start_time)
    }
}

/// File names inside a container's state directory.
pub(crate) mod files {
    /// The monitor's configuration.
    pub const CONFIG: &str = "shim.json";
    /// The monitor's pid record.
    pub const MONITOR: &str = "monitor.json";
    /// crun's `--pid-file`.
    pub const INIT_PID: &str = "init.pid";
    /// The exit record.
    pub const EXIT: &str = "exit.json";
    /// crun's own log.
    pub const CRUN_LOG: &str = "crun.log";
    /// The monitor's own stdout and stderr.
    pub const SHIM_LOG: &str = "shim.log";
}

/// Writes the monitor's configuration and starts it; returns once the container is created
/// (its init process waits for `crun start`) or creating it failed.
pub(crate) async fn launch(exe: &Path, dir: &Path, config: &ShimConfig) -> Result<()> {
    let path = dir.join(files::CONFIG);
    crate::fsutil::write_json(&path, config).map_err(|source| Error::Config { path, source })?;
    let out = tokio::process::Command::new(exe)
        .env(ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|source| Error::Spawn {
            exe: exe.to_path_buf(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(Error::Create(if text.is_empty() {
            format!("container monitor failed: {}", out.status)
        } else {
            text
        }))
    }
}

/// The start time (field 22 of `/proc/<pid>/stat`) of a process, if it exists.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let start = rest.split(' ').nth(19)?.parse().ok()?;
    // A zombie has exited: it is no monitor any more.
    (!rest.starts_with('Z')).then_some(start)
}

/// Runs before `main` in every process that links this crate (the ELF `.init_array`); does
/// nothing unless [`ENV`] is set, and then never returns.
#[used]
#[unsafe(link_section = ".init_array")]
static ENTRY: extern "C" fn() = entry;

extern "C" fn entry() {
    let Some(dir) = std::env::var_os(ENV) else {
        return;
    };
    // SAFETY: before main, so no other thread can be reading the environment.
    unsafe { std::env::remove_var(ENV) };
    let code = std::panic::catch_unwind(|| monitor::run(Path::new(&dir))).unwrap_or(101);
    std::process::exit(code);
}
