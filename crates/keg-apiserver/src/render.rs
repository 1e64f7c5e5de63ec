//! Renders objects and lists in the representation a client asked for: themselves, a
//! meta.k8s.io Table, or PartialObjectMetadata.

use serde_json::{Value, json};

use crate::negotiate::Output;
use crate::request::Query;
use crate::resources::Resource;

/// Stamps `apiVersion` and `kind` on an object of a resource.
pub fn with_type(res: &Resource, mut obj: Value) -> Value {
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(res.api_version()));
        map.insert("kind".into(), Value::String(res.kind.clone()));
    }
    obj
}

fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

/// How much of each object a Table row carries (`includeObject`).
fn include_object(query: &Query) -> keg_apimachinery::table::IncludeObject {
    use keg_apimachinery::table::IncludeObject;
    match query.get("includeObject") {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    }
}

/// A Table of objects of a resource, with upstream's columns (or a CRD's printer columns).
pub fn table(res: &Resource, items: &[Value], query: &Query) -> Value {
    let now = jiff::Timestamp::now();
    let include = include_object(query);
    match &res.custom {
        // Every custom resource, with printer columns or without (NAME and AGE then, as upstream).
        Some(custom) => {
            keg_apimachinery::table::custom_table(&custom.printer_columns, items, now, include)
        }
        _ => keg_apimachinery::table::table(&res.kind, items, now, include),
    }
}

/// One object in the requested representation.
pub fn object(res: &Resource, obj: Value, output: Output, query: &Query) -> Value {
    let obj = with_type(res, obj);
    match output {
        Output::Object => obj,
        Output::Metadata => partial_metadata(&obj),
        Output::Table => {
            let mut t = table(res, std::slice::from_ref(&obj), query);
            t["metadata"] = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
            t
        }
    }
}

/// A list in the requested representation.
pub fn list(
    res: &Resource,
    items: Vec<Value>,
    revision: u64,
    cont: Option<String>,
    output: Output,
    query: &Query,
) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if let Some(cont) = cont {
        metadata["continue"] = Value::String(cont);
    }
    let items: Vec<Value> = items.into_iter().map(|o| with_type(res, o)).collect();
    match output {
        Output::Object => json!({
            "kind": format!("{}List", res.kind),
            "apiVersion": res.api_version(),
            "metadata": metadata,
            "items": items,
        }),
        Output::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "items": items.iter().map(partial_metadata).collect::<Vec<_>>(),
        }),
        Output::Table => {
            let mut t = table(res, &items, query);
            t["metadata"] = metadata;
            t
        }
    }
}
