//! CreatingSandbox: the pod's network namespace with its IP, its cgroup (sized to the pod,
//! or to the node on Fargate), hostname and resolv.conf. Failures are
//! FailedCreatePodSandBox events, retried with back-off.
//!
//! Next: Initializing (init containers to run), Pulling, or CreatingSandbox again.

use std::collections::BTreeMap;
use std::time::Duration;

use keg_runtime::{DnsConfig, PodSandboxConfig};
use tokio::time::Instant;

use super::{Initializing, Pulling, State};
use crate::AGENT_LABEL;
use crate::events::EventType::Warning;
use crate::pod::resources::pod_resources;
use crate::pod::{POD_UID_LABEL, PodContext};

/// Making the sandbox.
#[derive(Default)]
pub(crate) struct CreatingSandbox {
    failures: u32,
    retry_at: Option<Instant>,
}

impl CreatingSandbox {
    /// Makes the sandbox, or waits to try again.
    pub(crate) async fn next(mut self, ctx: &mut PodContext) -> State {
        if let Some(at) = self.retry_at.filter(|at| *at > Instant::now()) {
            ctx.wait(at - Instant::now()).await;
            return State::CreatingSandbox(self);
        }
        let config = sandbox_config(ctx);
        match ctx.shared.runtime.run_pod_sandbox(config).await {
            Ok(sandbox) => {
                ctx.sandbox = Some(sandbox);
                ctx.publish().await;
                if ctx.slots.iter().any(|s| s.init) {
                    State::Initializing(Initializing)
                } else {
                    State::Pulling(Pulling)
                }
            }
            Err(e) => {
                let message = format!("Failed to create pod sandbox: {e}");
                ctx.event(Warning, "FailedCreatePodSandBox", &message);
                let delay = Duration::from_secs(2u64.saturating_pow(self.failures + 1).min(120));
                self.failures += 1;
                self.retry_at = Some(Instant::now() + delay);
                State::CreatingSandbox(self)
            }
        }
    }
}

fn sandbox_config(ctx: &PodContext) -> PodSandboxConfig {
    let spec = ctx.pod.spec.clone().unwrap_or_default();
    let mut hostname = spec
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| ctx.name().to_string());
    // As the kubelet truncates: 63 characters, no trailing '-' or '.'.
    hostname.truncate(63);
    let hostname = hostname.trim_end_matches(['-', '.']).to_string();
    let labels: BTreeMap<String, String> = [
        (POD_UID_LABEL, ctx.uid.clone()),
        ("io.kubernetes.pod.name", ctx.name().to_string()),
        ("io.kubernetes.pod.namespace", ctx.namespace().to_string()),
        (AGENT_LABEL, ctx.shared.config.agent_name.clone()),
        ("keg.dev/node", ctx.node_name()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    PodSandboxConfig {
        uid: ctx.uid.clone(),
        name: ctx.name().to_string(),
        namespace: ctx.namespace().to_string(),
        hostname,
        dns: dns_config(ctx),
        cgroup_parent: String::new(),
        resources: pod_resources(&ctx.pod, &ctx.node),
        labels,
    }
}

/// The pod's resolv.conf by its dnsPolicy, with its dnsConfig merged in.
fn dns_config(ctx: &PodContext) -> DnsConfig {
    let spec = ctx.pod.spec.clone().unwrap_or_default();
    let policy = spec
        .dns_policy
        .clone()
        .unwrap_or_else(|| "ClusterFirst".into());
    let config = &ctx.shared.config;
    let mut dns = match policy.as_str() {
        "None" => DnsConfig::default(),
        "ClusterFirst" | "ClusterFirstWithHostNet" if !config.cluster_dns.is_empty() => {
            DnsConfig::cluster_first(
                ctx.namespace(),
                &config.cluster_domain,
                config.cluster_dns.clone(),
            )
        }
        "ClusterFirst" | "ClusterFirstWithHostNet" => {
            let message = format!(
                "pod: {:?}. kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.",
                ctx.pod_ref()
            );
            ctx.event(Warning, "MissingClusterDNS", &message);
            host_dns()
        }
        _ => host_dns(),
    };
    if let Some(extra) = spec.dns_config {
        for server in extra.nameservers.into_iter().flatten() {
            if !dns.servers.contains(&server) {
                dns.servers.push(server);
            }
        }
        for search in extra.searches.into_iter().flatten() {
            if !dns.searches.contains(&search) {
                dns.searches.push(search);
            }
        }
        for option in extra.options.into_iter().flatten() {
            let text = match option.value {
                Some(v) => format!("{}:{v}", option.name.clone().unwrap_or_default()),
                None => option.name.clone().unwrap_or_default(),
            };
            let name = option.name.unwrap_or_default();
            dns.options
                .retain(|o| o.split(':').next() != Some(name.as_str()));
            dns.options.push(text);
        }
    }
    dns
}

/// The host's resolver settings; a loopback stub resolver (systemd-resolved) is useless
/// from a pod's own network, so its upstream file is used instead.
fn host_dns() -> DnsConfig {
    let parse = |path: &str| -> Option<DnsConfig> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut dns = DnsConfig::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => dns.servers.extend(words.next().map(str::to_string)),
                Some("search" | "domain") => dns.searches = words.map(str::to_string).collect(),
                Some("options") => dns.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        Some(dns)
    };
    let host = parse("/etc/resolv.conf").unwrap_or_default();
    if host.servers.iter().all(|s| s.starts_with("127."))
        && let Some(upstream) = parse("/run/systemd/resolve/resolv.conf")
    {
        return upstream;
    }
    host
}
