//! Commands whose standard streams the caller drives while they run (`kubectl exec`): over
//! pipes, or on a terminal whose master end crun hands over through a console socket.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::exec::{ExecFiles, exit_code, kill_by_pid_file};
use super::{Error, Result, Runtime, io_err};
use crate::fsutil;

/// How long crun may take to hand over the terminal of a command.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a command's input goes.
pub type ExecWriter = Box<dyn AsyncWrite + Send + Unpin>;
/// Where a command's output comes from.
pub type ExecReader = Box<dyn AsyncRead + Send + Unpin>;

/// Which standard streams of an exec'd command the caller connects to, and whether it runs
/// on a terminal (then its output and errors both come through `stdout`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecStdio {
    /// Standard input.
    pub stdin: bool,
    /// Standard output.
    pub stdout: bool,
    /// Standard error (not separate on a terminal).
    pub stderr: bool,
    /// A terminal (`kubectl exec -t`).
    pub tty: bool,
    /// The terminal's first size (width, height).
    pub terminal_size: Option<(u16, u16)>,
}

/// A command running in a container, started by [`Runtime::exec_stream`]. Dropping it before
/// [`ExecProcess::wait`] returned kills the command.
pub struct ExecProcess {
    /// The command's standard input, when asked for; drop it to close the input.
    pub stdin: Option<ExecWriter>,
    /// Its standard output (with its errors, on a terminal), when asked for.
    pub stdout: Option<ExecReader>,
    /// Its standard error, when asked for and not on a terminal.
    pub stderr: Option<ExecReader>,
    /// Its terminal, when it runs on one.
    pub terminal: Option<Terminal>,
    child: tokio::process::Child,
    files: ExecFiles,
    ended: bool,
}

impl ExecProcess {
    /// Waits for the command to end: its exit status, or 128 + the signal that killed it.
    pub async fn wait(&mut self) -> Result<i32> {
        let status = self
            .child
            .wait()
            .await
            .map_err(io_err("wait for crun exec"))?;
        self.ended = true;
        Ok(exit_code(status))
    }
}

impl Drop for ExecProcess {
    fn drop(&mut self) {
        if !self.ended {
            // crun dies with the child handle, but the command it started lives on in the
            // container unless killed by its pid.
            kill_by_pid_file(&self.files.pid);
        }
    }
}

/// The terminal of a command (its pty's master end); cheap to clone.
#[derive(Clone, Debug)]
pub struct Terminal {
    master: Arc<OwnedFd>,
}

impl Terminal {
    /// Sets the terminal's size; the command gets SIGWINCH.
    pub fn resize(&self, width: u16, height: u16) {
        let size = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize through the pointer, valid for the call.
        unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    }
}

impl Runtime {
    /// Starts `command` in container `id` as [`Runtime::exec`] does, but with its standard
    /// streams connected to pipes (or a terminal) the caller reads and writes while it runs
    /// (`kubectl exec`). Streams not asked for are `/dev/null`.
    pub async fn exec_stream<S: AsRef<str>>(
        &self,
        id: &str,
        command: &[S],
        stdio: ExecStdio,
    ) -> Result<ExecProcess> {
        let command: Vec<String> = command.iter().map(|s| s.as_ref().to_string()).collect();
        let terminal = stdio.tty.then_some(stdio.terminal_size.unwrap_or_default());
        let files = self.prepare_exec(id, &command, terminal)?;
        if stdio.tty {
            return self.exec_on_terminal(id, files, stdio).await;
        }
        let mut cmd = self.crun_exec(id, &files.process, &files.pid, &[]);
        let pipe = |wanted: bool| {
            if wanted {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        cmd.stdin(pipe(stdio.stdin))
            .stdout(pipe(stdio.stdout))
            .stderr(pipe(stdio.stderr));
        let mut child = cmd.spawn().map_err(io_err("run crun exec"))?;
        Ok(ExecProcess {
            stdin: child.stdin.take().map(|s| Box::new(s) as ExecWriter),
            stdout: child.stdout.take().map(|s| Box::new(s) as ExecReader),
            stderr: child.stderr.take().map(|s| Box::new(s) as ExecReader),
            terminal: None,
            child,
            files,
            ended: false,
        })
    }

    /// `crun exec --console-socket`: crun makes the pty, sends its master end to our socket
    /// and waits for the command as without a terminal.
    async fn exec_on_terminal(
        &self,
        id: &str,
        files: ExecFiles,
        stdio: ExecStdio,
    ) -> Result<ExecProcess> {
        // A socket path is limited to 108 bytes: container directories can be longer.
        let socket = SocketFile(
            std::env::temp_dir().join(format!("keg-console-{}.sock", fsutil::random_hex(8))),
        );
        let listener =
            tokio::net::UnixListener::bind(&socket.0).map_err(io_err("bind a console socket"))?;
        let arg = socket.0.display().to_string();
        let mut cmd = self.crun_exec(id, &files.process, &files.pid, &["--console-socket", &arg]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(io_err("run crun exec"))?;
        let handed = tokio::select! {
            accepted = tokio::time::timeout(CONSOLE_TIMEOUT, listener.accept()) => Some(accepted),
            _ = child.wait() => None,
        };
        let master = match handed {
            Some(Ok(Ok((stream, _)))) => receive_fd(&stream)
                .await
                .map_err(io_err("receive the terminal from crun"))?,
            Some(Ok(Err(e))) => return Err(io_err("accept on the console socket")(e)),
            Some(Err(_)) => {
                return Err(Error::Setup(
                    "crun exec did not hand over a terminal in time".into(),
                ));
            }
            None => {
                let mut message = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    let _ = stderr.read_to_string(&mut message).await;
                }
                return Err(crate::crun::Error::Failed {
                    command: "exec".into(),
                    message: message.trim().to_string(),
                }
                .into());
            }
        };
        set_blocking(&master).map_err(io_err("configure the terminal"))?;
        // Reads and writes of a tokio File queue behind each other: one handle each.
        let handle = |fd: &OwnedFd| -> Result<tokio::fs::File> {
            let dup = fd.try_clone().map_err(io_err("duplicate the terminal"))?;
            Ok(tokio::fs::File::from_std(std::fs::File::from(dup)))
        };
        let stdin = if stdio.stdin {
            Some(Box::new(handle(&master)?) as ExecWriter)
        } else {
            None
        };
        let stdout = Some(Box::new(handle(&master)?) as ExecReader);
        Ok(ExecProcess {
            stdin,
            stdout,
            stderr: None,
            terminal: Some(Terminal {
                master: Arc::new(master),
            }),
            child,
            files,
            ended: false,
        })
    }
}

/// A socket's file, removed when dropped.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = fsutil::remove_file_if_exists(&self.0);
    }
}

/// Receives the file descriptor crun sends (SCM_RIGHTS) on a console socket connection.
async fn receive_fd(stream: &tokio::net::UnixStream) -> std::io::Result<OwnedFd> {
    loop {
        stream.readable().await?;
        match stream.try_io(tokio::io::Interest::READABLE, || {
            recv_fd(stream.as_raw_fd())
        }) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

fn recv_fd(socket: RawFd) -> std::io::Result<OwnedFd> {
    let mut data = [0u8; 512];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the recvmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers of the sizes it states.
    let n = unsafe { libc::recvmsg(socket, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel filled the control buffer that msg describes; CMSG_* walk it within
    // msg_controllen, and the data of an SCM_RIGHTS message is at least one descriptor.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(std::io::Error::other(
                "no file descriptor came with the message",
            ));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const RawFd);
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Clears O_NONBLOCK: tokio's File does blocking reads on its own threads.
fn set_blocking(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
