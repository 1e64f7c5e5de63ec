//! Running a command in a running container and collecting its output (exec probes); the
//! preparation it shares with streamed commands (`exec_stream`).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::types::{ContainerState, ExecOutput};
use super::{Error, Result, Runtime, io_err};
use crate::{fsutil, spec};

impl Runtime {
    /// Runs `command` in container `id` as its main process runs (same user, environment,
    /// capabilities, namespaces and cgroup) and collects its output. After `timeout` the
    /// command is killed and [`Error::Timeout`] returned.
    pub async fn exec<S: AsRef<str>>(
        &self,
        id: &str,
        command: &[S],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let command: Vec<String> = command.iter().map(|s| s.as_ref().to_string()).collect();
        let files = self.prepare_exec(id, &command, None)?;
        let outcome = self.run_exec(id, &files.process, &files.pid, timeout).await;
        drop(files);
        match outcome {
            Ok(Some(out)) => Ok(out),
            Ok(None) => Err(Error::Timeout {
                command: command.join(" "),
                seconds: timeout.as_secs(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Checks that `id` runs and writes the process file of `command` for `crun exec`: on a
    /// terminal of the given size (width, height; 0x0 for none known) when there is one.
    pub(super) fn prepare_exec(
        &self,
        id: &str,
        command: &[String],
        terminal: Option<(u16, u16)>,
    ) -> Result<ExecFiles> {
        if command.is_empty() {
            return Err(Error::InvalidArgument("exec needs a command".into()));
        }
        if self.container_status(id)?.state != ContainerState::Running {
            return Err(Error::InvalidState(format!(
                "container {id} is not running"
            )));
        }
        let dir = self.container_dir(id);
        let container_spec: serde_json::Value = fsutil::read_json(&dir.join("bundle/config.json"))
            .map_err(io_err("read config.json"))?
            .ok_or_else(|| Error::InvalidState(format!("container {id} has no config.json")))?;
        let tag = fsutil::random_hex(8);
        let files = ExecFiles {
            process: dir.join(format!("exec-{tag}.json")),
            pid: dir.join(format!("exec-{tag}.pid")),
        };
        let mut process = spec::exec_process(&container_spec, command);
        process["terminal"] = serde_json::json!(terminal.is_some());
        if let Some((width, height)) = terminal.filter(|&(w, h)| w > 0 && h > 0) {
            process["consoleSize"] = serde_json::json!({"width": width, "height": height});
        }
        fsutil::write_json(&files.process, &process).map_err(io_err("write the exec process"))?;
        Ok(files)
    }

    /// `crun exec` with a process file; `None` when it timed out (and was killed).
    async fn run_exec(
        &self,
        id: &str,
        process_file: &Path,
        pid_file: &Path,
        timeout: Duration,
    ) -> Result<Option<ExecOutput>> {
        let mut cmd = self.crun_exec(id, process_file, pid_file, &[]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd.spawn().map_err(io_err("run crun exec"))?;
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => Ok(Some(ExecOutput {
                exit_code: exit_code(out.status),
                stdout: out.stdout,
                stderr: out.stderr,
            })),
            Ok(Err(e)) => Err(io_err("run crun exec")(e)),
            Err(_) => {
                // Dropping the child killed crun; the process it started lives in the
                // container and is killed by its pid.
                kill_by_pid_file(pid_file);
                Ok(None)
            }
        }
    }

    /// The `crun exec` command of a prepared process.
    pub(super) fn crun_exec(
        &self,
        id: &str,
        process_file: &Path,
        pid_file: &Path,
        extra: &[&str],
    ) -> tokio::process::Command {
        let (process_arg, pid_arg) = (
            process_file.display().to_string(),
            pid_file.display().to_string(),
        );
        let mut args = vec!["exec", "--process", &process_arg, "--pid-file", &pid_arg];
        args.extend(extra);
        args.push(id);
        let mut cmd = tokio::process::Command::from(self.inner.crun.command(&args));
        cmd.kill_on_drop(true);
        cmd
    }
}

/// The files of one `crun exec`, removed when dropped.
#[derive(Debug)]
pub(super) struct ExecFiles {
    /// The process (`--process`).
    pub(super) process: PathBuf,
    /// Where crun writes the command's pid (`--pid-file`).
    pub(super) pid: PathBuf,
}

impl Drop for ExecFiles {
    fn drop(&mut self) {
        let _ = fsutil::remove_file_if_exists(&self.process);
        let _ = fsutil::remove_file_if_exists(&self.pid);
    }
}

/// An exit status as the kubelet reports it: the code, or 128 + the signal.
pub(super) fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// SIGKILLs the process whose pid crun wrote to `pid_file`, if it wrote one.
pub(super) fn kill_by_pid_file(pid_file: &Path) {
    let pid = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|p| p.trim().parse().ok());
    if let Some(pid) = pid {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
