//! Cluster DNS, as CoreDNS's kubernetes plugin answers it: `<service>.<namespace>.svc.<domain>`
//! is the service's cluster IP (a headless service's ready endpoints), an ExternalName service
//! is a CNAME, `<a-b-c-d>.<namespace>.pod.<domain>` is that address; a headless service's
//! endpoints have names of their own, `<hostname>.<service>.<namespace>.svc.<domain>` (a
//! StatefulSet's `web-0.web...`) or the dashed address; `_<port>._<proto>.<service>...` is an
//! SRV record per named port (per endpoint when headless); every other name in the domain
//! does not exist. Names outside the domain go to the machine's own resolvers. It
//! listens on the pod bridge's address, which is every pod's nameserver (ClusterFirst).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::cluster_ip::cluster_ip;
use super::proxy::ready_endpoints;

/// CoreDNS's default TTL for cluster records.
const TTL: u32 = 5;
/// How long an upstream resolver gets to answer a forwarded query.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// What the DNS server knows and where it sends the rest.
#[derive(Clone)]
pub(crate) struct Resolver {
    /// The cluster domain, e.g. `cluster.local`.
    pub domain: String,
    /// The machine's resolvers, for names outside the domain.
    pub upstream: Vec<SocketAddr>,
    pub services: Store<Service>,
    pub slices: Store<EndpointSlice>,
}

/// What a name in the cluster domain resolves to.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    Addresses(Vec<IpAddr>),
    Alias(String),
    /// SRV records: port and target name, with the target's address when it is known.
    Services(Vec<(u16, String, Option<IpAddr>)>),
    NoSuchName,
    /// Not in the cluster domain: the upstream resolvers answer it.
    Outside,
}

/// Answers queries on `socket` until the process ends.
pub(crate) async fn serve(socket: UdpSocket, resolver: Resolver) {
    let socket = Arc::new(socket);
    let mut buffer = vec![0u8; 4096];
    loop {
        let Ok((length, peer)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        let query = buffer[..length].to_vec();
        match resolver.answer(&query) {
            Some(reply) => {
                let _ = socket.send_to(&reply, peer).await;
            }
            None => {
                let (socket, upstream) = (socket.clone(), resolver.upstream.clone());
                tokio::spawn(async move {
                    if let Some(reply) = forward(&query, &upstream).await {
                        let _ = socket.send_to(&reply, peer).await;
                    }
                });
            }
        }
    }
}

/// Answers queries over TCP (each message behind its two-byte length, RFC 7766) until the
/// process ends.
pub(crate) async fn serve_tcp(listener: TcpListener, resolver: Resolver) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_connection(stream, resolver.clone()));
    }
}

