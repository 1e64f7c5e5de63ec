//! Startup, liveness and readiness probes (httpGet, tcpSocket, exec), one task per container
//! instance. The startup probe runs first; liveness and readiness once it has passed. The
//! task reports single failures (for Unhealthy events) and verdicts (threshold reached).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use keg_runtime::Runtime;
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
            Ok(Err(e)) => Err(format!(
                "dial tcp {addr}: connect: {}",
                keg_dial::go_error(&e)
            )),
            Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
        };
    }
    if let Some(http) = &probe.http_get {
        let https = http
            .scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"));
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
        let request = super::http::Get {
            https,
            host: &host,
            port,
            path: &path,
            headers: &headers,
        };
        return request.send(timeout).await;
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

#[cfg(test)]
mod tests {
    use super::*;

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
