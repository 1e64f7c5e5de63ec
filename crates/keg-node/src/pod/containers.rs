//! Starting and stopping one container of a pod, with the kubelet's events, lifecycle hooks,
//! restart policy and termination messages.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerState, ContainerStateRunning, LifecycleHandler};
use tokio::time::Instant;

use super::{PodContext, images, probes, spec};
use crate::events::EventType::{Normal, Warning};
use crate::util::{go_duration, now};

/// Upstream's limit on a termination message.
const MAX_MESSAGE: usize = 4096;
/// Upstream's limit when the message falls back to the log's tail.
const MAX_LOG_MESSAGE: usize = 2048;
/// Lines of log a fallback message holds at most.
const MAX_LOG_LINES: usize = 80;
/// How soon a container whose configuration failed is tried again.
const CONFIG_RETRY: Duration = Duration::from_secs(10);

/// Where a container instance's termination message comes from.
pub(crate) struct MessageSource {
    file: PathBuf,
    log: PathBuf,
    fallback_to_logs: bool,
}

impl MessageSource {
    /// The message: the file's content, else (FallbackToLogsOnError) the log's tail.
    pub(crate) fn read(&self) -> Option<String> {
        let text = std::fs::read(&self.file).unwrap_or_default();
        let text = String::from_utf8_lossy(&text[..text.len().min(MAX_MESSAGE)]).into_owned();
        if !text.is_empty() {
            return Some(text);
        }
        if !self.fallback_to_logs {
            return None;
        }
        let lines = keg_runtime::logs::read_log(&self.log, &Default::default()).ok()?;
        let mut tail: Vec<String> = lines
            .iter()
            .rev()
            .take(MAX_LOG_LINES)
            .map(|l| String::from_utf8_lossy(&l.content).into_owned())
            .collect();
        tail.reverse();
        let mut text = tail.join("\n");
        if text.len() > MAX_LOG_MESSAGE {
            let mut cut = text.len() - MAX_LOG_MESSAGE;
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
            text = text[cut..].to_string();
        }
        (!text.is_empty()).then_some(text)
    }
}

/// The termination message source of slot `i`'s current instance.
pub(crate) fn termination_message_source(ctx: &PodContext, i: usize) -> MessageSource {
    let slot = &ctx.slots[i];
    MessageSource {
        file: spec::termination_log_path(ctx, slot.name(), slot.restart_count),
        log: ctx.log_path(slot.name(), slot.restart_count),
        fallback_to_logs: slot.spec.termination_message_policy.as_deref()
            == Some("FallbackToLogsOnError"),
    }
}

/// Whether the restart policy restarts a container that exited with `exit_code`.
pub(crate) fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// Starts a new instance of slot `i` (its first, or a restart): image, configuration,
/// create, start, postStart hook, probes. Returns whether it runs; if not, the slot's
/// waiting state says why.
pub(crate) async fn start(ctx: &mut PodContext, i: usize) -> bool {
    if ctx.slots[i].retry_at.is_some_and(|t| Instant::now() < t) {
        return false;
    }
    let had_instance = ctx.slots[i].id.is_some();
    ctx.slots[i].retire();
    if !images::ensure_image(ctx, i).await {
        return false;
    }
    let name = ctx.slots[i].name().to_string();
    let attempt = ctx.slots[i].restart_count + i32::from(had_instance);
    let config = match spec::container_config(ctx, i, attempt).await {
        Ok(c) => c,
        Err(message) => return fail(ctx, i, "CreateContainerConfigError", message),
    };
    let Some(sandbox) = ctx.sandbox.as_ref().map(|s| s.id.clone()) else {
        return false;
    };
    let runtime = ctx.shared.runtime.clone();
    let id = match runtime.create_container(&sandbox, config).await {
        Ok(id) => id,
        Err(e) => return fail(ctx, i, "CreateContainerError", e.to_string()),
    };
    // The last instance goes once the next exists; its log stays for `--previous`.
    if let Some(old) = ctx.slots[i].id.take()
        && let Err(e) = runtime.remove_container(&old).await
    {
        tracing::warn!(pod = %ctx.pod_ref(), container = %name, error = %e, "removing the last instance");
    }
    ctx.shared.logs.link(&ctx.log_dir(), &name, &id, attempt);
    let slot = &mut ctx.slots[i];
    slot.id = Some(id.clone());
    slot.restart_count = attempt;
    slot.retry_at = None;
    let created = format!("Created container: {name}");
    ctx.event_for(&name, Normal, "Created", &created);
    if let Err(e) = runtime.start_container(&id).await {
        return fail(ctx, i, "RunContainerError", e.to_string());
    }
    ctx.event_for(
        &name,
        Normal,
        "Started",
        &format!("Started container {name}"),
    );
    after_start(ctx, i, &id).await
}

