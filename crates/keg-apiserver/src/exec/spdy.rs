//! The SPDY/3.1 transport of exec, which kubectl before 1.30 speaks (and 1.30+ falls back to
//! when a WebSocket upgrade fails): `POST` with `Upgrade: SPDY/3.1`, then one SPDY stream per
//! standard stream, each opened by the client with a `streamtype` header (`error`, `stdin`,
//! `stdout`, `stderr`, `resize`). The semantics are protocol v4's: the final Status goes on
//! the error stream; the client ends stdin with a FIN; the server ends with a FIN on every
//! stream and a GOAWAY.
//!
//! Only what those clients use is implemented: no server-initiated streams, no flow control
//! (the Go client, moby/spdystream, has none either).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::session::{self, Input, Output, terminal_size};
use crate::error::{ApiError, Result};
use crate::state::{ExecOptions, PodExec};

/// The dictionary of SPDY/3 header compression (from the SPDY/3 specification).
const DICTIONARY: &[u8] = include_bytes!("spdy3-dictionary.bin");
/// The remote command protocol served over SPDY.
pub(super) const PROTOCOL: &str = "v4.channel.k8s.io";
/// The header naming the remote command protocol.
const PROTOCOL_HEADER: &str = "x-stream-protocol-version";
/// How long the client may take to open its streams.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const PING: u16 = 6;
pub(super) const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
pub(super) const FLAG_FIN: u8 = 1;

/// Whether the request asks for SPDY/3.1.
pub(super) fn requested(headers: &http::HeaderMap) -> bool {
    let has = |name: http::header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains(token))
    };
    has(http::header::UPGRADE, "spdy/3.1") && has(http::header::CONNECTION, "upgrade")
}

/// Checks that the client speaks `protocol`.
pub(super) fn handshake(headers: &http::HeaderMap, protocol: &str) -> Result<()> {
    let offered: Vec<&str> = headers
        .get_all(PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if offered.contains(&protocol) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts [\"{protocol}\"]"
        )))
    }
}

/// The `101 Switching Protocols` answer, naming `protocol`.
pub(super) fn switching(protocol: &str) -> Response {
    Response::builder()
        .status(http::StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "SPDY/3.1")
        .header(PROTOCOL_HEADER, protocol)
        .body(Body::empty())
        .expect("valid response")
}

/// The client's streams, by their id.
#[derive(Clone, Debug, Default)]
struct Streams {
    error: u32,
    stdin: Option<u32>,
    stdout: Option<u32>,
    stderr: Option<u32>,
    resize: Option<u32>,
}

/// Serves one session on an upgraded connection.
pub(super) async fn serve(
    upgraded: hyper::upgrade::Upgraded,
    provider: Arc<dyn PodExec>,
    pod: Value,
    options: ExecOptions,
) {
    let (mut rd, frames, writer) = split(upgraded);
    let mut codec = HeaderCodec::new();
    let opened = tokio::time::timeout(
        OPEN_TIMEOUT,
        open_streams(&mut rd, &frames, &mut codec, &options),
    )
    .await;
    let streams = match opened {
        Ok(Ok(streams)) => streams,
        Ok(Err(e)) => {
            tracing::debug!("exec over SPDY: reading the client's streams: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("exec over SPDY: the client did not open its streams in time");
            return;
        }
    };
    let (in_tx, in_rx) = mpsc::channel(16);
    let (out_tx, out_rx) = mpsc::channel(16);
    let reader = tokio::spawn(read_input(
        rd,
        frames.clone(),
        codec,
        streams.clone(),
        in_tx,
    ));
    tokio::join!(
        session::run(provider, pod, options, in_rx, out_tx),
        write_output(out_rx, &frames, &streams)
    );
    reader.abort();
    drop(frames);
    let _ = writer.await;
}

/// The upgraded connection's read half, and a sender of whole frames to its write half: one
/// task writes them in order, then flushes and closes once every sender is gone (awaited
/// through the returned handle).
pub(super) fn split(
    upgraded: hyper::upgrade::Upgraded,
) -> (
    ReadHalf<TokioIo<hyper::upgrade::Upgraded>>,
    mpsc::Sender<Vec<u8>>,
    JoinHandle<()>,
) {
    let (rd, mut wr) = tokio::io::split(TokioIo::new(upgraded));
    let (frames, mut frames_rx) = mpsc::channel::<Vec<u8>>(32);
    let writer = tokio::spawn(async move {
        while let Some(frame) = frames_rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                return;
            }
        }
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
    });
    (rd, frames, writer)
}

