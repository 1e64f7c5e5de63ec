//! Events are served by two groups over one storage, as upstream does: core/v1 and
//! events.k8s.io/v1 name the same fields differently. Each is stored as written; reads
//! convert to the group asked for, so `kubectl describe` (core/v1, filtering on
//! `involvedObject`) sees events recorded through events.k8s.io (kube's Recorder) and the
//! other way round.

use serde_json::Value;

use crate::resources::Resource;

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

/// Converts a stored object to the shape of the group `res` serves (only Events differ).
pub fn for_resource(res: &Resource, obj: Value) -> Value {
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
