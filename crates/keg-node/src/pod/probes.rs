//! Startup, liveness and readiness probes (httpGet, tcpSocket, exec), one task per container
//! instance. The startup probe runs first; liveness and readiness once it has passed. The
//! task reports single failures (for Unhealthy events) and verdicts (threshold reached).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use keg_runtime::Runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::util::TaskGuard;

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProbeKind {
    /// startupProbe.
    Startup,
    /// livenessProbe.
    Liveness,
    /// readinessProbe.
    Readiness,
}

impl ProbeKind {
    /// As events name it: `Startup probe failed: ...`.
    pub(crate) fn title(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

/// What a probe task tells the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ProbeOutcome {
    /// One attempt failed, with the kubelet's message (an Unhealthy event).
    Failed(String),
    /// The verdict: passed (success threshold) or failed (failure threshold).
    Verdict(bool),
}

/// A report from a probe task.
#[derive(Clone, Debug)]
pub(crate) struct ProbeReport {
    /// The slot of the container.
    pub(crate) slot: usize,
    /// The instance probed.
    pub(crate) container_id: String,
    /// Which probe.
    pub(crate) kind: ProbeKind,
    /// What happened.
    pub(crate) outcome: ProbeOutcome,
}

/// Where probes go.
#[derive(Clone)]
pub(crate) struct Target {
    /// The slot of the container.
    pub(crate) slot: usize,
    /// The instance.
    pub(crate) container_id: String,
    /// The pod's address.
    pub(crate) pod_ip: String,
    /// For exec probes.
    pub(crate) runtime: Arc<Runtime>,
    /// Reports go here.
    pub(crate) tx: mpsc::UnboundedSender<ProbeReport>,
}

/// Starts the probes of a container instance; none when it has no probes.
pub(crate) fn start(target: Target, container: &Container) -> Option<TaskGuard> {
    let startup = container.startup_probe.clone();
    let liveness = container.liveness_probe.clone();
    let readiness = container.readiness_probe.clone();
    if startup.is_none() && liveness.is_none() && readiness.is_none() {
        return None;
    }
    let container = container.clone();
    Some(TaskGuard::spawn(async move {
        if let Some(p) = startup
            && !run(&target, &container, ProbeKind::Startup, &p, true).await
        {
            return;
        }
        let live = async {
            match &liveness {
                Some(p) => {
                    run(&target, &container, ProbeKind::Liveness, p, false).await;
                }
                None => futures::future::pending().await,
            }
        };
        let ready = async {
            match &readiness {
                Some(p) => {
                    run(&target, &container, ProbeKind::Readiness, p, false).await;
                }
                None => futures::future::pending().await,
            }
        };
        // A failed liveness probe ends the instance, and with it the readiness probe.
        tokio::select! {
            _ = live => {}
            _ = ready => {}
        }
    }))
}

fn seconds(value: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(value.map_or(default, |v| v.max(0) as u64))
}

/// Runs one probe. A startup probe ends at its verdict (true when it passed); liveness ends
/// at failure; readiness runs on, reporting each change of verdict.
async fn run(
    target: &Target,
    container: &Container,
    kind: ProbeKind,
    probe: &Probe,
    once: bool,
) -> bool {
    let period = seconds(probe.period_seconds, 10).max(Duration::from_secs(1));
    let timeout = seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1));
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
    tokio::time::sleep(seconds(probe.initial_delay_seconds, 0)).await;
    let (mut successes, mut failures) = (0, 0);
    let mut verdict: Option<bool> = None;
    let report = |outcome| {
        let _ = target.tx.send(ProbeReport {
            slot: target.slot,
            container_id: target.container_id.clone(),
            kind,
            outcome,
        });
    };
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match attempt(target, container, probe, timeout).await {
            Ok(()) => {
                failures = 0;
                successes += 1;
                if successes >= success_threshold && verdict != Some(true) {
                    verdict = Some(true);
                    report(ProbeOutcome::Verdict(true));
                    if once {
                        return true;
                    }
                }
            }
            Err(message) => {
                successes = 0;
                failures += 1;
                report(ProbeOutcome::Failed(message));
                if failures >= failure_threshold && verdict != Some(false) {
                    verdict = Some(false);
                    report(ProbeOutcome::Verdict(false));
                    if once || kind == ProbeKind::Liveness {
                        return false;
                    }
                }
            }
        }
    }
}