/// Reads frames until every stream the options call for is open, answering each.
async fn open_streams<R: AsyncRead + Unpin>(
    rd: &mut R,
    frames: &mpsc::Sender<Vec<u8>>,
    codec: &mut HeaderCodec,
    options: &ExecOptions,
) -> std::io::Result<Streams> {
    let mut open: HashMap<String, u32> = HashMap::new();
    let wanted = [
        ("error", true),
        ("stdin", options.stdin),
        ("stdout", options.stdout),
        ("stderr", options.stderr && !options.tty),
        ("resize", options.tty),
    ];
    while !wanted
        .iter()
        .all(|(name, want)| !want || open.contains_key(*name))
    {
        let frame = read_frame(rd).await?;
        if let Some((id, headers)) = control(&frame, frames, codec).await?
            && let Some((_, kind)) = headers.iter().find(|(k, _)| k == "streamtype")
        {
            open.insert(kind.clone(), id);
        }
    }
    Ok(Streams {
        error: open["error"],
        stdin: open.get("stdin").copied(),
        stdout: open.get("stdout").copied(),
        stderr: open.get("stderr").copied(),
        resize: open.get("resize").copied(),
    })
}

/// Turns the client's frames into session input until the connection ends.
async fn read_input<R: AsyncRead + Unpin>(
    mut rd: R,
    frames: mpsc::Sender<Vec<u8>>,
    mut codec: HeaderCodec,
    streams: Streams,
    input: mpsc::Sender<Input>,
) {
    let mut sizes = Vec::new();
    while let Ok(frame) = read_frame(&mut rd).await {
        let Frame::Data { stream, fin, data } = frame else {
            if control(&frame, &frames, &mut codec).await.is_err() {
                return;
            }
            continue;
        };
        let mut messages = Vec::new();
        if Some(stream) == streams.stdin {
            if !data.is_empty() {
                messages.push(Input::Stdin(data.into()));
            }
            if fin {
                messages.push(Input::CloseStdin);
            }
        } else if Some(stream) == streams.resize {
            // Go's json.Encoder: one object per line.
            sizes.extend_from_slice(&data);
            while let Some(end) = sizes.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = sizes.drain(..=end).collect();
                if let Some((width, height)) = terminal_size(&line) {
                    messages.push(Input::Resize(width, height));
                }
            }
        }
        for message in messages {
            if input.send(message).await.is_err() {
                return;
            }
        }
    }
}

/// Sends the session's output; the Status ends every stream and the connection.
async fn write_output(
    mut output: mpsc::Receiver<Output>,
    frames: &mpsc::Sender<Vec<u8>>,
    streams: &Streams,
) {
    while let Some(out) = output.recv().await {
        let frame = match out {
            Output::Stdout(data) => streams.stdout.map(|id| data_frame(id, 0, &data)),
            Output::Stderr(data) => streams.stderr.map(|id| data_frame(id, 0, &data)),
            Output::Status(status) => {
                let mut end = vec![data_frame(streams.error, 0, status.to_string().as_bytes())];
                let all = [
                    Some(streams.error),
                    streams.stdin,
                    streams.stdout,
                    streams.stderr,
                    streams.resize,
                ];
                end.extend(
                    all.into_iter()
                        .flatten()
                        .map(|id| data_frame(id, FLAG_FIN, &[])),
                );
                let last = all.into_iter().flatten().max().unwrap_or(0);
                let mut goaway = last.to_be_bytes().to_vec();
                goaway.extend_from_slice(&0u32.to_be_bytes());
                end.push(control_frame(GOAWAY, 0, &goaway));
                for frame in end {
                    let _ = frames.send(frame).await;
                }
                return;
            }
        };
        if let Some(frame) = frame
            && frames.send(frame).await.is_err()
        {
            return;
        }
    }
}

