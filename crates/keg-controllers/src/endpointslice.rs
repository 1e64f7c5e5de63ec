//! The EndpointSlice controller, as upstream's: for each Service with a selector, slices of
//! at most 100 endpoints per address type and port set, labelled with the Service's name and
//! this controller, owned by the Service (so they go with it). Endpoints carry upstream's
//! ready, serving and terminating conditions; terminating pods stay listed, not ready.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::endpoints::{self, HEADLESS};
use crate::{Result, gone_is_fine, owners, pods};

/// The label naming a slice's Service.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The label naming who manages a slice.
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's name in that label.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Endpoints per slice (upstream's default --max-endpoints-per-slice).
const MAX_ENDPOINTS: usize = 100;
/// The node label of a zone.
const ZONE: &str = "topology.kubernetes.io/zone";

struct Context {
    client: Client,
}

/// Runs the controller until the process ends.
pub async fn run(client: Client) {
    let services: Api<Service> = Api::all(client.clone());
    let controller = Controller::new(services, watcher::Config::default());
    let mapper = endpoints::pod_mapper(controller.store());
    controller
        .owns(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default().labels(&format!("{MANAGED_BY}={CONTROLLER_NAME}")),
        )
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            mapper,
        )
        .run(
            reconcile,
            |_, error, _| crate::retry_after_error("endpointslice", error),
            Arc::new(Context { client }),
        )
        .for_each(|_| async {})
        .await;
}

/// A slice's identity for reuse: address type and ports.
type Shape = (
    String,
    Vec<(Option<String>, Option<i32>, Option<String>, Option<String>)>,
);

fn shape(address_type: &str, ports: &[EndpointPort]) -> Shape {
    let mut ports: Vec<_> = ports
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.port,
                p.protocol.clone(),
                p.app_protocol.clone(),
            )
        })
        .collect();
    ports.sort();
    (address_type.to_string(), ports)
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action> {
    if !endpoints::managed(&service) {
        return Ok(Action::await_change());
    }
    let ns = service.namespace().unwrap_or_default();
    let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let selected = endpoints::selected_pods(&ctx.client, &service).await?;
    let desired = desired_slices(&ctx.client, &service, &selected).await?;
    let managed = format!(
        "{SERVICE_NAME}={},{MANAGED_BY}={CONTROLLER_NAME}",
        service.name_any()
    );
    let mut existing = slices
        .list(&ListParams::default().labels(&managed))
        .await?
        .items;
    for slice in desired {
        let wanted = shape(
            &slice.address_type,
            slice.ports.as_deref().unwrap_or_default(),
        );
        let reusable = existing
            .iter()
            .position(|s| shape(&s.address_type, s.ports.as_deref().unwrap_or_default()) == wanted);
        match reusable.map(|i| existing.remove(i)) {
            Some(current) if same(&current, &slice) => {}
            Some(mut current) => {
                current.endpoints = slice.endpoints;
                current.metadata.labels = slice.metadata.labels;
                current.metadata.owner_references = slice.metadata.owner_references;
                slices
                    .replace(&current.name_any(), &PostParams::default(), &current)
                    .await?;
            }
            None => {
                slices.create(&PostParams::default(), &slice).await?;
            }
        }
    }
    for stale in existing {
        gone_is_fine(slices.delete(&stale.name_any(), &Default::default()).await)?;
    }
    Ok(Action::await_change())
}

fn same(current: &EndpointSlice, desired: &EndpointSlice) -> bool {
    current.endpoints == desired.endpoints
        && current.metadata.labels == desired.metadata.labels
        && current.metadata.owner_references == desired.metadata.owner_references
}

