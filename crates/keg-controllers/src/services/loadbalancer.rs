//! Load balancers: a Service of type LoadBalancer gets an address of this machine in
//! `status.loadBalancer.ingress`, and keg listens there on each service port. This is what
//! AWS's load balancer does for the seed: `kubectl get svc` shows the EXTERNAL-IP and the
//! browser reaches swagger-ui through it.

use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::proxy::{Frontend, service_key, tcp_ports};

pub(crate) fn is_load_balancer(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
        && service.meta().deletion_timestamp.is_none()
}

/// A listener at `address` for each TCP port of each load balancer.
pub(crate) fn frontends(services: &[std::sync::Arc<Service>], address: IpAddr) -> Vec<Frontend> {
    services
        .iter()
        .filter(|s| is_load_balancer(s))
        .flat_map(|service| {
            tcp_ports(service)
                .into_iter()
                .map(|(port, port_name)| Frontend {
                    service: service_key(service),
                    port_name,
                    address: SocketAddr::new(address, port),
                    device: None,
                })
        })
        .collect()
}

/// Sets the ingress address, with upstream's EnsuringLoadBalancer / EnsuredLoadBalancer events.
pub(crate) async fn ensure_status(
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
