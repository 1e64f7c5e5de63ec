//! Subresources: scale, pods/binding, pods/log and namespaces/finalize. (Status is the main
//! write path with `subresource = "status"`.)

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::HeaderMap;
use keg_apimachinery::patch::{PatchType, apply_patch};
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::objects::{self, name, parse_resource_version, stored_revision};
use crate::request::Query;
use crate::rest::json_response;
use crate::state::{ApiState, LogOptions};
use crate::write::{WriteContext, decode_body};

/// The label selector of a workload as the string a Scale carries (`app=web,tier=fe`).
fn selector_string(selector: &Value) -> String {
    let mut parts: Vec<String> = selector["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for expr in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = expr["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = expr["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match expr["operator"].as_str() {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("Exists") => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.sort();
    parts.join(",")
}

/// A workload's selector as a LabelSelector: a ReplicationController's is a plain map.
fn label_selector(obj: &Value) -> Value {
    let selector = &obj["spec"]["selector"];
    if obj["kind"] == "ReplicationController" {
        json!({"matchLabels": selector})
    } else {
        selector.clone()
    }
}

/// The autoscaling/v1 Scale of a workload.
fn scale_of(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {
            "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector_string(&label_selector(obj)),
        }
    })
}

/// GET, PUT or PATCH of `/scale`.
pub async fn scale(
    ctx: &WriteContext<'_>,
    method: &http::Method,
    obj_name: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response> {
    if method == http::Method::GET {
        let obj = ctx.state.objects.get(ctx.res, ctx.ns, obj_name).await?;
        return Ok(json_response(200, &scale_of(&obj)));
    }
    let is_patch = method == http::Method::PATCH;
    let (request, patch_type) = if is_patch {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media = content_type.split(';').next().unwrap_or_default().trim();
        let patch_type = PatchType::from_content_type(media)
            .ok_or_else(|| ApiError::unsupported_media_type(media))?;
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        (patch, Some(patch_type))
    } else {
        (decode_body(headers, body)?, None)
    };
    let precondition = request["metadata"]["resourceVersion"]
        .as_str()
        .map(parse_resource_version)
        .transpose()?;
    let stored = ctx
        .store_update(obj_name, None, precondition, |current| {
            let wanted = match patch_type {
                Some(patch_type) => {
                    apply_patch("Scale", &scale_of(current), &request, patch_type, false)
                        .map_err(|e| ApiError::bad_request(e.to_string()))?
                }
                None => request.clone(),
            };
            let replicas = wanted["spec"]["replicas"].as_i64().unwrap_or(0);
            if replicas < 0 {
                return Err(ApiError::invalid(
                    "autoscaling",
                    "Scale",
                    obj_name,
                    vec![crate::error::Cause::invalid(
                        "spec.replicas",
                        &json!(replicas),
                        "must be greater than or equal to 0",
                    )],
                ));
            }
            let mut new = current.clone();
            new["spec"]["replicas"] = json!(replicas);
            Ok(new)
        })
        .await?;
    Ok(json_response(200, &scale_of(&stored)))
}

/// POST of `pods/<name>/binding`: assigns a pod to a node, once.
pub async fn bind(
    state: &Arc<ApiState>,
    ctx: &WriteContext<'_>,
    pod_name: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response> {
    let binding = decode_body(headers, body)?;
    let node = binding["target"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            pod_name,
            vec![crate::error::Cause::required("target.name", "")],
        ));
    }
    loop {
        let mut pod = state.objects.get(ctx.res, ctx.ns, pod_name).await?;
        let rv = stored_revision(&pod)?;
        let conflict = |why: String| ApiError::conflict_because("", "pods/binding", pod_name, &why);
        if objects::is_deleting(&pod) {
            return Err(conflict(format!(
                "pod {pod_name} is being deleted, cannot be assigned to a host"
            )));
        }
        if let Some(current) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            return Err(conflict(format!(
                "pod {pod_name} is already assigned to node \"{current}\""
            )));
        }
        pod["spec"]["nodeName"] = json!(node);
        set_condition(
            &mut pod,
            json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": objects::now()}),
        );
        match state.objects.update(ctx.res, ctx.ns, &pod, rv).await {
            Ok(_) => break,
            Err(e) if e.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(json_response(
        201,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

fn set_condition(obj: &mut Value, condition: Value) {
    if !obj["status"]["conditions"].is_array() {
        obj["status"]["conditions"] = json!([]);
    }
    let conditions = obj["status"]["conditions"].as_array_mut().expect("array");
    conditions.retain(|c| c["type"] != condition["type"]);
    conditions.push(condition);
}

/// GET of `pods/<name>/log`.
pub async fn log(
    state: &Arc<ApiState>,
    ctx: &WriteContext<'_>,
    pod_name: &str,
    query: &Query,
) -> Result<Response> {
    let pod = state.objects.get(ctx.res, ctx.ns, pod_name).await?;
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            pod["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect();
    let container = match query.get("container") {
        Some(c) if containers.iter().any(|n| n == c) => c.to_string(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {pod_name}"
            )));
        }
        None if pod["spec"]["containers"]
            .as_array()
            .is_some_and(|c| c.len() == 1) =>
        {
            containers[0].clone()
        }
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(format!(
            "pod {pod_name} does not have a host assigned"
        )));
    }
    let provider = state.pod_logs.read().expect("lock").clone();
    let Some(provider) = provider else {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{pod_name}\" is waiting to start: no node agent serves it"
        )));
    };
    let number = |key: &str| query.number(key).map_err(ApiError::bad_request);
    let options = LogOptions {
        container: Some(container),
        follow: query.flag("follow"),
        previous: query.flag("previous"),
        tail_lines: number("tailLines")?,
        since_seconds: number("sinceSeconds")?,
        since_time: query.get("sinceTime").map(String::from),
        timestamps: query.flag("timestamps"),
        limit_bytes: number("limitBytes")?,
    };
    let stream = provider.logs(&pod, options).await?;
    Ok(Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(Body::from_stream(stream.map(Ok::<_, std::io::Error>)))
        .expect("valid response"))
}

/// PUT of `namespaces/<name>/finalize`: replaces spec.finalizers; the namespace goes once
/// it is being deleted and none are left.
pub async fn finalize(
    state: &Arc<ApiState>,
    ctx: &WriteContext<'_>,
    ns_name: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response> {
    let request = decode_body(headers, body)?;
    loop {
        let mut ns = state.objects.get(ctx.res, None, ns_name).await?;
        let rv = stored_revision(&ns)?;
        ns["spec"]["finalizers"] = request["spec"]["finalizers"].clone();
        let done = objects::is_deleting(&ns)
            && ns["spec"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty)
            && objects::finalizers(&ns).is_empty();
        let result = if done {
            crate::delete::remove(state, ctx.res, None, name(&ns), Some(rv)).await
        } else {
            state.objects.update(ctx.res, None, &ns, rv).await
        };
        match result {
            Ok(obj) => return Ok(json_response(200, &crate::render::with_type(ctx.res, obj))),
            Err(e) if e.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
}
