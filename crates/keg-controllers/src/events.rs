//! Events with upstream's reasons and messages, published through kube's Recorder.
//!
//! kube's Recorder folds every event with the same reason about the same object into one
//! series, whatever its message, so "Created pod: a" and "Created pod: b" would show as one
//! event seen twice. Upstream's recorder only folds identical messages; to show what upstream
//! shows, each distinct (object, reason, message) gets a recorder of its own.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::Mutex;

/// How many distinct events are remembered for folding repeats before starting afresh.
const REMEMBERED: usize = 4096;

/// Publishes events for one controller (the `reportingController`, as upstream's component).
pub struct Events {
    client: Client,
    reporter: Reporter,
    recorders: Mutex<HashMap<(String, String, String), Recorder>>,
}

impl Events {
    /// Events reported by `controller`, e.g. "deployment-controller".
    pub fn new(client: Client, controller: &str) -> Events {
        let reporter = Reporter {
            controller: controller.into(),
            instance: None,
        };
        Events {
            client,
            reporter,
            recorders: Mutex::default(),
        }
    }

    /// A Normal event about `regarding`.
    pub async fn normal(
        &self,
        regarding: &ObjectReference,
        reason: &str,
        action: &str,
        message: String,
    ) {
        self.publish(regarding, EventType::Normal, reason, action, message)
            .await;
    }

    /// A Warning event about `regarding`.
    pub async fn warning(
        &self,
        regarding: &ObjectReference,
        reason: &str,
        action: &str,
        message: String,
    ) {
        self.publish(regarding, EventType::Warning, reason, action, message)
            .await;
    }

    async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        message: String,
    ) {
        let key = (
            regarding.uid.clone().unwrap_or_default(),
            reason.to_string(),
            message.clone(),
        );
        let recorder = {
            let mut recorders = self.recorders.lock().await;
            if recorders.len() >= REMEMBERED {
                recorders.clear();
            }
            recorders
                .entry(key)
                .or_insert_with(|| Recorder::new(self.client.clone(), self.reporter.clone()))
                .clone()
        };
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(message),
            action: action.into(),
            secondary: None,
        };
        // Events are best effort, as upstream's recorder: a lost event must not fail a sync.
        if let Err(e) = recorder.publish(&event, regarding).await {
            tracing::debug!(reason, "publishing an event failed: {e}");
        }
    }
}
