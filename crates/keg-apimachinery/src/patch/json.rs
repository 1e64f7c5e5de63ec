//! RFC 6902 JSON patch with the semantics and error texts of evanphx/json-patch v4,
//! which the Kubernetes API server uses: negative array indices count from the end,
//! `replace` of an absent object member adds it, and errors carry pkg/errors-style
//! ": cause" suffixes.

use serde_json::Value;

use super::{Error, Result};
use crate::validation::go_quote;

const MISSING: &str = "missing value";
const INVALID_INDEX: &str = "invalid index referenced";

/// Applies a list of operations to a copy of `doc`.
pub(super) fn apply(doc: &Value, patch: &Value) -> Result<Value> {
    let Value::Array(ops) = patch else {
        return Err(Error::JsonPatch(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            json_type(patch)
        )));
    };
    let ops = ops
        .iter()
        .map(|op| match op {
            Value::Object(op) => Ok(op),
            other => Err(Error::JsonPatch(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                json_type(other)
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    let mut doc = doc.clone();
    for op in ops {
        let op = Op(op);
        match op.kind() {
            "add" => op.add(&mut doc)?,
            "remove" => op.remove(&mut doc)?,
            "replace" => op.replace(&mut doc)?,
            "move" => op.move_(&mut doc)?,
            "copy" => op.copy(&mut doc)?,
            "test" => op.test(&mut doc)?,
            other => return Err(err(format!("Unexpected kind: {other}"))),
        }
    }
    Ok(doc)
}

fn err(msg: String) -> Error {
    Error::JsonPatch(msg)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

struct Op<'a>(&'a serde_json::Map<String, Value>);

impl Op<'_> {
    fn kind(&self) -> &str {
        self.0
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
    }

    /// A string member; `missing` is the cause text when it is absent or null.
    fn string(&self, name: &str, missing: &str) -> Result<String, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Err(format!("{missing}: {MISSING}")),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!(
                "json: cannot unmarshal {} into Go value of type string",
                json_type(other)
            )),
        }
    }

    fn path(&self) -> Result<String, String> {
        self.string("path", "operation missing path field")
    }

    fn from(&self) -> Result<String, String> {
        self.string("from", "operation, missing from field")
    }

    /// An absent value decodes as null, as upstream's lazy node does.
    fn value(&self) -> Value {
        self.0.get("value").cloned().unwrap_or(Value::Null)
    }

    fn add(&self, doc: &mut Value) -> Result<()> {
        let path = self
            .path()
            .map_err(|_| err(format!("add operation failed to decode path: {MISSING}")))?;
        let (con, key) = find_object(doc, &path).ok_or_else(|| {
            err(format!(
                "add operation does not apply: doc is missing path: \"{path}\": {MISSING}"
            ))
        })?;
        add(con, &key, self.value())
            .map_err(|e| err(format!("error in add for path: '{path}': {e}")))
    }

    fn remove(&self, doc: &mut Value) -> Result<()> {
        let path = self
            .path()
            .map_err(|_| err(format!("remove operation failed to decode path: {MISSING}")))?;
        let (con, key) = find_object(doc, &path).ok_or_else(|| {
            err(format!(
                "remove operation does not apply: doc is missing path: \"{path}\": {MISSING}"
            ))
        })?;
        remove(con, &key)
            .map(drop)
            .map_err(|e| err(format!("error in remove for path: '{path}': {e}")))
    }

    fn replace(&self, doc: &mut Value) -> Result<()> {
        let path = self
            .path()
            .map_err(|e| err(format!("replace operation failed to decode path: {e}")))?;
        let (con, key) = find_object(doc, &path).ok_or_else(|| {
            err(format!(
                "replace operation does not apply: doc is missing path: {path}: {MISSING}"
            ))
        })?;
        match con {
            // Upstream's object lookup never fails, so an absent member is simply set.
            Value::Object(m) => {
                m.insert(key, self.value());
            }
            Value::Array(items) => {
                let idx = get_index(items, &key).map_err(|_| {
                    err(format!(
                        "replace operation does not apply: doc is missing key: {path}: {MISSING}"
                    ))
                })?;
                items[idx] = self.value();
            }
            _ => unreachable!("find_object only returns containers"),
        }
        Ok(())
    }

    fn move_(&self, doc: &mut Value) -> Result<()> {
        let from = self
            .from()
            .map_err(|e| err(format!("move operation failed to decode from: {e}")))?;
        let (con, key) = find_object(doc, &from).ok_or_else(|| {
            err(format!(
                "move operation does not apply: doc is missing from path: {from}: {MISSING}"
            ))
        })?;
        // Upstream names the last key, not the whole path, in these two messages.
        let value =
            remove(con, &key).map_err(|e| err(format!("error in move for path: '{key}': {e}")))?;
        let path = self
            .path()
            .map_err(|e| err(format!("move operation failed to decode path: {e}")))?;
        let (con, key) = find_object(doc, &path).ok_or_else(|| {
            err(format!(
                "move operation does not apply: doc is missing destination path: {path}: {MISSING}"
            ))
        })?;
        add(con, &key, value).map_err(|e| err(format!("error in move for path: '{path}': {e}")))
    }

    fn copy(&self, doc: &mut Value) -> Result<()> {
        let from = self
            .from()
            .map_err(|e| err(format!("copy operation failed to decode from: {e}")))?;
        let (con, key) = find_object(doc, &from).ok_or_else(|| {
            err(format!(
                "copy operation does not apply: doc is missing from path: {from}: {MISSING}"
            ))
        })?;
        // An absent object member copies as null, as upstream.
        let value = get(con, &key)
            .map_err(|e| err(format!("error in copy for from: '{from}': {e}")))?
            .cloned()
            .unwrap_or(Value::Null);
        let path = self
            .path()
            .map_err(|_| err(format!("copy operation failed to decode path: {MISSING}")))?;
        let (con, key) = find_object(doc, &path).ok_or_else(|| {
            err(format!(
                "copy operation does not apply: doc is missing destination path: {path}: {MISSING}"
            ))
        })?;
        add(con, &key, value).map_err(|e| err(format!("error while adding value during copy: {e}")))
    }

    fn test(&self, doc: &mut Value) -> Result<()> {
        let path = self
            .path()
            .map_err(|e| err(format!("test operation failed to decode path: {e}")))?;
        let (con, key) = find_object(doc, &path).ok_or_else(|| {
            err(format!(
                "test operation does not apply: is missing path: {path}: {MISSING}"
            ))
        })?;
        let have =
            get(con, &key).map_err(|e| err(format!("error in test for path: '{path}': {e}")))?;
        let want = self.value();
        // An absent member equals null.
        let equal = match have {
            None => want.is_null(),
            Some(have) => *have == want,
        };
        if equal {
            Ok(())
        } else {
            Err(Error::TestFailed { path })
        }
    }
}

