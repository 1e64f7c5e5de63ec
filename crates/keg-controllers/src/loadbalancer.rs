//! The load-balancer controller: a Service of type LoadBalancer gets an address of this
//! machine in `status.loadBalancer.ingress`, and keg listens there on each service port,
//! passing every connection to a ready endpoint of the service, taken in turn. This is what
//! AWS's load balancer does for the seed: `kubectl get svc` shows the EXTERNAL-IP and the
//! browser reaches swagger-ui through it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::follow;

use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// One listening port: the service (`namespace/name`) and its port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Frontend {
    service: String,
    port: u16,
    port_name: String,
}

/// Runs the controller until the process ends, giving load balancers the address `address`.
pub async fn run(client: Client, address: IpAddr) {
    let (changed, mut changes) = watch::channel(0u64);
    let changed = Arc::new(changed);
    let services: Store<Service> = follow(Api::all(client.clone()), changed.clone());
    let slices: Store<EndpointSlice> = follow(Api::all(client.clone()), changed);
    let _ = services.wait_until_ready().await;
    let _ = slices.wait_until_ready().await;
    let events = Recorder::new(
        client.clone(),
        Reporter {
            controller: "service-controller".into(),
            instance: None,
        },
    );
    let mut listeners: BTreeMap<Frontend, JoinHandle<()>> = BTreeMap::new();
    loop {
        let wanted = frontends(&services);
        listeners.retain(|frontend, task| {
            let keep = wanted.contains(frontend);
            if !keep {
                tracing::info!(service = %frontend.service, port = frontend.port, "closing load balancer port");
                task.abort();
            }
            keep
        });
        for frontend in wanted {
            if listeners.contains_key(&frontend) {
                continue;
            }
            match TcpListener::bind(SocketAddr::new(address, frontend.port)).await {
                Ok(listener) => {
                    tracing::info!(service = %frontend.service, port = frontend.port, "load balancer listening");
                    let task = tokio::spawn(serve(listener, frontend.clone(), slices.clone()));
                    listeners.insert(frontend, task);
                }
                Err(e) => {
                    tracing::warn!(service = %frontend.service, port = frontend.port, "cannot listen: {e}")
                }
            }
        }
        for service in services.state().iter().filter(|s| is_load_balancer(s)) {
            if let Err(e) = ensure_status(&client, &events, service, address).await {
                tracing::warn!(service = %service.name_any(), "load balancer status: {e}");
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

fn is_load_balancer(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
        && service.meta().deletion_timestamp.is_none()
}

fn frontends(services: &Store<Service>) -> Vec<Frontend> {
    let mut out = Vec::new();
    for service in services.state().iter().filter(|s| is_load_balancer(s)) {
        let key = format!(
            "{}/{}",
            service.namespace().unwrap_or_default(),
            service.name_any()
        );
        for port in service
            .spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default()
        {
            if port.protocol.as_deref().unwrap_or("TCP") != "TCP" {
                continue;
            }
            if let Ok(number) = u16::try_from(port.port) {
                out.push(Frontend {
                    service: key.clone(),
                    port: number,
                    port_name: port.name.clone().unwrap_or_default(),
                });
            }
        }
    }
    out
}

/// Sets the ingress address, with upstream's EnsuringLoadBalancer / EnsuredLoadBalancer events.
async fn ensure_status(
    client: &Client,
    events: &Recorder,
    service: &Service,
    address: IpAddr,
) -> crate::Result<()> {
    let current = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    if current.is_some_and(|ingress| {
        ingress
            .iter()
            .any(|i| i.ip.as_deref() == Some(address.to_string().as_str()))
    }) {
        return Ok(());
    }
    let reference = service.object_ref(&());
    publish(
        events,
        &reference,
        "EnsuringLoadBalancer",
        "Ensuring load balancer",
    )
    .await;
    let api: Api<Service> =
        Api::namespaced(client.clone(), &service.namespace().unwrap_or_default());
    let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": address.to_string(), "ipMode": "VIP"}]}}});
    api.patch_status(
        &service.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    publish(
        events,
        &reference,
        "EnsuredLoadBalancer",
        "Ensured load balancer",
    )
    .await;
    Ok(())
}

async fn publish(
    events: &Recorder,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    reason: &str,
    message: &str,
) {
    let event = Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(message.into()),
        action: "EnsureLoadBalancer".into(),
        secondary: None,
    };
    if let Err(e) = events.publish(&event, reference).await {
        tracing::warn!("recording {reason}: {e}");
    }
}

/// Accepts connections and passes each to the next ready endpoint.
async fn serve(listener: TcpListener, frontend: Frontend, slices: Store<EndpointSlice>) {
    let turn = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((inbound, peer)) = listener.accept().await else {
            continue;
        };
        let backends = ready_backends(&slices, &frontend);
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
                Err(e) => tracing::debug!(%backend, "load balancer cannot reach endpoint: {e}"),
            }
        });
    }
}

/// The ready endpoints of the frontend's service port, in a stable order.
fn ready_backends(slices: &Store<EndpointSlice>, frontend: &Frontend) -> Vec<SocketAddr> {
    let (namespace, name) = frontend.service.split_once('/').unwrap_or_default();
    let mut out: HashMap<SocketAddr, ()> = HashMap::new();
    for slice in slices.state().iter().filter(|s| {
        s.namespace().as_deref() == Some(namespace)
            && s.labels()
                .get("kubernetes.io/service-name")
                .map(String::as_str)
                == Some(name)
    }) {
        let port = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.clone().unwrap_or_default() == frontend.port_name)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok());
        let Some(port) = port else { continue };
        for endpoint in &slice.endpoints {
            if endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse::<IpAddr>() {
                    out.insert(SocketAddr::new(ip, port), ());
                }
            }
        }
    }
    let mut backends: Vec<SocketAddr> = out.into_keys().collect();
    backends.sort();
    backends
}
