//! Container logs for `kubectl logs`: files laid out as the kubelet's `/var/log/pods`
//! (`<ns>_<name>_<uid>/<container>/<attempt>.log`, plus `<container id>.log` symlinks), read
//! with keg_runtime's CRI log reader, and followed while the container runs. Which
//! instance to read, and the errors when there is none, follow the kubelet
//! (`validateContainerLogStatus`).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use keg_runtime::logs::{LogLine, parse_entry, read_log};
use keg_runtime::{ContainerState, Runtime};
use tokio::sync::mpsc;

use crate::pod::ID_PREFIX;
use crate::{Error, Result, io_err};

/// How often a followed log is looked at for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// What `kubectl logs` asks for.
#[derive(Clone, Debug, Default)]
pub struct LogRequest {
    /// The container.
    pub container: String,
    /// Go on streaming while the container runs (`-f`).
    pub follow: bool,
    /// The previous instance's log (`--previous`).
    pub previous: bool,
    /// Only the last this many lines (`--tail`).
    pub tail_lines: Option<usize>,
    /// Only lines from this instant on (`--since`, `--since-time`).
    pub since: Option<Timestamp>,
    /// Prefix lines with their RFC 3339 timestamps (`--timestamps`).
    pub timestamps: bool,
    /// Stop after this many bytes (`--limit-bytes`).
    pub limit_bytes: Option<u64>,
}

/// The logs of an agent's containers; cheap to clone.
#[derive(Clone, Debug)]
pub struct NodeLogs {
    root: PathBuf,
    runtime: Arc<Runtime>,
}

impl NodeLogs {
    /// Logs under `root` (the agent's `<root_dir>/logs`).
    pub(crate) fn new(root: PathBuf, runtime: Arc<Runtime>) -> Self {
        Self { root, runtime }
    }

    /// The directory of a pod's logs.
    pub fn pod_dir(&self, namespace: &str, name: &str, uid: &str) -> PathBuf {
        self.root.join(format!("{namespace}_{name}_{uid}"))
    }

    /// Names an instance's log by its container id, so that status (which names instances by
    /// id) finds it: `<container>/<id>.log -> <attempt>.log`.
    pub(crate) fn link(&self, pod_dir: &Path, container: &str, id: &str, attempt: i32) {
        let link = pod_dir.join(container).join(format!("{id}.log"));
        let _ = std::fs::remove_file(&link);
        if let Err(e) = std::os::unix::fs::symlink(format!("{attempt}.log"), &link) {
            tracing::warn!(link = %link.display(), error = %e, "linking a container log");
        }
    }

    /// The log of a container of `pod` as a stream of text, as `kubectl logs` shows it.
    pub async fn stream(
        &self,
        pod: &Pod,
        request: LogRequest,
    ) -> Result<BoxStream<'static, Vec<u8>>> {
        let (id, live) = self.instance(pod, &request)?;
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let link = self
            .pod_dir(namespace, name, uid)
            .join(&request.container)
            .join(format!("{id}.log"));
        let path = std::fs::canonicalize(&link).unwrap_or(link);
        let follow = request.follow && live;
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
        let runtime = self.runtime.clone();
        tokio::spawn(async move {
            if let Err(e) = pump(&path, &request, follow, &id, &runtime, &tx).await {
                let _ = tx
                    .send(format!("error reading the log: {e}\n").into_bytes())
                    .await;
            }
        });
        Ok(Box::pin(futures::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        })))
    }

    /// The instance to read (container id) and whether it may still write.
    fn instance(&self, pod: &Pod, request: &LogRequest) -> Result<(String, bool)> {
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        let container = request.container.as_str();
        let status = pod.status.clone().unwrap_or_default();
        let all: Vec<ContainerStatus> = status
            .container_statuses
            .into_iter()
            .flatten()
            .chain(status.init_container_statuses.into_iter().flatten())
            .collect();
        let bad = |text: String| Err(Error::BadRequest(text));
        let Some(c) = all.iter().find(|c| c.name == container) else {
            return bad(format!(
                "container {container:?} in pod {pod_name:?} is not available"
            ));
        };
        let state = c.state.clone().unwrap_or_default();
        let last_id = c
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .and_then(|t| t.container_id.clone())
            .filter(|id| !id.is_empty());
        let strip = |id: String| id.trim_start_matches(ID_PREFIX).to_string();
        if request.previous {
            return match last_id {
                Some(id) => Ok((strip(id), false)),
                None => bad(format!(
                    "previous terminated container {container:?} in pod {pod_name:?} not found"
                )),
            };
        }
        if state.running.is_some() {
            return match c.container_id.clone() {
                Some(id) => Ok((strip(id), true)),
                None => bad(format!(
                    "container {container:?} in pod {pod_name:?} is waiting to start - no logs yet"
                )),
            };
        }
        if let Some(t) = &state.terminated {
            return match t.container_id.clone().filter(|i| !i.is_empty()).or(last_id) {
                Some(id) => Ok((strip(id), false)),
                None => bad(format!(
                    "container {container:?} in pod {pod_name:?} is terminated"
                )),
            };
        }
        if let Some(id) = last_id {
            return Ok((strip(id), false));
        }
        let reason = state.waiting.and_then(|w| w.reason).unwrap_or_default();
        bad(match reason.as_str() {
            "ErrImagePull" => format!(
                "container {container:?} in pod {pod_name:?} is waiting to start: image can't be pulled"
            ),
            "ImagePullBackOff" => format!(
                "container {container:?} in pod {pod_name:?} is waiting to start: trying and failing to pull image"
            ),
            "" => format!(
                "container {container:?} in pod {pod_name:?} is waiting to start - no logs yet"
            ),
            r => format!("container {container:?} in pod {pod_name:?} is waiting to start: {r}"),
        })
    }
}