/// Decodes one JSON pointer reference token.
fn decode_key(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// The container holding the last token of `path`, and that token decoded. Like
/// upstream, everything before the first `/` is ignored.
fn find_object<'d>(doc: &'d mut Value, path: &str) -> Option<(&'d mut Value, String)> {
    let split: Vec<&str> = path.split('/').collect();
    if split.len() < 2 {
        return None;
    }
    let mut con = doc;
    for part in &split[1..split.len() - 1] {
        let key = decode_key(part);
        con = match con {
            Value::Object(m) => m.get_mut(&key)?,
            Value::Array(items) => {
                let idx = get_index(items, &key).ok()?;
                &mut items[idx]
            }
            _ => return None,
        };
        if !matches!(con, Value::Object(_) | Value::Array(_)) {
            return None;
        }
    }
    Some((con, decode_key(split[split.len() - 1])))
}

/// Go's strconv.Atoi, with its error text.
fn atoi(key: &str) -> Result<i64, String> {
    key.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {}: invalid syntax", go_quote(key)))
}

fn invalid_index(idx: i64) -> String {
    format!("Unable to access invalid index: {idx}: {INVALID_INDEX}")
}

/// Resolves an index of an existing element; negative ones count from the end.
fn get_index(items: &[Value], key: &str) -> Result<usize, String> {
    let mut idx = atoi(key)?;
    let len = items.len() as i64;
    if idx < 0 {
        if idx < -len {
            return Err(invalid_index(idx));
        }
        idx += len;
    }
    if idx >= len {
        return Err(invalid_index(idx));
    }
    Ok(idx as usize)
}

fn get<'v>(con: &'v Value, key: &str) -> Result<Option<&'v Value>, String> {
    match con {
        Value::Object(m) => Ok(m.get(key)),
        Value::Array(items) => get_index(items, key).map(|i| Some(&items[i])),
        _ => Ok(None),
    }
}

fn add(con: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match con {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
            Ok(())
        }
        Value::Array(items) => {
            if key == "-" {
                items.push(value);
                return Ok(());
            }
            let mut idx = atoi(key)
                .map_err(|e| format!("value was not a proper array index: '{key}': {e}"))?;
            // Inserting may address one past the end.
            let len = items.len() as i64 + 1;
            if idx >= len {
                return Err(invalid_index(idx));
            }
            if idx < 0 {
                if idx < -len {
                    return Err(invalid_index(idx));
                }
                idx += len;
            }
            items.insert(idx as usize, value);
            Ok(())
        }
        _ => Err(MISSING.to_string()),
    }
}

fn remove(con: &mut Value, key: &str) -> Result<Value, String> {
    match con {
        Value::Object(m) => m
            .remove(key)
            .ok_or_else(|| format!("Unable to remove nonexistent key: {key}: {MISSING}")),
        Value::Array(items) => {
            let idx = get_index(items, key)?;
            Ok(items.remove(idx))
        }
        _ => Err(MISSING.to_string()),
    }
}
