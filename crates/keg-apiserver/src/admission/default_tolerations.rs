//! The DefaultTolerationSeconds plugin: a new pod that does not say how long it tolerates a
//! not-ready or unreachable node gets upstream's five minutes, after which the node
//! lifecycle controller evicts it from such a node.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{AdmissionPlugin, Attributes, Operation};
use crate::error::Result;
use crate::state::ApiState;

/// upstream's `--default-not-ready-toleration-seconds` and `--default-unreachable-...`.
const DEFAULT_SECONDS: i64 = 300;

/// Adds the 300 s NoExecute tolerations of `node.kubernetes.io/not-ready` and `unreachable`.
pub struct DefaultTolerationSeconds;

#[async_trait]
impl AdmissionPlugin for DefaultTolerationSeconds {
    async fn admit(&self, _state: &ApiState, attrs: &mut Attributes<'_>) -> Result<()> {
        if attrs.operation != Operation::Create
            || attrs.resource.kind != "Pod"
            || !attrs.resource.group.is_empty()
        {
            return Ok(());
        }
        let spec = &mut attrs.object["spec"];
        if !spec["tolerations"].is_array() {
            spec["tolerations"] = json!([]);
        }
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let tolerations = spec["tolerations"].as_array_mut().expect("made an array");
            // Any toleration of the key with effect NoExecute (or every effect) counts.
            let covered = tolerations.iter().any(|t: &Value| {
                (t["key"] == key || (t["key"].is_null() && t["operator"] == "Exists"))
                    && (t["effect"] == "NoExecute" || t["effect"].is_null() || t["effect"] == "")
            });
            if !covered {
                tolerations.push(json!({
                    "key": key, "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": DEFAULT_SECONDS,
                }));
            }
        }
        Ok(())
    }
}