/// One probe attempt; the error is the kubelet's message.
async fn attempt(
    target: &Target,
    container: &Container,
    probe: &Probe,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        return match target
            .runtime
            .exec(&target.container_id, &command, timeout)
            .await
        {
            Ok(out) if out.exit_code == 0 => Ok(()),
            Ok(out) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                Err(text.trim_end().to_string())
            }
            Err(keg_runtime::Error::Timeout { .. }) => {
                Err(format!("command {:?} timed out", command.join(" ")))
            }
            Err(e) => Err(e.to_string()),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let host = tcp
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| target.pod_ip.clone());
        let port = resolve_port(&tcp.port, container)?;
        let addr = format!("{host}:{port}");
        return match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {addr}: connect: {}", go_errno(&e))),
            Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
        };
    }
    if let Some(http) = &probe.http_get {
        let scheme = http.scheme.clone().unwrap_or_else(|| "HTTP".into());
        if scheme.eq_ignore_ascii_case("HTTPS") {
            return Err("HTTPS probes are not supported by keg's node agent yet".into());
        }
        let host = http
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| target.pod_ip.clone());
        let port = resolve_port(&http.port, container)?;
        let path = http
            .path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into());
        let headers: Vec<(String, String)> = http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        return http_get(&host, port, &path, &headers, timeout).await;
    }
    if probe.grpc.is_some() {
        return Err("gRPC probes are not supported by keg's node agent".into());
    }
    Ok(())
}

/// A port number, or a named port of the container.
fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port number: {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port: {name} in {}", container.name))
        }
    }
}

/// How Go words common connect errors.
fn go_errno(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::HostUnreachable => "no route to host".into(),
        _ => e.to_string(),
    }
}

/// An HTTP/1.1 GET as the kubelet's prober makes it: 200–399 pass.
pub(crate) async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    let url = format!("http://{host}:{port}{path}");
    let exchange = async {
        let mut stream = TcpStream::connect((host, port)).await.map_err(|e| {
            format!(
                "Get {url:?}: dial tcp {host}:{port}: connect: {}",
                go_errno(&e)
            )
        })?;
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n");
        let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if !has("User-Agent") {
            request.push_str("User-Agent: kube-probe/1.33\r\n");
        }
        if !has("Accept") {
            request.push_str("Accept: */*\r\n");
        }
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("Connection: close\r\n\r\n");
        let io = |e: std::io::Error| format!("Get {url:?}: {e}");
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(2).any(|w| w == b"\r\n") {
            let n = stream.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                return Err(format!("Get {url:?}: EOF"));
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("Get {url:?}: malformed HTTP response"))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(status: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .await;
        });
        port
    }

    #[tokio::test]
    async fn http_probe_results() {
        let t = Duration::from_secs(5);
        let port = serve_once("200 OK").await;
        assert_eq!(
            http_get("127.0.0.1", port, "/healthz", &[], t).await,
            Ok(())
        );
        let port = serve_once("503 Service Unavailable").await;
        assert_eq!(
            http_get("127.0.0.1", port, "/", &[], t).await,
            Err("HTTP probe failed with statuscode: 503".into())
        );
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = http_get("127.0.0.1", closed, "/x", &[], t)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            format!(
                "Get \"http://127.0.0.1:{closed}/x\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
            )
        );
    }

    #[test]
    fn named_ports() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "app", "ports": [{"name": "http", "containerPort": 8080}]
        }))
        .unwrap();
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(resolve_port(&IntOrString::Int(81), &c), Ok(81));
        assert!(resolve_port(&IntOrString::String("nope".into()), &c).is_err());
    }
}
