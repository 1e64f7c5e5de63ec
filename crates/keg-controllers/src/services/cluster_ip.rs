//! Cluster IPs: each Service's `spec.clusterIP` is added to the cluster's pod bridge as a
//! /32, so a pod's packets to it (sent through its default gateway, the bridge) are the
//! host's own, and a listener bound to the bridge takes them. Addresses go with the bridge
//! when the node agent removes it, so nothing outlives the cluster.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::Resource;

use super::proxy::{Frontend, service_key, tcp_ports};

/// The service's cluster IP, unless it is headless or has none.
pub(crate) fn cluster_ip(service: &Service) -> Option<Ipv4Addr> {
    if service.meta().deletion_timestamp.is_some() {
        return None;
    }
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.cluster_ip.as_deref()?.parse().ok()
}

/// A listener on the bridge for each TCP port of each service with a cluster IP.
pub(crate) fn frontends(services: &[Arc<Service>], bridge: &str) -> Vec<Frontend> {
    services
        .iter()
        .filter_map(|service| Some((service, cluster_ip(service)?)))
        .flat_map(|(service, ip)| {
            tcp_ports(service)
                .into_iter()
                .map(move |(port, port_name)| Frontend {
                    service: service_key(service),
                    port_name,
                    address: SocketAddr::new(IpAddr::V4(ip), port),
                    device: Some(bridge.to_string()),
                })
        })
        .collect()
}

/// Makes the bridge's /32 addresses exactly the wanted cluster IPs (its own /16 gateway
/// address is left alone). An error means the bridge is not there yet or `ip` failed; the
/// next pass tries again.
pub(crate) async fn sync_addresses(
    bridge: &str,
    wanted: &BTreeSet<Ipv4Addr>,
) -> Result<(), String> {
    let listing = ip(&["-4", "-o", "addr", "show", "dev", bridge]).await?;
    let present: BTreeSet<Ipv4Addr> = listing
        .split_whitespace()
        .filter_map(|word| word.strip_suffix("/32"))
        .filter_map(|ip| ip.parse().ok())
        .collect();
    for address in wanted.difference(&present) {
        ip(&["addr", "add", &format!("{address}/32"), "dev", bridge]).await?;
    }
    for address in present.difference(wanted) {
        ip(&["addr", "del", &format!("{address}/32"), "dev", bridge]).await?;
    }
    Ok(())
}

async fn ip(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("running ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
