//! The service proxy: a listener per service port that passes each connection to a ready
//! endpoint of that port, taken in turn (kube-proxy's first, userspace, mode). Load-balancer
//! and cluster-IP frontends differ only in where they listen.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// One listening port of one service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Frontend {
    /// The service, `namespace/name`.
    pub service: String,
    /// The service port's name, which names the endpoint port too.
    pub port_name: String,
    /// Where to listen.
    pub address: SocketAddr,
    /// The interface the listener is bound to: each cluster's cluster IPs live on its own
    /// pod bridge, and binding to it lets two clusters on one machine use the same address.
    pub device: Option<String>,
}

/// The TCP ports of a service, as (port, port name).
pub(crate) fn tcp_ports(service: &Service) -> Vec<(u16, String)> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| Some((u16::try_from(p.port).ok()?, p.name.unwrap_or_default())))
        .collect()
}

/// `namespace/name` of a service.
pub(crate) fn service_key(service: &Service) -> String {
    format!(
        "{}/{}",
        service.namespace().unwrap_or_default(),
        service.name_any()
    )
}

/// Opens the frontend's listening socket.
pub(crate) fn listen(frontend: &Frontend) -> std::io::Result<TcpListener> {
    let socket = match frontend.address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    if let Some(device) = &frontend.device {
        socket.bind_device(Some(device.as_bytes()))?;
    }
    socket.bind(frontend.address)?;
    socket.listen(1024)
}

/// Accepts connections and passes each to the next ready endpoint; a connection that finds
/// no ready endpoint is closed, as a connection to a service without endpoints is refused.
pub(crate) async fn serve(listener: TcpListener, frontend: Frontend, slices: Store<EndpointSlice>) {
    let turn = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((inbound, peer)) = listener.accept().await else {
            continue;
        };
        let backends = ready_endpoints(&slices, &frontend.service, Some(&frontend.port_name));
        if backends.is_empty() {
            tracing::debug!(service = %frontend.service, %peer, "no ready endpoints; closing connection");
            continue;
        }
        let backend = backends[turn.fetch_add(1, Ordering::Relaxed) % backends.len()];
        tokio::spawn(async move {
            match TcpStream::connect(backend).await {
                Ok(mut outbound) => {
                    let mut inbound = inbound;
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                Err(e) => tracing::debug!(%backend, "cannot reach endpoint: {e}"),
            }
        });
    }
}

/// The ready endpoints of a service (`namespace/name`), in a stable order: with a port name,
/// the addresses with that port's number; without, the addresses alone (port 0), for DNS.
pub(crate) fn ready_endpoints(
    slices: &Store<EndpointSlice>,
    service: &str,
    port_name: Option<&str>,
) -> Vec<SocketAddr> {
    let (namespace, name) = service.split_once('/').unwrap_or_default();
    let mut out = BTreeSet::new();
    for slice in slices.state().iter().filter(|s| {
        s.namespace().as_deref() == Some(namespace)
            && s.labels()
                .get("kubernetes.io/service-name")
                .map(String::as_str)
                == Some(name)
    }) {
        let port = match port_name {
            None => Some(0),
            Some(wanted) => slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref().unwrap_or_default() == wanted)
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok()),
        };
        let Some(port) = port else { continue };
        for endpoint in &slice.endpoints {
            if endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse::<IpAddr>() {
                    out.insert(SocketAddr::new(ip, port));
                }
            }
        }
    }
    out.into_iter().collect()
}
