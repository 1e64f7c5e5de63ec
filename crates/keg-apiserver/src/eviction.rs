//! The `pods/eviction` subresource: a pod delete that honours PodDisruptionBudgets, as
//! upstream's eviction REST. A budget with no disruption left answers 429 (kubectl drain
//! waits and tries again); otherwise the budget's `disruptionsAllowed` is taken down by one
//! (recording the pod under `disruptedPods`) before the pod is deleted, so two evictions
//! racing for the last disruption cannot both win.

use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use keg_apimachinery::labels::Selector;
use serde_json::{Value, json};

use crate::delete::{self, DeleteOptions};
use crate::error::{ApiError, Result};
use crate::objects::{self, stored_revision};
use crate::rest::json_response;
use crate::write::{WriteContext, decode_body};

/// upstream's message when a budget allows no disruption.
const REFUSED: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// POST `pods/NAME/eviction`.
pub async fn evict(
    ctx: &WriteContext<'_>,
    pod_name: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response> {
    let eviction = decode_body(headers, body)?;
    if let Some(name) = eviction["metadata"]["name"].as_str()
        && name != pod_name
    {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let options_body = match &eviction["deleteOptions"] {
        Value::Null => Bytes::new(),
        options => Bytes::from(serde_json::to_vec(options).unwrap_or_default()),
    };
    let options = DeleteOptions::parse(&options_body, ctx.query)?;
    let pod = ctx.state.objects.get(ctx.res, ctx.ns, pod_name).await?;
    let terminal = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    // A finished pod, or one already going, disrupts nothing more.
    if !terminal && !objects::is_deleting(&pod) {
        take_disruption(ctx, &pod).await?;
    }
    delete::delete(ctx, pod_name, &options).await?;
    Ok(json_response(
        201,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The one budget over the pod (none: nothing to honour), with one disruption taken.
async fn take_disruption(ctx: &WriteContext<'_>, pod: &Value) -> Result<()> {
    let Some(budgets) = ctx
        .state
        .registry
        .get("policy", "v1", "poddisruptionbudgets")
    else {
        return Ok(());
    };
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let labels = pod["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    loop {
        let page = ctx
            .state
            .objects
            .list(&budgets, ctx.ns, None, None, None)
            .await?;
        let matching: Vec<Value> = page
            .items
            .into_iter()
            .filter(|b| {
                !b["spec"]["selector"].is_null()
                    && Selector::from_label_selector(&b["spec"]["selector"])
                        .is_ok_and(|s| s.matches_json(&labels))
            })
            .collect();
        let mut budget = match matching.as_slice() {
            [] => return Ok(()),
            [one] => one.clone(),
            _ => {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
        };
        let name = budget["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let status = &budget["status"];
        let healthy = status["currentHealthy"].as_i64().unwrap_or(0);
        let desired = status["desiredHealthy"].as_i64().unwrap_or(0);
        // An unready pod does not count as healthy: evicting it costs nothing while the
        // budget is met (upstream's default IfHealthyBudget policy), and always under
        // AlwaysAllow.
        if !is_ready(pod) {
            let policy = budget["spec"]["unhealthyPodEvictionPolicy"].as_str();
            if policy == Some("AlwaysAllow") || (healthy >= desired && desired > 0) {
                return Ok(());
            }
        }
        let observed = status["observedGeneration"].as_i64().unwrap_or(0);
        let generation = budget["metadata"]["generation"].as_i64().unwrap_or(1);
        if observed < generation {
            return Err(ApiError::too_many_requests(
                REFUSED,
                &format!("The disruption budget {name} is still being processed by the server."),
            ));
        }
        let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
        if allowed <= 0 {
            return Err(ApiError::too_many_requests(
                REFUSED,
                &format!(
                    "The disruption budget {name} needs {desired} healthy pods and has {healthy} currently"
                ),
            ));
        }
        let rv = stored_revision(&budget)?;
        budget["status"]["disruptionsAllowed"] = json!(allowed - 1);
        if !budget["status"]["disruptedPods"].is_object() {
            budget["status"]["disruptedPods"] = json!({});
        }
        budget["status"]["disruptedPods"][pod_name] = json!(objects::now());
        match ctx
            .state
            .objects
            .update(&budgets, ctx.ns, &budget, rv)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
}
