//! `pods/proxy` and `services/proxy`: forwards one HTTP request to a pod, or to a ready
//! endpoint of a service, and streams the answer back, as kube-apiserver's ProxyREST and its
//! upgrade-aware handler do.
//!
//! The name is `name`, `name:port` or `scheme:name:port` (scheme `http` or `https`, upstream's
//! `SplitSchemeNamePort`). A pod's port is a number or the name of one of its container
//! ports; with none, its first container port, else the scheme's default. A service's port
//! (a number or a port name; none for its unnamed port) is resolved through its Endpoints to
//! a ready address's target port, as upstream's ResourceLocation does. Every method is
//! forwarded with its query, headers (less hop-by-hop ones and the client's credentials) and
//! body; the pod's status, headers and body come back as they arrive. Over HTTPS the pod's
//! certificate is not verified, and redirects are handed to the client, not followed.
//!
//! `nodes/proxy` answers 503: keg's node agent serves no kubelet API yet.
//!
//! Left out: upgrades (WebSocket) through the proxy, and upstream's rewriting of links in
//! `text/html` answers (only `Location` headers are rewritten).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use rand::Rng;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::error::{ApiError, Result};
use crate::request::RequestInfo;
use crate::state::ApiState;

/// How long a connection to the pod may take, as upstream's proxy dialer allows.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// The address of the client, when the listener knows it (for `X-Forwarded-For`).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Serves one proxy request; errors are Status objects.
pub async fn serve(state: Arc<ApiState>, info: RequestInfo, request: Request) -> Response {
    match forward(&state, &info, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    https: bool,
    address: SocketAddr,
}

/// `scheme:name:port` split as upstream's `SplitSchemeNamePort`: `None` when malformed.
fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    (!name.is_empty() && matches!(scheme, "" | "http" | "https")).then_some((scheme, name, port))
}

async fn forward(state: &ApiState, info: &RequestInfo, request: Request) -> Result<Response> {
    let res = state
        .registry
        .get(&info.group, &info.version, &info.resource)
        .filter(|r| r.has_subresource("proxy"))
        .ok_or_else(ApiError::path_not_found)?;
    if res.namespaced != info.namespace.is_some() {
        return Err(ApiError::path_not_found());
    }
    let id = info.name.as_deref().unwrap_or_default();
    let ns = info.namespace.as_deref().unwrap_or_default();
    let target = match info.resource.as_str() {
        "pods" => {
            let (scheme, name, port) = split_scheme_name_port(id)
                .ok_or_else(|| ApiError::bad_request(format!("invalid pod request {id:?}")))?;
            let pods = state.registry.get("", "v1", "pods").expect("built in");
            let pod = state.objects.get(&pods, Some(ns), name).await?;
            pod_target(&pod, scheme == "https", port)?
        }
        "services" => service_target(state, ns, id).await?,
        _ => {
            return Err(ApiError::service_unavailable(format!(
                "{}/proxy is not served: keg's node agent serves no kubelet API yet",
                info.resource
            )));
        }
    };
    let sub_path = info.proxy_path.as_deref().unwrap_or_default();
    let (parts, body) = request.into_parts();
    let query = parts.uri.query();
    if sub_path.is_empty() {
        // As upstream (issue 4958): `.../proxy` is redirected to `.../proxy/`.
        let location = match query {
            Some(q) if !q.is_empty() => format!("{}/?{q}", parts.uri.path()),
            _ => format!("{}/", parts.uri.path()),
        };
        return Ok(Response::builder()
            .status(http::StatusCode::MOVED_PERMANENTLY)
            .header(header::LOCATION, location)
            .body(Body::empty())
            .expect("valid response"));
    }
    let path = clean_path(sub_path);
    let prefix = parts
        .uri
        .path()
        .strip_suffix(sub_path)
        .unwrap_or_default()
        .to_string();
    let target_uri = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    let client_host = parts
        .uri
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(String::from)
        })
        .unwrap_or_else(|| target.address.to_string());
    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    // The client's credentials are for the API server, never for the pod.
    headers.remove(header::AUTHORIZATION);
    let impersonation: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for name in impersonation {
        headers.remove(name);
    }
    headers.insert(
        header::HOST,
        HeaderValue::from_str(&client_host)
            .unwrap_or_else(|_| HeaderValue::from_static("localhost")),
    );
    let mut forwarded_uri = format!("{}{}", prefix.trim_end_matches('/'), path);
    if forwarded_uri.is_empty() {
        forwarded_uri.push('/');
    }
    if let Ok(v) = HeaderValue::from_str(&forwarded_uri) {
        headers.insert("x-forwarded-uri", v);
    }
    if let Some(PeerAddr(peer)) = parts.extensions.get::<PeerAddr>() {
        let client = peer.ip().to_string();
        let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prior) => format!("{prior}, {client}"),
            None => client,
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert("x-forwarded-for", v);
        }
    }
    let mut outgoing = http::Request::builder()
        .method(parts.method.clone())
        .uri(&target_uri)
        .body(body)
        .map_err(|e| ApiError::bad_request(format!("invalid proxy path {path:?}: {e}")))?;
    *outgoing.headers_mut() = headers;
    let answer = send(&target, outgoing).await.map_err(|e| {
        ApiError::service_unavailable(format!("error trying to reach service: {e}"))
    })?;
    let (mut head, incoming) = answer.into_parts();
    strip_hop_by_hop(&mut head.headers);
    for cors in [
        "access-control-allow-credentials",
        "access-control-allow-headers",
        "access-control-allow-methods",
        "access-control-allow-origin",
    ] {
        head.headers.remove(cors);
    }
    if let Some(location) = head
        .headers
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
    {
        let backend = target.address.to_string();
        let rewritten = rewrite_location(location, &backend, &client_host, &prefix);
        if let Ok(v) = HeaderValue::from_str(&rewritten) {
            head.headers.insert(header::LOCATION, v);
        }
    }
    Ok(Response::from_parts(head, Body::new(incoming)))
}

