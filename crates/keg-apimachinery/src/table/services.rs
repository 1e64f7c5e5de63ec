//! Networking: Service, Endpoints, EndpointSlice, Ingress, IngressClass, NetworkPolicy,
//! ServiceCIDR.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Col;
use super::helpers::{
    age, arr_at, at, format_label_selector, format_labels, int_at, list_with_more, name, str_at,
    str_or,
};

pub(super) const SERVICE: &[Col] = &[
    Col::NAME,
    Col::new(
        "Type",
        "string",
        "type determines how the Service is exposed. Defaults to ClusterIP.",
    ),
    Col::new(
        "Cluster-IP",
        "string",
        "clusterIP is the IP address of the service and is usually assigned randomly.",
    ),
    Col::new(
        "External-IP",
        "string",
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
    ),
    Col::new(
        "Port(s)",
        "string",
        "The list of ports that are exposed by this service.",
    ),
    Col::AGE,
    Col::new(
        "Selector",
        "string",
        "Route service traffic to pods with label keys and values matching this selector.",
    )
    .wide(),
];

pub(super) fn service(obj: &Value, now: Timestamp) -> Vec<Value> {
    let kind = str_or(obj, "spec.type", "ClusterIP");
    // clusterIPs is the source of truth; clusterIP is its single-stack spelling.
    let cluster_ip = match arr_at(obj, "spec.clusterIPs").first() {
        Some(ip) => ip.as_str().unwrap_or(""),
        None => str_or(obj, "spec.clusterIP", "<none>"),
    };
    let ports = arr_at(obj, "spec.ports")
        .iter()
        .map(|p| {
            let protocol = str_or(p, "protocol", "TCP");
            match int_at(p, "nodePort") {
                n if n > 0 => format!("{}:{n}/{protocol}", int_at(p, "port")),
                _ => format!("{}/{protocol}", int_at(p, "port")),
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    vec![
        name(obj),
        json!(kind),
        json!(cluster_ip),
        json!(external_ip(obj, kind)),
        json!(if ports.is_empty() {
            "<none>".to_owned()
        } else {
            ports
        }),
        age(obj, now),
        json!(format_labels(at(obj, "spec.selector"))),
    ]
}

/// Upstream's `getServiceExternalIP`, unclipped as the server prints wide.
fn external_ip(obj: &Value, kind: &str) -> String {
    let external: Vec<&str> = arr_at(obj, "spec.externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match kind {
        "ClusterIP" | "NodePort" if !external.is_empty() => external.join(","),
        "ClusterIP" | "NodePort" => "<none>".to_owned(),
        "LoadBalancer" => {
            let mut all = load_balancer_ips(at(obj, "status.loadBalancer"));
            all.extend(external.iter().map(|s| s.to_string()));
            if all.is_empty() {
                "<pending>".to_owned()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(obj, "spec.externalName").to_owned(),
        _ => "<unknown>".to_owned(),
    }
}

/// The sorted, distinct IPs (or hostnames) of a load balancer's ingress points.
fn load_balancer_ips(status: &Value) -> Vec<String> {
    let set: BTreeSet<&str> = arr_at(status, "ingress")
        .iter()
        .map(|i| match str_at(i, "ip") {
            "" => str_at(i, "hostname"),
            ip => ip,
        })
        .filter(|s| !s.is_empty())
        .collect();
    set.into_iter().map(str::to_owned).collect()
}

pub(super) const ENDPOINTS: &[Col] = &[
    Col::NAME,
    Col::new(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets.",
    ),
    Col::AGE,
];

pub(super) fn endpoints(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), json!(format_endpoints(obj)), age(obj, now)]
}

/// Upstream's `formatEndpoints`: the first three `ip:port` pairs and how many more there are.
fn format_endpoints(obj: &Value) -> String {
    const MAX: usize = 3;
    let subsets = arr_at(obj, "subsets");
    if subsets.is_empty() {
        return "<none>".to_owned();
    }
    let mut list = Vec::new();
    let mut count = 0;
    for subset in subsets {
        let addresses = arr_at(subset, "addresses");
        let ports = arr_at(subset, "ports");
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            list.extend(addresses.iter().map(|a| str_at(a, "ip").to_owned()));
            continue;
        }
        for port in ports {
            count += addresses.len();
            for addr in addresses {
                let ip = str_at(addr, "ip");
                let port = int_at(port, "port");
                list.push(if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                });
            }
        }
    }
    list.truncate(MAX);
    let shown = list.join(",");
    if count > MAX {
        format!("{shown} + {} more...", count - MAX)
    } else {
        shown
    }
}

pub(super) const ENDPOINT_SLICE: &[Col] = &[
    Col::NAME,
    Col::new(
        "AddressType",
        "string",
        "addressType specifies the type of address carried by this EndpointSlice.",
    ),
    Col::new(
        "Ports",
        "string",
        "ports specifies the list of network ports exposed by each endpoint in this slice.",
    ),
    Col::new(
        "Endpoints",
        "string",
        "endpoints is a list of unique endpoints in this slice.",
    ),
    Col::AGE,
];

pub(super) fn endpoint_slice(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ports: Vec<String> = arr_at(obj, "ports")
        .iter()
        .map(|p| match (&p["port"], p["name"].as_str()) {
            (Value::Number(n), _) => n.to_string(),
            (_, Some(name)) => name.to_owned(),
            _ => "*".to_owned(),
        })
        .collect();
    let addresses: Vec<String> = arr_at(obj, "endpoints")
        .iter()
        .flat_map(|e| arr_at(e, "addresses"))
        .map(|a| a.as_str().unwrap_or("").to_owned())
        .collect();
    vec![
        name(obj),
        json!(str_at(obj, "addressType")),
        json!(list_with_more(&ports, ports.len(), 3)),
        json!(list_with_more(&addresses, addresses.len(), 3)),
        age(obj, now),
    ]
}

pub(super) const INGRESS: &[Col] = &[
    Col::NAME,
    Col::new(
        "Class",
        "string",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    Col::new(
        "Hosts",
        "string",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    Col::new(
        "Address",
        "string",
        "Address is a list containing ingress points for the load-balancer",
    ),
    Col::new("Ports", "string", "Ports of TLS configurations that open"),
    Col::AGE,
];

pub(super) fn ingress(obj: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 3;
    let rules = arr_at(obj, "spec.rules");
    // Up to three hosts, skipping rules without one; "more" once a rule follows a full list.
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
            break;
        }
        match str_at(rule, "host") {
            "" => {}
            host => hosts.push(host),
        }
    }
    let hosts = if hosts.is_empty() {
        "*".to_owned()
    } else if more {
        format!("{} + {} more...", hosts.join(","), rules.len() - MAX)
    } else {
        hosts.join(",")
    };
    let ports = if arr_at(obj, "spec.tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(obj),
        json!(
            at(obj, "spec.ingressClassName")
                .as_str()
                .unwrap_or("<none>")
        ),
        json!(hosts),
        json!(load_balancer_ips(at(obj, "status.loadBalancer")).join(",")),
        json!(ports),
        age(obj, now),
    ]
}

pub(super) const INGRESS_CLASS: &[Col] = &[
    Col::NAME,
    Col::new(
        "Controller",
        "string",
        "Controller that is responsible for handling this class",
    ),
    Col::new(
        "Parameters",
        "string",
        "A reference to a resource with additional parameters",
    ),
    Col::AGE,
];

pub(super) fn ingress_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    let params = at(obj, "spec.parameters");
    let parameters = if params.is_null() {
        "<none>".to_owned()
    } else {
        let group = params["apiGroup"]
            .as_str()
            .map(|g| format!(".{g}"))
            .unwrap_or_default();
        format!(
            "{}{group}/{}",
            str_at(params, "kind"),
            str_at(params, "name")
        )
    };
    vec![
        name(obj),
        json!(str_at(obj, "spec.controller")),
        json!(parameters),
        age(obj, now),
    ]
}

pub(super) const NETWORK_POLICY: &[Col] = &[
    Col::NAME,
    Col::new(
        "Pod-Selector",
        "string",
        "Selects the pods to which this NetworkPolicy object applies.",
    ),
    Col::AGE,
];

pub(super) fn network_policy(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        json!(format_label_selector(at(obj, "spec.podSelector"))),
        age(obj, now),
    ]
}

pub(super) const SERVICE_CIDR: &[Col] = &[
    Col::NAME,
    Col::new(
        "CIDRs",
        "string",
        "CIDRs defines the IP blocks in CIDR notation from which to assign service cluster IPs.",
    ),
    Col::AGE,
];

pub(super) fn service_cidr(obj: &Value, now: Timestamp) -> Vec<Value> {
    let cidrs: Vec<&str> = arr_at(obj, "spec.cidrs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    vec![name(obj), json!(cidrs.join(",")), age(obj, now)]
}
