//! Dispatch of resource requests to reads, watches, writes and subresources.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::Value;

use crate::auth::UserInfo;
use crate::delete::{self, DeleteOptions};
use crate::error::{ApiError, Result};
use crate::negotiate;
use crate::request::{Query, RequestInfo};
use crate::state::ApiState;
use crate::write::{WriteContext, decode_body};
use crate::{read, subresources, watch};

/// Largest request body accepted (objects are further held to 1.5 MiB), as upstream's 3 MiB.
const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;

/// A JSON response.
pub fn json_response(code: u16, body: &Value) -> Response {
    json_response_with_warnings(code, body, &[])
}

/// A JSON response with `Warning` headers (e.g. unknown fields under fieldValidation=Warn).
pub fn json_response_with_warnings(code: u16, body: &Value, warnings: &[String]) -> Response {
    let mut builder = Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json");
    for warning in warnings {
        let escaped = warning.replace('\\', "\\\\").replace('"', "\\\"");
        builder = builder.header("Warning", format!("299 - \"{escaped}\""));
    }
    builder
        .body(Body::from(body.to_string()))
        .expect("valid response")
}

/// The response to a write: the object in the representation the client asked for (upstream
/// transforms every verb's response, so metadata informers can patch and get metadata back).
fn respond(
    res: &crate::resources::Resource,
    written: crate::write::Written,
    output: negotiate::Output,
    query: &Query,
) -> Response {
    let body = crate::render::object(res, written.object, output, query);
    json_response_with_warnings(written.code, &body, &written.warnings)
}

/// One resource request.
pub struct ResourceRequest {
    /// The method.
    pub method: Method,
    /// What the path names.
    pub info: RequestInfo,
    /// Its headers.
    pub headers: HeaderMap,
    /// Who asks.
    pub user: UserInfo,
}

/// Serves one resource request.
pub async fn handle(
    state: Arc<ApiState>,
    request: ResourceRequest,
    raw_query: Option<&str>,
    body: Body,
) -> Response {
    let query = Query::parse(raw_query);
    match serve(&state, &request, &query, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn read_body(body: Body) -> Result<Bytes> {
    axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|_| {
            ApiError::too_large(format!(
                "Request entity too large: limit is {MAX_REQUEST_BYTES}"
            ))
        })
}

async fn serve(
    state: &Arc<ApiState>,
    request: &ResourceRequest,
    query: &Query,
    body: Body,
) -> Result<Response> {
    let (method, info, headers) = (&request.method, &request.info, &request.headers);
    let res = state
        .registry
        .get(&info.group, &info.version, &info.resource)
        .ok_or_else(ApiError::path_not_found)?;
    if info.namespace.is_some() && !res.namespaced {
        return Err(ApiError::path_not_found());
    }
    let ns = if res.namespaced {
        info.namespace.as_deref()
    } else {
        None
    };
    let output = negotiate::output(headers);
    let name = info.name.as_deref();
    if res.is_metrics() {
        return crate::resource_metrics::serve(state, &res, ns, name, method, query).await;
    }
    if res.kind == "ComponentStatus" {
        return crate::component_status::serve(state, &res, name, method, output, query).await;
    }
    if res.create_only {
        if method != Method::POST || name.is_some() {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let body = read_body(body).await?;
        let posted = decode_body(headers, &body)?;
        if res.kind == "Binding" {
            // POST .../bindings is pods/<name>/binding with the pod named in the body.
            let pod = crate::objects::name(&posted).to_string();
            let pods = state.registry.get("", "v1", "pods").expect("built in");
            let ctx = WriteContext {
                state,
                res: &pods,
                ns,
                query,
                user: &request.user,
            };
            return subresources::bind(state, &ctx, &pod, headers, &body).await;
        }
        let answer = crate::reviews::create(state, &res, ns, &request.user, posted).await?;
        return Ok(json_response(201, &answer));
    }
    let ctx = WriteContext {
        state,
        res: &res,
        ns,
        query,
        user: &request.user,
    };
    match (method.as_str(), name, info.subresource.as_deref()) {
        ("GET", None, None) if query.flag("watch") => {
            watch::watch(
                state.clone(),
                res.clone(),
                ns.map(String::from),
                output,
                query.clone(),
            )
            .await
        }
        ("GET", None, None) => read::list(state, &res, ns, output, query).await,
        ("GET", Some(name), sub)
            if sub.is_none_or(|s| matches!(s, "status" | "approval") && res.has_subresource(s)) =>
        {
            read::get(state, &res, ns, name, output, query).await
        }
        ("POST", None, None) => {
            if res.namespaced && ns.is_none() {
                return Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
            let written = ctx.create(headers, &read_body(body).await?).await?;
            Ok(respond(&res, written, output, query))
        }
        ("PUT", Some(name), None) => {
            let written = ctx
                .update(name, None, headers, &read_body(body).await?)
                .await?;
            Ok(respond(&res, written, output, query))
        }
        ("PUT", Some(name), Some(sub @ ("status" | "approval"))) if res.has_subresource(sub) => {
            let written = ctx
                .update(name, Some(sub), headers, &read_body(body).await?)
                .await?;
            Ok(respond(&res, written, output, query))
        }
        ("PATCH", Some(name), None) => {
            let written = ctx
                .patch(name, None, headers, &read_body(body).await?)
                .await?;
            Ok(respond(&res, written, output, query))
        }
        ("PATCH", Some(name), Some(sub @ ("status" | "approval"))) if res.has_subresource(sub) => {
            let written = ctx
                .patch(name, Some(sub), headers, &read_body(body).await?)
                .await?;
            Ok(respond(&res, written, output, query))
        }
        ("DELETE", Some(name), None) => {
            let options = DeleteOptions::parse(&read_body(body).await?, query)?;
            let (code, obj) = delete::delete(&ctx, name, &options).await?;
            let rendered = if obj["kind"] == "Status" {
                obj
            } else {
                crate::render::object(&res, obj, output, query)
            };
            Ok(json_response(code, &rendered))
        }
        ("DELETE", None, None) => {
            let options = DeleteOptions::parse(&read_body(body).await?, query)?;
            delete::delete_collection(&ctx, &options).await
        }
        ("GET" | "PUT" | "PATCH", Some(name), Some("scale")) if res.has_subresource("scale") => {
            subresources::scale(&ctx, method, name, headers, &read_body(body).await?).await
        }
        ("POST", Some(name), Some("token")) if res.has_subresource("token") => {
            let request = decode_body(headers, &read_body(body).await?)?;
            let ns = ns.unwrap_or_default();
            let answer = crate::token_request::create(state, ns, name, request).await?;
            Ok(json_response(201, &answer))
        }
        ("POST", Some(name), Some("binding")) if res.has_subresource("binding") => {
            subresources::bind(state, &ctx, name, headers, &read_body(body).await?).await
        }
        ("POST", Some(name), Some("eviction")) if res.has_subresource("eviction") => {
            crate::eviction::evict(&ctx, name, headers, &read_body(body).await?).await
        }
        ("GET", Some(name), Some("log")) if res.has_subresource("log") => {
            subresources::log(state, &ctx, name, query).await
        }
        ("PUT", Some(name), Some("finalize")) if res.has_subresource("finalize") => {
            subresources::finalize(state, &ctx, name, headers, &read_body(body).await?).await
        }
        (_, Some(_), Some(sub)) if !res.has_subresource(sub) => Err(ApiError::path_not_found()),
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}
