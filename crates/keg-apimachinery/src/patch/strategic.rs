//! Strategic merge patch, following k8s.io/apimachinery/pkg/util/strategicpatch's
//! server-side merge (`StrategicMergeMapPatch`): maps merge, `null` deletes, lists merge by
//! the field's merge key or are replaced, and the `$patch`, `$retainKeys`,
//! `$deleteFromPrimitiveList/` and `$setElementOrder/` directives apply. List order follows
//! upstream too, which puts items new to a list before the existing ones.
//!
//! Upstream decodes the result into typed structs, which silently drops directives and
//! `null`s left in values the patch adds; objects here are stored untyped, so such values
//! are cleaned by merging them into an empty value instead.

use serde_json::{Map, Value};

use super::schema::{Schema, Strategy};
use super::{Error, Result};

const DIRECTIVE: &str = "$patch";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const GO_LIST: &str = "[]interface {}";
const GO_MAP: &str = "map[string]interface {}";

type Object = Map<String, Value>;

/// Applies a strategic merge patch to an object of a built-in `kind`.
pub(super) fn apply(kind: &str, current: &Value, patch: &Value) -> Result<Value> {
    let patch = match patch {
        Value::Object(p) => p.clone(),
        // Upstream decodes a null patch into an empty map.
        Value::Null => Object::new(),
        _ => return Err(fail("invalid JSON document")),
    };
    let original = match current {
        Value::Object(m) => m.clone(),
        _ => Object::new(),
    };
    merge_map(original, patch, Schema::for_kind(kind)).map(Value::Object)
}

fn fail(msg: impl Into<String>) -> Error {
    Error::StrategicMerge(msg.into())
}

fn merge_map(mut original: Object, mut patch: Object, schema: Schema) -> Result<Object> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                return merge_map(Object::new(), patch, schema);
            }
            Some("delete") => return Ok(Object::new()),
            // Upstream rejects "merge" inside maps; merging is what it would mean anyway.
            Some("merge") => {
                patch.remove(DIRECTIVE);
            }
            _ => return Err(bad_patch_type(directive, &patch)),
        }
    }
    apply_retain_keys(&mut original, &mut patch)?;
    apply_set_element_orders(&mut original, &mut patch, schema)?;
    // Deletions go last so they also remove what this same patch adds.
    let (deletions, regular): (Vec<String>, Vec<String>) = patch
        .keys()
        .cloned()
        .partition(|k| k.starts_with(DELETE_FROM_PRIMITIVE_LIST));
    for key in regular.into_iter().chain(deletions) {
        let value = patch.remove(&key).expect("key listed above");
        if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            let field = extract_key(&key, DELETE_FROM_PRIMITIVE_LIST)?.to_string();
            merge_field(&mut original, field, value, true, schema)?;
        } else {
            merge_field(&mut original, key, value, false, schema)?;
        }
    }
    Ok(original)
}

fn merge_field(
    original: &mut Object,
    field: String,
    value: Value,
    is_delete_list: bool,
    schema: Schema,
) -> Result<()> {
    if value.is_null() {
        original.remove(&field);
        return Ok(());
    }
    let (strategy, child) = schema.field(&field);
    let Some(slot) = original.get_mut(&field) else {
        // A deletion list for a list that does not exist has nothing to delete.
        if !is_delete_list {
            let value = clean(value, strategy, child)?;
            original.insert(field, value);
        }
        return Ok(());
    };
    let current = std::mem::take(slot);
    *slot = match (current, value) {
        (Value::Object(cur), Value::Object(p)) if !is_delete_list => {
            Value::Object(merge_map(cur, p, child)?)
        }
        (Value::Array(cur), Value::Array(p)) => {
            Value::Array(merge_list(cur, p, strategy, child, is_delete_list)?)
        }
        (cur, _) if is_delete_list => cur,
        // Scalars, and values whose type changes, are replaced.
        (_, p) => clean(p, strategy, child)?,
    };
    Ok(())
}

