//! Driving the `crun` OCI runtime executable.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};

/// Errors of crun invocations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// crun could not be started at all.
    #[error("cannot run {binary}: {source}")]
    Spawn {
        /// The crun binary.
        binary: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// crun ran and failed; `message` is what it printed.
    #[error("crun {command} failed: {message}")]
    Failed {
        /// The sub-command, e.g. `start`.
        command: String,
        /// crun's error output.
        message: String,
    },
}

/// Result of crun invocations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to invoke crun; serialisable because the monitor process needs it too.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Crun {
    /// The crun executable.
    pub binary: PathBuf,
    /// crun's state directory (`--root`), one per keg runtime.
    pub root: PathBuf,
    /// Run crun in a mount namespace where the busy cgroup v2 mount is hidden.
    pub private_cgroup_view: bool,
}

impl Crun {
    /// A `crun --root <root> <args>` command.
    pub(crate) fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.binary);
        cmd.arg(format!("--root={}", self.root.display()));
        cmd.args(args);
        if self.private_cgroup_view {
            // SAFETY: the hook runs between fork and exec and only makes raw syscalls on
            // static strings, which is async-signal-safe.
            unsafe { cmd.pre_exec(hide_cgroup_v2) };
        }
        cmd
    }

    /// Runs a crun sub-command to completion; its stderr becomes the error message.
    pub(crate) async fn run(&self, args: &[&str]) -> Result<Vec<u8>> {
        let mut cmd = tokio::process::Command::from(self.command(args));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = cmd.output().await.map_err(|source| Error::Spawn {
            binary: self.binary.clone(),
            source,
        })?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(Error::Failed {
                command: args.first().copied().unwrap_or("").to_string(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// `crun start`: lets a created container run its process.
    pub(crate) async fn start(&self, id: &str) -> Result<()> {
        self.run(&["start", id]).await.map(drop)
    }

    /// `crun kill`: signals the container's init process (by number).
    pub(crate) async fn kill(&self, id: &str, signal: i32) -> Result<()> {
        self.run(&["kill", id, &signal.to_string()]).await.map(drop)
    }

    /// `crun delete --force`; a container crun does not know is already deleted.
    pub(crate) async fn delete(&self, id: &str) -> Result<()> {
        match self.run(&["delete", "--force", id]).await {
            Err(Error::Failed { message, .. }) if is_missing(&message) => Ok(()),
            other => other.map(drop),
        }
    }
}

fn is_missing(message: &str) -> bool {
    message.contains("No such file or directory") || message.contains("does not exist")
}

/// Runs in the forked child: a private mount namespace without `/sys/fs/cgroup/unified`, so
/// crun sees plain cgroup v1 instead of a hybrid setup it refuses.
fn hide_cgroup_v2() -> std::io::Result<()> {
    // SAFETY: plain syscalls with static NUL-terminated strings and null pointers where the
    // kernel accepts them.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let flags = libc::MS_REC | libc::MS_SLAVE;
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        if libc::umount2(c"/sys/fs/cgroup/unified".as_ptr(), libc::MNT_DETACH) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Finds crun: `$KEG_CRUN`, else the first `crun` on `PATH`.
pub(crate) fn find_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KEG_CRUN") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join("crun"))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
