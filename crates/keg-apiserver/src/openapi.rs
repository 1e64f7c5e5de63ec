//! /openapi/v3: an index of group-versions and one OpenAPI 3 document per group-version, with
//! the paths and the `x-kubernetes-group-version-kind` extensions kubectl looks for (it checks
//! the PATCH operation's `fieldValidation` parameter to use server-side field validation) and
//! the kinds' schemas for `kubectl explain`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::resources::{Registry, Resource};

/// The group-versions served, as the index names them (`api/v1`, `apis/apps/v1`).
fn index_paths(registry: &Registry) -> BTreeMap<String, (String, String)> {
    registry
        .all()
        .iter()
        .map(|r| {
            let path = if r.group.is_empty() {
                format!("api/{}", r.version)
            } else {
                format!("apis/{}/{}", r.group, r.version)
            };
            (path, (r.group.clone(), r.version.clone()))
        })
        .collect()
}

/// GET /openapi/v3.
pub fn index(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for (path, (group, version)) in index_paths(registry) {
        let doc = document(registry, &group, &version);
        let hash = hex::encode(Sha256::digest(doc.to_string().as_bytes()));
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", &hash[..32])}),
        );
    }
    json!({"paths": paths})
}

/// The document for `api/v1` or `apis/<group>/<version>`, if served.
pub fn document_for_path(registry: &Registry, path: &str) -> Option<Value> {
    let (group, version) = index_paths(registry).remove(path.trim_matches('/'))?;
    Some(document(registry, &group, &version))
}

/// Rewrites schemars' `#/$defs/` references to OpenAPI's `#/components/schemas/`.
fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref") {
                *r = r.replace("#/$defs/", "#/components/schemas/");
            }
            map.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

fn schema_name(res: &Resource) -> String {
    match res.typed {
        Some(typed) => (typed.schema_name)(),
        None => format!(
            "{}.{}.{}",
            res.group.split('.').rev().collect::<Vec<_>>().join("."),
            res.version,
            res.kind
        ),
    }
}

fn gvk(res: &Resource) -> Value {
    json!({"group": res.group, "version": res.version, "kind": res.kind})
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(res: &Resource, action: &str, verb: &str, schema_ref: &str, params: &[&str]) -> Value {
    let mut op = json!({
        "operationId": format!("{verb}{}", res.kind),
        "parameters": params.iter().map(|p| query_param(p)).collect::<Vec<_>>(),
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema_ref}}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(res),
    });
    if matches!(action, "post" | "put" | "patch") {
        // Strategic merge is left out on purpose: kubectl then builds its patches from its
        // compiled-in types, which carry the merge keys this document does not.
        let types: &[&str] = if action == "patch" {
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ]
        } else {
            &["application/json"]
        };
        let content: Map<String, Value> = types
            .iter()
            .map(|t| (t.to_string(), json!({"schema": {"$ref": schema_ref}})))
            .collect();
        op["requestBody"] = json!({"content": content, "required": true});
    }
    op
}

fn paths_of(res: &Resource, schema_ref: &str) -> Vec<(String, Value)> {
    let base = if res.group.is_empty() {
        format!("/api/{}", res.version)
    } else {
        format!("/apis/{}/{}", res.group, res.version)
    };
    let scope = if res.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", res.plural)
    } else {
        format!("{base}/{}", res.plural)
    };
    let writes = ["dryRun", "fieldManager", "fieldValidation"];
    let collection = json!({
        "get": operation(res, "list", "list", schema_ref, &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"]),
        "post": operation(res, "post", "create", schema_ref, &writes),
        "delete": operation(res, "deletecollection", "deleteCollection", schema_ref, &["labelSelector", "fieldSelector"]),
    });
    let item = json!({
        "get": operation(res, "get", "read", schema_ref, &[]),
        "put": operation(res, "put", "replace", schema_ref, &writes),
        "patch": operation(res, "patch", "patch", schema_ref, &["dryRun", "fieldManager", "fieldValidation", "force"]),
        "delete": operation(res, "delete", "delete", schema_ref, &["dryRun", "gracePeriodSeconds", "propagationPolicy"]),
    });
    let mut paths = vec![
        (scope.clone(), collection),
        (format!("{scope}/{{name}}"), item),
    ];
    for sub in &res.subresources {
        if sub == "status" {
            let status = json!({
                "get": operation(res, "get", "read", schema_ref, &[]),
                "put": operation(res, "put", "replace", schema_ref, &writes),
                "patch": operation(res, "patch", "patch", schema_ref, &["dryRun", "fieldManager", "fieldValidation", "force"]),
            });
            paths.push((format!("{scope}/{{name}}/status"), status));
        }
    }
    paths
}

