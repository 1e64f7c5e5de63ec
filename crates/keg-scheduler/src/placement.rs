//! What both schedulers do with a pod: decide whether it waits for them, bind it, or say why
//! it cannot be placed (the PodScheduled condition and a FailedScheduling event).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use keg_api::crds::FargateProfile;
use keg_api::fargate::matching::{Profile, select_profile};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::Result;

/// The Fargate scheduler's name, as pods name it in `spec.schedulerName`.
pub const FARGATE_SCHEDULER: &str = "fargate-scheduler";
/// The default scheduler's name.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// Whether a pod still needs a node: not bound, not being deleted, not finished.
pub fn unbound(pod: &Pod) -> bool {
    let spec_node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default();
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    spec_node.is_empty() && pod.metadata.deletion_timestamp.is_none() && phase == "Pending"
}

/// Which scheduler a pod is for. A pod left to the default scheduler that a Fargate profile
/// selects (the profile came after the pod) goes to Fargate too, so it does not wait forever.
pub fn scheduler_for(pod: &Pod, profiles: &[std::sync::Arc<FargateProfile>]) -> String {
    let named = pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or(DEFAULT_SCHEDULER);
    if named != DEFAULT_SCHEDULER {
        return named.to_owned();
    }
    if profile_for(pod, profiles).is_some() {
        FARGATE_SCHEDULER.to_owned()
    } else {
        DEFAULT_SCHEDULER.to_owned()
    }
}

/// The profile that selects a pod, if any.
pub fn profile_for(pod: &Pod, profiles: &[std::sync::Arc<FargateProfile>]) -> Option<String> {
    let candidates: Vec<Profile<'_>> = profiles.iter().map(|p| Profile::from(p.as_ref())).collect();
    let labels: BTreeMap<String, String> = pod.labels().clone();
    let namespace = pod.namespace().unwrap_or_default();
    select_profile(&candidates, &namespace, &labels)
        .ok()
        .flatten()
        .map(str::to_owned)
}

/// Binds a pod to a node through the pods/binding subresource, as upstream schedulers do.
pub async fn bind(client: &Client, pod: &Pod, node: &str) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let binding = Binding {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            api_version: Some("v1".into()),
            name: Some(node.to_owned()),
            ..ObjectReference::default()
        },
    };
    pods.create_subresource::<Binding, serde_json::Value>(
        "binding",
        &pod.name_any(),
        &PostParams::default(),
        &binding,
    )
    .await?;
    Ok(())
}

/// Reports pods that cannot be placed, once per distinct message.
pub struct Refusals {
    recorder: Recorder,
    client: Client,
    reported: HashMap<String, String>,
}

impl Refusals {
    /// Refusals reported as `scheduler`.
    pub fn new(client: Client, scheduler: &str) -> Refusals {
        let reporter = Reporter {
            controller: scheduler.to_owned(),
            instance: None,
        };
        Refusals {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            reported: HashMap::new(),
        }
    }

    /// Sets PodScheduled=False with `reason` and `message`, and a Warning FailedScheduling event.
    pub async fn refuse(&mut self, pod: &Pod, reason: &str, message: &str) -> Result<()> {
        let uid = pod.uid().unwrap_or_default();
        if self.reported.get(&uid).is_some_and(|m| m == message) {
            return Ok(());
        }
        let pods: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let condition = json!({
            "type": "PodScheduled", "status": "False", "reason": reason, "message": message,
            "lastProbeTime": null, "lastTransitionTime": Time(jiff::Timestamp::now()),
        });
        let patch = json!({"status": {"conditions": [condition]}});
        pods.patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await?;
        let event = Event {
            type_: EventType::Warning,
            reason: "FailedScheduling".into(),
            note: Some(message.to_owned()),
            action: "Scheduling".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &pod.object_ref(&())).await {
            tracing::warn!("recording FailedScheduling: {e}");
        }
        self.reported.insert(uid, message.to_owned());
        Ok(())
    }

    /// Forgets a pod (bound or gone), so a later refusal is reported again.
    pub fn forget(&mut self, pod: &Pod) {
        self.reported.remove(&pod.uid().unwrap_or_default());
    }

    /// A Normal Preempted event on a victim of `preemptor`, as upstream words it.
    pub async fn preempted(&self, victim: &Pod, preemptor: &Pod, node: &str) {
        let event = Event {
            type_: EventType::Normal,
            reason: "Preempted".into(),
            note: Some(format!(
                "Preempted by pod {} on node {node}",
                preemptor.uid().unwrap_or_default()
            )),
            action: "Preempting".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &victim.object_ref(&())).await {
            tracing::warn!("recording Preempted: {e}");
        }
    }

    /// Records a Normal Scheduled event, as upstream does on binding.
    pub async fn scheduled(&mut self, pod: &Pod, node: &str) {
        self.forget(pod);
        let message = format!(
            "Successfully assigned {}/{} to {node}",
            pod.namespace().unwrap_or_default(),
            pod.name_any()
        );
        let event = Event {
            type_: EventType::Normal,
            reason: "Scheduled".into(),
            note: Some(message),
            action: "Binding".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &pod.object_ref(&())).await {
            tracing::warn!("recording Scheduled: {e}");
        }
    }
}
