//! One exec session, whatever carries it: starts the command, feeds it what the client sends,
//! forwards its output, and ends with its Status (upstream's v4 error stream).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::state::{ExecOptions, ExecSession, PodExec};

/// How long a terminal's first size is awaited before the command starts without it (kubectl
/// sends it first thing when it has one).
const FIRST_SIZE: Duration = Duration::from_secs(2);
/// How long output still in flight is awaited once the command ended: a background child
/// that keeps the pipe open must not hold the session forever.
const DRAIN: Duration = Duration::from_secs(2);

/// What the client sends.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Input {
    /// Data for the command's stdin.
    Stdin(Bytes),
    /// The end of stdin.
    CloseStdin,
    /// A new terminal size: width, height.
    Resize(u16, u16),
}

/// What goes to the client.
#[derive(Debug)]
pub(super) enum Output {
    /// The command's standard output.
    Stdout(Bytes),
    /// Its standard error.
    Stderr(Bytes),
    /// The final Status; nothing follows it.
    Status(Value),
}

/// Runs the session until the command ended (then the last output is its Status) or the
/// client went away (its input closed; the command is killed).
pub(super) async fn run(
    provider: Arc<dyn PodExec>,
    pod: Value,
    mut options: ExecOptions,
    mut input: mpsc::Receiver<Input>,
    output: mpsc::Sender<Output>,
) {
    let command = options.command.clone();
    // A terminal starts with the client's size, or a command that asks at once sees 0x0.
    let mut early = Vec::new();
    if options.tty {
        let deadline = tokio::time::sleep(FIRST_SIZE);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                message = input.recv() => match message {
                    Some(Input::Resize(width, height)) => {
                        options.terminal_size = Some((width, height));
                        break;
                    }
                    Some(other) => early.push(other),
                    None => return,
                },
                () = &mut deadline => break,
            }
        }
    }
    let status = match provider.exec(&pod, options).await {
        Ok(session) => supervise(session, early, &mut input, &output, &command).await,
        Err(e) => Some(e.status()),
    };
    if let Some(status) = status {
        let _ = output.send(Output::Status(status)).await;
    }
}

/// Runs a started command to its end; its Status, or `None` when the client went away first
/// (the session is dropped, which kills the command).
async fn supervise(
    session: ExecSession,
    early: Vec<Input>,
    input: &mut mpsc::Receiver<Input>,
    output: &mpsc::Sender<Output>,
    command: &[String],
) -> Option<Value> {
    let ExecSession {
        stdin,
        stdout,
        stderr,
        exit,
        resize,
    } = session;
    let mut pumps = Vec::new();
    if let Some(reader) = stdout {
        pumps.push(tokio::spawn(pump(reader, output.clone(), Output::Stdout)));
    }
    if let Some(reader) = stderr {
        pumps.push(tokio::spawn(pump(reader, output.clone(), Output::Stderr)));
    }
    let client = async {
        let mut stdin = stdin;
        let mut early = early.into_iter();
        while let Some(message) = match early.next() {
            Some(message) => Some(message),
            None => input.recv().await,
        } {
            match message {
                Input::Stdin(data) => {
                    if let Some(writer) = stdin.as_mut() {
                        let written = writer.write_all(&data).await.and(writer.flush().await);
                        if written.is_err() {
                            stdin = None;
                        }
                    }
                }
                Input::CloseStdin => {
                    if let Some(mut writer) = stdin.take() {
                        let _ = writer.shutdown().await;
                    }
                }
                Input::Resize(width, height) => {
                    if let Some(resize) = &resize {
                        resize(width, height);
                    }
                }
            }
        }
    };
    let code = tokio::select! {
        code = exit => code,
        () = client => {
            for pump in pumps {
                pump.abort();
            }
            return None;
        }
    };
    let _ = tokio::time::timeout(DRAIN, futures::future::join_all(pumps.iter_mut())).await;
    for pump in pumps {
        pump.abort();
    }
    Some(match code {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(e) => e.status(),
    })
}

