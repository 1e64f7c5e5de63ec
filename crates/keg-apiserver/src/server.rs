//! The HTTPS server: the router of every endpoint, and the TLS listener that serves it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::Service;

use crate::auth::x509::ClientCertificateUser;
use crate::auth::{UserInfo, authenticate, serviceaccount};
use crate::authz::authorize;
use crate::error::ApiError;
use crate::request::RequestInfo;
use crate::rest::json_response;
use crate::state::ApiState;
use crate::{discovery, exec, metrics, openapi, proxy, rest, version};

async fn health(State(state): State<Arc<ApiState>>) -> Response {
    if state.ready.load(Ordering::SeqCst) {
        (http::StatusCode::OK, "ok").into_response()
    } else {
        (
            http::StatusCode::SERVICE_UNAVAILABLE,
            "[-]startup failed: not finished",
        )
            .into_response()
    }
}

/// /readyz: started, and the store answers (for etcd: a quorum of members does), as
/// kube-apiserver's readyz has its etcd check; /livez does not ask the store, so a server
/// whose etcd is down is not ready but stays alive.
async fn ready(State(state): State<Arc<ApiState>>) -> Response {
    if !state.ready.load(Ordering::SeqCst) {
        return health(State(state)).await;
    }
    match state.objects.store().check().await {
        Ok(()) => (http::StatusCode::OK, "ok").into_response(),
        Err(e) => {
            tracing::warn!("readyz: the store does not answer: {e}");
            (
                http::StatusCode::SERVICE_UNAVAILABLE,
                "[-]etcd failed: reason withheld\nreadyz check failed",
            )
                .into_response()
        }
    }
}

async fn resources(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path();
    // Group and group-version documents are the resource-less forms of these paths.
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if parts.method == http::Method::GET {
        match segments.as_slice() {
            ["api", version] => {
                return discovery::resource_list(&state.registry, "", version)
                    .map(|l| json_response(200, &l))
                    .unwrap_or_else(|| ApiError::path_not_found().into_response());
            }
            ["apis", group] => {
                return discovery::group(&state.registry, group)
                    .map(|g| json_response(200, &g))
                    .unwrap_or_else(|| ApiError::path_not_found().into_response());
            }
            ["apis", group, version] => {
                return discovery::resource_list(&state.registry, group, version)
                    .map(|l| json_response(200, &l))
                    .unwrap_or_else(|| ApiError::path_not_found().into_response());
            }
            _ => {}
        }
    }
    match RequestInfo::parse(path) {
        // The subresources that take over the connection: they need the whole request.
        Some(info)
            if info.group.is_empty()
                && info.resource == "pods"
                && info.subresource.as_deref() == Some("exec") =>
        {
            exec::serve(state, info, Request::from_parts(parts, body)).await
        }
        Some(info)
            if info.group.is_empty()
                && info.resource == "pods"
                && info.subresource.as_deref() == Some("portforward") =>
        {
            exec::serve_port_forward(state, info, Request::from_parts(parts, body)).await
        }
        // Every method of a proxy request is forwarded, its body streamed.
        Some(info) if info.group.is_empty() && info.proxy_path.is_some() => {
            proxy::serve(state, info, Request::from_parts(parts, body)).await
        }
        Some(info) => {
            let user = parts.extensions.remove::<UserInfo>().unwrap_or_default();
            let request = rest::ResourceRequest {
                method: parts.method,
                info,
                headers: parts.headers,
                user,
            };
            rest::handle(state.clone(), request, parts.uri.query(), body).await
        }
        None => ApiError::path_not_found().into_response(),
    }
}

async fn openapi_document(
    State(state): State<Arc<ApiState>>,
    Path(path): Path<String>,
) -> Response {
    match openapi::document_for_path(&state.registry, &path) {
        Some(doc) => json_response(200, &doc),
        None => ApiError::path_not_found().into_response(),
    }
}

/// The router of every endpoint, behind authentication and authorization.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(ready))
        .route(
            "/version",
            get(|| async { json_response(200, &version::info()) }),
        )
        .route(
            "/api",
            get(
                |State(s): State<Arc<ApiState>>, h: http::HeaderMap| async move {
                    discovery::api(&s.registry, &h)
                },
            ),
        )
        .route(
            "/apis",
            get(
                |State(s): State<Arc<ApiState>>, h: http::HeaderMap| async move {
                    discovery::apis(&s.registry, &h)
                },
            ),
        )
        .route(
            "/openapi/v3",
            get(|State(s): State<Arc<ApiState>>| async move {
                json_response(200, &openapi::index(&s.registry))
            }),
        )
        .route("/openapi/v3/{*path}", get(openapi_document))
        .route(
            "/openapi/v2",
            get(|h: http::HeaderMap| async move {
                let accept = h
                    .get(http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let (media, body) = openapi::v2_document(accept);
                ([(http::header::CONTENT_TYPE, media)], body).into_response()
            }),
        )
        .route("/metrics", get(metrics::serve))
        .route(
            "/.well-known/openid-configuration",
            get(|| async { json_response(200, &serviceaccount::openid_configuration()) }),
        )
        .route(
            "/openid/v1/jwks",
            get(|State(s): State<Arc<ApiState>>| async move {
                json_response(200, &s.auth.service_accounts.jwks())
            }),
        )
        .fallback(resources)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .with_state(state)
}

/// Serves `router` over HTTPS on `listener` until `shutdown` resolves.
pub async fn serve_tls(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => accepted.context("accepting a connection")?,
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                tracing::debug!(%peer, "TLS handshake failed");
                return;
            };
            // The client certificate (already verified against the cluster CA) names the
            // user when a request carries no token; read it once for the connection.
            let certificate_user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(crate::auth::x509::user)
                .map(ClientCertificateUser);
            let service =
                hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let mut router = router.clone();
                    let mut request = request.map(Body::new);
                    if let Some(user) = &certificate_user {
                        request.extensions_mut().insert(user.clone());
                    }
                    request.extensions_mut().insert(proxy::PeerAddr(peer));
                    async move { router.call(request).await }
                });
            if let Err(err) = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, "connection ended: {err}");
            }
        });
    }
}
