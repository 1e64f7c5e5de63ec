//! Cell formatting shared by the printers: JSON accessors, ages, label selectors.
//!
//! Printers read objects as JSON; a missing field reads as its Go zero value (`""`, `0`, empty
//! list), which is what upstream's printers see for unset fields of the internal types.

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

const NULL: &Value = &Value::Null;

/// The value at a dotted path (`"spec.template.spec"`), or null.
pub(super) fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, key| v.get(key).unwrap_or(NULL))
}

/// The string at a dotted path, or `""`.
pub(super) fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path).as_str().unwrap_or("")
}

/// The integer at a dotted path, or 0.
pub(super) fn int_at(v: &Value, path: &str) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

/// The integer at a dotted path, if set.
pub(super) fn opt_int(v: &Value, path: &str) -> Option<i64> {
    let v = at(v, path);
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// The array at a dotted path, or an empty slice.
pub(super) fn arr_at<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path).as_array().map_or(&[], Vec::as_slice)
}

/// How many entries the map or list at a dotted path has.
pub(super) fn len_at(v: &Value, path: &str) -> i64 {
    match at(v, path) {
        Value::Object(m) => m.len() as i64,
        Value::Array(a) => a.len() as i64,
        _ => 0,
    }
}

/// The string at a dotted path, or `default` when unset or empty (a field upstream defaulting
/// always fills; keg may hold the object as the client sent it).
pub(super) fn str_or<'a>(v: &'a Value, path: &str, default: &'a str) -> &'a str {
    match str_at(v, path) {
        "" => default,
        s => s,
    }
}

/// `metadata.name`.
pub(super) fn name(obj: &Value) -> Value {
    Value::String(str_at(obj, "metadata.name").to_owned())
}

/// The AGE cell: time since `metadata.creationTimestamp`.
pub(super) fn age(obj: &Value, now: Timestamp) -> Value {
    Value::String(since(at(obj, "metadata.creationTimestamp"), now))
}

/// Whether `metadata.deletionTimestamp` is set.
pub(super) fn deleting(obj: &Value) -> bool {
    !at(obj, "metadata.deletionTimestamp").is_null()
}

/// A timestamp field; `None` when unset, unparseable, or Go's zero time (which upstream treats
/// as unset).
pub(super) fn parse_time(v: &Value) -> Option<Timestamp> {
    let ts: Timestamp = v.as_str()?.parse().ok()?;
    (ts.as_second() != GO_ZERO_TIME_UNIX).then_some(ts)
}

/// `0001-01-01T00:00:00Z` in Unix seconds.
const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// Upstream's `translateTimestampSince`: a human duration, or `<unknown>` when unset.
pub(super) fn since(v: &Value, now: Timestamp) -> String {
    parse_time(v).map_or_else(|| "<unknown>".to_owned(), |ts| since_ts(ts, now))
}

/// The human duration from `ts` to `now`.
pub(super) fn since_ts(ts: Timestamp, now: Timestamp) -> String {
    human_duration(now.duration_since(ts))
}

/// The later of two optional timestamps.
pub(super) fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Upstream's `duration.HumanDuration`: about two significant figures (`5s`, `2m3s`, `3h5m`,
/// `2d3h`, `2y10d`).
pub(super) fn human_duration(d: SignedDuration) -> String {
    // Up to a second in the future counts as now, to tolerate clock skew.
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return with_remainder(hours / 24, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return with_remainder(hours / 24 / 365, "y", (hours / 24) % 365, "d");
    }
    format!("{}y", hours / 24 / 365)
}

fn with_remainder(big: i64, big_unit: &str, small: i64, small_unit: &str) -> String {
    if small == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit}{small}{small_unit}")
    }
}

/// `labels.FormatLabels`: `k=v` pairs sorted by key, or `<none>`.
pub(super) fn format_labels(map: &Value) -> String {
    let mut entries: Vec<_> = map.as_object().into_iter().flatten().collect();
    // Sorted explicitly: serde_json keeps insertion order under `preserve_order`.
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let pairs: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    if pairs.is_empty() {
        "<none>".to_owned()
    } else {
        pairs.join(",")
    }
}

/// A `LabelSelector` as upstream's `Selector.String()`; `""` for a nil or empty selector,
/// `None` when an expression is invalid.
pub(super) fn selector_string(sel: &Value) -> Option<String> {
    let mut reqs: Vec<(&str, String)> = Vec::new();
    if let Some(labels) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            reqs.push((k, format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for expr in arr_at(sel, "matchExpressions") {
        let key = str_at(expr, "key");
        let mut values: Vec<&str> = arr_at(expr, "values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let req = match str_at(expr, "operator") {
            "In" if !values.is_empty() => format!("{key} in ({})", values.join(",")),
            "NotIn" if !values.is_empty() => format!("{key} notin ({})", values.join(",")),
            "Exists" if values.is_empty() => key.to_owned(),
            "DoesNotExist" if values.is_empty() => format!("!{key}"),
            _ => return None,
        };
        reqs.push((key, req));
    }
    // Upstream's selector keeps its requirements sorted by key.
    reqs.sort_by(|a, b| a.0.cmp(b.0));
    Some(
        reqs.into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// `metav1.FormatLabelSelector`: the selector string, `<none>` when empty, `<error>` if invalid.
pub(super) fn format_label_selector(sel: &Value) -> String {
    match selector_string(sel) {
        None => "<error>".to_owned(),
        Some(s) if s.is_empty() => "<none>".to_owned(),
        Some(s) => s,
    }
}

/// Upstream's `layoutContainerCells`: container names and images, comma-separated.
pub(super) fn containers(pod_spec: &Value) -> [Value; 2] {
    let list = arr_at(pod_spec, "containers");
    let join = |field: &str| {
        list.iter()
            .map(|c| str_at(c, field))
            .collect::<Vec<_>>()
            .join(",")
    };
    [Value::String(join("name")), Value::String(join("image"))]
}

/// An `IntOrString` as text (`2`, `50%`).
pub(super) fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A resource quantity as text; upstream prints an unset quantity as `0`.
pub(super) fn quantity(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "0".to_owned(),
    }
}

/// Upstream's `listWithMoreString`: the first few entries and how many more there are.
pub(super) fn list_with_more(list: &[String], count: usize, max: usize) -> String {
    let shown = list.iter().take(max).cloned().collect::<Vec<_>>().join(",");
    if count > max {
        format!("{shown} + {} more...", count - max)
    } else if shown.is_empty() {
        "<unset>".to_owned()
    } else {
        shown
    }
}

/// The status of the first condition of type `kind` (`True`, `False`, ...), if any.
pub(super) fn condition_status<'a>(conditions: &'a [Value], kind: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| str_at(c, "type") == kind)
        .map(|c| str_at(c, "status"))
}

/// A Go-style `True`/`False`.
pub(super) fn go_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}