/// The pod's address and port for `port` (a number, a container port's name, or empty).
fn pod_target(pod: &Value, https: bool, port: &str) -> Result<Target> {
    let status = &pod["status"];
    let ip = status["podIPs"][0]["ip"]
        .as_str()
        .or_else(|| status["podIP"].as_str())
        .unwrap_or_default();
    let ip: IpAddr = ip
        .parse()
        .ok()
        .filter(is_global_unicast)
        .ok_or_else(|| ApiError::bad_request("address not allowed"))?;
    let container_ports = || {
        pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
    };
    let default = if https { 443 } else { 80 };
    let number = if port.is_empty() {
        // Upstream takes the first port of the first container that declares one.
        pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|c| c["ports"][0]["containerPort"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(default)
    } else if port.bytes().all(|b| b.is_ascii_digit()) {
        port.parse().map_err(|_| {
            ApiError::service_unavailable(format!(
                "error trying to reach service: dial tcp: address {port}: invalid port"
            ))
        })?
    } else {
        container_ports()
            .find(|p| p["name"] == port)
            .and_then(|p| p["containerPort"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .or(match port {
                "http" => Some(80),
                "https" => Some(443),
                _ => None,
            })
            .ok_or_else(|| {
                ApiError::service_unavailable(format!(
                    "error trying to reach service: dial tcp: lookup tcp/{port}: unknown port"
                ))
            })?
    };
    Ok(Target {
        https,
        address: SocketAddr::new(ip, number),
    })
}

/// Go's `IP.IsGlobalUnicast`: not unspecified, loopback, link-local, multicast or broadcast.
fn is_global_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unicast_link_local())
        }
    }
}

