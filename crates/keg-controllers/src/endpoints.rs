//! The Endpoints controller, as upstream's: for each Service with a selector, an Endpoints
//! object of the same name listing its pods' addresses, ready ones under `addresses` and the
//! others under `notReadyAddresses`, with each service port resolved per pod (a number, or a
//! container port's name), packed into subsets as upstream's RepackSubsets does. Endpoints
//! whose Service is gone are deleted.
//!
//! Also the pod-to-service helpers the EndpointSlice controller shares.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::{Result, gone_is_fine, pods};

/// The label marking the endpoints of a headless Service.
pub const HEADLESS: &str = "service.kubernetes.io/headless";

struct Context {
    client: Client,
}

/// Runs the controller until the process ends.
pub async fn run(client: Client) {
    let services: Api<Service> = Api::all(client.clone());
    let controller = Controller::new(services, watcher::Config::default());
    let mapper = pod_mapper(controller.store());
    let ctx = Arc::new(Context {
        client: client.clone(),
    });
    let controller = controller
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            mapper,
        )
        .watches(
            Api::<Endpoints>::all(client.clone()),
            watcher::Config::default(),
            |ep: Endpoints| {
                Some(
                    ObjectRef::<Service>::new(&ep.name_any())
                        .within(&ep.namespace().unwrap_or_default()),
                )
            },
        )
        .run(
            reconcile,
            |_, error, _| crate::retry_after_error("endpoints", error),
            ctx,
        )
        .for_each(|_| async {});
    tokio::join!(controller, delete_leftovers(client));
}

/// Maps a pod to the Services that select it now and those that selected it before, so a
/// pod whose labels change leaves its old Services' endpoints too.
pub(crate) fn pod_mapper(
    store: Store<Service>,
) -> impl Fn(Pod) -> Vec<ObjectRef<Service>> + Send + Sync + 'static {
    let previous: Mutex<HashMap<String, Vec<ObjectRef<Service>>>> = Mutex::default();
    move |pod: Pod| {
        let labels = pod.labels().clone();
        let now: Vec<ObjectRef<Service>> = store
            .state()
            .iter()
            .filter(|s| s.metadata.namespace == pod.metadata.namespace && selects(s, &labels))
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect();
        let uid = pod.uid().unwrap_or_default();
        let mut previous = previous.lock().expect("mapper lock");
        let mut refs = previous.remove(&uid).unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_none() || !now.is_empty() {
            previous.insert(uid, now.clone());
        }
        refs.extend(now);
        refs
    }
}

/// Whether the Service's selector (a plain map; none selects nothing) matches the labels.
fn selects(service: &Service, labels: &BTreeMap<String, String>) -> bool {
    let selector = service.spec.as_ref().and_then(|s| s.selector.as_ref());
    selector.is_some_and(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// Whether this controller (and the EndpointSlice one) manages the Service's endpoints:
/// only for a selector, and never for ExternalName.
pub(crate) fn managed(service: &Service) -> bool {
    let spec = service.spec.as_ref();
    spec.and_then(|s| s.selector.as_ref()).is_some()
        && spec.and_then(|s| s.type_.as_deref()) != Some("ExternalName")
}

/// Whether the Service is headless (no cluster IP).
pub(crate) fn is_headless(service: &Service) -> bool {
    matches!(
        service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()),
        None | Some("" | "None")
    )
}

/// The pods the Service's selector matches.
pub(crate) async fn selected_pods(client: &Client, service: &Service) -> Result<Vec<Pod>> {
    let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return Ok(vec![]);
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &service.namespace().unwrap_or_default());
    let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(pods
        .list(&ListParams::default().labels(&labels.join(",")))
        .await?
        .items)
}

/// Whether a pod belongs in endpoints at all (upstream's ShouldPodBeInEndpoints): not
/// finished, with an address, and not terminating unless those count.
pub(crate) fn in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let has_ip = pod
        .status
        .as_ref()
        .is_some_and(|s| s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty()));
    !matches!(pods::phase(pod), "Failed" | "Succeeded")
        && has_ip
        && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// The pod's port a service port targets: a number as is, a name through the pod's