/// The slices the Service should have: per address type, endpoints grouped by the ports
/// they resolve to, 100 a slice; one empty slice when there are none.
async fn desired_slices(
    client: &Client,
    service: &Service,
    selected: &[Pod],
) -> Result<Vec<EndpointSlice>> {
    let spec = service.spec.clone().unwrap_or_default();
    let families = spec
        .ip_families
        .clone()
        .unwrap_or_else(|| vec!["IPv4".into()]);
    let mut zones = Zones::new(client);
    let mut slices = Vec::new();
    for family in families {
        let mut by_ports: BTreeMap<Shape, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
        for pod in selected.iter().filter(|p| endpoints::in_endpoints(p, true)) {
            let Some(ip) = pod_ip(pod, &family) else {
                continue;
            };
            let ports: Vec<EndpointPort> = spec
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    let number = endpoints::find_port(pod, p)?;
                    Some(EndpointPort {
                        name: p.name.clone(),
                        port: Some(number),
                        protocol: p.protocol.clone(),
                        app_protocol: p.app_protocol.clone(),
                    })
                })
                .collect();
            let endpoint = endpoint(service, pod, ip, zones.of(pod).await);
            by_ports
                .entry(shape(&family, &ports))
                .or_insert_with(|| (ports, vec![]))
                .1
                .push(endpoint);
        }
        if by_ports.is_empty() {
            slices.push(slice(service, &family, vec![], vec![]));
        }
        for (ports, mut list) in by_ports.into_values() {
            list.sort_by(|a, b| {
                (&a.addresses, a.target_ref.as_ref().map(|r| &r.uid))
                    .cmp(&(&b.addresses, b.target_ref.as_ref().map(|r| &r.uid)))
            });
            for chunk in list.chunks(MAX_ENDPOINTS) {
                slices.push(slice(service, &family, ports.clone(), chunk.to_vec()));
            }
        }
    }
    Ok(slices)
}

/// The pod's address of an IP family.
fn pod_ip(pod: &Pod, family: &str) -> Option<String> {
    let status = pod.status.as_ref()?;
    let mut ips: Vec<String> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.clone())
        .collect();
    if ips.is_empty() {
        ips.extend(status.pod_ip.clone());
    }
    ips.into_iter()
        .find(|ip| ip.contains(':') == (family == "IPv6"))
}

fn endpoint(service: &Service, pod: &Pod, ip: String, zone: Option<String>) -> Endpoint {
    let publish_not_ready = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let serving = publish_not_ready || pods::is_ready(pod);
    Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(publish_not_ready || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: endpoints::hostname(pod, service),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(endpoints::pod_ref(pod)),
        zone,
        ..Default::default()
    }
}

fn slice(
    service: &Service,
    family: &str,
    ports: Vec<EndpointPort>,
    list: Vec<Endpoint>,
) -> EndpointSlice {
    let mut labels: BTreeMap<String, String> = service
        .labels()
        .iter()
        .filter(|(k, _)| *k != SERVICE_NAME && *k != MANAGED_BY)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(SERVICE_NAME.into(), service.name_any());
    labels.insert(MANAGED_BY.into(), CONTROLLER_NAME.into());
    if endpoints::is_headless(service) {
        labels.insert(HEADLESS.into(), String::new());
    }
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", service.name_any())),
            namespace: service.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![owners::controller_ref(service)]),
            ..Default::default()
        },
        address_type: family.into(),
        endpoints: list,
        ports: Some(ports),
    }
}

/// Zones of nodes, read once per sync.
struct Zones<'a> {
    client: &'a Client,
    known: HashMap<String, Option<String>>,
}

impl<'a> Zones<'a> {
    fn new(client: &'a Client) -> Zones<'a> {
        Zones {
            client,
            known: HashMap::new(),
        }
    }

    async fn of(&mut self, pod: &Pod) -> Option<String> {
        let node = pod.spec.as_ref()?.node_name.clone()?;
        if let Some(zone) = self.known.get(&node) {
            return zone.clone();
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        // A missing node (or a failed read) only leaves the zone out.
        let zone = nodes
            .get_opt(&node)
            .await
            .ok()
            .flatten()
            .and_then(|n| n.labels().get(ZONE).cloned());
        self.known.insert(node, zone.clone());
        zone
    }
}