/// A SPDY frame as read.
#[derive(Debug)]
pub(super) enum Frame {
    Data {
        stream: u32,
        fin: bool,
        data: Vec<u8>,
    },
    Control {
        kind: u16,
        data: Vec<u8>,
    },
}

/// Reads one frame.
pub(super) async fn read_frame<R: AsyncRead + Unpin>(rd: &mut R) -> std::io::Result<Frame> {
    let mut head = [0u8; 8];
    rd.read_exact(&mut head).await?;
    let flags = head[4];
    let length = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    let mut data = vec![0u8; length];
    rd.read_exact(&mut data).await?;
    Ok(if head[0] & 0x80 != 0 {
        Frame::Control {
            kind: u16::from_be_bytes([head[2], head[3]]),
            data,
        }
    } else {
        Frame::Data {
            stream: u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff,
            fin: flags & FLAG_FIN != 0,
            data,
        }
    })
}

/// Handles a control frame: answers a new stream (returning its id and headers) and pings;
/// reads header blocks that come otherwise, to keep the decompressor in step.
pub(super) async fn control(
    frame: &Frame,
    frames: &mpsc::Sender<Vec<u8>>,
    codec: &mut HeaderCodec,
) -> std::io::Result<Option<(u32, Vec<(String, String)>)>> {
    let Frame::Control { kind, data } = frame else {
        return Ok(None);
    };
    let stream_id = || {
        data.get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff)
    };
    match *kind {
        SYN_STREAM if data.len() >= 10 => {
            let id = stream_id().unwrap_or_default();
            let headers = codec.decode(&data[10..])?;
            let mut reply = id.to_be_bytes().to_vec();
            reply.extend(codec.encode(&[])?);
            let _ = frames.send(control_frame(SYN_REPLY, 0, &reply)).await;
            Ok(Some((id, headers)))
        }
        HEADERS if data.len() >= 4 => {
            codec.decode(&data[4..])?;
            Ok(None)
        }
        PING => {
            let _ = frames.send(control_frame(PING, 0, data)).await;
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// A data frame.
pub(super) fn data_frame(stream: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + data.len());
    frame.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    frame.push(flags);
    frame.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    frame.extend_from_slice(data);
    frame
}

/// A control frame.
pub(super) fn control_frame(kind: u16, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + data.len());
    frame.extend_from_slice(&[0x80, 3]);
    frame.extend_from_slice(&kind.to_be_bytes());
    frame.push(flags);
    frame.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    frame.extend_from_slice(data);
    frame
}

/// SPDY/3 header blocks: one zlib stream per direction over the preset dictionary, flushed
/// (not finished) after every block.
pub(super) struct HeaderCodec {
    compress: Compress,
    decompress: Decompress,
}

impl HeaderCodec {
    /// Both directions at their start.
    pub(super) fn new() -> HeaderCodec {
        let mut compress = Compress::new(Compression::best(), true);
        compress
            .set_dictionary(DICTIONARY)
            .expect("a fresh compressor takes a dictionary");
        HeaderCodec {
            compress,
            decompress: Decompress::new(true),
        }
    }

