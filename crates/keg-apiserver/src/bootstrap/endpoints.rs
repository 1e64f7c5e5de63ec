//! The `kubernetes` Service's Endpoints and EndpointSlice: the address pods reach the API
//! server at, kept by the API server itself as upstream's endpoint reconciler does (the
//! Service has no selector, so no controller fills them).

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::Result;
use crate::objects::stored_revision;
use crate::state::ApiState;

/// Points the `kubernetes` Service at `address:port`.
pub async fn publish(state: &Arc<ApiState>, address: IpAddr, port: u16) -> Result<()> {
    let ip = address.to_string();
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    });
    put(state, "", "endpoints", endpoints, &["subsets"]).await?;
    let family = if address.is_ipv4() { "IPv4" } else { "IPv6" };
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": family,
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    put(
        state,
        "discovery.k8s.io",
        "endpointslices",
        slice,
        &["endpoints", "ports"],
    )
    .await
}

/// Creates `obj`, or sets the `fields` of the stored one when they differ.
async fn put(
    state: &Arc<ApiState>,
    group: &str,
    plural: &str,
    obj: Value,
    fields: &[&str],
) -> Result<()> {
    let res = state
        .registry
        .get(group, "v1", plural)
        .expect("built-in resource");
    let Some(mut stored) = state
        .objects
        .try_get(&res, Some("default"), "kubernetes")
        .await?
    else {
        return super::ensure(state, group, plural, Some("default"), obj).await;
    };
    if fields.iter().all(|f| stored[*f] == obj[*f]) {
        return Ok(());
    }
    for field in fields {
        stored[*field] = obj[*field].clone();
    }
    let rv = stored_revision(&stored)?;
    state
        .objects
        .update(&res, Some("default"), &stored, rv)
        .await
        .map(|_| ())
}
