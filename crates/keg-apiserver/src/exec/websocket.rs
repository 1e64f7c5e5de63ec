//! The WebSocket transport of exec (`v5.channel.k8s.io`, `v4.channel.k8s.io`): every binary
//! message is `[channel, data...]` — 0 stdin, 1 stdout, 2 stderr, 3 the final Status, 4
//! terminal resizes — and v5 adds `[255, channel]`, by which the client closes a stream of
//! its own (stdin at the end of its input).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, frame::coding::CloseCode};

use super::session::{self, Input, Output, terminal_size};
use crate::error::{ApiError, Result};
use crate::state::{ExecOptions, PodExec};

/// The sub-protocols served, most preferred first.
pub(super) const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5's close signal.
const CLOSE: u8 = 255;
/// How long the client gets to answer the closing handshake.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

fn header(headers: &http::HeaderMap, name: http::header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Whether the request asks for a WebSocket.
pub(super) fn requested(headers: &http::HeaderMap) -> bool {
    header(headers, http::header::UPGRADE).eq_ignore_ascii_case("websocket")
        && header(headers, http::header::CONNECTION)
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Checks the opening handshake: the sub-protocol chosen, and the `Sec-WebSocket-Accept`.
pub(super) fn handshake(headers: &http::HeaderMap) -> Result<(&'static str, String)> {
    let offered: Vec<&str> = headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let Some(protocol) = PROTOCOLS.into_iter().find(|p| offered.contains(p)) else {
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
    Ok((protocol, derive_accept_key(key.as_bytes())))
}

/// The `101 Switching Protocols` answer.
pub(super) fn switching(protocol: &str, accept: &str) -> Response {
    Response::builder()
        .status(http::StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_ACCEPT, accept)
        .header(http::header::SEC_WEBSOCKET_PROTOCOL, protocol)
        .body(Body::empty())
        .expect("valid response")
}

/// Serves one session on an upgraded connection. It ends with the Status on channel 3 and a
/// normal close: kubectl reads the status stream to its end, and only a normal close (1000)
/// gives it EOF rather than an error.
pub(super) async fn serve(
    upgraded: hyper::upgrade::Upgraded,
    protocol: &str,
    provider: Arc<dyn PodExec>,
    pod: Value,
    options: ExecOptions,
) {
    let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    let v5 = protocol == PROTOCOLS[0];
    let (mut sink, mut source) = socket.split();
    let (in_tx, in_rx) = mpsc::channel(16);
    let (out_tx, mut out_rx) = mpsc::channel(16);
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = source.next().await {
            let input = match message {
                Message::Binary(data) => match decode(data, v5) {
                    Some(input) => input,
                    None => continue,
                },
                Message::Close(_) => break,
                _ => continue,
            };
            if in_tx.send(input).await.is_err() {
                break;
            }
        }
    });
    let writer = async move {
        while let Some(output) = out_rx.recv().await {
            let message = match output {
                Output::Stdout(data) => frame(STDOUT, &data),
                Output::Stderr(data) => frame(STDERR, &data),
                Output::Status(status) => {
                    let _ = sink.send(frame(ERROR, status.to_string().as_bytes())).await;
                    let close = CloseFrame {
                        code: CloseCode::Normal,
                        reason: "".into(),
                    };
                    let _ = sink.send(Message::Close(Some(close))).await;
                    return true;
                }
            };
            if sink.send(message).await.is_err() {
                return false;
            }
        }
        false
    };
    let (_, closing) = tokio::join!(session::run(provider, pod, options, in_rx, out_tx), writer);
    let abort = reader.abort_handle();
    if closing {
        let _ = tokio::time::timeout(CLOSE_WAIT, reader).await;
    }
    abort.abort();
}

/// A client message as session input; `None` for what the session has no use for.
fn decode(data: Bytes, v5: bool) -> Option<Input> {
    match (data.first()?, data.get(1)) {
        (&STDIN, _) => Some(Input::Stdin(data.slice(1..))),
        (&RESIZE, _) => terminal_size(&data[1..]).map(|(w, h)| Input::Resize(w, h)),
        (&CLOSE, Some(&STDIN)) if v5 => Some(Input::CloseStdin),
        _ => None,
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

    #[test]
    fn the_handshake_prefers_v5_and_derives_the_accept_key() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "sec-websocket-protocol",
            "v4.channel.k8s.io, v5.channel.k8s.io".parse().unwrap(),
        );
        headers.insert("sec-websocket-version", "13".parse().unwrap());
        // RFC 6455's example key and answer.
        headers.insert(
            "sec-websocket-key",
            "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap(),
        );
        let (protocol, accept) = handshake(&headers).unwrap();
        assert_eq!(protocol, "v5.channel.k8s.io");
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        headers.insert("sec-websocket-protocol", "channel.k8s.io".parse().unwrap());
        assert_eq!(handshake(&headers).unwrap_err().code, 400);
    }

    #[test]
    fn frames_carry_their_channel_first() {
        assert_eq!(
            frame(STDOUT, b"hi"),
            Message::Binary(Bytes::from_static(&[1, b'h', b'i']))
        );
    }

    #[test]
    fn client_messages_decode_by_channel() {
        let msg = |b: &'static [u8]| Bytes::from_static(b);
        assert_eq!(
            decode(msg(b"\x00abc"), true),
            Some(Input::Stdin(msg(b"abc")))
        );
        assert_eq!(
            decode(msg(b"\x04{\"Width\":3,\"Height\":4}"), true),
            Some(Input::Resize(3, 4))
        );
        assert_eq!(decode(msg(&[255, 0]), true), Some(Input::CloseStdin));
        assert_eq!(
            decode(msg(&[255, 0]), false),
            None,
            "v4 has no close signal"
        );
        assert_eq!(decode(msg(&[]), true), None);
    }
}
