//! PATCH bodies applied to stored objects: JSON patch (RFC 6902), JSON merge patch
//! (RFC 7386), Kubernetes strategic merge patch, and an approximation of server-side apply.
//!
//! Error texts follow upstream (evanphx/json-patch v4 and k8s.io/apimachinery's
//! strategicpatch) because users see them verbatim.

mod json;
mod schema;
mod strategic;

use serde_json::{Map, Value};

/// A patch that cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Strategic merge patches need per-field merge keys, which custom resources lack;
    /// upstream answers 415 Unsupported Media Type.
    #[error(
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (strategic merge patch is not supported for {kind})"
    )]
    UnsupportedStrategicMerge {
        /// The custom resource's kind.
        kind: String,
    },
    /// A JSON patch operation failed or the patch is malformed.
    #[error("{0}")]
    JsonPatch(String),
    /// A JSON patch `test` operation found a different value.
    #[error("testing value {path} failed: test failed")]
    TestFailed {
        /// The JSON pointer that was tested.
        path: String,
    },
    /// A merge patch body is not a JSON object.
    #[error("Invalid JSON Patch")]
    InvalidMergePatch,
    /// A strategic merge patch is malformed (bad directive, missing merge key, ...).
    #[error("{0}")]
    StrategicMerge(String),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kind of patch, chosen by the request's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`: a list of RFC 6902 operations.
    Json,
    /// `application/merge-patch+json`: RFC 7386.
    Merge,
    /// `application/strategic-merge-patch+json`: merge with per-field list merge keys.
    StrategicMerge,
    /// `application/apply-patch+yaml`: server-side apply.
    Apply,
}

impl PatchType {
    /// Maps a media type (without parameters) to its patch type.
    pub fn from_content_type(media: &str) -> Option<PatchType> {
        Some(match media.trim().to_ascii_lowercase().as_str() {
            "application/json-patch+json" => PatchType::Json,
            "application/merge-patch+json" => PatchType::Merge,
            "application/strategic-merge-patch+json" => PatchType::StrategicMerge,
            "application/apply-patch+yaml" => PatchType::Apply,
            _ => return None,
        })
    }

    /// The media type of this patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Applies `patch` to `current` (an object of `kind`) and returns the patched object;
/// fields the patch does not mention keep their current values.
///
/// [`PatchType::Apply`] is an approximation of server-side apply: the applied
/// configuration is merged onto the current object like a strategic merge patch
/// (built-in kinds) or a merge patch (custom resources). There is no field ownership,
/// so fields a manager stops applying are kept rather than removed, and no conflicts
/// are reported.
pub fn apply_patch(
    kind: &str,
    current: &Value,
    patch: &Value,
    patch_type: PatchType,
    is_custom: bool,
) -> Result<Value> {
    match patch_type {
        PatchType::Json => json::apply(current, patch),
        PatchType::Merge => merge_patch(current, patch),
        PatchType::StrategicMerge if is_custom => Err(Error::UnsupportedStrategicMerge {
            kind: kind.to_string(),
        }),
        PatchType::StrategicMerge => strategic::apply(kind, current, patch),
        PatchType::Apply if is_custom => merge_patch(current, patch),
        PatchType::Apply => strategic::apply(kind, current, patch),
    }
}

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
fn merge_patch(current: &Value, patch: &Value) -> Result<Value> {
    let Value::Object(patch) = patch else {
        // Upstream would replace the document with an array patch, which can never
        // decode into an object again, so it is rejected here with the same text.
        return Err(Error::InvalidMergePatch);
    };
    let mut doc = match current {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    merge_objects(&mut doc, patch);
    Ok(Value::Object(doc))
}

fn merge_objects(doc: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match (doc.get_mut(key), value) {
            (_, Value::Null) => {
                doc.remove(key);
            }
            (Some(Value::Object(cur)), Value::Object(p)) => merge_objects(cur, p),
            _ => {
                doc.insert(key.clone(), without_nulls(value));
            }
        }
    }
}

/// A new value carries no `null` members: in a merge patch they can only mean "absent".
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests;
