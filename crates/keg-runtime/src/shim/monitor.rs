//! The monitor process itself (see the parent module).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::{ExitRecord, MonitorRecord, ShimConfig, files, process_start_time};
use crate::fsutil;
use crate::logs::{LineSplitter, Stream};

/// How long output may still arrive after init exited (from processes that outlive it for a
/// moment while the kernel tears the PID namespace down).
const DRAIN: Duration = Duration::from_secs(2);

/// Forks; the parent relays the child's report as exit status, the child monitors.
pub(super) fn run(dir: &Path) -> i32 {
    let (report_r, report_w) = match pipe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("container monitor: pipe: {e}");
            return 1;
        }
    };
    // SAFETY: this runs before main, single-threaded, so the child may do anything.
    match unsafe { nix::unistd::fork() } {
        Err(e) => {
            eprintln!("container monitor: fork: {e}");
            1
        }
        Ok(ForkResult::Parent { .. }) => {
            drop(report_w);
            let mut report = String::new();
            let _ = std::fs::File::from(report_r).read_to_string(&mut report);
            if report == "ok" {
                0
            } else {
                eprintln!(
                    "{}",
                    if report.is_empty() {
                        "container monitor died while creating"
                    } else {
                        &report
                    }
                );
                1
            }
        }
        Ok(ForkResult::Child) => {
            drop(report_r);
            let mut report = Some(std::fs::File::from(report_w));
            match monitor(dir, &mut report) {
                Ok(()) => 0,
                Err(message) => {
                    // Before the report the error goes to keg; after it, to the monitor log.
                    match report.take() {
                        Some(mut r) => drop(r.write_all(message.as_bytes())),
                        None => eprintln!("container monitor: {message}"),
                    }
                    1
                }
            }
        }
    }
}

/// Creates the container, reports, then forwards output and records the exit.
fn monitor(dir: &Path, report: &mut Option<std::fs::File>) -> Result<(), String> {
    detach(dir)?;
    let config: ShimConfig = fsutil::read_json(&dir.join(files::CONFIG))
        .map_err(|e| format!("read monitor config: {e}"))?
        .ok_or("monitor config missing")?;
    let me = std::process::id() as i32;
    let record = MonitorRecord {
        pid: me,
        start_time: process_start_time(me).unwrap_or(0),
    };
    fsutil::write_json(&dir.join(files::MONITOR), &record)
        .map_err(|e| format!("write monitor record: {e}"))?;
    let mut log = LogFile::open(&config.log_path)?;
    let (out_r, out_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
    let (err_r, err_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
    let pid = create(dir, &config, out_w, err_w)?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(format!(
            "pidfd_open({pid}): {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the kernel just returned this descriptor to us.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    if let Some(mut r) = report.take() {
        // Closing the pipe is what lets the waiting parent (and so keg) go on.
        r.write_all(b"ok").map_err(|e| format!("report: {e}"))?;
    }
    let status = forward(
        pid,
        &pidfd,
        [(out_r, Stream::Stdout), (err_r, Stream::Stderr)],
        &mut log,
    );
    let oom_killed = config
        .oom_file
        .as_deref()
        .is_some_and(|f| crate::cgroup::read_oom_kills(f) > 0);
    let (exit_code, signal) = match status {
        WaitStatus::Exited(_, code) => (code, None),
        WaitStatus::Signaled(_, sig, _) => (128 + sig as i32, Some(sig as i32)),
        _ => (255, None),
    };
    let exit = ExitRecord {
        exit_code,
        signal,
        finished_at: Timestamp::now(),
        oom_killed,
    };
    fsutil::write_json(&dir.join(files::EXIT), &exit)
        .map_err(|e| format!("write exit record: {e}"))?;
    Ok(())
}

/// Leaves keg's session and becomes the reaper of orphaned descendants; stdio goes to a file
/// so that nothing holds keg's pipes open.
fn detach(dir: &Path) -> Result<(), String> {
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "PR_SET_CHILD_SUBREAPER: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: ignoring SIGPIPE so a vanished reader cannot kill the monitor.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(files::SHIM_LOG))
        .map_err(|e| format!("open monitor log: {e}"))?;
    let null = std::fs::File::open("/dev/null").map_err(|e| format!("open /dev/null: {e}"))?;
    // SAFETY: dup2 onto the standard descriptors of this single-threaded process.
    unsafe {
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(log.as_raw_fd(), 1);
        libc::dup2(log.as_raw_fd(), 2);
    }
    Ok(())
}

/// The container's log file. The node agent rotates logs by renaming the file; the next
/// write then notices that the path names another file (or none) and reopens it, which is
/// what CRI's ReopenContainerLog asks of a runtime.
struct LogFile {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl LogFile {
    fn open(path: &Path) -> Result<LogFile, String> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("create {}: {e}", parent.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("open log {}: {e}", path.display()))?;
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
        })
    }

    fn write(&mut self, entries: &[u8]) {
        if entries.is_empty() {
            return;
        }
        use std::os::unix::fs::MetadataExt;
        let current = self.file.metadata().map(|m| (m.dev(), m.ino())).ok();
        let at_path = std::fs::metadata(&self.path)
            .map(|m| (m.dev(), m.ino()))
            .ok();
        if current != at_path
            && let Ok(reopened) = LogFile::open(&self.path)
        {
            *self = reopened;
        }
        let _ = self.file.write_all(entries);
    }
}

/// Runs `crun create` with the pipes as the container's stdout/stderr; returns init's pid.
fn create(dir: &Path, config: &ShimConfig, out_w: OwnedFd, err_w: OwnedFd) -> Result<i32, String> {
    let crun_log = dir.join(files::CRUN_LOG);
    let pid_file = dir.join(files::INIT_PID);
    let log_arg = format!("--log=file:{}", crun_log.display());
    let bundle = config.bundle.to_string_lossy();
    let pid_arg = pid_file.to_string_lossy();
    let status = config
        .crun
        .command(&[
            &log_arg,
            "create",
            "--bundle",
            &bundle,
            "--pid-file",
            &pid_arg,
            &config.id,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w))
        .status()
        .map_err(|e| format!("cannot run {}: {e}", config.crun.binary.display()))?;
    if !status.success() {
        let log = std::fs::read_to_string(&crun_log).unwrap_or_default();
        let last = log
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no error message");
        return Err(format!("crun create failed ({status}): {}", last.trim()));
    }
    std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("crun create wrote no pid to {}", pid_file.display()))
}

