//! The node-group autoscaler's decisions in `keg cost`: each scale-up and each node removed,
//! read from the autoscaler's events on its NodeGroups, with what it added to or took off the
//! run rate at the group's instance price.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use keg_api::crds::NodeGroup;
use keg_api::prices::PriceTable;
use kube::ResourceExt;
use serde::Serialize;

/// One decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// When it was taken.
    pub time: Timestamp,
    /// The node group.
    pub group: String,
    /// Nodes added (positive) or removed (negative).
    pub nodes: i32,
    /// The event's reason: `ScaledUpGroup`, `ScaleDownEmpty` or `ScaleDown`.
    pub reason: String,
    /// The group's instance type, if the group still exists.
    pub instance_type: Option<String>,
    /// The change of the hourly run rate in USD (negative: saved), if priced.
    pub hourly: Option<f64>,
}

/// The decisions recorded in `events` since `since`, oldest first.
pub fn decisions(
    events: &[Event],
    groups: &[NodeGroup],
    prices: &PriceTable,
    region: &str,
    since: Option<Timestamp>,
) -> Vec<Decision> {
    let mut out: Vec<Decision> = events
        .iter()
        .filter(|e| e.involved_object.kind.as_deref() == Some("NodeGroup"))
        .filter_map(|e| {
            let group = e.involved_object.name.clone().unwrap_or_default();
            let message = e.message.as_deref().unwrap_or_default();
            let reason = e.reason.clone().unwrap_or_default();
            let repeats = e.count.unwrap_or(1).max(1);
            let nodes = match reason.as_str() {
                "ScaledUpGroup" => {
                    let (_, from, to) = keg_api::nodes::parse_scale_up_message(message)?;
                    (to - from) * repeats
                }
                "ScaleDownEmpty" | "ScaleDown" => -repeats,
                _ => return None,
            };
            let time = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
                .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
            if since.is_some_and(|s| time < s) {
                return None;
            }
            let instance_type = groups
                .iter()
                .find(|g| g.name_any() == group)
                .map(|g| g.spec.instance_type.clone());
            let hourly = instance_type
                .as_deref()
                .and_then(|t| prices.ec2_hourly(region, t))
                .map(|price| price * f64::from(nodes));
            Some(Decision {
                time,
                group,
                nodes,
                reason,
                instance_type,
                hourly,
            })
        })
        .collect();
    out.sort_by_key(|d| d.time);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(reason: &str, message: &str, at: &str, count: i32) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": format!("ng.{reason}"), "namespace": "default"},
            "involvedObject": {"kind": "NodeGroup", "name": "ng", "apiVersion": "keg.dev/v1"},
            "reason": reason, "message": message, "count": count,
            "lastTimestamp": at,
        }))
        .unwrap()
    }

    #[test]
    fn scale_ups_and_removals_priced_at_the_groups_instance() {
        let group: NodeGroup = serde_json::from_value(json!({
            "apiVersion": "keg.dev/v1", "kind": "NodeGroup", "metadata": {"name": "ng"},
            "spec": {"instanceType": "t3.medium", "desiredCapacity": 1, "minSize": 1, "maxSize": 3},
        }))
        .unwrap();
        let events = [
            event(
                "ScaleDownEmpty",
                "Scale-down: removing empty node \"ip-1\"",
                "2025-01-01T00:10:00Z",
                1,
            ),
            event(
                "ScaledUpGroup",
                &keg_api::nodes::scale_up_message("ng", 1, 3, 3),
                "2025-01-01T00:00:00Z",
                1,
            ),
            event(
                "TriggeredScaleUp",
                "pod triggered scale-up",
                "2025-01-01T00:00:00Z",
                1,
            ),
        ];
        let prices = PriceTable::aws();
        let hourly = prices.ec2_hourly("us-east-1", "t3.medium").unwrap();
        let found = decisions(&events, &[group], &prices, "us-east-1", None);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].nodes, found[0].hourly), (2, Some(2.0 * hourly)));
        assert_eq!(found[1].reason, "ScaleDownEmpty");
        assert_eq!((found[1].nodes, found[1].hourly), (-1, Some(-hourly)));
        let since = "2025-01-01T00:05:00Z".parse().ok();
        assert_eq!(
            decisions(&events, &[], &prices, "us-east-1", since).len(),
            1
        );
    }
}
