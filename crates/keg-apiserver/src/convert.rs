//! Kinds served at more than one group-version over one storage, as upstream does.
//!
//! Events: core/v1 and events.k8s.io/v1 name the same fields differently. Each is stored as
//! written; reads convert to the group asked for, so `kubectl describe` (core/v1, filtering
//! on `involvedObject`) sees events recorded through events.k8s.io (kube's Recorder) and the
//! other way round.
//!
//! HorizontalPodAutoscalers: stored as autoscaling/v2 (upstream's storage version); writes
//! through autoscaling/v1 are converted to v2 before storage and reads convert back
//! ([`hpa`]).

mod hpa;

use std::borrow::Cow;

use serde_json::Value;

use crate::resources::Resource;

/// An object written through `res` in the shape it is stored in.
pub fn to_storage<'a>(res: &Resource, obj: &'a Value) -> Cow<'a, Value> {
    if res.kind == "HorizontalPodAutoscaler" && res.version == "v1" {
        return Cow::Owned(hpa::v1_to_v2(obj.clone()));
    }
    Cow::Borrowed(obj)
}

/// Field names: (core/v1, events.k8s.io/v1).
const RENAMED: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Converts a stored object to the shape of the group-version `res` serves.
pub fn for_resource(res: &Resource, obj: Value) -> Value {
    if res.kind == "HorizontalPodAutoscaler" {
        // Stored as v2 (see `to_storage`).
        return if res.version == "v1" {
            hpa::v2_to_v1(obj)
        } else {
            obj
        };
    }
    if res.kind != "Event" {
        return obj;
    }
    let Value::Object(mut map) = obj else {
        return obj;
    };
    let to_events = res.group == "events.k8s.io";
    for (core, events) in RENAMED {
        let (from, to) = if to_events {
            (core, events)
        } else {
            (events, core)
        };
        if let Some(value) = map.remove(from) {
            map.entry(to.to_string()).or_insert(value);
        }
    }
    map.insert("apiVersion".into(), Value::String(res.api_version()));
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::Registry;

    #[test]
    fn events_read_through_either_group() {
        let registry = Registry::new();
        let core = registry.get("", "v1", "events").unwrap();
        let events = registry.get("events.k8s.io", "v1", "events").unwrap();
        let recorded = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "regarding": {"name": "d"}, "note": "Scaled up"});
        let read = for_resource(&core, recorded.clone());
        assert_eq!(read["involvedObject"]["name"], "d");
        assert_eq!(read["message"], "Scaled up");
        assert_eq!(read["apiVersion"], "v1");
        assert_eq!(for_resource(&events, read), recorded);
    }
}