/// Copies output into the log until init has exited and the output is closed (or the drain
/// time is up); returns init's wait status. Reaps every orphan handed to this subreaper.
fn forward(
    pid: i32,
    pidfd: &OwnedFd,
    pipes: [(OwnedFd, Stream); 2],
    log: &mut LogFile,
) -> WaitStatus {
    let mut streams: Vec<(Option<OwnedFd>, LineSplitter)> = pipes
        .into_iter()
        .map(|(fd, s)| (Some(fd), LineSplitter::new(s)))
        .collect();
    let mut status = None;
    let mut deadline: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let open: Vec<usize> = (0..streams.len())
            .filter(|i| streams[*i].0.is_some())
            .collect();
        if status.is_some() && (open.is_empty() || deadline.is_some_and(|d| Instant::now() >= d)) {
            break;
        }
        let mut fds: Vec<PollFd> = open
            .iter()
            .map(|i| PollFd::new(streams[*i].0.as_ref().unwrap().as_fd(), PollFlags::POLLIN))
            .collect();
        if status.is_none() {
            fds.push(PollFd::new(pidfd.as_fd(), PollFlags::POLLIN));
        }
        let timeout = match deadline {
            Some(d) => PollTimeout::try_from(d.saturating_duration_since(Instant::now()))
                .unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        if poll(&mut fds, timeout).is_err() {
            continue;
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        drop(fds);
        for (k, i) in open.iter().enumerate() {
            if !ready[k] {
                continue;
            }
            let (fd, splitter) = &mut streams[*i];
            let n = match nix::unistd::read(fd.as_ref().unwrap(), &mut buf) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                Err(_) => 0,
            };
            let entries = if n == 0 {
                fd.take()
                    .map(|_| splitter.finish(Timestamp::now()))
                    .unwrap_or_default()
            } else {
                splitter.feed(&buf[..n], Timestamp::now())
            };
            log.write(&entries);
        }
        if status.is_none() && ready.get(open.len()).copied().unwrap_or(false) {
            status = reap(pid);
            if status.is_some() {
                deadline = Some(Instant::now() + DRAIN);
            }
        }
    }
    for (fd, splitter) in &mut streams {
        if fd.take().is_some() {
            log.write(&splitter.finish(Timestamp::now()));
        }
    }
    reap(-1);
    status.unwrap_or(WaitStatus::StillAlive)
}

/// A pipe whose ends are not inherited by crun or the container.
fn pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
}

/// Reaps every exited child; returns `pid`'s status if it was among them.
fn reap(pid: i32) -> Option<WaitStatus> {
    let mut found = None;
    while let Ok(s) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        match s {
            WaitStatus::StillAlive => break,
            s if s.pid() == Some(Pid::from_raw(pid)) => found = Some(s),
            _ => {}
        }
    }
    found
}
