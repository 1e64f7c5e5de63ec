//! `serviceaccounts/token` (TokenRequest): a bound service-account token for an audience, for
//! a time, tied to a pod, Secret or node so that it dies with it.

use serde_json::{Value, json};

use crate::auth::now_seconds;
use crate::auth::serviceaccount::{Claims, ISSUER, Private, Ref};
use crate::error::{ApiError, Cause, Result};
use crate::objects::now;
use crate::state::ApiState;

/// Upstream's default lifetime of a requested token.
const DEFAULT_SECONDS: i64 = 3600;
/// Upstream's shortest lifetime: ten minutes.
const MIN_SECONDS: i64 = 600;
/// Upstream's longest: 2^32 seconds.
const MAX_SECONDS: i64 = 1 << 32;

fn invalid(account: &str, field: &str, value: Value, detail: &str) -> ApiError {
    ApiError::invalid(
        "authentication.k8s.io",
        "TokenRequest",
        account,
        vec![Cause::invalid(field, &value, detail)],
    )
}

/// A stored core object, 404 when it is missing.
async fn stored(state: &ApiState, plural: &str, ns: Option<&str>, name: &str) -> Result<Value> {
    let res = state
        .registry
        .get("", "v1", plural)
        .ok_or_else(ApiError::path_not_found)?;
    state.objects.get(&res, ns, name).await
}

/// Issues a token for service account `account` of `ns` as `request` (a TokenRequest) asks.
pub async fn create(state: &ApiState, ns: &str, account: &str, request: Value) -> Result<Value> {
    let sa = stored(state, "serviceaccounts", Some(ns), account).await?;
    let spec = &request["spec"];
    let seconds = spec["expirationSeconds"]
        .as_i64()
        .unwrap_or(DEFAULT_SECONDS);
    if seconds < MIN_SECONDS {
        return Err(invalid(
            account,
            "spec.expirationSeconds",
            json!(seconds),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if seconds > MAX_SECONDS {
        return Err(invalid(
            account,
            "spec.expirationSeconds",
            json!(seconds),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let mut audiences: Vec<String> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    if audiences.is_empty() {
        audiences = vec![ISSUER.to_string()];
    }
    let mut private = Private {
        namespace: ns.to_string(),
        serviceaccount: Ref::of(&sa),
        ..Private::default()
    };
    let bound = &spec["boundObjectRef"];
    if bound.is_object() {
        let kind = bound["kind"].as_str().unwrap_or_default();
        let name = bound["name"].as_str().unwrap_or_default();
        let (plural, object_ns) = match kind {
            "Pod" => ("pods", Some(ns)),
            "Secret" => ("secrets", Some(ns)),
            "Node" => ("nodes", None),
            other => {
                return Err(ApiError::invalid(
                    "authentication.k8s.io",
                    "TokenRequest",
                    account,
                    vec![Cause::not_supported(
                        "spec.boundObjectRef.kind",
                        &json!(other),
                        &["Pod", "Node", "Secret"],
                    )],
                ));
            }
        };
        let object = stored(state, plural, object_ns, name).await?;
        let named = Ref::of(&object);
        if let Some(wanted) = bound["uid"].as_str().filter(|u| !u.is_empty())
            && wanted != named.uid
        {
            return Err(ApiError::conflict_because(
                "",
                plural,
                name,
                &format!(
                    "the UID in the bound object reference ({wanted}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        match kind {
            "Pod" => {
                // As upstream: a pod's token also names the node the pod runs on.
                if let Some(node) = object["spec"]["nodeName"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    && let Ok(node) = stored(state, "nodes", None, node).await
                {
                    private.node = Some(Ref::of(&node));
                }
                private.pod = Some(named);
            }
            "Secret" => private.secret = Some(named),
            _ => private.node = Some(named),
        }
    }
    let issued = now_seconds();
    let claims = Claims {
        iss: ISSUER.to_string(),
        sub: format!("system:serviceaccount:{ns}:{account}"),
        aud: audiences.clone(),
        exp: Some(issued + seconds),
        iat: Some(issued),
        nbf: Some(issued),
        jti: Some(uuid::Uuid::new_v4().to_string()),
        kubernetes: Some(private),
        ..Claims::default()
    };
    let token = state.auth.service_accounts.sign(&claims);
    let expires = jiff::Timestamp::from_second(issued + seconds)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let mut spec_out = spec.clone();
    if !spec_out.is_object() {
        spec_out = json!({});
    }
    spec_out["audiences"] = json!(audiences);
    spec_out["expirationSeconds"] = json!(seconds);
    Ok(json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "metadata": {"name": account, "namespace": ns, "creationTimestamp": now()},
        "spec": spec_out,
        "status": {"token": token, "expirationTimestamp": expires},
    }))
}