    /// A compressed header block of `pairs`.
    fn encode(&mut self, pairs: &[(&str, &str)]) -> std::io::Result<Vec<u8>> {
        let mut raw = (pairs.len() as u32).to_be_bytes().to_vec();
        for (name, value) in pairs {
            for text in [name, value] {
                raw.extend_from_slice(&(text.len() as u32).to_be_bytes());
                raw.extend_from_slice(text.as_bytes());
            }
        }
        let start = self.compress.total_in();
        let mut out = Vec::with_capacity(raw.len() + 64);
        loop {
            let used = (self.compress.total_in() - start) as usize;
            self.compress
                .compress_vec(&raw[used..], &mut out, FlushCompress::Sync)
                .map_err(std::io::Error::other)?;
            let used = (self.compress.total_in() - start) as usize;
            if used == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(out.capacity().max(64));
        }
    }

    /// The name/value pairs of a compressed header block (names are lower case in SPDY).
    fn decode(&mut self, block: &[u8]) -> std::io::Result<Vec<(String, String)>> {
        let start = self.decompress.total_in();
        let mut raw = Vec::with_capacity(block.len() * 4 + 64);
        loop {
            let used = (self.decompress.total_in() - start) as usize;
            let before = (used, raw.len());
            match self
                .decompress
                .decompress_vec(&block[used..], &mut raw, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.decompress
                        .set_dictionary(DICTIONARY)
                        .map_err(std::io::Error::other)?;
                    continue;
                }
                Err(e) => return Err(std::io::Error::other(e)),
            }
            let used = (self.decompress.total_in() - start) as usize;
            if raw.len() == raw.capacity() {
                raw.reserve(raw.capacity());
            } else if used == block.len() || (used, raw.len()) == before {
                break;
            }
        }
        parse_pairs(&raw).ok_or_else(|| std::io::Error::other("malformed SPDY header block"))
    }
}

fn parse_pairs(raw: &[u8]) -> Option<Vec<(String, String)>> {
    fn take<'a>(raw: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(raw.get(*at..*at + 4)?.try_into().ok()?) as usize;
        let text = raw.get(*at + 4..*at + 4 + len)?;
        *at += 4 + len;
        Some(text)
    }
    let count = u32::from_be_bytes(raw.get(..4)?.try_into().ok()?);
    let mut at = 4;
    let mut pairs = Vec::new();
    for _ in 0..count {
        let name = String::from_utf8_lossy(take(raw, &mut at)?).to_ascii_lowercase();
        let value = String::from_utf8_lossy(take(raw, &mut at)?).into_owned();
        pairs.push((name, value));
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_blocks_survive_a_round_trip_across_frames() {
        let mut client = HeaderCodec::new();
        let mut server = HeaderCodec::new();
        for kind in ["error", "stdin", "stdout"] {
            let block = client.encode(&[("streamtype", kind)]).unwrap();
            assert_eq!(
                server.decode(&block).unwrap(),
                [("streamtype".to_string(), kind.to_string())]
            );
        }
        let empty = server.encode(&[]).unwrap();
        assert!(client.decode(&empty).unwrap().is_empty());
    }

    #[test]
    fn the_dictionary_is_spdy3s() {
        // Its Adler-32 is what SPDY/3 zlib streams name as their preset dictionary.
        let mut compress = Compress::new(Compression::best(), true);
        assert_eq!(compress.set_dictionary(DICTIONARY).unwrap(), 0xe3c6_a7c2);
    }

    #[tokio::test]
    async fn frames_are_read_as_written() {
        let mut bytes = data_frame(3, FLAG_FIN, b"hi");
        bytes.extend(control_frame(PING, 0, &7u32.to_be_bytes()));
        let mut rd = bytes.as_slice();
        match read_frame(&mut rd).await.unwrap() {
            Frame::Data { stream, fin, data } => {
                assert_eq!((stream, fin, data), (3, true, b"hi".to_vec()))
            }
            other => panic!("{other:?}"),
        }
        match read_frame(&mut rd).await.unwrap() {
            Frame::Control { kind, data } => assert_eq!((kind, data), (PING, vec![0, 0, 0, 7])),
            other => panic!("{other:?}"),
        }
    }
}