/// A patch value for a field that has no current value, with its directives applied.
fn clean(value: Value, strategy: Strategy, schema: Schema) -> Result<Value> {
    Ok(match value {
        Value::Object(p) => Value::Object(merge_map(Object::new(), p, schema)?),
        Value::Array(p) => Value::Array(merge_list(Vec::new(), p, strategy, schema, false)?),
        other => other,
    })
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    strategy: Strategy,
    schema: Schema,
    is_delete_list: bool,
) -> Result<Vec<Value>> {
    match strategy {
        Strategy::Merge(key) => merge_slice(original, patch, key, schema, is_delete_list),
        Strategy::Default if is_delete_list => Ok(original),
        Strategy::Default => patch
            .into_iter()
            .map(|item| match item {
                Value::Object(m) => merge_map(Object::new(), m, schema).map(Value::Object),
                other => Ok(other),
            })
            .collect(),
    }
}

/// Go's dynamic type of a decoded JSON value; list elements must all share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    String,
    List,
    Map,
}

fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_i64() => Kind::Int,
        Value::Number(_) => Kind::Float,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::List,
        Value::Object(_) => Kind::Map,
    }
}

fn element_kind(original: &[Value], patch: &[Value]) -> Result<Kind> {
    let mut kind = None;
    for v in original.iter().chain(patch) {
        let k = kind_of(v);
        match kind {
            None if k == Kind::List => return Err(fail("lists of lists are not supported")),
            None => kind = Some(k),
            Some(prev) if prev != k => {
                return Err(fail(format!(
                    "list element types are not identical: [{} {}]",
                    go_list(original),
                    go_list(patch)
                )));
            }
            Some(_) => {}
        }
    }
    Ok(kind.unwrap_or(Kind::Null))
}

fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    key: Option<&'static str>,
    schema: Schema,
    is_delete_list: bool,
) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    if element_kind(&original, &patch)? != Kind::Map {
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(&patch) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        return Ok(normalize_order(merged, &patch, &original, None));
    }
    let Some(key) = key else {
        return Err(fail("cannot merge lists without merge key for type string"));
    };
    let (original, patch) = split_special_elements(original, patch, key, schema)?;
    let mut merged = original.clone();
    for item in &patch {
        let Value::Object(m) = item else { continue };
        let id = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
        match merged.iter().position(|o| o.get(key) == Some(id)) {
            Some(i) => {
                let Value::Object(cur) = std::mem::take(&mut merged[i]) else {
                    unreachable!("all elements are maps")
                };
                merged[i] = Value::Object(merge_map(cur, m.clone(), schema)?);
            }
            None => merged.push(Value::Object(merge_map(Object::new(), m.clone(), schema)?)),
        }
    }
    check_merge_keys(&merged, key)?;
    Ok(normalize_order(merged, &patch, &original, Some(key)))
}

/// Applies `$patch: delete` and `$patch: replace` list elements, returning the list to
/// merge into and the remaining patch elements.
fn split_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    schema: Schema,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let directive = match &item {
            Value::Object(m) => m.get(DIRECTIVE),
            _ => None,
        };
        let Some(directive) = directive else {
            rest.push(item);
            continue;
        };
        let Value::Object(m) = &item else {
            unreachable!("only maps carry directives")
        };
        match directive.as_str() {
            Some("delete") => {
                let id = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
                original.retain(|o| o.get(key) != Some(id));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(fail("merging lists cannot yet be specified in the patch"));
            }
            _ => return Err(bad_patch_type(directive, m)),
        }
    }
    if replace {
        let replacement = rest
            .into_iter()
            .map(|item| match item {
                Value::Object(m) => merge_map(Object::new(), m, schema).map(Value::Object),
                other => Ok(other),
            })
            .collect::<Result<_>>()?;
        return Ok((replacement, Vec::new()));
    }
    Ok((original, rest))
}