/// A ready endpoint of service `id` (`[scheme:]name[:port]`), as upstream's ResourceLocation
/// picks one: the port number names a service port, whose name picks the endpoints' port.
async fn service_target(state: &ApiState, ns: &str, id: &str) -> Result<Target> {
    let (scheme, name, mut port) = split_scheme_name_port(id)
        .map(|(s, n, p)| (s, n, p.to_string()))
        .ok_or_else(|| ApiError::bad_request(format!("invalid service request {id:?}")))?;
    if let Ok(number) = port.parse::<i64>() {
        let services = state.registry.get("", "v1", "services").expect("built in");
        let service = state.objects.get(&services, Some(ns), name).await?;
        let declared = service["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["port"].as_i64() == Some(number))
            .ok_or_else(|| {
                ApiError::service_unavailable(format!(
                    "no service port {number} found for service {name:?}"
                ))
            })?;
        port = declared["name"].as_str().unwrap_or_default().to_string();
    }
    let endpoints_res = state.registry.get("", "v1", "endpoints").expect("built in");
    let endpoints = state.objects.get(&endpoints_res, Some(ns), name).await?;
    let subsets: Vec<&Value> = endpoints["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if subsets.is_empty() {
        return Err(ApiError::service_unavailable(format!(
            "no endpoints available for service {name:?}"
        )));
    }
    let pods = state.registry.get("", "v1", "pods").expect("built in");
    let seed = rand::rng().random_range(0..subsets.len());
    for i in 0..subsets.len() {
        let subset = subsets[(seed + i) % subsets.len()];
        let addresses: Vec<&Value> = subset["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        if addresses.is_empty() {
            continue;
        }
        let ports = subset["ports"].as_array().into_iter().flatten();
        for endpoint_port in ports.filter(|p| p["name"].as_str().unwrap_or_default() == port) {
            let Some(number) = endpoint_port["port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            let start = rand::rng().random_range(0..addresses.len());
            for j in 0..addresses.len() {
                let address = addresses[(start + j) % addresses.len()];
                let Some(ip) = address["ip"].as_str().and_then(|ip| ip.parse().ok()) else {
                    continue;
                };
                if !is_valid_address(state, &pods, ns, address).await {
                    tracing::debug!(service = name, "address {address} isn't valid, skipped");
                    continue;
                }
                return Ok(Target {
                    https: scheme == "https",
                    address: SocketAddr::new(ip, number),
                });
            }
        }
    }
    Err(ApiError::service_unavailable(format!(
        "no endpoints available for service {id:?}"
    )))
}

/// Whether an endpoint address is a pod of the namespace that has its IP (upstream's check).
async fn is_valid_address(
    state: &ApiState,
    pods: &crate::resources::Resource,
    ns: &str,
    address: &Value,
) -> bool {
    let target = &address["targetRef"];
    let (Some(pod_name), Some(ip)) = (target["name"].as_str(), address["ip"].as_str()) else {
        return false;
    };
    if target["namespace"].as_str() != Some(ns) {
        return false;
    }
    let Ok(pod) = state.objects.get(pods, Some(ns), pod_name).await else {
        return false;
    };
    let status = &pod["status"];
    status["podIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["ip"] == ip)
        || status["podIP"] == ip
}

/// The path as sent to the pod: `.` and `..` resolved, repeated slashes folded, the trailing
/// slash kept (upstream's `JoinPreservingTrailingSlash`).
fn clean_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut cleaned = format!("/{}", segments.join("/"));
    if path.ends_with('/') && !cleaned.ends_with('/') {
        cleaned.push('/');
    }
    cleaned
}

/// Headers that belong to one connection, never forwarded (Go's ReverseProxy's list, and
/// those the `Connection` header names).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in [
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

/// A `Location` the pod answered, pointed back through the proxy when it names the pod (or
/// the client's host) with an absolute path, as upstream's proxy transport rewrites it.
fn rewrite_location(location: &str, backend: &str, client_host: &str, prefix: &str) -> String {
    let (host, rest) = match location.split_once("://") {
        Some((_, after)) => match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        },
        None if location.starts_with("//") => match location[2..].find('/') {
            Some(i) => (&location[2..2 + i], &location[2 + i..]),
            None => (&location[2..], ""),
        },
        None => ("", location),
    };
    let different_host = !host.is_empty() && host != backend && host != client_host;
    if different_host || !rest.starts_with('/') {
        return location.to_string();
    }
    let path_end = rest.find(['?', '#']).unwrap_or(rest.len());
    let (path, suffix) = rest.split_at(path_end);
    let prefix = prefix.trim_end_matches('/');
    if path.starts_with(prefix) {
        return rest.to_string();
    }
    format!("{prefix}{}{suffix}", clean_path(path))
}

/// Sends the request over a connection of its own and returns the pod's answer.
async fn send(
    target: &Target,
    request: http::Request<Body>,
) -> std::result::Result<http::Response<hyper::body::Incoming>, String> {
    let address = target.address;
    let tcp = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| format!("dial tcp {address}: i/o timeout"))?
        .map_err(|e| format!("dial tcp {address}: connect: {}", keg_dial::go_error(&e)))?;
    let _ = tcp.set_nodelay(true);
    if !target.https {
        return exchange(tcp, request).await;
    }
    let connector = tokio_rustls::TlsConnector::from(Arc::new(keg_dial::any_certificate_client()));
    let tls = connector
        .connect(ServerName::IpAddress(address.ip().into()), tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    exchange(tls, request).await
}

async fn exchange(
    io: impl AsyncRead + AsyncWrite + Send + Unpin + 'static,
    request: http::Request<Body>,
) -> std::result::Result<http::Response<hyper::body::Incoming>, String> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("proxied connection ended: {e}");
        }
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Answers one request on loopback, over TLS with a self-signed certificate if asked,
    /// with its request line once the body arrived; the answer's body comes in two writes.
    async fn serve_once(tls: bool) -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let acceptor = tls.then(|| {
            let cert = rcgen::generate_simple_self_signed(vec!["pod.invalid".into()]).unwrap();
            let key =
                rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.cert.der().clone()], key)
                .unwrap();
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        async fn answer(mut s: impl AsyncRead + AsyncWrite + Unpin) {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&got).ends_with("ping") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "{}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&got).into_owned();
            let line = text.lines().next().unwrap().to_string();
            let body = format!("{line} ");
            let head = format!(
                "HTTP/1.1 201 Created\r\nContent-Length: {}\r\nX-Pod: yes\r\nConnection: close\r\n\r\n",
                body.len() + 4
            );
            s.write_all(head.as_bytes()).await.unwrap();
            s.write_all(body.as_bytes()).await.unwrap();
            s.flush().await.unwrap();
            s.write_all(b"pong").await.unwrap();
            s.shutdown().await.unwrap();
        }
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            match acceptor {
                Some(a) => answer(a.accept(tcp).await.unwrap()).await,
                None => answer(tcp).await,
            }
        });
        address
    }

    #[tokio::test]
    async fn requests_reach_the_pod_over_http_and_https_without_verifying_it() {
        for https in [false, true] {
            let target = Target {
                https,
                address: serve_once(https).await,
            };
            let request = http::Request::builder()
                .method("POST")
                .uri("/a/b?c=d")
                .header(header::HOST, "127.0.0.1")
                .header(header::CONTENT_LENGTH, "4")
                .body(Body::from("ping"))
                .unwrap();
            let answer = send(&target, request).await.unwrap();
            assert_eq!(answer.status(), 201);
            assert_eq!(answer.headers()["x-pod"], "yes");
            let body = axum::body::to_bytes(Body::new(answer.into_body()), 1024)
                .await
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&body),
                "POST /a/b?c=d HTTP/1.1 pong",
                "https: {https}"
            );
        }
    }

    #[tokio::test]
    async fn a_pod_that_does_not_listen_is_reported_in_gos_words() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let target = Target {
            https: false,
            address,
        };
        let request = http::Request::new(Body::empty());
        let err = send(&target, request).await.unwrap_err();
        assert_eq!(
            err,
            format!("dial tcp {address}: connect: connection refused")
        );
    }

    #[test]
    fn names_split_as_upstream() {
        assert_eq!(split_scheme_name_port("web"), Some(("", "web", "")));
        assert_eq!(split_scheme_name_port("web:80"), Some(("", "web", "80")));
        assert_eq!(
            split_scheme_name_port("https:web:tls"),
            Some(("https", "web", "tls"))
        );
        assert_eq!(split_scheme_name_port("ftp:web:21"), None);
        assert_eq!(split_scheme_name_port(":80"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
    }

    fn pod(ip: &str) -> Value {
        json!({
            "spec": {"containers": [
                {"name": "side"},
                {"name": "web", "ports": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}]},
            ]},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}]},
        })
    }

    #[test]
    fn pod_ports_are_numbers_names_or_the_first_declared() {
        let p = pod("10.1.2.3");
        let at = |port: &str, https| pod_target(&p, https, port).map(|t| t.address.to_string());
        assert_eq!(at("", false).unwrap(), "10.1.2.3:8080");
        assert_eq!(at("81", false).unwrap(), "10.1.2.3:81");
        assert_eq!(at("metrics", false).unwrap(), "10.1.2.3:9090");
        assert_eq!(at("nope", false).unwrap_err().code, 503);
        let bare =
            json!({"spec": {"containers": [{"name": "c"}]}, "status": {"podIP": "10.1.2.3"}});
        assert_eq!(
            pod_target(&bare, false, "").unwrap().address.to_string(),
            "10.1.2.3:80"
        );
        assert_eq!(
            pod_target(&bare, true, "").unwrap().address.to_string(),
            "10.1.2.3:443"
        );
    }

    #[test]
    fn pods_without_a_usable_address_are_refused_as_upstream() {
        let none = json!({"spec": {"containers": []}, "status": {}});
        for p in [
            none,
            pod("127.0.0.1"),
            pod("169.254.169.254"),
            pod("0.0.0.0"),
        ] {
            let err = pod_target(&p, false, "80").unwrap_err();
            assert_eq!(
                (err.code, err.message.as_str()),
                (400, "address not allowed")
            );
        }
    }

    #[test]
    fn paths_are_cleaned_keeping_the_trailing_slash() {
        assert_eq!(clean_path("/"), "/");
        assert_eq!(clean_path("/a//b/./c/"), "/a/b/c/");
        assert_eq!(clean_path("/a/../../etc"), "/etc");
        assert_eq!(clean_path("/a%20b"), "/a%20b");
    }

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn locations_at_the_pod_point_back_through_the_proxy() {
        let prefix = "/api/v1/namespaces/ns/pods/web/proxy";
        let at = |l: &str| rewrite_location(l, "10.0.0.5:80", "127.0.0.1:6443", prefix);
        assert_eq!(at("/login?next=/"), format!("{prefix}/login?next=/"));
        assert_eq!(at("http://10.0.0.5:80/a/"), format!("{prefix}/a/"));
        assert_eq!(at("https://example.com/a"), "https://example.com/a");
        assert_eq!(at("relative/path"), "relative/path");
        assert_eq!(at(&format!("{prefix}/x")), format!("{prefix}/x"));
    }
}
