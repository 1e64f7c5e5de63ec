//! What the server itself does after a write: letting the authorizer catch up with RBAC
//! changes, filling service-account token Secrets, serving the resources of a CRD as soon as it
//! is stored (and marking it Established), and dropping them when it goes.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::objects::{self, meta_str, stored_revision};
use crate::resources::Resource;
use crate::state::ApiState;

fn is_crd(res: &Resource) -> bool {
    res.group == "apiextensions.k8s.io" && res.kind == "CustomResourceDefinition"
}

/// After a write to an RBAC object, waits until the authorizer has seen it, so the writer's
/// next request (a `kubectl auth can-i` right after `kubectl create rolebinding`) is decided
/// by it. (Deletes take effect as the watch delivers them, within milliseconds, as upstream's
/// informer-fed authorizer does for every change.)
async fn policy_caught_up(state: &ApiState, res: &Resource, obj: &Value) {
    if res.group == "rbac.authorization.k8s.io"
        && let Some(revision) = stored_revision(obj).ok()
    {
        state.authz.policy.wait_for(revision).await;
    }
}

/// Runs after an object was created or updated.
pub async fn after_write(state: &Arc<ApiState>, res: &Resource, obj: &Value) {
    policy_caught_up(state, res, obj).await;
    if res.group.is_empty() && res.kind == "Namespace" && !objects::is_deleting(obj) {
        // As upstream's service account and root CA publisher controllers: every namespace
        // gets a default account and the cluster CA.
        let _ = crate::bootstrap::ensure_namespace_defaults(state, objects::name(obj)).await;
        return;
    }
    if res.group.is_empty() && res.kind == "Secret" {
        fill_service_account_token(state, res, obj).await;
        return;
    }
    if !is_crd(res) {
        return;
    }
    if objects::is_deleting(obj) {
        return;
    }
    state.registry.install_crd(obj);
    if obj["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Established"))
    {
        return;
    }
    let now = objects::now();
    let mut established = obj.clone();
    established["status"] = json!({
        "acceptedNames": obj["spec"]["names"],
        "storedVersions": obj["spec"]["versions"].as_array().into_iter().flatten()
            .filter(|v| v["storage"] == true).map(|v| v["name"].clone()).collect::<Vec<_>>(),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    });
    let rv = stored_revision(obj).unwrap_or(0);
    // A concurrent writer wins; its write comes through here again.
    let _ = state.objects.update(res, None, &established, rv).await;
}

/// Runs after an object was removed from storage.
pub async fn after_delete(state: &Arc<ApiState>, res: &Resource, obj: &Value) {
    if !is_crd(res) {
        return;
    }
    let group = obj["spec"]["group"].as_str().unwrap_or_default();
    let plural = obj["spec"]["names"]["plural"].as_str().unwrap_or_default();
    // Custom resources go with their definition, as upstream's CRD finalizer does.
    if let Some(custom) = state
        .registry
        .all()
        .into_iter()
        .find(|r| r.custom.is_some() && r.group == group && r.plural == plural)
        && let Ok(page) = state.objects.list(&custom, None, None, None, None).await
    {
        for item in page.items {
            let ns = meta_str(&item, "namespace").map(String::from);
            let _ = state
                .objects
                .delete(&custom, ns.as_deref(), objects::name(&item), None)
                .await;
        }
    }
    state.registry.remove_crd(group, plural);
}

/// As upstream's token controller: a `kubernetes.io/service-account-token` Secret naming an
/// account gets a long-lived token of that account, the cluster CA and the namespace. (The
/// API server does it, as it holds the signing key; the token dies with the Secret.)
async fn fill_service_account_token(state: &Arc<ApiState>, res: &Resource, obj: &Value) {
    use base64::Engine;
    const TYPE: &str = "kubernetes.io/service-account-token";
    const NAME: &str = "kubernetes.io/service-account.name";
    if obj["type"] != TYPE || objects::is_deleting(obj) || !obj["data"]["token"].is_null() {
        return;
    }
    let ns = meta_str(obj, "namespace").unwrap_or_default();
    let Some(account_name) = obj["metadata"]["annotations"][NAME].as_str() else {
        return;
    };
    let Some(accounts) = state.registry.get("", "v1", "serviceaccounts") else {
        return;
    };
    let Ok(Some(account)) = state
        .objects
        .try_get(&accounts, Some(ns), account_name)
        .await
    else {
        return;
    };
    let account = crate::auth::serviceaccount::Ref::of(&account);
    let token = state
        .auth
        .service_accounts
        .sign_legacy(ns, objects::name(obj), &account);
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let mut filled = obj.clone();
    filled["metadata"]["annotations"]["kubernetes.io/service-account.uid"] = json!(account.uid);
    if !filled["data"].is_object() {
        filled["data"] = json!({});
    }
    filled["data"]["token"] = json!(b64(&token));
    filled["data"]["ca.crt"] = json!(b64(&state.ca_pem));
    filled["data"]["namespace"] = json!(b64(ns));
    let rv = stored_revision(obj).unwrap_or(0);
    // A concurrent writer wins; its write comes through here again.
    let _ = state.objects.update(res, Some(ns), &filled, rv).await;
}
