//! The Fargate plugin: pods that a FargateProfile selects go to the Fargate scheduler.
//!
//! EKS does this with a mutating webhook at pod creation: when a profile matches and the pod
//! leaves the scheduler to the default, it gets `schedulerName: fargate-scheduler` and the
//! label naming its profile. A pod that names a profile (with that label) which does not
//! exist or does not select it is refused, so the mistake shows at `kubectl apply`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use keg_api::crds::FargateProfile;
use keg_api::fargate::matching::{PROFILE_LABEL, Profile, select_profile};
use serde_json::Value;

use super::{AdmissionPlugin, Attributes, Operation};
use crate::error::{ApiError, Cause, Result};
use crate::state::ApiState;

/// The scheduler that places Fargate pods.
pub const FARGATE_SCHEDULER: &str = "fargate-scheduler";

/// Sends pods selected by a FargateProfile to the Fargate scheduler.
pub struct Fargate;

#[async_trait]
impl AdmissionPlugin for Fargate {
    async fn admit(&self, state: &ApiState, attrs: &mut Attributes<'_>) -> Result<()> {
        if attrs.operation != Operation::Create
            || attrs.resource.kind != "Pod"
            || !attrs.resource.group.is_empty()
        {
            return Ok(());
        }
        let scheduler = attrs.object["spec"]["schedulerName"]
            .as_str()
            .unwrap_or_default();
        if !scheduler.is_empty() && scheduler != "default-scheduler" {
            return Ok(());
        }
        let Some(profiles_res) = state.registry.get("keg.dev", "v1", "fargateprofiles") else {
            return Ok(());
        };
        let page = state
            .objects
            .list(&profiles_res, None, None, None, None)
            .await?;
        let profiles: Vec<FargateProfile> = page
            .items
            .into_iter()
            .filter_map(|p| serde_json::from_value(p).ok())
            .collect();
        let candidates: Vec<Profile<'_>> = profiles.iter().map(Profile::from).collect();
        let namespace = attrs.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let labels: BTreeMap<String, String> = attrs.object["metadata"]["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let chosen = select_profile(&candidates, &namespace, &labels).map_err(|e| {
            let name = attrs.object["metadata"]["name"]
                .as_str()
                .unwrap_or_default();
            ApiError::invalid(
                "",
                "Pod",
                name,
                vec![Cause {
                    reason: "FieldValueInvalid",
                    message: e.to_string(),
                    field: format!("metadata.labels[{PROFILE_LABEL}]"),
                }],
            )
        })?;
        if let Some(profile) = chosen {
            attrs.object["spec"]["schedulerName"] = Value::from(FARGATE_SCHEDULER);
            if !attrs.object["metadata"]["labels"].is_object() {
                attrs.object["metadata"]["labels"] = Value::Object(Default::default());
            }
            attrs.object["metadata"]["labels"][PROFILE_LABEL] = Value::from(profile);
        }
        Ok(())
    }
}
