//! `pods/exec`: runs a command in a container and streams its standard streams to the client
//! over a WebSocket, as upstream's remote command protocol does (`v5.channel.k8s.io`, which
//! kubectl 1.30+ uses, and `v4.channel.k8s.io`). Every binary message starts with the byte of
//! its channel: 0 stdin, 1 stdout, 2 stderr, 3 the final `Status`, 4 terminal resizes; v5 adds
//! 255, by which the client closes one of its streams (stdin at end of input).
//!
//! What can be checked before the upgrade is answered as a plain `Status` error, so kubectl
//! prints it as `unable to upgrade connection: ...`; what fails later goes out on channel 3.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, frame::coding::CloseCode};

use crate::error::{ApiError, Result};
use crate::request::{Query, RequestInfo};
use crate::state::{ApiState, ExecOptions, ExecSession, PodExec};

/// The WebSocket sub-protocols served, most preferred first.
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
/// Channel numbers of the remote command protocol.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5's close signal: `[CLOSE, channel]` half-closes a client stream.
const CLOSE: u8 = 255;
/// How long output still in flight is awaited once the command ended: a background child
/// that keeps the pipe open must not hold the session forever.
const DRAIN: Duration = Duration::from_secs(2);
/// How long the client gets to answer the closing handshake.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Serves `GET` (WebSocket) or `POST` (SPDY, which keg does not speak) of `pods/<name>/exec`.
pub async fn serve(state: Arc<ApiState>, info: RequestInfo, request: Request) -> Response {
    match start(&state, &info, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn start(state: &Arc<ApiState>, info: &RequestInfo, mut request: Request) -> Result<Response> {
    let method = request.method().clone();
    if method != http::Method::GET && method != http::Method::POST {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let (Some(ns), Some(pod_name)) = (info.namespace.as_deref(), info.name.as_deref()) else {
        return Err(ApiError::path_not_found());
    };
    let raw_query = request.uri().query().map(String::from);
    let options = parse_options(raw_query.as_deref())?;
    let res = state
        .registry
        .get("", "v1", "pods")
        .ok_or_else(ApiError::path_not_found)?;
    let pod = state.objects.get(&res, Some(ns), pod_name).await?;
    let options = check_pod(&pod, pod_name, options)?;
    let provider = state.pod_exec.read().expect("lock").clone();
    let Some(provider) = provider else {
        return Err(ApiError::bad_request(format!(
            "unable to upgrade connection: no node agent serves pod {pod_name}"
        )));
    };
    let headers = request.headers();
    if !wants_websocket(headers) {
        let upgrade = header(headers, http::header::UPGRADE).to_ascii_lowercase();
        return Err(ApiError::bad_request(if upgrade.starts_with("spdy") {
            "keg serves exec over WebSocket only (v5.channel.k8s.io): use kubectl 1.30 or newer"
                .to_string()
        } else {
            "Upgrade request required".to_string()
        }));
    }
    let offered: Vec<String> = headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .collect();
    let Some(protocol) = PROTOCOLS
        .iter()
        .find(|p| offered.iter().any(|o| o == *p))
        .copied()
    else {
        return Err(ApiError::bad_request(format!(
            "unable to upgrade connection: none of the requested sub-protocols {offered:?} is supported (want one of {PROTOCOLS:?})"
        )));
    };
    let key = header(headers, http::header::SEC_WEBSOCKET_KEY);
    if key.is_empty() || header(headers, http::header::SEC_WEBSOCKET_VERSION) != "13" {
        return Err(ApiError::bad_request(
            "unable to upgrade connection: a WebSocket version 13 request with a key is required",
        ));
    }
    let accept = derive_accept_key(key.as_bytes());
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return Err(ApiError::bad_request(
            "unable to upgrade connection: the connection cannot be upgraded (HTTP/1.1 is required)",
        ));
    };
    let v5 = protocol == PROTOCOLS[0];
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                run(socket, provider, pod, options, v5).await;
            }
            Err(e) => tracing::debug!("exec: upgrading the connection failed: {e}"),
        }
    });
    Ok(Response::builder()
        .status(http::StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_ACCEPT, accept)
        .header(http::header::SEC_WEBSOCKET_PROTOCOL, protocol)
        .body(Body::empty())
        .expect("valid response"))
}

