//! `pods/portforward` over SPDY/3.1 (`portforward.k8s.io`), as `kubectl port-forward` speaks
//! it (1.31+ first tries SPDY tunnelled in a WebSocket and falls back to this when refused).
//! For every local connection the client opens two streams with the same `requestid` and
//! `port` headers: `error` and `data`. The server connects to the port inside the pod, copies
//! bytes both ways on the data stream, writes what went wrong (if anything) on the error
//! stream, and ends both with a FIN.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::spdy::{FLAG_FIN, Frame, HeaderCodec, control, data_frame, read_frame, split};
use crate::state::PodExec;

/// The port-forward protocol.
pub(super) const PROTOCOL: &str = "portforward.k8s.io";

/// The two streams of one forwarded connection, as they are opened.
#[derive(Default)]
struct Pair {
    port: Option<u16>,
    error: Option<u32>,
    data: Option<u32>,
}

/// Serves port forwarding on an upgraded connection until the client closes it.
pub(super) async fn serve(
    upgraded: hyper::upgrade::Upgraded,
    provider: Arc<dyn PodExec>,
    pod: Value,
) {
    let (mut rd, frames, writer) = split(upgraded);
    let pod = Arc::new(pod);
    let mut codec = HeaderCodec::new();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    // Client bytes for each data stream's connection; `None` is the client's FIN.
    let mut inputs: HashMap<u32, mpsc::UnboundedSender<Option<Bytes>>> = HashMap::new();
    let mut tasks = Vec::new();
    while let Ok(frame) = read_frame(&mut rd).await {
        if let Frame::Data { stream, fin, data } = frame {
            if let Some(input) = inputs.get(&stream) {
                if !data.is_empty() {
                    let _ = input.send(Some(data.into()));
                }
                if fin {
                    let _ = input.send(None);
                    inputs.remove(&stream);
                }
            }
            continue;
        }
        let Ok(opened) = control(&frame, &frames, &mut codec).await else {
            break;
        };
        let Some((id, headers)) = opened else {
            continue;
        };
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let request = header("requestid").unwrap_or_default();
        let pair = pairs.entry(request.clone()).or_default();
        pair.port = pair.port.or(header("port").and_then(|p| p.parse().ok()));
        match header("streamtype").as_deref() {
            Some("error") => pair.error = Some(id),
            Some("data") => pair.data = Some(id),
            _ => {}
        }
        if let Pair {
            port: Some(port),
            error: Some(error),
            data: Some(data),
        } = *pair
        {
            pairs.remove(&request);
            let (input, input_rx) = mpsc::unbounded_channel();
            inputs.insert(data, input);
            tasks.push(tokio::spawn(forward(
                provider.clone(),
                pod.clone(),
                port,
                (error, data),
                input_rx,
                frames.clone(),
            )));
        }
    }
    for task in tasks {
        task.abort();
    }
    drop(frames);
    let _ = writer.await;
}

/// One forwarded connection: the pod's port to the data stream and back.
async fn forward(
    provider: Arc<dyn PodExec>,
    pod: Arc<Value>,
    port: u16,
    (error, data): (u32, u32),
    mut input: mpsc::UnboundedReceiver<Option<Bytes>>,
    frames: mpsc::Sender<Vec<u8>>,
) {
    let connection = match provider.connect(&pod, port).await {
        Ok(c) => c,
        Err(e) => {
            let _ = frames
                .send(data_frame(error, 0, e.message.as_bytes()))
                .await;
            let _ = frames.send(data_frame(error, FLAG_FIN, &[])).await;
            let _ = frames.send(data_frame(data, FLAG_FIN, &[])).await;
            return;
        }
    };
    let (mut from_pod, mut to_pod) = tokio::io::split(connection);
    let upstream = async {
        while let Some(Some(bytes)) = input.recv().await {
            if to_pod.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to_pod.shutdown().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_pod.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if frames.send(data_frame(data, 0, &buf[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = frames.send(data_frame(data, FLAG_FIN, &[])).await;
        let _ = frames.send(data_frame(error, FLAG_FIN, &[])).await;
    };
    // Each direction ends on its own: the client's FIN half-closes the connection to the pod,
    // the pod's end of output ends both streams.
    tokio::join!(upstream, downstream);
}
