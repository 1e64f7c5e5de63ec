//! Label selectors: the `labelSelector` query syntax and metav1.LabelSelector objects,
//! parsed, matched and printed as k8s.io/apimachinery/pkg/labels does.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

mod parser;

use crate::validation::{go_quote, invalid_value, is_qualified_name, is_valid_label_value};

/// A selector that cannot be parsed or built; the text is upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The selector string does not follow the grammar, or a key or value is invalid.
    #[error("{0}")]
    Parse(String),
    /// A requirement is invalid (bad key, value, or operator/values combination).
    #[error("{0}")]
    Requirement(String),
    /// A metav1.LabelSelector object is malformed.
    #[error("{0}")]
    LabelSelector(String),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a requirement relates its key to its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)`.
    NotIn,
    /// `key=a`.
    Equals,
    /// `key==a`.
    DoubleEquals,
    /// `key!=a`.
    NotEquals,
    /// `key` alone.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key>1`.
    GreaterThan,
    /// `key<1`.
    LessThan,
}

/// One requirement of a selector; all requirements must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// Parses the `labelSelector` syntax (`a=b,c in (d,e),!f,g>1`); "" selects everything.
    pub fn parse(s: &str) -> Result<Selector> {
        let mut requirements = parser::Parser::new(s).parse()?;
        // Sorting by key makes the printed form deterministic, as upstream.
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector { requirements })
    }

    /// Builds a selector from a metav1.LabelSelector object; null and `{}` select everything.
    pub fn from_label_selector(v: &Value) -> Result<Selector> {
        let obj = match v {
            Value::Null => return Ok(Selector::default()),
            Value::Object(obj) => obj,
            other => {
                return Err(Error::LabelSelector(format!(
                    "json: cannot unmarshal {} into Go value of type v1.LabelSelector",
                    json_type(other)
                )));
            }
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let Some(value) = value.as_str() else {
                        return Err(Error::LabelSelector(format!(
                            "json: cannot unmarshal {} into Go struct field LabelSelector.matchLabels of type string",
                            json_type(value)
                        )));
                    };
                    requirements.push(Requirement::new(
                        key,
                        Operator::Equals,
                        vec![value.to_string()],
                    )?);
                }
            }
            Some(other) => {
                return Err(Error::LabelSelector(format!(
                    "json: cannot unmarshal {} into Go struct field LabelSelector.matchLabels of type map[string]string",
                    json_type(other)
                )));
            }
        }
        for expr in match obj.get("matchExpressions") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(exprs)) => exprs.as_slice(),
            Some(other) => {
                return Err(Error::LabelSelector(format!(
                    "json: cannot unmarshal {} into Go struct field LabelSelector.matchExpressions of type []v1.LabelSelectorRequirement",
                    json_type(other)
                )));
            }
        } {
            requirements.push(expression_requirement(expr)?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector { requirements })
    }

    /// Whether every requirement holds for these labels.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(|k| labels.get(k).map(String::as_str)))
    }

    /// Like [`Selector::matches`] over a JSON `metadata.labels` object; non-string values
    /// count as absent.
    pub fn matches_json(&self, labels: &serde_json::Map<String, Value>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(|k| labels.get(k).and_then(Value::as_str)))
    }

    /// Whether the selector has no requirements and so matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// The value a selector demands for `label` via `=`, `==` or a one-value `in`.
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == label)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [value]) => Some(value),
            _ => None,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl Requirement {
    /// Validates and builds a requirement, with upstream's NewRequirement checks.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Requirement> {
        let mut errs = Vec::new();
        let key_problems = is_qualified_name(key);
        if !key_problems.is_empty() {
            errs.push(invalid_value("key", key, &key_problems.join("; ")));
        }
        let bad_values = |detail: &str| {
            format!(
                "values: Invalid value: {}: {detail}",
                go_string_slice(&values)
            )
        };
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                errs.push(bad_values(
                    "for 'in', 'notin' operators, values set can't be empty",
                ));
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                errs.push(bad_values(
                    "exact-match compatibility requires one single value",
                ));
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                errs.push(bad_values(
                    "values set must be empty for exists and does not exist",
                ));
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(bad_values(
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid_value(
                            &format!("values[{i}]"),
                            v,
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let problems = is_valid_label_value(v);
            if !problems.is_empty() {
                errs.push(invalid_value(
                    &format!("values[{i}][{key}]"),
                    v,
                    &problems.join("; "),
                ));
            }
        }
        if errs.is_empty() {
            Ok(Requirement {
                key: key.to_string(),
                operator,
                values,
            })
        } else {
            Err(Error::Requirement(aggregate(errs)))
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, in the order given.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        let value = get(&self.key);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => value.is_some_and(has),
            Operator::NotIn | Operator::NotEquals => !value.is_some_and(has),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(Ok(have)), [want]) =
                    (value.map(str::parse::<i64>), self.values.as_slice())
                else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in (",
            Operator::NotIn => " notin (",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
        };
        f.write_str(op)?;
        // Values print sorted so equal selectors print equally, whatever their source.
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        f.write_str(&values.join(","))?;
        if matches!(self.operator, Operator::In | Operator::NotIn) {
            f.write_str(")")?;
        }
        Ok(())
    }
}

fn expression_requirement(expr: &Value) -> Result<Requirement> {
    let bad = |what: &str, v: &Value| {
        Error::LabelSelector(format!(
            "json: cannot unmarshal {} into Go struct field LabelSelectorRequirement.matchExpressions.{what}",
            json_type(v)
        ))
    };
    let Value::Object(expr) = expr else {
        return Err(Error::LabelSelector(format!(
            "json: cannot unmarshal {} into Go struct field LabelSelector.matchExpressions of type v1.LabelSelectorRequirement",
            json_type(expr)
        )));
    };
    let key = match expr.get("key") {
        None | Some(Value::Null) => "",
        Some(Value::String(k)) => k,
        Some(other) => return Err(bad("key of type string", other)),
    };
    let operator = match expr.get("operator") {
        None | Some(Value::Null) => "",
        Some(Value::String(op)) => op,
        Some(other) => return Err(bad("operator of type v1.LabelSelectorOperator", other)),
    };
    let mut values = Vec::new();
    match expr.get("values") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) => values.push(s.clone()),
                    other => return Err(bad("values of type string", other)),
                }
            }
        }
        Some(other) => return Err(bad("values of type []string", other)),
    }
    let operator = match operator {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(Error::LabelSelector(format!(
                "{} is not a valid label selector operator",
                go_quote(other)
            )));
        }
    };
    Requirement::new(key, operator, values)
}

/// Go's JSON name for a value's type, for decode-style errors.
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

/// Go's `%#v` of a `[]string`; an empty list prints as nil because upstream copies the
/// values with `append([]string(nil), ...)`.
fn go_string_slice(values: &[String]) -> String {
    if values.is_empty() {
        return "[]string(nil)".to_string();
    }
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// Upstream's aggregate error text: one message alone, several in brackets.
fn aggregate(mut errs: Vec<String>) -> String {
    let mut seen = std::collections::HashSet::new();
    errs.retain(|e| seen.insert(e.clone()));
    if errs.len() == 1 {
        errs.remove(0)
    } else {
        format!("[{}]", errs.join(", "))
    }
}

#[cfg(test)]
mod tests;