/// Answers one client's queries in turn until it closes or idles past the upstream timeout.
async fn serve_connection(mut stream: TcpStream, resolver: Resolver) {
    loop {
        let mut length = [0u8; 2];
        let read = tokio::time::timeout(UPSTREAM_TIMEOUT, stream.read_exact(&mut length)).await;
        if !matches!(read, Ok(Ok(_))) {
            return;
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        let reply = match resolver.answer(&query) {
            Some(reply) => Some(reply),
            None => forward(&query, &resolver.upstream).await,
        };
        let Some(reply) = reply else { return };
        let Ok(length) = u16::try_from(reply.len()) else {
            return;
        };
        let mut framed = length.to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

impl Resolver {
    /// The reply to a query, or None when the upstream resolvers must answer it.
    fn answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        let request = match Message::from_vec(query) {
            Ok(request) => request,
            Err(_) if query.len() >= 2 => {
                let id = u16::from_be_bytes([query[0], query[1]]);
                let reply =
                    Message::error_msg(id, hickory_proto::op::OpCode::Query, ResponseCode::FormErr);
                return reply.to_vec().ok();
            }
            Err(_) => return None,
        };
        if request.metadata.message_type != MessageType::Query {
            return None;
        }
        let [question] = request.queries.as_slice() else {
            return None; // not for us to judge: upstream answers or refuses
        };
        let lookup = self.lookup(&question.name.to_lowercase().to_ascii());
        if lookup == Lookup::Outside {
            return None;
        }
        let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
        reply.metadata.authoritative = true;
        reply.metadata.recursion_desired = request.metadata.recursion_desired;
        reply.metadata.recursion_available = true;
        reply.add_query(question.clone());
        let name = question.name.clone();
        match lookup {
            Lookup::Addresses(addresses) => {
                for address in addresses {
                    let data = match (address, question.query_type) {
                        (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(v4)),
                        (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => {
                            RData::AAAA(AAAA(v6))
                        }
                        _ => continue,
                    };
                    reply.add_answer(Record::from_rdata(name.clone(), TTL, data));
                }
            }
            Lookup::Alias(target) => {
                if let Ok(target) = Name::from_ascii(format!("{target}.")) {
                    reply.add_answer(Record::from_rdata(name, TTL, RData::CNAME(CNAME(target))));
                }
            }
            Lookup::Services(targets) => {
                let weight = u16::try_from(100 / targets.len().max(1)).unwrap_or(100);
                for (port, target, address) in targets {
                    let Ok(target) = Name::from_ascii(format!("{target}.")) else {
                        continue;
                    };
                    if matches!(question.query_type, RecordType::SRV | RecordType::ANY) {
                        let srv = SRV::new(0, weight, port, target.clone());
                        reply.add_answer(Record::from_rdata(name.clone(), TTL, RData::SRV(srv)));
                        if let Some(IpAddr::V4(v4)) = address {
                            reply.add_additional(Record::from_rdata(target, TTL, RData::A(A(v4))));
                        }
                    }
                }
            }
            Lookup::NoSuchName => reply.metadata.response_code = ResponseCode::NXDomain,
            Lookup::Outside => unreachable!("handled above"),
        }
        reply.to_vec().ok()
    }

    /// Resolves a lower-case, fully qualified name.
    fn lookup(&self, name: &str) -> Lookup {
        let name = name.trim_end_matches('.');
        let Some(inside) = name
            .strip_suffix(self.domain.as_str())
            .and_then(|rest| rest.strip_suffix('.').or((rest.is_empty()).then_some(rest)))
        else {
            return Lookup::Outside;
        };
        let labels: Vec<&str> = inside.split('.').collect();
        match labels.as_slice() {
            [service, namespace, "svc"] => self.service(namespace, service),
            [endpoint, service, namespace, "svc"] => self.endpoint(namespace, service, endpoint),
            [port, proto, service, namespace, "svc"] => {
                match (port.strip_prefix('_'), proto.strip_prefix('_')) {
                    (Some(port), Some(proto)) => self.srv(namespace, service, port, proto),
                    _ => Lookup::NoSuchName,
                }
            }
            [address, _namespace, "pod"] => match address.replace('-', ".").parse::<Ipv4Addr>() {
                Ok(ip) => Lookup::Addresses(vec![IpAddr::V4(ip)]),
                Err(_) => Lookup::NoSuchName,
            },
            _ => Lookup::NoSuchName,
        }
    }

    fn service(&self, namespace: &str, name: &str) -> Lookup {
        let Some(service) = self
            .services
            .get(&ObjectRef::<Service>::new(name).within(namespace))
        else {
            return Lookup::NoSuchName;
        };
        let spec = service.spec.clone().unwrap_or_default();
        if spec.type_.as_deref() == Some("ExternalName") {
            return match spec.external_name {
                Some(target) => Lookup::Alias(target.trim_end_matches('.').to_string()),
                None => Lookup::NoSuchName,
            };
        }
        if let Some(ip) = cluster_ip(&service) {
            return Lookup::Addresses(vec![IpAddr::V4(ip)]);
        }
        let endpoints = ready_endpoints(&self.slices, &format!("{namespace}/{name}"), None);
        Lookup::Addresses(endpoints.into_iter().map(|e| e.ip()).collect())
    }
}

/// One address of a service's endpoint slices.
struct Endpoint {
    ip: IpAddr,
    hostname: Option<String>,
}

impl Resolver {
    /// The ready endpoints of a service (all of them under `publishNotReadyAddresses`, which
    /// marks them ready), with the ports of their slices as (name, protocol, port).
    fn endpoints(
        &self,
        namespace: &str,
        service: &str,
    ) -> (Vec<Endpoint>, Vec<(String, String, u16)>) {
        let mut endpoints = Vec::new();
        let mut ports = Vec::new();
        for slice in self.slices.state().iter().filter(|s| {
            s.metadata.namespace.as_deref() == Some(namespace)
                && s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubernetes.io/service-name"))
                    .map(String::as_str)
                    == Some(service)
        }) {
            for p in slice.ports.iter().flatten() {
                let entry = (
                    p.name.clone().unwrap_or_default(),
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    p.port.and_then(|n| u16::try_from(n).ok()).unwrap_or(0),
                );
                if !ports.contains(&entry) {
                    ports.push(entry);
                }
            }
            for e in &slice.endpoints {
                if e.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                for address in &e.addresses {
                    if let Ok(ip) = address.parse() {
                        endpoints.push(Endpoint {
                            ip,
                            hostname: e.hostname.clone(),
                        });
                    }
                }
            }
        }
        (endpoints, ports)
    }

    fn headless(&self, namespace: &str, service: &str) -> Option<Arc<Service>> {
        let found = self
            .services
            .get(&ObjectRef::<Service>::new(service).within(namespace))?;
        cluster_ip(&found).is_none().then_some(found)
    }

    /// `<hostname or a-b-c-d>.<service>.<namespace>.svc`: one endpoint of a headless service.
    fn endpoint(&self, namespace: &str, service: &str, label: &str) -> Lookup {
        if self.headless(namespace, service).is_none() {
            return Lookup::NoSuchName;
        }
        let (endpoints, _) = self.endpoints(namespace, service);
        let found: Vec<IpAddr> = endpoints
            .iter()
            .filter(|e| {
                e.hostname.as_deref() == Some(label)
                    || e.ip.to_string().replace(['.', ':'], "-") == label
            })
            .map(|e| e.ip)
            .collect();
        if found.is_empty() {
            Lookup::NoSuchName
        } else {
            Lookup::Addresses(found)
        }
    }

    /// `_<port>._<proto>.<service>.<namespace>.svc`: the service itself on a named port, or
    /// each endpoint of a headless service.
    fn srv(&self, namespace: &str, service: &str, port: &str, proto: &str) -> Lookup {
        let Some(found) = self
            .services
            .get(&ObjectRef::<Service>::new(service).within(namespace))
        else {
            return Lookup::NoSuchName;
        };
        let fqdn = format!("{service}.{namespace}.svc.{}", self.domain);
        if let Some(ip) = cluster_ip(&found) {
            let spec = found.spec.clone().unwrap_or_default();
            let matching: Vec<(u16, String, Option<IpAddr>)> = spec
                .ports
                .iter()
                .flatten()
                .filter(|p| {
                    p.name.as_deref() == Some(port)
                        && p.protocol
                            .as_deref()
                            .unwrap_or("TCP")
                            .eq_ignore_ascii_case(proto)
                })
                .filter_map(|p| u16::try_from(p.port).ok())
                .map(|n| (n, fqdn.clone(), Some(IpAddr::V4(ip))))
                .collect();
            return if matching.is_empty() {
                Lookup::NoSuchName
            } else {
                Lookup::Services(matching)
            };
        }
        let (endpoints, ports) = self.endpoints(namespace, service);
        let Some(&(_, _, number)) = ports
            .iter()
            .find(|(name, p, _)| name == port && p.eq_ignore_ascii_case(proto))
        else {
            return Lookup::NoSuchName;
        };
        let targets: Vec<_> = endpoints
            .iter()
            .map(|e| {
                let label = e
                    .hostname
                    .clone()
                    .unwrap_or_else(|| e.ip.to_string().replace(['.', ':'], "-"));
                (number, format!("{label}.{fqdn}"), Some(e.ip))
            })
            .collect();
        if targets.is_empty() {
            Lookup::NoSuchName
        } else {
            Lookup::Services(targets)
        }
    }
}

/// Asks each upstream resolver in turn; the first reply wins.
async fn forward(query: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    for server in upstream {
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let Ok(socket) = UdpSocket::bind(local).await else {
            continue;
        };
        if socket.send_to(query, server).await.is_err() {
            continue;
        }
        let mut buffer = vec![0u8; 4096];
        if let Ok(Ok((length, _))) =
            tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv_from(&mut buffer)).await
        {
            buffer.truncate(length);
            return Some(buffer);
        }
    }
    None
}

/// The machine's resolvers from a resolv.conf text, on port 53.
pub(crate) fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    fn resolver(services: Vec<Service>) -> Resolver {
        let mut writer = Writer::<Service>::default();
        for service in services {
            writer.apply_watcher_event(&Event::Apply(service));
        }
        Resolver {
            domain: "cluster.local".into(),
            upstream: vec![],
            services: writer.as_reader(),
            slices: Writer::<EndpointSlice>::default().as_reader(),
        }
    }

    fn service(name: &str, spec: ServiceSpec) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("tb-demo".into()),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    fn query(name: &str, kind: RecordType) -> Vec<u8> {
        let mut message = Message::query();
        message.metadata.recursion_desired = true;
        message.add_query(hickory_proto::op::Query::query(
            Name::from_ascii(name).unwrap(),
            kind,
        ));
        message.to_vec().unwrap()
    }

    fn reply(resolver: &Resolver, name: &str, kind: RecordType) -> Message {
        Message::from_vec(&resolver.answer(&query(name, kind)).expect("answered")).unwrap()
    }

    #[tokio::test]
    async fn tcp_clients_get_two_queries_answered_on_one_connection() {
        let r = resolver(vec![service(
            "mysql-service",
            ServiceSpec {
                cluster_ip: Some("10.43.0.12".into()),
                ..Default::default()
            },
        )]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_tcp(listener, r));
        let mut stream = TcpStream::connect(address).await.unwrap();
        for name in [
            "mysql-service.tb-demo.svc.cluster.local.",
            "nope.tb-demo.svc.cluster.local.",
        ] {
            let q = query(name, RecordType::A);
            let mut framed = u16::try_from(q.len()).unwrap().to_be_bytes().to_vec();
            framed.extend_from_slice(&q);
            stream.write_all(&framed).await.unwrap();
            let mut length = [0u8; 2];
            stream.read_exact(&mut length).await.unwrap();
            let mut body = vec![0u8; usize::from(u16::from_be_bytes(length))];
            stream.read_exact(&mut body).await.unwrap();
            let answer = Message::from_vec(&body).unwrap();
            if name.starts_with("nope") {
                assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
            } else {
                assert_eq!(
                    answer.answers[0].data,
                    RData::A(A(Ipv4Addr::new(10, 43, 0, 12)))
                );
            }
        }
        server.abort();
    }

    #[test]
    fn a_service_name_is_its_cluster_ip() {
        let r = resolver(vec![service(
            "mysql-service",
            ServiceSpec {
                cluster_ip: Some("10.43.0.12".into()),
                ..Default::default()
            },
        )]);
        let answer = reply(
            &r,
            "MySQL-Service.tb-demo.svc.cluster.local.",
            RecordType::A,
        );
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        let data: Vec<_> = answer.answers.iter().map(|a| a.data.clone()).collect();
        assert_eq!(data, vec![RData::A(A(Ipv4Addr::new(10, 43, 0, 12)))]);
        // The name exists but has no IPv6 address: an empty answer, not NXDOMAIN, so the
        // resolver does not go on down the search list.
        let aaaa = reply(
            &r,
            "mysql-service.tb-demo.svc.cluster.local.",
            RecordType::AAAA,
        );
        assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
        assert!(aaaa.answers.is_empty());
    }

    #[test]
    fn unknown_names_in_the_domain_do_not_exist_and_others_go_upstream() {
        let r = resolver(vec![]);
        let missing = reply(&r, "nope.tb-demo.svc.cluster.local.", RecordType::A);
        assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
        let search = reply(&r, "example.com.svc.cluster.local.", RecordType::A);
        assert_eq!(search.metadata.response_code, ResponseCode::NXDomain);
        assert!(r.answer(&query("example.com.", RecordType::A)).is_none());
        assert!(
            r.answer(&query("cluster.local.example.com.", RecordType::A))
                .is_none()
        );
    }

    #[test]
    fn external_names_and_pod_names() {
        let r = resolver(vec![service(
            "db",
            ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some("db.example.com".into()),
                ..Default::default()
            },
        )]);
        let alias = reply(&r, "db.tb-demo.svc.cluster.local.", RecordType::A);
        assert_eq!(
            alias.answers[0].data,
            RData::CNAME(CNAME(Name::from_ascii("db.example.com.").unwrap()))
        );
        let pod = reply(&r, "10-42-0-7.tb-demo.pod.cluster.local.", RecordType::A);
        assert_eq!(
            pod.answers[0].data,
            RData::A(A(Ipv4Addr::new(10, 42, 0, 7)))
        );
    }

    #[test]
    fn headless_endpoints_have_names_and_named_ports_have_srv_records() {
        let mut r = resolver(vec![service(
            "mysql",
            ServiceSpec {
                cluster_ip: Some("None".into()),
                ..Default::default()
            },
        )]);
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "mysql-abc", "namespace": "tb-demo",
                "labels": {"kubernetes.io/service-name": "mysql"}},
            "addressType": "IPv4",
            "ports": [{"name": "mysql", "protocol": "TCP", "port": 3306}],
            "endpoints": [
                {"addresses": ["10.42.0.7"], "hostname": "mysql-0", "conditions": {"ready": true}},
                {"addresses": ["10.42.0.8"], "hostname": "mysql-1", "conditions": {"ready": false}},
            ],
        }))
        .unwrap();
        let mut writer = Writer::<EndpointSlice>::default();
        writer.apply_watcher_event(&Event::Apply(slice));
        r.slices = writer.as_reader();
        let pod = reply(
            &r,
            "mysql-0.mysql.tb-demo.svc.cluster.local.",
            RecordType::A,
        );
        assert_eq!(
            pod.answers[0].data,
            RData::A(A(Ipv4Addr::new(10, 42, 0, 7)))
        );
        let dashed = reply(
            &r,
            "10-42-0-7.mysql.tb-demo.svc.cluster.local.",
            RecordType::A,
        );
        assert_eq!(dashed.answers.len(), 1);
        let not_ready = reply(
            &r,
            "mysql-1.mysql.tb-demo.svc.cluster.local.",
            RecordType::A,
        );
        assert_eq!(not_ready.metadata.response_code, ResponseCode::NXDomain);
        let srv = reply(
            &r,
            "_mysql._tcp.mysql.tb-demo.svc.cluster.local.",
            RecordType::SRV,
        );
        let RData::SRV(record) = &srv.answers[0].data else {
            panic!("not an SRV record: {srv:?}");
        };
        assert_eq!(record.port, 3306);
        assert_eq!(
            record.target,
            Name::from_ascii("mysql-0.mysql.tb-demo.svc.cluster.local.").unwrap()
        );
        assert_eq!(srv.additionals.len(), 1);
    }

    #[test]
    fn nameservers_come_from_resolv_conf() {
        let text = "# generated\nsearch example\nnameserver 10.255.255.53\nnameserver ::1\n";
        assert_eq!(
            nameservers(text),
            vec![
                "10.255.255.53:53".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }
}
