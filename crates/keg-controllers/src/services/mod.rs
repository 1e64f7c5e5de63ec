//! Service networking on this machine: how a connection to a Service reaches its endpoints.
//!
//! - Load balancers: a LoadBalancer Service gets the load-balancer address in its status, and
//!   keg listens there on each of its ports ([`loadbalancer`]).
//! - Cluster IPs: each Service's cluster IP is put on the cluster's pod bridge and keg listens
//!   there, so pods reach `clusterIP:port` as kube-proxy would let them ([`cluster_ip`]).
//! - DNS: a server on the bridge's address, every pod's nameserver, answers service names
//!   ([`dns`]).
//!
//! Every listener passes connections to ready endpoints ([`proxy`]). Cluster IPs and DNS need
//! the pod network, so they run only beside a node agent.

mod cluster_ip;
mod dns;
mod loadbalancer;
mod proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::follow;
use proxy::Frontend;

/// How often addresses that could not be set are tried again (e.g. before the bridge exists).
const RETRY: Duration = Duration::from_secs(5);

/// Where service traffic is taken in.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address LoadBalancer Services get.
    pub load_balancer_address: IpAddr,
    /// The pod network, when pods run here: cluster IPs and DNS live on it.
    pub pod_network: Option<PodNetwork>,
}

/// The cluster's pod network as service networking needs it.
#[derive(Clone, Debug)]
pub struct PodNetwork {
    /// The pod bridge.
    pub bridge: String,
    /// The bridge's address: the pods' gateway and nameserver.
    pub gateway: Ipv4Addr,
    /// The cluster domain, e.g. `cluster.local`.
    pub domain: String,
    /// The machine's resolvers (from /etc/resolv.conf), for names outside the domain.
    pub upstream_dns: Vec<SocketAddr>,
}

impl PodNetwork {
    /// The pod network on `bridge` at `gateway`, resolving outside names as this machine does.
    pub fn new(bridge: String, gateway: Ipv4Addr, domain: String) -> Self {
        let resolv_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        PodNetwork {
            bridge,
            gateway,
            domain,
            upstream_dns: dns::nameservers(&resolv_conf),
        }
    }
}

/// Runs service networking until the process ends.
pub async fn run(client: Client, config: Config) {
    let (changed, mut changes) = watch::channel(0u64);
    let changed = Arc::new(changed);
    let services: Store<Service> = follow(Api::all(client.clone()), changed.clone());
    let slices: Store<EndpointSlice> = follow(Api::all(client.clone()), changed);
    let _ = services.wait_until_ready().await;
    let _ = slices.wait_until_ready().await;
    if let Some(network) = &config.pod_network {
        start_dns(network, &services, &slices).await;
    }
    let events = Recorder::new(
        client.clone(),
        Reporter {
            controller: "service-controller".into(),
            instance: None,
        },
    );
    let mut listeners: BTreeMap<Frontend, JoinHandle<()>> = BTreeMap::new();
    loop {
        let all = services.state();
        let mut wanted = loadbalancer::frontends(&all, config.load_balancer_address);
        let mut addresses_ready = true;
        if let Some(network) = &config.pod_network {
            let ips: BTreeSet<Ipv4Addr> = all
                .iter()
                .filter_map(|s| cluster_ip::cluster_ip(s))
                .collect();
            match cluster_ip::sync_addresses(&network.bridge, &ips).await {
                Ok(()) => wanted.extend(cluster_ip::frontends(&all, &network.bridge)),
                Err(e) => {
                    tracing::debug!("cluster IPs on {}: {e}", network.bridge);
                    addresses_ready = false;
                }
            }
        }
        sync_listeners(&mut listeners, &wanted, &slices);
        for service in all.iter().filter(|s| loadbalancer::is_load_balancer(s)) {
            if let Err(e) =
                loadbalancer::ensure_status(&client, &events, service, config.load_balancer_address)
                    .await
            {
                tracing::warn!(service = %service.name_any(), "load balancer status: {e}");
            }
        }
        // A listener that could not open is retried too, after the same pause.
        let retry = !addresses_ready || wanted.iter().any(|f| !listeners.contains_key(f));
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(RETRY), if retry => {},
        }
    }
}

/// Opens the wanted listeners that are not open and closes those no longer wanted.
fn sync_listeners(
    listeners: &mut BTreeMap<Frontend, JoinHandle<()>>,
    wanted: &[Frontend],
    slices: &Store<EndpointSlice>,
) {
    listeners.retain(|frontend, task| {
        let keep = wanted.contains(frontend);
        if !keep {
            tracing::info!(service = %frontend.service, address = %frontend.address, "closing service port");
            task.abort();
        }
        keep
    });
    for frontend in wanted {
        if listeners.contains_key(frontend) {
            continue;
        }
        match proxy::listen(frontend) {
            Ok(listener) => {
                tracing::info!(service = %frontend.service, address = %frontend.address, "service port listening");
                let task = tokio::spawn(proxy::serve(listener, frontend.clone(), slices.clone()));
                listeners.insert(frontend.clone(), task);
            }
            Err(e) => {
                tracing::warn!(service = %frontend.service, address = %frontend.address, "cannot listen: {e}")
            }
        }
    }
}

/// Starts the DNS server on the gateway; retried in the background until the bridge is up.
async fn start_dns(network: &PodNetwork, services: &Store<Service>, slices: &Store<EndpointSlice>) {
    let resolver = dns::Resolver {
        domain: network.domain.clone(),
        upstream: network.upstream_dns.clone(),
        services: services.clone(),
        slices: slices.clone(),
    };
    let address = SocketAddr::new(IpAddr::V4(network.gateway), 53);
    tokio::spawn(async move {
        loop {
            // Both or neither: a resolver that got a truncated answer over UDP retries over TCP.
            match (
                UdpSocket::bind(address).await,
                TcpListener::bind(address).await,
            ) {
                (Ok(socket), Ok(listener)) => {
                    tracing::info!(%address, "cluster DNS listening (UDP and TCP)");
                    tokio::spawn(dns::serve_tcp(listener, resolver.clone()));
                    dns::serve(socket, resolver).await;
                    return;
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::debug!(%address, "cluster DNS cannot listen yet: {e}");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    });
}
