//! What a new cluster has from the start: the system namespaces, a default ServiceAccount in
//! every namespace, the `kubernetes` Service, keg's own resource definitions (FargateProfile,
//! NodeGroup), the `gp2` StorageClass EKS clusters of the seed's time came with, the default
//! RBAC roles and bindings, and the system objects of the other GA APIs (`system`).

pub mod endpoints;
mod rbac;
mod system;

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Value, json};

use crate::error::Result;
use crate::request::Query;
use crate::state::ApiState;
use crate::write::WriteContext;

/// The namespaces every cluster has.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates an object through the normal write path unless it exists already.
pub async fn ensure(
    state: &Arc<ApiState>,
    group: &str,
    plural: &str,
    ns: Option<&str>,
    obj: Value,
) -> Result<()> {
    let res = state
        .registry
        .get(group, "v1", plural)
        .expect("built-in resource");
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if state.objects.try_get(&res, ns, &name).await?.is_some() {
        return Ok(());
    }
    let query = Query::default();
    let ctx = WriteContext {
        state,
        res: &res,
        ns,
        query: &query,
        user: crate::auth::UserInfo::apiserver(),
    };
    // Another server on the same store may be making it at the same time, and its write can
    // get in the way of this one before the create's own conflict would (the `kubernetes`
    // Service's cluster IP, claimed by the other server's create before it stores the
    // Service): then try again, until it exists, for a few seconds.
    let mut attempts = 0;
    loop {
        // Boxed: creating a namespace ensures its service account through this same path.
        match Box::pin(ctx.create(&HeaderMap::new(), &Bytes::from(obj.to_string()))).await {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 => return Ok(()),
            Err(e) if attempts < 25 => {
                tracing::debug!("creating {plural} {name}: {}; trying again", e.message);
            }
            Err(e) => return Err(e),
        }
        attempts += 1;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if state.objects.try_get(&res, ns, &name).await?.is_some() {
            return Ok(());
        }
    }
}

/// Sets the status of a system object unless it has one already (status is reset on create).
pub async fn ensure_status(
    state: &Arc<ApiState>,
    group: &str,
    plural: &str,
    name: &str,
    status: Value,
) -> Result<()> {
    let res = state
        .registry
        .get(group, "v1", plural)
        .expect("built-in resource");
    let current = state.objects.get(&res, None, name).await?;
    if current["status"].as_object().is_some_and(|s| !s.is_empty()) {
        return Ok(());
    }
    let query = Query::default();
    let ctx = WriteContext {
        state,
        res: &res,
        ns: None,
        query: &query,
        user: crate::auth::UserInfo::apiserver(),
    };
    ctx.store_update(name, Some("status"), None, |current| {
        let mut new = current.clone();
        new["status"] = status.clone();
        Ok(new)
    })
    .await
    .map(|_| ())
}

/// What every namespace has: the `default` ServiceAccount (upstream's service account
/// controller) and the `kube-root-ca.crt` ConfigMap (its root CA publisher), which the
/// projected service-account volume of every pod reads.
pub async fn ensure_namespace_defaults(state: &Arc<ApiState>, ns: &str) -> Result<()> {
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
    ensure(state, "", "serviceaccounts", Some(ns), sa).await?;
    let ca = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": crate::admission::ROOT_CA_CONFIG_MAP, "namespace": ns,
            "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
        "data": {"ca.crt": state.ca_pem},
    });
    ensure(state, "", "configmaps", Some(ns), ca).await
}

/// Creates what every cluster has, idempotently.
pub async fn run(state: &Arc<ApiState>) -> Result<()> {
    for ns in SYSTEM_NAMESPACES {
        ensure(
            state,
            "",
            "namespaces",
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
    }
    // Every namespace, including those a store from an older keg holds.
    let namespaces = state
        .registry
        .get("", "v1", "namespaces")
        .expect("built-in resource");
    let page = state
        .objects
        .list(&namespaces, None, None, None, None)
        .await?;
    for ns in &page.items {
        if !crate::objects::is_deleting(ns) {
            ensure_namespace_defaults(state, crate::objects::name(ns)).await?;
        }
    }
    let kubernetes = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}
    });
    ensure(state, "", "services", Some("default"), kubernetes).await?;
    for crd in keg_api::crds::custom_resource_definitions() {
        let crd = serde_json::to_value(&crd).expect("CRDs serialize");
        ensure(
            state,
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            None,
            crd,
        )
        .await?;
    }
    ensure(state, "storage.k8s.io", "storageclasses", None, gp2()).await?;
    rbac::ensure_policy(state).await?;
    system::ensure(state).await
}

/// EKS's default class before 1.30: EBS gp2 volumes, bound once a pod needs them.
fn gp2() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "gp2", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "kubernetes.io/aws-ebs",
        "parameters": {"type": "gp2", "fsType": "ext4"},
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer"
    })
}
