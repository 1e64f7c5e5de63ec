//! Events as the kubelet records them (core/v1 Events, source `kubelet`), posted in the
//! background so that a slow API never holds up a pod, and counted up when they repeat.

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;

use crate::util::time;

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    /// Something expected happened.
    Normal,
    /// Something went wrong.
    Warning,
}

/// One event to record.
#[derive(Clone, Debug)]
pub(crate) struct EventRequest {
    /// What it is about (kind, namespace, name, uid, fieldPath).
    pub(crate) object: ObjectReference,
    /// The node reporting it.
    pub(crate) host: String,
    /// Normal or Warning.
    pub(crate) type_: EventType,
    /// The upstream reason, e.g. `Pulling`.
    pub(crate) reason: String,
    /// The upstream message.
    pub(crate) message: String,
}

/// Hands events to the background poster.
#[derive(Clone, Debug)]
pub(crate) struct EventRecorder {
    tx: mpsc::UnboundedSender<EventRequest>,
}

/// Repeated events (same object, reason and message) are one Event with a count, as
/// client-go's correlator does; this many distinct ones are remembered.
const REMEMBERED: usize = 4096;

impl EventRecorder {
    /// A recorder, and the receiving end that [`post_events`] drains.
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<EventRequest>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    /// Records an event; never blocks.
    pub(crate) fn record(&self, request: EventRequest) {
        tracing::debug!(
            object = ?request.object.name,
            reason = %request.reason,
            message = %request.message,
            "event"
        );
        let _ = self.tx.send(request);
    }
}

/// Counted events: (uid, fieldPath, reason, message) -> (namespace, event name, count).
type Seen = HashMap<(String, String, String, String), (String, String, i32)>;

/// Posts recorded events until every recorder is dropped.
pub(crate) async fn post_events(
    client: kube::Client,
    mut rx: mpsc::UnboundedReceiver<EventRequest>,
) {
    let mut seen: Seen = HashMap::new();
    while let Some(request) = rx.recv().await {
        if let Err(e) = post(&client, &mut seen, request).await {
            tracing::warn!(error = %e, "could not record an event");
        }
    }
}

async fn post(client: &kube::Client, seen: &mut Seen, request: EventRequest) -> kube::Result<()> {
    let now = Timestamp::now();
    let object = &request.object;
    let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
    let key = (
        object.uid.clone().unwrap_or_default(),
        object.field_path.clone().unwrap_or_default(),
        request.reason.clone(),
        request.message.clone(),
    );
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    if let Some((ns, name, count)) = seen.get_mut(&key) {
        *count += 1;
        let patch = json!({"count": *count, "lastTimestamp": time(now)});
        let events: Api<Event> = Api::namespaced(client.clone(), ns);
        match events
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            // Events expire; a new one is made below.
            Err(e) if crate::util::is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    let base = object.name.clone().unwrap_or_default();
    let name = format!("{base}.{:x}", now.as_nanosecond());
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        involved_object: object.clone(),
        reason: Some(request.reason.clone()),
        message: Some(request.message.clone()),
        type_: Some(
            match request.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .into(),
        ),
        source: Some(EventSource {
            component: Some("kubelet".into()),
            host: Some(request.host.clone()),
        }),
        first_timestamp: Some(time(now)),
        last_timestamp: Some(time(now)),
        count: Some(1),
        reporting_component: Some("kubelet".into()),
        reporting_instance: Some(request.host.clone()),
        ..Default::default()
    };
    api.create(&PostParams::default(), &event).await?;
    if seen.len() >= REMEMBERED {
        seen.clear();
    }
    seen.insert(key, (namespace, name, 1));
    Ok(())
}