fn header(headers: &http::HeaderMap, name: http::header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn wants_websocket(headers: &http::HeaderMap) -> bool {
    header(headers, http::header::UPGRADE).eq_ignore_ascii_case("websocket")
        && header(headers, http::header::CONNECTION)
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// The query's PodExecOptions, checked as upstream validates them.
fn parse_options(raw: Option<&str>) -> Result<ExecOptions> {
    let query = Query::parse(raw);
    let options = ExecOptions {
        container: query.get("container").unwrap_or_default().to_string(),
        command: Query::values(raw, "command"),
        stdin: query.flag("stdin"),
        stdout: query.flag("stdout"),
        stderr: query.flag("stderr"),
        tty: query.flag("tty"),
    };
    if options.command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    if !(options.stdin || options.stdout || options.stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least one of stdin, stdout, stderr",
        ));
    }
    Ok(options)
}

/// Picks the container (the only one when none is named) and checks that it runs, with the
/// API server's and the kubelet's wording.
fn check_pod(pod: &Value, pod_name: &str, mut options: ExecOptions) -> Result<ExecOptions> {
    let names = |key: &str| -> Vec<String> {
        pod["spec"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(String::from))
            .collect()
    };
    let containers = names("containers");
    let all: Vec<String> = containers
        .iter()
        .cloned()
        .chain(names("initContainers"))
        .collect();
    if options.container.is_empty() {
        match containers.as_slice() {
            [only] => options.container = only.clone(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    all.join(" ")
                )));
            }
        }
    } else if !all.contains(&options.container) {
        return Err(ApiError::bad_request(format!(
            "container {} is not valid for pod {pod_name}",
            options.container
        )));
    }
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(format!(
            "pod {pod_name} does not have a host assigned"
        )));
    }
    let running = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|key| pod["status"][key].as_array().into_iter().flatten())
        .any(|s| s["name"] == options.container.as_str() && s["state"]["running"].is_object());
    if !running {
        return Err(ApiError::bad_request(format!(
            "container not found ({:?})",
            options.container
        )));
    }
    Ok(options)
}

/// One exec session over an upgraded connection: starts the command, pumps its streams, and
/// ends with its Status on channel 3 and a normal close, which kubectl reads as the end.
async fn run(
    socket: Socket,
    provider: Arc<dyn PodExec>,
    pod: Value,
    options: ExecOptions,
    v5: bool,
) {
    let command = options.command.clone();
    let (mut sink, source) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(16);
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
        let _ = sink.flush().await;
    });
    let status = match provider.exec(&pod, options).await {
        Ok(session) => supervise(session, source, &tx, v5, &command).await,
        Err(e) => Some(e.status()),
    };
    if let Some(status) = status {
        let _ = tx.send(frame(ERROR, status.to_string().as_bytes())).await;
        let _ = tx
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
    }
    drop(tx);
    let _ = tokio::time::timeout(CLOSE_WAIT, writer).await;
}