fn check_merge_keys(items: &[Value], key: &str) -> Result<()> {
    for item in items {
        match item {
            Value::Object(m) if m.contains_key(key) => {}
            Value::Object(m) => return Err(no_merge_key(m, key)),
            other => return Err(bad_arg_type(GO_MAP, other)),
        }
    }
    Ok(())
}

/// What identifies a list element: its merge key's value, or the element itself.
fn identity(item: &Value, key: Option<&str>) -> Value {
    match key {
        Some(k) => item.get(k).cloned().unwrap_or(Value::Null),
        None => item.clone(),
    }
}

/// Upstream's ordering: the items named by `patch_order` in that order, the others in
/// their `server_order`, interleaved where both orders know the items' relative place.
fn normalize_order(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let patch_ids: Vec<Value> = patch_order.iter().map(|v| identity(v, key)).collect();
    let server_ids: Vec<Value> = server_order.iter().map(|v| identity(v, key)).collect();
    let (mut patch_items, mut server_only): (Vec<_>, Vec<_>) = merged
        .into_iter()
        .map(|v| (identity(&v, key), v))
        .partition(|(id, _)| patch_ids.contains(id));
    sort_by_order(&mut patch_items, &patch_ids);
    sort_by_order(&mut server_only, &server_ids);
    merge_sorted(server_only, patch_items, &server_ids)
}

fn position(order: &[Value], id: &Value) -> Option<usize> {
    order.iter().position(|o| o == id)
}

/// Go's stable insertion sort with upstream's comparator, which counts an item missing
/// from `order` as smaller than anything.
fn sort_by_order(items: &mut [(Value, Value)], order: &[Value]) {
    let less = |a: &Value, b: &Value| match (position(order, a), position(order, b)) {
        (Some(x), Some(y)) => x < y,
        _ => true,
    };
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && less(&items[j].0, &items[j - 1].0) {
            items.swap(j, j - 1);
            j -= 1;
        }
    }
}

/// Merges two sorted lists: a server item goes first only when the server order places
/// it before the patch item being compared.
fn merge_sorted(
    left: Vec<(Value, Value)>,
    right: Vec<(Value, Value)>,
    server_order: &[Value],
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => return out,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((l, _)), Some((r, _))) => {
                matches!((position(server_order, l), position(server_order, r)), (Some(a), Some(b)) if a < b)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.push(next.expect("peeked").1);
    }
}

fn apply_retain_keys(original: &mut Object, patch: &mut Object) -> Result<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(keys) = retain else {
        return Err(fail(BAD_RETAIN_KEYS));
    };
    let keep = |k: &str| keys.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !keep(k) {
            return Err(fail(BAD_RETAIN_KEYS));
        }
    }
    original.retain(|k, _| keep(k));
    Ok(())
}

/// Merges each list named by a `$setElementOrder/<field>` directive and orders it by
/// the directive.
fn apply_set_element_orders(
    original: &mut Object,
    patch: &mut Object,
    schema: Schema,
) -> Result<()> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive_key in keys {
        let order = patch.remove(&directive_key).expect("key listed above");
        let Value::Array(order) = order else {
            return Err(bad_arg_type(GO_LIST, &order));
        };
        let field = extract_key(&directive_key, SET_ELEMENT_ORDER)?.to_string();
        let current = match original.get(&field) {
            None => None,
            Some(Value::Array(items)) => Some(items.clone()),
            Some(other) => return Err(bad_arg_type(GO_LIST, other)),
        };
        let patch_list = match patch.get(&field) {
            None => None,
            Some(Value::Array(items)) => Some(items.clone()),
            Some(other) => return Err(bad_arg_type(GO_LIST, other)),
        };
        let (strategy, child) = schema.field(&field);
        let key = match strategy {
            Strategy::Merge(key) => key,
            Strategy::Default => None,
        };
        validate_order(patch_list.as_deref().unwrap_or_default(), &order, key)?;
        let merged = match (current.clone(), patch_list) {
            (None, None) => continue,
            (Some(cur), None) => cur,
            (cur, Some(p)) => merge_list(cur.unwrap_or_default(), p, strategy, child, false)?,
        };
        if let Some(k) = key {
            check_merge_keys(&merged, k)?;
            for item in &order {
                if !item.is_object() {
                    return Err(fail(format!("value for key {} is not a map.", go_v(item))));
                }
            }
        }
        let ordered = normalize_order(merged, &order, &current.unwrap_or_default(), key);
        original.insert(field.clone(), Value::Array(ordered));
        patch.remove(&field);
    }
    Ok(())
}

