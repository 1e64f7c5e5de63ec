//! The DefaultStorageClass plugin: claims that name no class get the default one.

use async_trait::async_trait;
use serde_json::Value;

use super::{AdmissionPlugin, Attributes, Operation};
use crate::error::Result;
use crate::state::ApiState;

const DEFAULT_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
const BETA_DEFAULT_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";

/// Sets `spec.storageClassName` of new claims that leave it unset (not `""`) to the default class.
pub struct DefaultStorageClass;

#[async_trait]
impl AdmissionPlugin for DefaultStorageClass {
    async fn admit(&self, state: &ApiState, attrs: &mut Attributes<'_>) -> Result<()> {
        if attrs.operation != Operation::Create
            || attrs.resource.kind != "PersistentVolumeClaim"
            || !attrs.resource.group.is_empty()
        {
            return Ok(());
        }
        if !attrs.object["spec"]["storageClassName"].is_null() {
            return Ok(());
        }
        let classes = state
            .registry
            .get("storage.k8s.io", "v1", "storageclasses")
            .expect("built in");
        let page = state.objects.list(&classes, None, None, None, None).await?;
        // Upstream picks the newest default class when several are marked default.
        let default = page
            .items
            .iter()
            .filter(|c| {
                let annotations = &c["metadata"]["annotations"];
                annotations[DEFAULT_ANNOTATION] == "true"
                    || annotations[BETA_DEFAULT_ANNOTATION] == "true"
            })
            .max_by_key(|c| {
                c["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            });
        if let Some(class) = default {
            attrs.object["spec"]["storageClassName"] = class["metadata"]["name"].clone();
        }
        let _: &Value = attrs.object;
        Ok(())
    }
}