/// Runs a started command to its end; its Status, or `None` when the client went away first
/// (the session is dropped, which kills the command).
async fn supervise(
    session: ExecSession,
    mut source: futures::stream::SplitStream<Socket>,
    tx: &mpsc::Sender<Message>,
    v5: bool,
    command: &[String],
) -> Option<Value> {
    let ExecSession {
        stdin,
        stdout,
        stderr,
        exit,
        resize,
    } = session;
    let pumps: Vec<_> = [(STDOUT, stdout), (STDERR, stderr)]
        .into_iter()
        .filter_map(|(channel, reader)| reader.map(|r| tokio::spawn(pump(r, channel, tx.clone()))))
        .collect();
    // Ends when the client goes away; meanwhile it feeds stdin (and answers pings).
    let client = async {
        let mut stdin = stdin;
        while let Some(Ok(message)) = source.next().await {
            match message {
                Message::Binary(data) if data.first() == Some(&RESIZE) => {
                    if let (Some(resize), Some((width, height))) = (&resize, terminal_size(&data[1..])) {
                        resize(width, height);
                    }
                }
                Message::Binary(data) => stdin = input(data, stdin, v5).await,
                Message::Close(_) => break,
                _ => {}
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
    let drained = futures::future::join_all(pumps);
    let _ = tokio::time::timeout(DRAIN, drained).await;
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

/// Handles one client message: data for stdin, or (v5) the close of stdin. Returns stdin,
/// or `None` once it is closed.
async fn input(
    data: Bytes,
    stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    v5: bool,
) -> Option<Box<dyn AsyncWrite + Send + Unpin>> {
    let mut stdin = stdin?;
    match data.first() {
        Some(&STDIN) => {
            if stdin.write_all(&data[1..]).await.is_err() || stdin.flush().await.is_err() {
                return None;
            }
        }
        Some(&CLOSE) if v5 && data.get(1) == Some(&STDIN) => {
            let _ = stdin.shutdown().await;
            return None;
        }
        _ => {}
    }
    Some(stdin)
}

/// A resize message's `{"Width": w, "Height": h}` (upstream's TerminalSize).
fn terminal_size(data: &[u8]) -> Option<(u16, u16)> {
    let size: Value = serde_json::from_slice(data).ok()?;
    let dimension = |key: &str| size[key].as_u64().and_then(|v| u16::try_from(v).ok());
    Some((dimension("Width")?, dimension("Height")?))
}

/// Copies a stream of the command to a channel until it ends.
async fn pump(
    mut reader: Box<dyn AsyncRead + Send + Unpin>,
    channel: u8,
    tx: mpsc::Sender<Message>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(frame(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A binary message on `channel`.
fn frame(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::Binary(Bytes::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(running: bool) -> Value {
        let state = if running {
            json!({"running": {}})
        } else {
            json!({"waiting": {"reason": "ContainerCreating"}})
        };
        json!({
            "spec": {"nodeName": "n", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"containerStatuses": [{"name": "a", "state": state}, {"name": "b", "state": {"running": {}}}]},
        })
    }

    #[test]
    fn options_keep_every_command_word() {
        let options =
            parse_options(Some("command=sh&command=-c&command=echo+a%20b&stdout=true&tty=false"))
                .unwrap();
        assert_eq!(options.command, ["sh", "-c", "echo a b"]);
        assert!(options.stdout && !options.stdin && !options.tty);
        let err = parse_options(Some("stdout=true")).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(parse_options(Some("command=ls")).is_err(), "no stream");
    }

    #[test]
    fn the_container_must_be_named_valid_and_running() {
        let opts = |c: &str| ExecOptions {
            container: c.into(),
            command: vec!["ls".into()],
            stdout: true,
            ..Default::default()
        };
        assert_eq!(check_pod(&pod(true), "p", opts("b")).unwrap().container, "b");
        let err = check_pod(&pod(true), "p", opts("")).unwrap_err();
        assert_eq!(
            err.message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        let err = check_pod(&pod(true), "p", opts("x")).unwrap_err();
        assert_eq!(err.message, "container x is not valid for pod p");
        let err = check_pod(&pod(false), "p", opts("a")).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (400, "container not found (\"a\")"));
    }

    #[test]
    fn resize_messages_carry_width_and_height() {
        assert_eq!(terminal_size(br#"{"Width":100,"Height":30}"#), Some((100, 30)));
        assert_eq!(terminal_size(b"{}"), None);
    }

    #[test]
    fn frames_carry_their_channel_first() {
        assert_eq!(
            frame(STDOUT, b"hi"),
            Message::Binary(Bytes::from_static(&[1, b'h', b'i']))
        );
    }
}