/// containers' (and sidecars') ports of the same protocol (upstream's FindPort).
pub(crate) fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match port.target_port.as_ref() {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// The reference to a pod endpoints carry.
pub(crate) fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The pod's hostname, when it asks for one under this Service (its subdomain).
pub(crate) fn hostname(pod: &Pod, service: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let under_service = spec.subdomain.as_deref() == service.metadata.name.as_deref()
        && pod.metadata.namespace == service.metadata.namespace;
    spec.hostname
        .clone()
        .filter(|h| !h.is_empty() && under_service)
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action> {
    let ns = service.namespace().unwrap_or_default();
    let endpoints: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    if !managed(&service) {
        return Ok(Action::await_change());
    }
    let subsets = subsets(&service, &selected_pods(&ctx.client, &service).await?);
    let mut labels = service.labels().clone();
    if is_headless(&service) {
        labels.insert(HEADLESS.into(), String::new());
    }
    let current = endpoints.get_opt(&service.name_any()).await?;
    let desired_subsets = (!subsets.is_empty()).then_some(subsets);
    match current {
        Some(current)
            if current.subsets == desired_subsets
                && current.metadata.labels.clone().unwrap_or_default() == labels => {}
        Some(mut current) => {
            current.subsets = desired_subsets;
            current.metadata.labels = Some(labels);
            endpoints
                .replace(&service.name_any(), &PostParams::default(), &current)
                .await?;
        }
        None => {
            let new = Endpoints {
                metadata: ObjectMeta {
                    name: Some(service.name_any()),
                    namespace: Some(ns),
                    labels: Some(labels),
                    ..Default::default()
                },
                subsets: desired_subsets,
            };
            endpoints.create(&PostParams::default(), &new).await?;
        }
    }
    Ok(Action::await_change())
}

/// A service port resolved for a pod: (name, number, protocol, appProtocol).
type PortKey = (Option<String>, i32, Option<String>, Option<String>);
/// An address: (ip, pod uid).
type AddressKey = (String, String);
/// Addresses offering one port, with whether each is ready.
type Addresses = BTreeMap<AddressKey, (EndpointAddress, bool)>;
/// Addresses and the ports they all offer.
type Subset = (Addresses, Vec<EndpointPort>);

/// The address and port of every pod in endpoints, packed: addresses offering the same
/// ports share a subset (upstream's RepackSubsets), everything sorted.
fn subsets(service: &Service, selected: &[Pod]) -> Vec<EndpointSubset> {
    let mut by_addresses: BTreeMap<Vec<(AddressKey, bool)>, Subset> = BTreeMap::new();
    for ((name, port, protocol, app_protocol), addresses) in addresses_by_port(service, selected) {
        let key: Vec<_> = addresses
            .iter()
            .map(|(k, (_, ready))| (k.clone(), *ready))
            .collect();
        let entry = by_addresses
            .entry(key)
            .or_insert_with(|| (addresses, vec![]));
        if port >= 0 {
            entry.1.push(EndpointPort {
                name,
                port,
                protocol,
                app_protocol,
            });
        }
    }
    by_addresses
        .into_values()
        .map(|(addresses, ports)| {
            let (ready, not_ready): (Vec<_>, Vec<_>) =
                addresses.into_values().partition(|(_, ready)| *ready);
            let list = |v: Vec<(EndpointAddress, bool)>| {
                (!v.is_empty()).then(|| v.into_iter().map(|(a, _)| a).collect())
            };
            EndpointSubset {
                addresses: list(ready),
                not_ready_addresses: list(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// Each service port, resolved per pod, with the addresses offering it. A headless Service
/// without ports gets its addresses under a port-less key (number -1).
fn addresses_by_port(service: &Service, selected: &[Pod]) -> BTreeMap<PortKey, Addresses> {
    let spec = service.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let ports = spec.ports.unwrap_or_default();
    let mut by_port: BTreeMap<PortKey, Addresses> = BTreeMap::new();
    for pod in selected
        .iter()
        .filter(|p| in_endpoints(p, publish_not_ready))
    {
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default();
        let address = EndpointAddress {
            ip: ip.clone(),
            hostname: hostname(pod, service),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_ref(pod)),
        };
        let ready = publish_not_ready || pods::is_ready(pod);
        let key = (ip, pod.uid().unwrap_or_default());
        if ports.is_empty() && is_headless(service) {
            by_port
                .entry((None, -1, None, None))
                .or_default()
                .insert(key.clone(), (address.clone(), ready));
        }
        for port in &ports {
            if let Some(number) = find_port(pod, port) {
                let port_key = (
                    port.name.clone(),
                    number,
                    port.protocol.clone(),
                    port.app_protocol.clone(),
                );
                by_port
                    .entry(port_key)
                    .or_default()
                    .insert(key.clone(), (address.clone(), ready));
            }
        }
    }
    by_port
}

/// Deletes Endpoints whose Service is gone: when the Service's deletion is seen, and for
/// those left from before the controller started (upstream's checkLeftoverEndpoints).
async fn delete_leftovers(client: Client) {
    let services: Api<Service> = Api::all(client.clone());
    // Backoff as every other watcher here: without it a failing watch is retried in a hot
    // loop (seen: a server spinning a core while a test deleted namespaces).
    let mut events = watcher(services, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Delete(service)) => {
                let endpoints: Api<Endpoints> =
                    Api::namespaced(client.clone(), &service.namespace().unwrap_or_default());
                if let Err(e) = gone_is_fine(
                    endpoints
                        .delete(&service.name_any(), &Default::default())
                        .await,
                ) {
                    tracing::warn!(
                        "endpoints controller: deleting the endpoints of {}: {e}",
                        service.name_any()
                    );
                }
            }
            Ok(watcher::Event::InitDone) => {
                if let Err(e) = delete_orphaned(&client).await {
                    tracing::warn!("endpoints controller: deleting leftover endpoints: {e}");
                }
            }
            _ => {}
        }
    }
}

async fn delete_orphaned(client: &Client) -> Result<()> {
    let services: BTreeSet<(String, String)> = Api::<Service>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|s| (s.namespace().unwrap_or_default(), s.name_any()))
        .collect();
    for ep in Api::<Endpoints>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
    {
        let ns = ep.namespace().unwrap_or_default();
        // Leader-election records are Endpoints without a Service; upstream keeps them too.
        let leader = ep
            .annotations()
            .contains_key("control-plane.alpha.kubernetes.io/leader");
        if !leader && !services.contains(&(ns.clone(), ep.name_any())) {
            gone_is_fine(
                Api::<Endpoints>::namespaced(client.clone(), &ns)
                    .delete(&ep.name_any(), &Default::default())
                    .await,
            )?;
        }
    }
    Ok(())
}