/// A started instance: it shows running, its postStart hook runs (a failure kills it),
/// its probes start.
async fn after_start(ctx: &mut PodContext, i: usize, id: &str) -> bool {
    let slot = &mut ctx.slots[i];
    let running = ContainerStateRunning {
        started_at: Some(now()),
    };
    slot.state = ContainerState {
        running: Some(running),
        ..Default::default()
    };
    slot.ready = slot.spec.readiness_probe.is_none() && slot.spec.startup_probe.is_none();
    slot.started = slot.spec.startup_probe.is_none();
    slot.exited_at = None;
    let hook = slot
        .spec
        .lifecycle
        .as_ref()
        .and_then(|l| l.post_start.clone());
    if let Some(hook) = hook
        && let Err(message) = run_hook(ctx, id, i, &hook, ctx.grace_period()).await
    {
        let name = ctx.slots[i].name().to_string();
        let text = format!("PostStartHook failed: {message}");
        ctx.event_for(&name, Warning, "FailedPostStartHook", &text);
        kill(ctx, i, &format!("FailedPostStartHook: {message}"));
        return false;
    }
    start_probes(ctx, i);
    true
}

/// Starts the probes of slot `i`'s running instance.
pub(crate) fn start_probes(ctx: &mut PodContext, i: usize) {
    if let (Some(id), Some(pod_ip)) = (ctx.slots[i].id.clone(), ctx.pod_ip()) {
        let target = probes::Target {
            slot: i,
            container_id: id,
            pod_ip,
            runtime: ctx.shared.runtime.clone(),
            tx: ctx.probe_sender(),
        };
        ctx.slots[i].probes = probes::start(target, &ctx.slots[i].spec);
    }
}

/// A failed start: the waiting reason, and the kubelet's `Error: ...` event.
fn fail(ctx: &mut PodContext, i: usize, reason: &str, message: String) -> bool {
    let name = ctx.slots[i].name().to_string();
    ctx.event_for(&name, Warning, "Failed", &format!("Error: {message}"));
    let slot = &mut ctx.slots[i];
    slot.wait_for(reason, Some(message));
    slot.retry_at = Some(Instant::now() + CONFIG_RETRY);
    false
}

/// Stops slot `i`'s instance in the background (the pod's loop goes on), with a Killing
/// event carrying `why`.
pub(crate) fn kill(ctx: &mut PodContext, i: usize, why: &str) {
    let Some(id) = ctx.slots[i].id.clone() else {
        return;
    };
    let name = ctx.slots[i].name().to_string();
    ctx.event_for(&name, Normal, "Killing", why);
    ctx.slots[i].probes = None;
    ctx.slots[i].ready = false;
    let runtime = ctx.shared.runtime.clone();
    let grace = ctx.grace_period();
    tokio::spawn(async move {
        if let Err(e) = runtime.stop_container(&id, grace).await {
            tracing::warn!(container = %id, error = %e, "stopping a container");
        }
    });
}

