//! ComponentStatus (core/v1, deprecated upstream but still served): the health of the
//! scheduler, the controller manager and the store, computed at each request, never stored.
//! keg's scheduler and controllers run beside the API server and talk to it through it, so
//! the store answering a read is what decides their health too.

use axum::response::Response;
use http::Method;
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::negotiate::Output;
use crate::request::Query;
use crate::resources::Resource;
use crate::rest::json_response;
use crate::state::ApiState;

fn component(name: &str, healthy: bool, message: &str, error: &str) -> Value {
    let mut condition = json!({"type": "Healthy", "status": if healthy { "True" } else { "False" }, "message": message});
    if !error.is_empty() {
        condition["error"] = json!(error);
    }
    json!({
        "kind": "ComponentStatus", "apiVersion": "v1",
        "metadata": {"name": name, "creationTimestamp": null},
        "conditions": [condition],
    })
}

/// GET of the list or of one ComponentStatus, in the representation asked for.
pub async fn serve(
    state: &ApiState,
    res: &Resource,
    name: Option<&str>,
    method: &Method,
    output: Output,
    query: &Query,
) -> Result<Response> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let store = state.objects.store().get("/registry/health").await;
    let items = match store {
        Ok(_) => vec![
            component("scheduler", true, "ok", ""),
            component("controller-manager", true, "ok", ""),
            component("etcd-0", true, r#"{"health":"true","reason":""}"#, ""),
        ],
        Err(e) => {
            let error = e.to_string();
            vec![
                component("scheduler", false, "", &error),
                component("controller-manager", false, "", &error),
                component("etcd-0", false, "", &error),
            ]
        }
    };
    let revision = state.objects.store().current_revision();
    match name {
        None => Ok(json_response(
            200,
            &crate::render::list(res, items, revision, None, output, query),
        )),
        Some(name) => items
            .into_iter()
            .find(|i| i["metadata"]["name"] == name)
            .map(|i| json_response(200, &crate::render::object(res, i, output, query)))
            .ok_or_else(|| ApiError::not_found("", "componentstatuses", name)),
    }
}
