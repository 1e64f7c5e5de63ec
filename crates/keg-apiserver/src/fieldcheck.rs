//! Finds fields an object has that its kind's schema does not know, for `fieldValidation`.

use serde_json::Value;

/// Paths of unknown fields in `obj` (e.g. `spec.template.spec.containers[0].foo`), as upstream
/// names them in `strict decoding error: unknown field "..."`.
pub fn unknown_fields(schema: &Value, obj: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(schema, schema, obj, "", &mut found);
    found
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    let mut node = node;
    // Follow `$ref: #/$defs/<name>` (schemars) and `#/components/schemas/<name>` chains.
    for _ in 0..16 {
        let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let name = reference.rsplit('/').next().unwrap_or_default();
        match root.get("$defs").and_then(|d| d.get(name)) {
            Some(target) => node = target,
            None => break,
        }
    }
    node
}

fn walk(root: &Value, schema: &Value, value: &Value, path: &str, found: &mut Vec<String>) {
    let schema = resolve(root, schema);
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    // Schemas combined with allOf/anyOf/oneOf: a field is known if any branch knows it.
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(branches) = schema.get(combinator).and_then(Value::as_array) {
            if let Some(branch) = branches.iter().find(|b| !resolve(root, b).is_null()) {
                walk(root, branch, value, path, found);
            }
            return;
        }
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            if properties.is_none() && additional.is_none() {
                return; // free-form object: anything goes
            }
            for (key, child) in map {
                let undeclared = properties.is_none_or(|p| !p.contains_key(key));
                if path.is_empty() && undeclared && ROOT_FIELDS.contains(&key.as_str()) {
                    continue;
                }
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match properties.and_then(|p| p.get(key)) {
                    Some(child_schema) => walk(root, child_schema, child, &child_path, found),
                    None => match additional {
                        Some(additional) => walk(root, additional, child, &child_path, found),
                        None => found.push(child_path),
                    },
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(root, item_schema, item, &format!("{path}[{i}]"), found);
                }
            }
        }
        _ => {}
    }
}

/// Removes the fields `unknown_fields` reports, as decoding into the typed object (or
/// structural pruning for custom resources) does upstream.
pub fn prune(schema: &Value, obj: &mut Value) {
    prune_walk(schema, schema, obj, true);
}

/// Fields every object has whatever its schema says (a custom resource's schema often
/// leaves them out).
const ROOT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

fn prune_walk(root: &Value, schema: &Value, value: &mut Value, top: bool) {
    let schema = resolve(root, schema);
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(branches) = schema.get(combinator).and_then(Value::as_array) {
            if let Some(branch) = branches.first() {
                prune_walk(root, branch, value, top);
            }
            return;
        }
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            if properties.is_none() && additional.is_none() {
                return;
            }
            map.retain(|key, _| {
                (top && ROOT_FIELDS.contains(&key.as_str()))
                    || properties.is_some_and(|p| p.contains_key(key))
                    || additional.is_some()
            });
            for (key, child) in map.iter_mut() {
                if let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional) {
                    prune_walk(root, child_schema, child, false)
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    prune_walk(root, item_schema, item, false);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_unknown_fields_through_refs_and_lists() {
        let schema = serde_json::to_value(schemars::schema_for!(
            k8s_openapi::api::apps::v1::Deployment
        ))
        .unwrap();
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "labels": {"a": "b"}, "bogus": 1},
            "spec": {"replicas": 1, "extra": true, "template": {"spec": {"containers": [{"name": "c", "image": "i", "imagePullPolcy": "Always"}]}}}
        });
        assert_eq!(
            unknown_fields(&schema, &obj),
            vec![
                "metadata.bogus",
                "spec.extra",
                "spec.template.spec.containers[0].imagePullPolcy"
            ]
        );
    }

    #[test]
    fn free_form_and_preserved_fields_pass() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}});
        assert!(unknown_fields(&schema, &json!({"spec": {"anything": 1}})).is_empty());
        assert_eq!(unknown_fields(&schema, &json!({"other": 1})), vec!["other"]);
    }

    #[test]
    fn a_schema_without_metadata_keeps_it() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}});
        let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n"}, "spec": {"a": "1", "b": 2}, "status": {}});
        assert_eq!(unknown_fields(&schema, &obj), vec!["spec.b", "status"]);
        prune(&schema, &mut obj);
        assert_eq!(
            obj,
            json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n"}, "spec": {"a": "1"}})
        );
    }
}