/// Copies a stream of the command to the client until it ends.
async fn pump(
    mut reader: Box<dyn AsyncRead + Send + Unpin>,
    output: mpsc::Sender<Output>,
    wrap: fn(Bytes) -> Output,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if output
                    .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// A resize message's `{"Width": w, "Height": h}` (upstream's TerminalSize).
pub(super) fn terminal_size(data: &[u8]) -> Option<(u16, u16)> {
    let size: Value = serde_json::from_slice(data).ok()?;
    let dimension = |key: &str| size[key].as_u64().and_then(|v| u16::try_from(v).ok());
    Some((dimension("Width")?, dimension("Height")?))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use futures::FutureExt;

    use super::*;
    use crate::error::Result;

    /// Echoes stdin to stdout until stdin ends, then exits with the code it was made with.
    struct Echo {
        code: i32,
        sizes: Arc<Mutex<Vec<(u16, u16)>>>,
    }

    #[async_trait]
    impl PodExec for Echo {
        async fn exec(&self, _pod: &Value, _options: ExecOptions) -> Result<ExecSession> {
            let (ours, theirs) = tokio::io::duplex(1024);
            let (read, write) = tokio::io::split(ours);
            let code = self.code;
            let sizes = self.sizes.clone();
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            let (mut from_client, mut to_client) = tokio::io::split(theirs);
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_client, &mut to_client).await;
                let _ = to_client.shutdown().await;
                let _ = done_tx.send(());
            });
            Ok(ExecSession {
                stdin: Some(Box::new(write)),
                stdout: Some(Box::new(read)),
                stderr: None,
                exit: async move {
                    let _ = done_rx.await;
                    Ok(code)
                }
                .boxed(),
                resize: Some(Box::new(move |w, h| sizes.lock().unwrap().push((w, h)))),
            })
        }
    }

    async fn session(code: i32, inputs: Vec<Input>) -> (Vec<u8>, Value, Vec<(u16, u16)>) {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let provider = Arc::new(Echo {
            code,
            sizes: sizes.clone(),
        });
        let (in_tx, in_rx) = mpsc::channel(16);
        let (out_tx, mut out_rx) = mpsc::channel(16);
        let task = tokio::spawn(run(
            provider,
            json!({}),
            ExecOptions {
                command: vec!["cat".into()],
                ..Default::default()
            },
            in_rx,
            out_tx,
        ));
        for input in inputs {
            in_tx.send(input).await.unwrap();
        }
        let (mut stdout, mut status) = (Vec::new(), Value::Null);
        while let Some(output) = out_rx.recv().await {
            match output {
                Output::Stdout(data) => stdout.extend_from_slice(&data),
                Output::Stderr(_) => panic!("no stderr was asked for"),
                Output::Status(s) => status = s,
            }
        }
        task.await.unwrap();
        drop(in_tx);
        let sizes = sizes.lock().unwrap().clone();
        (stdout, status, sizes)
    }

    #[tokio::test]
    async fn stdin_reaches_the_command_and_the_status_ends_the_session() {
        let inputs = vec![
            Input::Resize(80, 24),
            Input::Stdin(Bytes::from_static(b"hello ")),
            Input::Stdin(Bytes::from_static(b"world")),
            Input::CloseStdin,
        ];
        let (stdout, status, sizes) = session(0, inputs).await;
        assert_eq!(stdout, b"hello world");
        assert_eq!(status, json!({"metadata": {}, "status": "Success"}));
        assert_eq!(sizes, [(80, 24)]);
    }

    #[tokio::test]
    async fn a_non_zero_exit_is_a_failure_with_the_exit_code_as_cause() {
        let (_, status, _) = session(3, vec![Input::CloseStdin]).await;
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(
            status["details"]["causes"],
            json!([{"reason": "ExitCode", "message": "3"}])
        );
    }

    #[test]
    fn resize_messages_carry_width_and_height() {
        assert_eq!(
            terminal_size(br#"{"Width":100,"Height":30}"#),
            Some((100, 30))
        );
        assert_eq!(terminal_size(b"{}"), None);
    }
}
