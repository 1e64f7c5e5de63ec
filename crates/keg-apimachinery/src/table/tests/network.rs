//! Networking, policy and autoscaling kinds.

use serde_json::{Value, json};

use super::{DAY, HOUR, cells, headers, slice};

fn meta(name: &str, age: i64) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": super::ago(age)})
}

#[test]
fn services() {
    assert_eq!(
        headers("Service"),
        [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector*"
        ]
    );
    let svc = |spec: Value, status: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("web", DAY), "spec": spec, "status": status});
    let cluster_ip = svc(
        json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
               "selector": {"k8s-app": "kube-dns"},
               "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                         {"name": "metrics", "port": 9153, "protocol": "TCP"}]}),
        json!({}),
    );
    assert_eq!(
        cells("Service", cluster_ip),
        json!([
            "web",
            "ClusterIP",
            "10.96.0.10",
            "<none>",
            "53/UDP,53/TCP,9153/TCP",
            "24h",
            "k8s-app=kube-dns"
        ])
    );
    let node_port = svc(
        json!({"type": "NodePort", "clusterIPs": ["10.96.12.34"], "externalIPs": ["192.0.2.10"],
               "ports": [{"port": 80, "nodePort": 31234, "protocol": "TCP"}]}),
        json!({}),
    );
    assert_eq!(
        slice(cells("Service", node_port), 1..5),
        json!(["NodePort", "10.96.12.34", "192.0.2.10", "80:31234/TCP"])
    );

    let pending_lb = svc(
        json!({"type": "LoadBalancer", "clusterIPs": ["10.96.1.1"], "ports": [{"port": 443, "nodePort": 30443}]}),
        json!({"loadBalancer": {}}),
    );
    assert_eq!(
        slice(cells("Service", pending_lb), 3..5),
        json!(["<pending>", "443:30443/TCP"])
    );
    let lb = svc(
        json!({"type": "LoadBalancer", "clusterIPs": ["10.96.1.1"], "externalIPs": ["198.51.100.1"], "ports": [{"port": 80, "protocol": "TCP"}]}),
        json!({"loadBalancer": {"ingress": [{"hostname": "abc.elb.amazonaws.com"}, {"ip": "203.0.113.5"}, {"ip": "203.0.113.5"}]}}),
    );
    assert_eq!(
        cells("Service", lb)[3],
        "203.0.113.5,abc.elb.amazonaws.com,198.51.100.1"
    );

    let ordered = svc(
        json!({"clusterIPs": ["10.96.0.2"], "selector": {"app.kubernetes.io/name": "x", "app": "y"}}),
        json!({}),
    );
    assert_eq!(
        cells("Service", ordered)[6],
        "app=y,app.kubernetes.io/name=x"
    );
    let headless = svc(
        json!({"clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "db"}}),
        json!({}),
    );
    assert_eq!(
        slice(cells("Service", headless), 1..5),
        json!(["ClusterIP", "None", "<none>", "<none>"])
    );
    let external = svc(
        json!({"type": "ExternalName", "externalName": "db.example.com"}),
        json!({}),
    );
    assert_eq!(
        slice(cells("Service", external), 1..5),
        json!(["ExternalName", "<none>", "db.example.com", "<none>"])
    );
}

#[test]
fn endpoints_and_slices() {
    let ep = json!({
        "metadata": meta("web", HOUR),
        "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]},
            {"addresses": [{"ip": "fd00::3"}], "ports": [{"port": 8080}]},
        ],
    });
    assert_eq!(
        cells("Endpoints", ep),
        json!([
            "web",
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...",
            "60m"
        ])
    );
    let two = json!({"metadata": meta("db", HOUR), "subsets": [{"addresses": [{"ip": "fd00::3"}], "ports": [{"port": 5432}]}]});
    assert_eq!(cells("Endpoints", two)[1], "[fd00::3]:5432");
    assert_eq!(
        cells("Endpoints", json!({"metadata": meta("none", HOUR)}))[1],
        "<none>"
    );

    assert_eq!(
        headers("EndpointSlice"),
        ["Name", "AddressType", "Ports", "Endpoints", "Age"]
    );
    let eps = json!({
        "metadata": meta("web-abc12", HOUR), "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "named"}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}, {"addresses": ["10.0.0.3"]}, {"addresses": ["10.0.0.4"]}],
    });
    assert_eq!(
        cells("EndpointSlice", eps),
        json!([
            "web-abc12",
            "IPv4",
            "80,named",
            "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
            "60m"
        ])
    );
    let empty = json!({"metadata": meta("e", HOUR), "addressType": "IPv6"});
    assert_eq!(
        slice(cells("EndpointSlice", empty), 2..4),
        json!(["<unset>", "<unset>"])
    );
}

#[test]
fn policy_networking_autoscaling() {
    let pdb = json!({"metadata": meta("web", DAY), "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
    assert_eq!(
        cells("PodDisruptionBudget", pdb),
        json!(["web", "50%", "N/A", 1, "24h"])
    );

    assert_eq!(
        headers("Ingress"),
        ["Name", "Class", "Hosts", "Address", "Ports", "Age"]
    );
    let ing = json!({
        "metadata": meta("web", DAY),
        "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
                 "rules": [{"host": "a.example.com"}, {}, {"host": "b.example.com"}, {"host": "c.example.com"}, {"host": "d.example.com"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}},
    });
    assert_eq!(
        cells("Ingress", ing),
        json!([
            "web",
            "nginx",
            "a.example.com,b.example.com,c.example.com + 2 more...",
            "203.0.113.9",
            "80, 443",
            "24h"
        ])
    );
    let plain = json!({"metadata": meta("p", DAY), "spec": {"defaultBackend": {}}});
    assert_eq!(
        slice(cells("Ingress", plain), 1..5),
        json!(["<none>", "*", "", "80"])
    );

    let np = json!({"metadata": meta("deny", DAY), "spec": {"podSelector": {}}});
    assert_eq!(cells("NetworkPolicy", np), json!(["deny", "<none>", "24h"]));

    assert_eq!(
        headers("HorizontalPodAutoscaler"),
        [
            "Name",
            "Reference",
            "Targets",
            "MinPods",
            "MaxPods",
            "Replicas",
            "Age"
        ]
    );
    let v2 = json!({
        "apiVersion": "autoscaling/v2", "metadata": meta("web", DAY),
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 10,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
                             {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                             {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "100"}}}]},
        "status": {"currentReplicas": 3, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45, "averageValue": "90m"}}}]},
    });
    assert_eq!(
        cells("HorizontalPodAutoscaler", v2),
        json!([
            "web",
            "Deployment/web",
            "cpu: 45%/60%, memory: <unknown>/500Mi + 1 more...",
            "2",
            10,
            3,
            "24h"
        ])
    );
    let v1 = json!({"apiVersion": "autoscaling/v1", "metadata": meta("api", DAY),
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 5}, "status": {"currentReplicas": 1}});
    assert_eq!(
        slice(cells("HorizontalPodAutoscaler", v1), 2..4),
        json!(["cpu: <unknown>/80%", "1"])
    );
}
