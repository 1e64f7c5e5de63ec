//! Containers: create, start, stop, remove, status, list.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::types::{ContainerConfig, ContainerState, ContainerStatus, SandboxState};
use super::{Error, Result, Runtime, check_id, io_err, list_ids};
use crate::fsutil;
use crate::shim::{self, ExitRecord, MonitorRecord, ShimConfig, files};
use crate::spec::{self, SpecInput};

/// What is kept on disk about a container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct ContainerRecord {
    pub id: String,
    pub sandbox_id: String,
    pub config: ContainerConfig,
    pub image_id: String,
    pub stop_signal: Option<String>,
    pub created_at: Timestamp,
    pub cgroup_path: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct StartRecord {
    started_at: Timestamp,
}

const RECORD: &str = "meta.json";
const STARTED: &str = "started.json";
/// How long a SIGKILLed container may take to be reported dead (the monitor drains output).
const KILL_GRACE: Duration = Duration::from_secs(10);

impl Runtime {
    /// Creates a container in sandbox `sandbox_id`: mounts its overlay root file system,
    /// writes its OCI config and has crun create it (its process waits for
    /// [`Runtime::start_container`]). Returns its id.
    pub async fn create_container(
        &self,
        sandbox_id: &str,
        config: ContainerConfig,
    ) -> Result<String> {
        let lock = self.lock_for(sandbox_id);
        let _guard = lock.lock().await;
        let sandbox = self.sandbox_record(sandbox_id)?;
        if sandbox.sandbox.state != SandboxState::Ready {
            return Err(Error::InvalidState(format!(
                "sandbox {sandbox_id} is not ready"
            )));
        }
        let image = self.inner.images.get(&config.image)?;
        let layers = self.inner.images.layer_dirs(&image)?;
        let id = fsutil::random_hex(32);
        let dir = self.container_dir(&id);
        let record = ContainerRecord {
            id: id.clone(),
            sandbox_id: sandbox_id.to_string(),
            stop_signal: image.config.stop_signal.clone(),
            image_id: image.id.clone(),
            created_at: Timestamp::now(),
            cgroup_path: format!("{}/{id}", sandbox.cgroup_path),
            config,
        };
        for sub in ["bundle/rootfs", "upper", "work"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(io_err(format!("create {}", dir.join(sub).display())))?;
        }
        fsutil::write_json(&dir.join(RECORD), &record)
            .map_err(io_err("write the container record"))?;
        let result = async {
            mount_rootfs(&dir, &layers)?;
            let input = SpecInput {
                config: &record.config,
                image: &image.config,
                rootfs: &dir.join("bundle/rootfs"),
                hostname: &sandbox.sandbox.config.hostname,
                netns: &sandbox.sandbox.netns_path,
                sandbox_dir: &self.sandbox_dir(sandbox_id),
                cgroups_path: &record.cgroup_path,
            };
            let oci = spec::generate(&input)?;
            fsutil::write_json(&dir.join("bundle/config.json"), &oci)
                .map_err(io_err("write config.json"))?;
            let shim_config = ShimConfig {
                id: id.clone(),
                crun: self.inner.crun.clone(),
                bundle: dir.join("bundle"),
                log_path: record.config.log_path.clone(),
                oom_file: self.inner.cgroups.oom_events_file(&record.cgroup_path),
            };
            shim::launch(&self.inner.shim_exe, &dir, &shim_config).await?;
            Ok::<(), Error>(())
        }
        .await;
        if let Err(e) = result {
            if let Err(cleanup) = self.destroy_container(&record).await {
                tracing::warn!(container = %id, error = %cleanup, "cleaning up a failed container");
            }
            return Err(e);
        }
        let (name, image) = (&record.config.name, &image.id);
        tracing::info!(container = %id, sandbox = %sandbox_id, %name, %image, "created container");
        Ok(id)
    }