/// Stops slot `i`'s running instance and waits for it: preStop hook, then the stop signal,
/// then SIGKILL once the grace period (what the hook left of it) has passed.
pub(crate) async fn stop(ctx: &PodContext, i: usize, grace: Duration) {
    let slot = &ctx.slots[i];
    let Some(id) = slot.id.clone().filter(|_| slot.is_running()) else {
        return;
    };
    let name = slot.name().to_string();
    ctx.event_for(
        &name,
        Normal,
        "Killing",
        &format!("Stopping container {name}"),
    );
    let started = Instant::now();
    if let Some(hook) = slot
        .spec
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.clone())
        && let Err(message) = run_hook(ctx, &id, i, &hook, grace).await
    {
        let text = format!("PreStopHook failed: {message}");
        ctx.event_for(&name, Warning, "FailedPreStopHook", &text);
    }
    let left = grace
        .saturating_sub(started.elapsed())
        .max(Duration::from_secs(2));
    if let Err(e) = ctx.shared.runtime.stop_container(&id, left).await {
        tracing::warn!(pod = %ctx.pod_ref(), container = %name, error = %e, "stopping a container");
    }
}

/// Runs a lifecycle hook (exec, httpGet or sleep) within `limit`.
async fn run_hook(
    ctx: &PodContext,
    id: &str,
    i: usize,
    hook: &LifecycleHandler,
    limit: Duration,
) -> Result<(), String> {
    if let Some(exec) = &hook.exec {
        let command = exec.command.clone().unwrap_or_default();
        return match ctx.shared.runtime.exec(id, &command, limit).await {
            Ok(out) if out.exit_code == 0 => Ok(()),
            Ok(out) => Err(format!(
                "command '{}' exited with {}: {}",
                command.join(" "),
                out.exit_code,
                String::from_utf8_lossy(&out.stderr).trim_end()
            )),
            Err(e) => Err(e.to_string()),
        };
    }
    if let Some(http) = &hook.http_get {
        let host = http
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .or_else(|| ctx.pod_ip())
            .unwrap_or_default();
        let port = match &http.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => *n as u16,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name) => ctx.slots[i]
                .spec
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .map_or(0, |p| p.container_port as u16),
        };
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let https = http
            .scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"));
        let request = super::http::Get {
            https,
            host: &host,
            port,
            path: &path,
            headers: &[],
        };
        return request.send(limit).await;
    }
    if let Some(sleep) = &hook.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64).min(limit)).await;
    }
    Ok(())
}

/// The CrashLoopBackOff message of slot `i`.
pub(crate) fn backoff_message(ctx: &PodContext, i: usize) -> String {
    let delay = go_duration(ctx.slots[i].crash_backoff.delay());
    format!(
        "back-off {delay} restarting failed container={} pod={}",
        ctx.slots[i].name(),
        ctx.pod_ref()
    )
}

/// Restarts slot `i`'s ended instance unless its crash back-off still runs; then it shows
/// CrashLoopBackOff (with a BackOff event once per back-off). Returns whether it runs.
pub(crate) async fn restart_or_back_off(ctx: &mut PodContext, i: usize) -> bool {
    let now = Instant::now();
    let exited_at = ctx.slots[i].exited_at.unwrap_or(now);
    if ctx.slots[i]
        .crash_backoff
        .remaining_since(exited_at, now)
        .is_some()
    {
        if ctx.slots[i].waiting_reason() != Some("CrashLoopBackOff") {
            let name = ctx.slots[i].name().to_string();
            let message = backoff_message(ctx, i);
            let event = format!(
                "Back-off restarting failed container {name} in pod {}",
                ctx.pod_ref()
            );
            ctx.event_for(&name, Warning, "BackOff", &event);
            let slot = &mut ctx.slots[i];
            slot.retire();
            slot.wait_for("CrashLoopBackOff", Some(message));
        }
        return false;
    }
    ctx.slots[i].crash_backoff.next(now);
    start(ctx, i).await
}
