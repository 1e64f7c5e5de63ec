//! The cluster file as written: every key optional, unknown keys refused, no defaults yet.
//!
//! Fields a rule checks (names, namespaces) default to empty here rather than being required,
//! so that their absence is reported in eksctl's words ("metadata.name must be set") by the
//! rules in `resolve`, not as serde's "missing field".

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawClusterConfig {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    pub metadata: Option<RawMetadata>,
    #[serde(default)]
    pub node_groups: Vec<RawNodeGroup>,
    #[serde(default)]
    pub managed_node_groups: Vec<RawNodeGroup>,
    #[serde(default)]
    pub fargate_profiles: Vec<RawFargateProfile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetadata {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub region: String,
    pub version: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Both `nodeGroups` and `managedNodeGroups` entries; `instanceTypes` is refused by a rule
/// for the former, as eksctl's schema does not have it there.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawNodeGroup {
    #[serde(default)]
    pub name: String,
    pub instance_type: Option<String>,
    #[serde(default)]
    pub instance_types: Vec<String>,
    pub desired_capacity: Option<u32>,
    pub min_size: Option<u32>,
    pub max_size: Option<u32>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: RawTaints,
    pub volume_size: Option<u32>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawFargateProfile {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub selectors: Vec<RawSelector>,
    #[serde(rename = "podExecutionRoleARN")]
    pub pod_execution_role_arn: Option<String>,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSelector {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Taints in either of eksctl's forms: `key: "value:Effect"` or `[{key, value, effect}]`.
#[derive(Debug, Default)]
pub(super) enum RawTaints {
    #[default]
    None,
    /// The map form, as `(key, "value:Effect")` pairs in file order.
    Map(Vec<(String, String)>),
    /// The list form.
    List(Vec<RawTaintEntry>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTaintEntry {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub effect: String,
}

// Hand-written rather than `#[serde(untagged)]`: untagged buffers the input, which loses
// serde-saphyr's locations and turns every mistake into "did not match any variant".
impl<'de> Deserialize<'de> for RawTaints {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TaintsVisitor)
    }
}

struct TaintsVisitor;

impl<'de> Visitor<'de> for TaintsVisitor {
    type Value = RawTaints;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of key: \"value:Effect\" or a list of {key, value, effect}")
    }

    fn visit_unit<E: de::Error>(self) -> Result<RawTaints, E> {
        Ok(RawTaints::None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTaints, A::Error> {
        let mut taints = Vec::new();
        while let Some(entry) = map.next_entry::<String, String>()? {
            taints.push(entry);
        }
        Ok(RawTaints::Map(taints))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawTaints, A::Error> {
        let mut taints = Vec::new();
        while let Some(entry) = seq.next_element::<RawTaintEntry>()? {
            taints.push(entry);
        }
        Ok(RawTaints::List(taints))
    }
}
