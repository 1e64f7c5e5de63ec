//! `pods/exec`: runs a command in a container and streams its standard streams to the client,
//! as upstream's remote command protocol does: over a WebSocket (`v5.channel.k8s.io`, which
//! kubectl 1.30+ uses, and `v4.channel.k8s.io`) or over SPDY/3.1 (`v4.channel.k8s.io`, what
//! kubectl 1.27-1.29 use).
//!
//! What can be checked before the upgrade is answered as a plain `Status` error, so kubectl
//! prints it; what fails later is the session's final Status.

mod portforward;
mod session;
mod spdy;
mod websocket;

use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::request::{Query, RequestInfo};
use crate::state::{ApiState, ExecOptions, PodExec};

/// Serves `GET` (WebSocket) or `POST` (SPDY) of `pods/<name>/exec`.
pub async fn serve(state: Arc<ApiState>, info: RequestInfo, request: Request) -> Response {
    match start(&state, &info, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn start(
    state: &Arc<ApiState>,
    info: &RequestInfo,
    mut request: Request,
) -> Result<Response> {
    let method = request.method().clone();
    if method != http::Method::GET && method != http::Method::POST {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let raw_query = request.uri().query().map(String::from);
    let options = parse_options(raw_query.as_deref())?;
    let (pod_name, pod) = get_pod(state, info).await?;
    let options = check_pod(&pod, pod_name, options)?;
    let provider = provider(state, pod_name)?;
    let headers = request.headers();
    let spdy = spdy::requested(headers);
    let protocol = if spdy {
        spdy::handshake(headers, spdy::PROTOCOL)?;
        None
    } else if websocket::requested(headers) {
        Some(websocket::handshake(headers)?)
    } else {
        return Err(ApiError::bad_request("Upgrade request required"));
    };
    let on_upgrade = take_upgrade(&mut request)?;
    let Some((protocol, accept)) = protocol else {
        serve_upgraded("exec", on_upgrade, |upgraded| {
            spdy::serve(upgraded, provider, pod, options)
        });
        return Ok(spdy::switching(spdy::PROTOCOL));
    };
    serve_upgraded("exec", on_upgrade, |upgraded| {
        websocket::serve(upgraded, protocol, provider, pod, options)
    });
    Ok(websocket::switching(protocol, &accept))
}

/// The pod the request names, with its name.
async fn get_pod<'a>(state: &ApiState, info: &'a RequestInfo) -> Result<(&'a str, Value)> {
    let (Some(ns), Some(pod_name)) = (info.namespace.as_deref(), info.name.as_deref()) else {
        return Err(ApiError::path_not_found());
    };
    let res = state
        .registry
        .get("", "v1", "pods")
        .ok_or_else(ApiError::path_not_found)?;
    Ok((pod_name, state.objects.get(&res, Some(ns), pod_name).await?))
}

/// The node agent that runs commands in the pod's containers.
fn provider(state: &ApiState, pod_name: &str) -> Result<Arc<dyn PodExec>> {
    let provider = state.pod_exec.read().expect("lock").clone();
    provider.ok_or_else(|| {
        ApiError::bad_request(format!(
            "unable to upgrade connection: no node agent serves pod {pod_name}"
        ))
    })
}

/// The connection hyper hands over once the 101 response is sent.
fn take_upgrade(request: &mut Request) -> Result<OnUpgrade> {
    request.extensions_mut().remove::<OnUpgrade>().ok_or_else(|| {
        ApiError::bad_request(
            "unable to upgrade connection: the connection cannot be upgraded (HTTP/1.1 is required)",
        )
    })
}

/// Serves the upgraded connection in the background, once the client has the 101.
fn serve_upgraded<F, Fut>(what: &'static str, on_upgrade: OnUpgrade, serve: F)
where
    F: FnOnce(Upgraded) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(upgraded).await,
            Err(e) => tracing::debug!("{what}: upgrading the connection failed: {e}"),
        }
    });
}