/// Checks that the patch list's items appear in the same relative order as in the
/// `$setElementOrder` list.
fn validate_order(patch_list: &[Value], order: &[Value], key: Option<&str>) -> Result<()> {
    if patch_list.is_empty() || order.is_empty() {
        return Ok(());
    }
    let mut items = Vec::with_capacity(patch_list.len());
    for item in patch_list {
        if key.is_some() {
            let Value::Object(m) = item else {
                return Err(bad_arg_type(GO_MAP, item));
            };
            if m.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                continue;
            }
        }
        items.push(item);
    }
    let (mut pi, mut si) = (0, 0);
    while pi < items.len() && si < order.len() {
        if items[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        if merge_key_value_equal(items[pi], &order[si], key)? {
            pi += 1;
        }
        si += 1;
    }
    if pi < items.len() && si >= order.len() {
        return Err(fail(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go_list(patch_list),
            go_list(order)
        )));
    }
    Ok(())
}

fn merge_key_value_equal(left: &Value, right: &Value, key: Option<&str>) -> Result<bool> {
    let Some(key) = key else {
        return Ok(left == right);
    };
    let (Value::Object(l), Value::Object(r)) = (left, right) else {
        let bad = if left.is_object() { right } else { left };
        return Err(bad_arg_type(GO_MAP, bad));
    };
    let lv = l.get(key).ok_or_else(|| no_merge_key(l, key))?;
    let rv = r.get(key).ok_or_else(|| no_merge_key(r, key))?;
    Ok(lv == rv)
}

/// The field a `<prefix>/<field>` directive key names.
fn extract_key<'k>(key: &'k str, prefix: &str) -> Result<&'k str> {
    match key.split_once('/') {
        Some((p, field)) if p == prefix => Ok(field),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST => {
            Err(fail("invalid patch format of primitive list"))
        }
        _ => Err(fail("invalid patch format of setElementOrder list")),
    }
}

fn no_merge_key(m: &Object, key: &str) -> Error {
    fail(format!(
        "map: {} does not contain declared merge key: {key}",
        go_map(m)
    ))
}

fn bad_patch_type(directive: &Value, m: &Object) -> Error {
    fail(format!(
        "unknown patch type: {} in map: {}",
        go_v(directive),
        go_map(m)
    ))
}

fn bad_arg_type(expected: &str, actual: &Value) -> Error {
    let actual = match actual {
        Value::Null => "%!s(<nil>)",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() => "int64",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => GO_LIST,
        Value::Object(_) => GO_MAP,
    };
    fail(format!("expected a {expected}, but received a {actual}"))
}

/// Go's `%v` of a decoded JSON value, as upstream's messages print them.
pub(super) fn go_v(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => go_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(items) => go_list(items),
        Value::Object(m) => go_map(m),
    }
}

fn go_list(items: &[Value]) -> String {
    let parts: Vec<String> = items.iter().map(go_v).collect();
    format!("[{}]", parts.join(" "))
}

fn go_map(m: &Object) -> String {
    // Go prints map keys sorted.
    let mut entries: Vec<(&String, &Value)> = m.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let parts: Vec<String> = entries
        .into_iter()
        .map(|(k, v)| format!("{k}:{}", go_v(v)))
        .collect();
    format!("map[{}]", parts.join(" "))
}

/// Go's `%v` of a float64: shortest digits, exponent form outside [1e-4, 1e21).
fn go_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').expect("exponent form");
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        format!("{mantissa}e{sign}{digits:0>2}")
    } else {
        f.to_string()
    }
}