/// The OpenAPI 3 document of one group-version.
pub fn document(registry: &Registry, group: &str, version: &str) -> Value {
    let mut schemas = Map::new();
    let mut paths = Map::new();
    let mut resources: Vec<_> = registry
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    resources.sort_by(|a, b| a.plural.cmp(&b.plural));
    for res in resources {
        let name = schema_name(&res);
        let mut schema = res.schema().cloned().unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        if let Some(defs) = schema.as_object_mut().and_then(|s| s.remove("$defs")) {
            for (def_name, def) in defs.as_object().into_iter().flatten() {
                schemas.insert(def_name.clone(), def.clone());
            }
        }
        if let Some(map) = schema.as_object_mut() {
            map.remove("$schema");
            map.remove("title");
            map.insert("x-kubernetes-group-version-kind".into(), json!([gvk(&res)]));
        }
        schemas.insert(name.clone(), schema);
        let schema_ref = format!("#/components/schemas/{name}");
        for (path, item) in paths_of(&res, &schema_ref) {
            paths.insert(path, item);
        }
    }
    let mut doc = json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::version::GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    });
    rewrite_refs(&mut doc);
    doc
}

/// GET /openapi/v2: a Swagger 2.0 document with no definitions, as JSON or in gnostic's
/// protobuf encoding (which kubectl 1.27 and 1.28 ask for before `apply` and `edit`).
///
/// Without definitions kubectl takes a built-in kind's patch strategy from its own compiled-in
/// types and uses a JSON merge patch for custom resources: what it would compute from a full
/// v2 document. Newer kubectl reads /openapi/v3 instead, which carries the schemas.
pub fn v2_document(accept: &str) -> (&'static str, Vec<u8>) {
    if accept.contains("protobuf") {
        // Go's media-type parser refuses the `@` of the name clients ask by, so upstream
        // answers with the dotted form.
        (
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            v2_protobuf(),
        )
    } else {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": crate::version::GIT_VERSION},
            "paths": {},
            "definitions": {},
        });
        ("application/json", doc.to_string().into_bytes())
    }
}

/// `openapi.v2.Document{swagger: "2.0", info: {title, version}}` on the protobuf wire.
fn v2_protobuf() -> Vec<u8> {
    let mut info = Vec::new();
    proto_string(&mut info, 1, "Kubernetes");
    proto_string(&mut info, 2, crate::version::GIT_VERSION);
    let mut doc = Vec::new();
    proto_string(&mut doc, 1, "2.0");
    proto_bytes(&mut doc, 2, &info);
    doc
}

fn proto_string(out: &mut Vec<u8>, field: u32, value: &str) {
    proto_bytes(out, field, value.as_bytes());
}

/// A length-delimited field (wire type 2).
fn proto_bytes(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    proto_varint(out, u64::from(field << 3 | 2));
    proto_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

fn proto_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_protobuf_is_a_swagger_document() {
        let (media, bytes) =
            v2_document("application/com.github.proto-openapi.spec.v2@v1.0+protobuf");
        assert!(media.contains("protobuf"));
        // field 1 (swagger) = "2.0", then field 2 (info) holding field 1 (title).
        assert_eq!(&bytes[..5], &[0x0a, 3, b'2', b'.', b'0']);
        assert_eq!(bytes[5], 0x12);
        assert_eq!(&bytes[7..9], &[0x0a, 10]);
        assert_eq!(&bytes[9..19], b"Kubernetes");
        let (media, json) = v2_document("application/json");
        assert_eq!(media, "application/json");
        let doc: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(doc["swagger"], "2.0");
    }
}