/// Serves `POST` (SPDY) of `pods/<name>/portforward`; a WebSocket (kubectl 1.31+ first tries
/// SPDY tunnelled in one) is refused, which makes kubectl fall back to plain SPDY.
pub async fn serve_port_forward(
    state: Arc<ApiState>,
    info: RequestInfo,
    mut request: Request,
) -> Response {
    let result = async {
        let (pod_name, pod) = get_pod(&state, &info).await?;
        if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(format!(
                "pod {pod_name} does not have a host assigned"
            )));
        }
        let provider = provider(&state, pod_name)?;
        if !spdy::requested(request.headers()) {
            return Err(ApiError::bad_request(
                "unable to upgrade connection: keg serves port forwarding over SPDY/3.1",
            ));
        }
        spdy::handshake(request.headers(), portforward::PROTOCOL)?;
        let on_upgrade = take_upgrade(&mut request)?;
        serve_upgraded("port-forward", on_upgrade, |upgraded| {
            portforward::serve(upgraded, provider, pod)
        });
        Ok(spdy::switching(portforward::PROTOCOL))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The query's PodExecOptions, checked as upstream validates them.
fn parse_options(raw: Option<&str>) -> Result<ExecOptions> {
    let query = Query::parse(raw);
    let options = ExecOptions {
        container: query.get("container").unwrap_or_default().to_string(),
        command: query.values("command").to_vec(),
        stdin: query.flag("stdin"),
        stdout: query.flag("stdout"),
        stderr: query.flag("stderr"),
        tty: query.flag("tty"),
        terminal_size: None,
    };
    if options.command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    if !(options.stdin || options.stdout || options.stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least one of stdin, stdout, stderr",
        ));
    }
    Ok(options)
}

/// Picks the container (the only one when none is named) and checks that it runs, with the
/// API server's and the kubelet's wording.
fn check_pod(pod: &Value, pod_name: &str, mut options: ExecOptions) -> Result<ExecOptions> {
    let names = |key: &str| -> Vec<String> {
        pod["spec"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(String::from))
            .collect()
    };
    let containers = names("containers");
    let all: Vec<String> = containers
        .iter()
        .cloned()
        .chain(names("initContainers"))
        .collect();
    if options.container.is_empty() {
        match containers.as_slice() {
            [only] => options.container = only.clone(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    all.join(" ")
                )));
            }
        }
    } else if !all.contains(&options.container) {
        return Err(ApiError::bad_request(format!(
            "container {} is not valid for pod {pod_name}",
            options.container
        )));
    }
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(format!(
            "pod {pod_name} does not have a host assigned"
        )));
    }
    let running = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|key| pod["status"][key].as_array().into_iter().flatten())
        .any(|s| s["name"] == options.container.as_str() && s["state"]["running"].is_object());
    if !running {
        return Err(ApiError::bad_request(format!(
            "container not found ({:?})",
            options.container
        )));
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(running: bool) -> Value {
        let state = if running {
            json!({"running": {}})
        } else {
            json!({"waiting": {"reason": "ContainerCreating"}})
        };
        json!({
            "spec": {"nodeName": "n", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"containerStatuses": [{"name": "a", "state": state}, {"name": "b", "state": {"running": {}}}]},
        })
    }

    #[test]
    fn options_keep_every_command_word() {
        let options = parse_options(Some(
            "command=sh&command=-c&command=echo+a%20b&stdout=true&tty=false",
        ))
        .unwrap();
        assert_eq!(options.command, ["sh", "-c", "echo a b"]);
        assert!(options.stdout && !options.stdin && !options.tty);
        let err = parse_options(Some("stdout=true")).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(parse_options(Some("command=ls")).is_err(), "no stream");
    }

    #[test]
    fn the_container_must_be_named_valid_and_running() {
        let opts = |c: &str| ExecOptions {
            container: c.into(),
            command: vec!["ls".into()],
            stdout: true,
            ..Default::default()
        };
        assert_eq!(
            check_pod(&pod(true), "p", opts("b")).unwrap().container,
            "b"
        );
        let err = check_pod(&pod(true), "p", opts("")).unwrap_err();
        assert_eq!(
            err.message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        let err = check_pod(&pod(true), "p", opts("x")).unwrap_err();
        assert_eq!(err.message, "container x is not valid for pod p");
        let err = check_pod(&pod(false), "p", opts("a")).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (400, "container not found (\"a\")")
        );
    }
}
