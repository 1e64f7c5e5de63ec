//! Running a command in a running container (exec probes, `kubectl exec` without a tty).

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
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
        let process_file = dir.join(format!("exec-{tag}.json"));
        let pid_file = dir.join(format!("exec-{tag}.pid"));
        let process = spec::exec_process(&container_spec, &command);
        let outcome = match fsutil::write_json(&process_file, &process) {
            Ok(()) => self.run_exec(id, &process_file, &pid_file, timeout).await,
            Err(e) => Err(io_err("write the exec process")(e)),
        };
        let _ = fsutil::remove_file_if_exists(&process_file);
        let _ = fsutil::remove_file_if_exists(&pid_file);
        match outcome {
            Ok(Some(out)) => Ok(out),
            Ok(None) => Err(Error::Timeout {
                command: command.join(" "),
                seconds: timeout.as_secs(),
            }),
            Err(e) => Err(e),
        }
    }

    /// `crun exec` with a process file; `None` when it timed out (and was killed).
    async fn run_exec(
        &self,
        id: &str,
        process_file: &Path,
        pid_file: &Path,
        timeout: Duration,
    ) -> Result<Option<ExecOutput>> {
        let (process_arg, pid_arg) = (
            process_file.display().to_string(),
            pid_file.display().to_string(),
        );
        let args = [
            "exec",
            "--process",
            &process_arg,
            "--pid-file",
            &pid_arg,
            id,
        ];
        let mut cmd = tokio::process::Command::from(self.inner.crun.command(&args));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(io_err("run crun exec"))?;
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => Ok(Some(ExecOutput {
                exit_code: out
                    .status
                    .code()
                    .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0)),
                stdout: out.stdout,
                stderr: out.stderr,
            })),
            Ok(Err(e)) => Err(io_err("run crun exec")(e)),
            Err(_) => {
                // Dropping the child killed crun; the process it started lives in the
                // container and is killed by its pid.
                let pid = std::fs::read_to_string(pid_file)
                    .ok()
                    .and_then(|p| p.trim().parse().ok());
                if let Some(pid) = pid {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                Ok(None)
            }
        }
    }
}