/// Renames a live log past `max_size` to `<file>.<timestamp>` (the container's monitor
/// then reopens the path) and keeps at most `max_files` files of it.
pub(crate) fn rotate_if_needed(
    live: &Path,
    max_size: u64,
    max_files: usize,
) -> std::io::Result<()> {
    let size = match std::fs::metadata(live) {
        Ok(m) => m.len(),
        Err(_) => return Ok(()),
    };
    if size < max_size {
        return Ok(());
    }
    let stamp = Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
    let rotated = PathBuf::from(format!("{}.{stamp}", live.display()));
    std::fs::rename(live, &rotated)?;
    let mut old = rotated_files(live);
    while old.len() + 1 > max_files.max(1) {
        std::fs::remove_file(old.remove(0))?;
    }
    Ok(())
}

/// Rotated files of a live log, oldest first.
fn rotated_files(live: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (live.parent(), live.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// Formats lines as kubectl shows them.
fn render(lines: &[LogLine], timestamps: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        if timestamps {
            out.extend_from_slice(line.timestamp.to_string().as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&line.content);
        out.push(b'\n');
    }
    out
}

/// Sends the log's lines, then (following) new lines until the container ends.
async fn pump(
    path: &Path,
    request: &LogRequest,
    follow: bool,
    id: &str,
    runtime: &Runtime,
    tx: &mpsc::Sender<Vec<u8>>,
) -> Result<()> {
    let mut lines = Vec::new();
    for file in rotated_files(path)
        .iter()
        .chain([path.to_path_buf()].iter())
    {
        lines.extend(read_log(file, &Default::default()).map_err(io_err("read the log"))?);
    }
    if let Some(since) = request.since {
        lines.retain(|l| l.timestamp >= since);
    }
    if let Some(tail) = request.tail_lines {
        let skip = lines.len().saturating_sub(tail);
        lines.drain(..skip);
    }
    let mut budget = request.limit_bytes.unwrap_or(u64::MAX);
    let first = within(render(&lines, request.timestamps), &mut budget);
    if !first.is_empty() && tx.send(first).await.is_err() {
        return Ok(());
    }
    if !follow {
        return Ok(());
    }
    let mut offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut pending = Vec::new();
    loop {
        let running = matches!(
            runtime.container_status(id).map(|s| s.state),
            Ok(ContainerState::Running)
        );
        let (new, next) = read_from(path, offset).map_err(io_err("follow the log"))?;
        offset = next;
        pending.extend_from_slice(&new);
        let mut out = Vec::new();
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = pending.drain(..=end).collect();
            if let Some((ts, stream, partial, content)) = parse_entry(&raw[..raw.len() - 1]) {
                let line = LogLine {
                    timestamp: ts,
                    stream,
                    content: content.to_vec(),
                };
                let mut text = render(std::slice::from_ref(&line), request.timestamps);
                if partial {
                    text.pop();
                }
                out.extend(text);
            }
        }
        if !out.is_empty() && (tx.send(within(out, &mut budget)).await.is_err() || budget == 0) {
            return Ok(());
        }
        if !running || tx.is_closed() {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

/// Bytes of `path` from `offset` on; a file that shrank (rotated) is read from its start.
fn read_from(path: &Path, offset: u64) -> std::io::Result<(Vec<u8>, u64)> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let start = if len < offset { 0 } else { offset };
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    let end = start + buf.len() as u64;
    Ok((buf, end))
}

/// Cuts `bytes` to what is left of the `--limit-bytes` budget.
fn within(mut bytes: Vec<u8>, budget: &mut u64) -> Vec<u8> {
    let take = (bytes.len() as u64).min(*budget) as usize;
    bytes.truncate(take);
    *budget -= take as u64;
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("0.log");
        std::fs::write(&live, "small").unwrap();
        rotate_if_needed(&live, 100, 3).unwrap();
        assert!(live.exists(), "under the limit: left alone");
        for n in 0..4 {
            std::fs::write(&live, vec![b'x'; 200]).unwrap();
            // Distinct names, as rotations a second apart would have.
            for old in rotated_files(&live) {
                let renamed = format!("{}.{n}", old.display());
                std::fs::rename(&old, renamed).unwrap();
            }
            rotate_if_needed(&live, 100, 3).unwrap();
            assert!(!live.exists(), "rotated away; the monitor makes it anew");
        }
        assert_eq!(rotated_files(&live).len(), 2, "with the live file, three");
        let other = dir.path().join("10.log.20240101-000000");
        std::fs::write(&other, "x").unwrap();
        assert_eq!(
            rotated_files(&live).len(),
            2,
            "another attempt's files are not ours"
        );
    }
}
