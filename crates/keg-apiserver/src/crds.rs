//! Serving the resources of every CustomResourceDefinition in the store: listed at start,
//! then followed through the store's watch, so a CRD created, changed or deleted through
//! another API server on the same store is served (or no longer served) here too. The server
//! that handles the write also installs it at once ([`crate::hooks`]); this follower makes
//! the others catch up within the watch's latency.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use keg_store::{EventKind, Revision};
use serde_json::Value;

use crate::objects;
use crate::resources::Resource;
use crate::state::ApiState;

fn crds(state: &ApiState) -> Arc<Resource> {
    state
        .registry
        .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("built in")
}

/// The (group, plural) a CRD serves.
fn names(crd: &Value) -> (String, String) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        text(&crd["spec"]["group"]),
        text(&crd["spec"]["names"]["plural"]),
    )
}

/// Installs every stored CRD; the revision they were read at.
async fn load(state: &ApiState, installed: &mut BTreeMap<String, Value>) -> Result<Revision> {
    let page = state
        .objects
        .list(&crds(state), None, None, None, None)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let mut listed = BTreeMap::new();
    for crd in page.items {
        install(state, installed, &crd);
        listed.insert(objects::name(&crd).to_owned(), ());
    }
    // Those gone while the watch was down.
    let gone: Vec<String> = installed
        .keys()
        .filter(|name| !listed.contains_key(*name))
        .cloned()
        .collect();
    for name in gone {
        if let Some(spec) = installed.remove(&name) {
            let (group, plural) = names(&serde_json::json!({ "spec": spec }));
            state.registry.remove_crd(&group, &plural);
        }
    }
    Ok(page.revision)
}

/// Installs a CRD unless its spec is what was installed last (a status write changes
/// nothing served).
fn install(state: &ApiState, installed: &mut BTreeMap<String, Value>, crd: &Value) {
    let name = objects::name(crd).to_owned();
    if installed.get(&name) == Some(&crd["spec"]) {
        return;
    }
    state.registry.install_crd(crd);
    installed.insert(name, crd["spec"].clone());
}

/// Installs the stored CRDs, then follows their changes in the background.
pub async fn start(state: &Arc<ApiState>) -> Result<()> {
    let mut installed = BTreeMap::new();
    let revision = load(state, &mut installed).await?;
    tokio::spawn(follow(state.clone(), installed, revision));
    Ok(())
}

async fn follow(
    state: Arc<ApiState>,
    mut installed: BTreeMap<String, Value>,
    mut revision: Revision,
) {
    let prefix = crds(&state).key_prefix(None);
    loop {
        match state.objects.store().watch(&prefix, revision).await {
            Ok(mut events) => {
                while let Some(event) = events.next().await {
                    let event = match event {
                        Ok(event) => event,
                        Err(e) => {
                            tracing::warn!("CRD watch ended: {e}");
                            break;
                        }
                    };
                    revision = event.kv.mod_revision;
                    let Ok(crd) = objects::decode(&event.kv) else {
                        continue;
                    };
                    match event.kind {
                        // A CRD being deleted is served until it is gone, as upstream's.
                        EventKind::Put if objects::is_deleting(&crd) => {}
                        EventKind::Put => install(&state, &mut installed, &crd),
                        EventKind::Delete => {
                            installed.remove(objects::name(&crd));
                            let (group, plural) = names(&crd);
                            state.registry.remove_crd(&group, &plural);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("CRD watch failed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        match load(&state, &mut installed).await {
            Ok(listed) => revision = listed,
            Err(e) => tracing::warn!("CRD relist failed: {e}"),
        }
    }
}