    /// Starts a created container's process.
    pub async fn start_container(&self, id: &str) -> Result<()> {
        let lock = self.lock_for(id);
        let _guard = lock.lock().await;
        let status = self.container_status(id)?;
        if status.state != ContainerState::Created {
            return Err(Error::InvalidState(format!(
                "container {id} is {:?}, not created",
                status.state
            )));
        }
        let dir = self.container_dir(id);
        // Recorded before the start so that a process that exits at once still has a start.
        let started = StartRecord {
            started_at: Timestamp::now(),
        };
        fsutil::write_json(&dir.join(STARTED), &started)
            .map_err(io_err("write the start record"))?;
        if let Err(e) = self.inner.crun.start(id).await {
            let _ = fsutil::remove_file_if_exists(&dir.join(STARTED));
            return Err(e.into());
        }
        tracing::info!(container = %id, "started container");
        Ok(())
    }

    /// Stops a container: its image's stop signal (SIGTERM by default), then SIGKILL once
    /// `timeout` has passed. Stopping a container that has exited is not an error.
    pub async fn stop_container(&self, id: &str, timeout: Duration) -> Result<()> {
        let lock = self.lock_for(id);
        let _guard = lock.lock().await;
        let record = self.container_record(id)?;
        if self.exit_record(id)?.is_some() {
            return Ok(());
        }
        if !self.monitor_alive(id) {
            // Nobody will record an exit; make sure the process is gone all the same.
            let _ = self.inner.crun.kill(id, libc::SIGKILL).await;
            return Ok(());
        }
        let signal = record
            .stop_signal
            .as_deref()
            .and_then(signal_number)
            .unwrap_or(libc::SIGTERM);
        tracing::info!(container = %id, signal, timeout = ?timeout, "stopping container");
        if !timeout.is_zero() {
            self.signal(id, signal).await?;
            if self.wait_exit(id, timeout).await? {
                return Ok(());
            }
        }
        tracing::info!(container = %id, "stop timeout passed, sending SIGKILL");
        self.signal(id, libc::SIGKILL).await?;
        if self.wait_exit(id, KILL_GRACE).await? {
            Ok(())
        } else {
            Err(Error::InvalidState(format!(
                "container {id} did not die after SIGKILL"
            )))
        }
    }

