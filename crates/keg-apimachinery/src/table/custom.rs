//! Tables of custom resources from their CRD's `additionalPrinterColumns`, as upstream's
//! apiextensions table convertor builds them.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::helpers::{name, since_ts, str_at};
use super::jsonpath::{self, Path};
use super::{CREATION_TIMESTAMP_DOC, Col, IncludeObject, assemble, row_object};

/// A Table from a CRD's additionalPrinterColumns (JSON objects with name,type,format,description,priority,jsonPath).
///
/// Without printer columns the table shows the name and age, as upstream serves such CRDs.
pub fn custom_table(
    printer_columns: &[Value],
    items: &[Value],
    now: Timestamp,
    include: IncludeObject,
) -> Value {
    let age_column;
    let printer_columns = if printer_columns.is_empty() {
        age_column = [json!({
            "name": "Age",
            "type": "date",
            "description": CREATION_TIMESTAMP_DOC,
            "jsonPath": ".metadata.creationTimestamp",
        })];
        &age_column[..]
    } else {
        printer_columns
    };

    let mut definitions = vec![Col::NAME.to_json()];
    let mut columns: Vec<(&str, Path)> = Vec::new();
    for column in printer_columns {
        let json_path = str_at(column, "jsonPath");
        // Upstream keeps the columns before the first unparseable path and drops the rest.
        let Ok(path) = jsonpath::parse(json_path) else {
            break;
        };
        let description = match str_at(column, "description") {
            "" => format!("Custom resource definition column (in JSONPath format): {json_path}"),
            d => d.to_owned(),
        };
        let kind = str_at(column, "type");
        definitions.push(json!({
            "name": str_at(column, "name"),
            "type": kind,
            "format": str_at(column, "format"),
            "description": description,
            "priority": column["priority"].as_i64().unwrap_or(0),
        }));
        columns.push((kind, path));
    }

    let rows = items
        .iter()
        .map(|item| {
            let mut cells = vec![name(item)];
            cells.extend(
                columns
                    .iter()
                    .map(|(kind, path)| cell(kind, path, item, now)),
            );
            json!({"cells": cells, "object": row_object(item, include)})
        })
        .collect();
    assemble(definitions, rows)
}

/// One cell: the path's first match, typed per the column; null when nothing matches.
fn cell(kind: &str, path: &Path, item: &Value, now: Timestamp) -> Value {
    let Some(value) = path.eval(item).into_iter().next() else {
        return Value::Null;
    };
    match (kind, value) {
        ("string", v) => Value::String(go_text(v)),
        (_, Value::Null) => Value::Null,
        ("integer", Value::Number(n)) => match n.as_i64() {
            Some(i) => json!(i),
            // Go truncates a float to an int64.
            None => n.as_f64().map_or(Value::Null, |f| json!(f as i64)),
        },
        ("number", Value::Number(n)) => Value::Number(n.clone()),
        ("boolean", Value::Bool(b)) => Value::Bool(*b),
        ("date", Value::String(s)) => Value::String(date_cell(s, now)),
        _ => Value::Null,
    }
}

/// A `date` column: the age of an RFC 3339 timestamp.
fn date_cell(s: &str, now: Timestamp) -> String {
    if s.is_empty() || s == "null" {
        return "<unknown>".to_owned();
    }
    match super::helpers::parse_time(&Value::String(s.to_owned())) {
        Some(ts) => since_ts(ts, now),
        // Go's zero time parses but is unset.
        None if s.parse::<Timestamp>().is_ok() => "<unknown>".to_owned(),
        None => "<invalid>".to_owned(),
    }
}

/// A value as client-go's JSONPath prints it: strings bare, numbers and booleans as Go's `fmt`
/// does, objects and lists as compact JSON.
fn go_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<no value>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_f64() => n.as_f64().map_or_else(String::new, go_float),
        Value::Number(n) => n.to_string(),
        Value::Array(_) | Value::Object(_) => go_json(v),
    }
}

/// Go's `%v` for a float64: shortest digits, exponent form below 1e-4 or from 1e6 up.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if f != 0.0 && !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// Compact JSON as Go's `encoding/json` writes it: sorted keys, `<`, `>`, `&` escaped.
fn go_json(v: &Value) -> String {
    // serde_json's maps are sorted unless `preserve_order` is on; sort regardless.
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&map[k])))
                        .collect::<Map<_, _>>(),
                )
            }
            Value::Array(list) => Value::Array(list.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v)
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        let cases = [
            (1.5, "1.5"),
            (1.0, "1"),
            (123456.5, "123456.5"),
            (1234567.5, "1.2345675e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e21, "-2.5e+21"),
            (0.0, "0"),
        ];
        for (f, want) in cases {
            assert_eq!(go_float(f), want, "{f}");
        }
    }

    #[test]
    fn objects_print_as_go_json() {
        assert_eq!(
            go_text(&json!({"b": "<x>", "a": [1, true]})),
            r#"{"a":[1,true],"b":"\u003cx\u003e"}"#
        );
        assert_eq!(go_text(&json!(3)), "3");
        assert_eq!(go_text(&json!(false)), "false");
        assert_eq!(go_text(&Value::Null), "<no value>");
    }
}