    /// Sends a signal, ignoring "not running" (the container may end meanwhile).
    async fn signal(&self, id: &str, signal: i32) -> Result<()> {
        match self.inner.crun.kill(id, signal).await {
            Ok(()) => Ok(()),
            Err(_) if self.exit_record(id)?.is_some() || !self.monitor_alive(id) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits up to `timeout` for the monitor to record the exit; true if it did.
    async fn wait_exit(&self, id: &str, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exit_record(id)?.is_some() || !self.monitor_alive(id) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Removes a container, killing it if it still runs. Its log file is kept (the caller
    /// owns logs, e.g. to serve `--previous`). Removing a removed container is not an error.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let lock = self.lock_for(id);
        let guard = lock.lock().await;
        let record = match self.container_record(id) {
            Ok(r) => r,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if self.exit_record(id)?.is_none() && self.monitor_alive(id) {
            self.signal(id, libc::SIGKILL).await?;
            self.wait_exit(id, KILL_GRACE).await?;
        }
        self.destroy_container(&record).await?;
        tracing::info!(container = %id, "removed container");
        drop(guard);
        self.forget_lock(id);
        Ok(())
    }

    /// Deletes what a container holds: crun's state, its cgroup, the rootfs mount, its files.
    async fn destroy_container(&self, record: &ContainerRecord) -> Result<()> {
        self.inner.crun.delete(&record.id).await?;
        self.inner.cgroups.remove(&record.cgroup_path)?;
        let dir = self.container_dir(&record.id);
        unmount(&dir.join("bundle/rootfs"))?;
        fsutil::remove_dir_all_if_exists(&dir).map_err(io_err(format!("remove {}", dir.display())))
    }

    /// The container's current status, read from disk (so it holds across keg restarts).
    pub fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        let record = self.container_record(id)?;
        let dir = self.container_dir(id);
        let started: Option<StartRecord> =
            fsutil::read_json(&dir.join(STARTED)).map_err(io_err("read the start record"))?;
        let exit = self.exit_record(id)?;
        let mut pid = None;
        let state = match (exit, &started) {
            (Some(exit), _) => exited(&exit),
            (None, _) if !self.monitor_alive(id) => ContainerState::Exited {
                exit_code: 255,
                finished_at: Timestamp::now(),
                reason: "Error".into(),
                message: "the container monitor ended without recording an exit status".into(),
            },
            (None, None) => ContainerState::Created,
            (None, Some(_)) => {
                pid = std::fs::read_to_string(dir.join(files::INIT_PID))
                    .ok()
                    .and_then(|p| p.trim().parse().ok());
                ContainerState::Running
            }
        };
        Ok(ContainerStatus {
            id: record.id,
            sandbox_id: record.sandbox_id,
            state,
            pid,
            created_at: record.created_at,
            started_at: started.map(|s| s.started_at),
            image: record.config.image.clone(),
            image_id: record.image_id,
            config: record.config,
        })
    }

    /// Every container of this runtime, e.g. for a restarted node agent to adopt.
    pub fn list_containers(&self) -> Result<Vec<ContainerStatus>> {
        let mut out = Vec::new();
        for id in list_ids(&self.inner.root.join("containers"))? {
            match self.container_status(&id) {
                Ok(s) => out.push(s),
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Ids of the containers of sandbox `sandbox_id`.
    pub(super) fn containers_of(&self, sandbox_id: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for id in list_ids(&self.inner.root.join("containers"))? {
            if self
                .container_record(&id)
                .is_ok_and(|r| r.sandbox_id == sandbox_id)
            {
                out.push(id);
            }
        }
        Ok(out)
    }

    pub(super) fn container_record(&self, id: &str) -> Result<ContainerRecord> {
        check_id("container", id)?;
        let path = self.container_dir(id).join(RECORD);
        fsutil::read_json(&path)
            .map_err(io_err(format!("read {}", path.display())))?
            .ok_or_else(|| Error::NotFound {
                kind: "container",
                id: id.to_string(),
            })
    }

    fn exit_record(&self, id: &str) -> Result<Option<ExitRecord>> {
        fsutil::read_json(&self.container_dir(id).join(files::EXIT))
            .map_err(io_err("read the exit record"))
    }

    /// Whether the container's monitor still runs (it ends right after recording the exit).
    pub(super) fn monitor_alive(&self, id: &str) -> bool {
        let record: Option<MonitorRecord> =
            fsutil::read_json(&self.container_dir(id).join(files::MONITOR))
                .ok()
                .flatten();
        record.is_some_and(|m| m.alive())
    }
}

fn exited(exit: &ExitRecord) -> ContainerState {
    let (reason, message) = match (exit.oom_killed, exit.exit_code, exit.signal) {
        (true, _, _) => ("OOMKilled", String::new()),
        (false, 0, _) => ("Completed", String::new()),
        (false, _, Some(sig)) => ("Error", format!("killed by signal {sig}")),
        (false, _, None) => ("Error", String::new()),
    };
    ContainerState::Exited {
        exit_code: exit.exit_code,
        finished_at: exit.finished_at,
        reason: reason.into(),
        message,
    }
}

/// `SIGQUIT`, `QUIT` or `3` to a signal number.
fn signal_number(name: &str) -> Option<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return Some(n);
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}

/// Mounts the overlay of the image layers (top layer first) with the container's own upper
/// directory at `bundle/rootfs`.
fn mount_rootfs(dir: &Path, layers: &[PathBuf]) -> Result<()> {
    let empty = dir.join("empty");
    let lower: Vec<String> = if layers.is_empty() {
        // overlayfs needs a lower directory; an image without layers gets an empty one.
        std::fs::create_dir_all(&empty).map_err(io_err("create an empty lower directory"))?;
        vec![empty.display().to_string()]
    } else {
        layers
            .iter()
            .rev()
            .map(|l| l.display().to_string())
            .collect()
    };
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        dir.join("upper").display(),
        dir.join("work").display()
    );
    if options.len() >= 4096 {
        return Err(Error::Setup(format!(
            "image has too many layers ({}) for one overlay mount",
            layers.len()
        )));
    }
    nix::mount::mount(
        Some("overlay"),
        &dir.join("bundle/rootfs"),
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|e| io_err("mount the container's overlay root file system")(e.into()))
}

/// Unmounts the root file system if it is mounted.
pub(super) fn unmount(path: &Path) -> Result<()> {
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(io_err(format!("unmount {}", path.display()))(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stop_signals() {
        assert_eq!(signal_number("SIGQUIT"), Some(libc::SIGQUIT));
        assert_eq!(signal_number("int"), Some(libc::SIGINT));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("SIGFOO"), None);
    }
}
