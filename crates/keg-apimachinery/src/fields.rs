//! Field selectors: the `fieldSelector` query syntax, the per-kind list of selectable
//! fields, and reading those fields from objects, as k8s.io/apimachinery/pkg/fields and
//! the kinds' registered field-label conversions do.

use std::fmt;

use serde_json::Value;

/// A field selector that cannot be parsed or is not supported; the text is upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A term has no `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    Syntax {
        /// The whole selector.
        selector: String,
        /// The term that did not parse.
        term: String,
    },
    /// A value contains a backslash not followed by `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscape(String),
    /// A value contains an unescaped `,` or `=`; upstream prints the code point.
    #[error("invalid field selector: unescaped character in value: {}", *.0 as u32)]
    UnescapedRune(char),
    /// The kind does not register this field for selection.
    #[error("field label not supported: {0}")]
    NotSupported(String),
    /// Jobs word their rejection differently.
    #[error("field label {0:?} not supported for Job")]
    NotSupportedForJob(String),
    /// A kind without registered fields only knows the metadata ones.
    #[error("{0:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"")]
    NotKnown(String),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a term compares the field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The field path, such as `spec.nodeName`.
    pub field: String,
    /// The comparison.
    pub op: Op,
    /// The unescaped value.
    pub value: String,
}

/// A parsed field selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<Term>,
}

impl FieldSelector {
    /// Parses `a=b,c!=d` with `\,`, `\=` and `\\` escapes in values; "" selects everything.
    pub fn parse(s: &str) -> Result<FieldSelector> {
        let mut parts = split_terms(s);
        // Upstream sorts the raw terms, which fixes both the printed order and which
        // bad term an error names.
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let (field, op, raw) = split_term(part).ok_or_else(|| Error::Syntax {
                selector: s.to_string(),
                term: part.to_string(),
            })?;
            terms.push(Term {
                field: field.to_string(),
                op,
                value: unescape_value(raw)?,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Errors unless the kind lets clients select on every field the selector names.
    pub fn check_supported(&self, kind: &str, is_custom: bool) -> Result<()> {
        for term in &self.terms {
            check_field(kind, is_custom, &term.field)?;
        }
        Ok(())
    }

    /// Whether an object passes; `value_of` reads a field, and a missing one counts as "".
    pub fn matches(&self, value_of: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|t| {
            let have = value_of(&t.field).unwrap_or_default();
            (have == t.value) == (t.op == Op::Equals)
        })
    }

    /// Whether the selector has no terms and so matches everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms, in upstream's sorted order.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// The value an `=` term demands for `field`, as in `spec.nodeName=node-1`.
    pub fn exact_value(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.op == Op::Equals)
            .map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if t.op == Op::Equals { "=" } else { "!=" };
            write!(f, "{}{op}{}", t.field, escape_value(&t.value))?;
        }
        Ok(())
    }
}

/// Escapes `\`, `,` and `=` so a value survives [`FieldSelector::parse`].
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Reads a selectable field of an object the way the kind's ToSelectableFields does:
/// booleans print `true`/`false` and counts as decimals, absent ones as their zero.
/// Other paths fall back to the scalar at that dotted path, if any.
pub fn field_value(kind: &str, obj: &Value, path: &str) -> Option<String> {
    let s = |p: &[&str]| {
        Some(
            lookup(obj, p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )
    };
    let b = |p: &[&str]| {
        Some(
            lookup(obj, p)
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .to_string(),
        )
    };
    let n = |p: &[&str]| {
        Some(
            lookup(obj, p)
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .to_string(),
        )
    };
    match (kind, path) {
        (_, "metadata.name") => s(&["metadata", "name"]),
        (_, "metadata.namespace") => s(&["metadata", "namespace"]),
        ("Pod", "spec.nodeName" | "spec.host") => s(&["spec", "nodeName"]),
        ("Pod", "spec.hostNetwork") => b(&["spec", "hostNetwork"]),
        // Upstream reads the first of status.podIPs; status.podIP mirrors it.
        ("Pod", "status.podIP") => Some(
            lookup(obj, &["status", "podIPs"])
                .and_then(|ips| ips.get(0))
                .and_then(|ip| ip.get("ip"))
                .or_else(|| lookup(obj, &["status", "podIP"]))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
        // Accepted by upstream's conversion but never set in the field set: always "".
        ("Pod", "status.podIPs") => Some(String::new()),
        ("Node", "spec.unschedulable") => b(&["spec", "unschedulable"]),
        ("ReplicationController" | "ReplicaSet", "status.replicas") => n(&["status", "replicas"]),
        ("Job", "status.successful") => n(&["status", "succeeded"]),
        ("Event", "source") => {
            let component = lookup(obj, &["source", "component"]).and_then(Value::as_str);
            match component {
                Some(c) if !c.is_empty() => Some(c.to_string()),
                _ => s(&["reportingComponent"]),
            }
        }
        _ => {
            let parts: Vec<&str> = path.split('.').collect();
            match lookup(obj, &parts)? {
                Value::String(v) => Some(v.clone()),
                Value::Bool(v) => Some(v.to_string()),
                Value::Number(v) => Some(v.to_string()),
                Value::Null => Some(String::new()),
                _ => None,
            }
        }
    }
}

fn lookup<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, key| v.get(key))
}

/// The fields each kind's conversion function accepts, beyond `metadata.name`.
/// `namespaced` says whether `metadata.namespace` is accepted too.
fn registered_fields(kind: &str) -> Option<(bool, &'static [&'static str])> {
    Some(match kind {
        "Pod" => (
            true,
            &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
                // A legacy spelling of spec.nodeName old clients still send.
                "spec.host",
            ],
        ),
        "Node" => (false, &["spec.unschedulable"]),
        "ReplicationController" => (true, &["status.replicas"]),
        "Event" => (
            true,
            &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
        ),
        "Namespace" => (false, &["status.phase"]),
        "Secret" => (true, &["type"]),
        "Service" => (true, &["spec.clusterIP", "spec.type"]),
        "Job" => (true, &["status.successful"]),
        "CertificateSigningRequest" => (false, &["spec.signerName"]),
        _ => return None,
    })
}

fn check_field(kind: &str, is_custom: bool, field: &str) -> Result<()> {
    if is_custom {
        return match field {
            "metadata.name" | "metadata.namespace" => Ok(()),
            _ => Err(Error::NotSupported(field.to_string())),
        };
    }
    let Some((namespaced, extra)) = registered_fields(kind) else {
        // Kinds without a registered conversion (ConfigMap, Deployment, ...) fall back
        // to upstream's default, which only knows the metadata fields.
        return match field {
            "metadata.name" | "metadata.namespace" => Ok(()),
            _ => Err(Error::NotKnown(field.to_string())),
        };
    };
    let ok = field == "metadata.name"
        || (namespaced && field == "metadata.namespace")
        || extra.contains(&field);
    match (ok, kind) {
        (true, _) => Ok(()),
        (false, "Job") => Err(Error::NotSupportedForJob(field.to_string())),
        (false, _) => Err(Error::NotSupported(field.to_string())),
    }
}

/// Splits on commas not escaped by a backslash, keeping the escapes.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits at the first operator; field names cannot escape, so the first one wins.
fn split_term(term: &str) -> Option<(&str, Op, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (token, op) in [("!=", Op::NotEquals), ("==", Op::Equals), ("=", Op::Equals)] {
            if let Some(value) = rest.strip_prefix(token) {
                return Some((&term[..i], op, value));
            }
        }
    }
    None
}

fn unescape_value(s: &str) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(Error::InvalidEscape(format!("\\{c}")));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(Error::UnescapedRune(c)),
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(Error::InvalidEscape("\\".to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_terms_and_prints_sorted() {
        assert!(parse("").is_empty());
        assert!(parse(",").is_empty());
        let s = parse("status.phase!=Running,metadata.name==a,spec.nodeName=n1");
        assert_eq!(
            s.to_string(),
            "metadata.name=a,spec.nodeName=n1,status.phase!=Running"
        );
        assert_eq!(s.exact_value("spec.nodeName"), Some("n1"));
        assert_eq!(s.exact_value("status.phase"), None);
        assert_eq!(s.terms().len(), 3);
    }

    #[test]
    fn escapes() {
        let s = parse(r"a=x\,y\=z\\w,b=c");
        assert_eq!(s.exact_value("a"), Some(r"x,y=z\w"));
        assert_eq!(s.exact_value("b"), Some("c"));
        assert_eq!(s.to_string(), r"a=x\,y\=z\\w,b=c");
        assert_eq!(escape_value("a,b=c\\"), r"a\,b\=c\\");
        // An empty value is allowed and means "field unset or empty".
        assert_eq!(parse("a=").exact_value("a"), Some(""));
    }

    #[test]
    fn syntax_errors() {
        let e = |s: &str| FieldSelector::parse(s).unwrap_err().to_string();
        assert_eq!(e("a"), "invalid selector: 'a'; can't understand 'a'");
        assert_eq!(
            e("b=c,a"),
            "invalid selector: 'b=c,a'; can't understand 'a'"
        );
        assert_eq!(
            e(r"a=b\c"),
            r"invalid field selector: invalid escape sequence: \c"
        );
        assert_eq!(
            e(r"a=b\"),
            r"invalid field selector: invalid escape sequence: \"
        );
        assert_eq!(
            e("a=b=c"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            e("a==b=c"),
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn matching_treats_missing_as_empty() {
        let s = parse("spec.nodeName=,status.phase!=Failed");
        assert!(s.matches(|_| None));
        assert!(!s.matches(|p| (p == "spec.nodeName").then(|| "n1".to_string())));
        assert!(parse("").matches(|_| None));
    }

    #[test]
    fn supported_fields_per_kind() {
        let check = |kind: &str, custom: bool, s: &str| {
            parse(s)
                .check_supported(kind, custom)
                .map_err(|e| e.to_string())
        };
        assert!(
            check(
                "Pod",
                false,
                "spec.nodeName=a,status.phase=Running,metadata.namespace=d"
            )
            .is_ok()
        );
        assert!(check("Pod", false, "spec.host=a").is_ok());
        assert_eq!(
            check("Pod", false, "spec.foo=a"),
            Err("field label not supported: spec.foo".to_string())
        );
        assert!(check("Node", false, "spec.unschedulable=false,metadata.name=n").is_ok());
        assert_eq!(
            check("Node", false, "metadata.namespace=x"),
            Err("field label not supported: metadata.namespace".to_string())
        );
        assert!(
            check(
                "Event",
                false,
                "involvedObject.uid=1,source=kubelet,type=Normal"
            )
            .is_ok()
        );
        assert!(check("Secret", false, "type=Opaque").is_ok());
        assert!(check("Service", false, "spec.type=ClusterIP").is_ok());
        assert!(check("Namespace", false, "status.phase=Active").is_ok());
        assert_eq!(
            check("Job", false, "status.active=1"),
            Err("field label \"status.active\" not supported for Job".to_string())
        );
        assert!(check("ConfigMap", false, "metadata.name=a,metadata.namespace=b").is_ok());
        assert_eq!(
            check("Deployment", false, "status.replicas=1"),
            Err("\"status.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"".to_string())
        );
        assert!(check("Widget", true, "metadata.name=a").is_ok());
        assert_eq!(
            check("Widget", true, "spec.size=1"),
            Err("field label not supported: spec.size".to_string())
        );
    }

    #[test]
    fn field_values() {
        let pod = json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always"},
            "status": {"phase": "Running", "podIP": "10.0.0.2", "podIPs": [{"ip": "10.0.0.1"}]}
        });
        let v = |kind: &str, obj: &Value, p: &str| field_value(kind, obj, p);
        assert_eq!(v("Pod", &pod, "metadata.name").as_deref(), Some("p"));
        assert_eq!(v("Pod", &pod, "spec.host").as_deref(), Some("n1"));
        assert_eq!(v("Pod", &pod, "spec.hostNetwork").as_deref(), Some("false"));
        assert_eq!(v("Pod", &pod, "status.podIP").as_deref(), Some("10.0.0.1"));
        assert_eq!(v("Pod", &pod, "status.podIPs").as_deref(), Some(""));
        assert_eq!(v("Pod", &pod, "spec.schedulerName").as_deref(), None);
        assert_eq!(
            v("Pod", &pod, "spec.restartPolicy").as_deref(),
            Some("Always")
        );
        let host = json!({"spec": {"hostNetwork": true}});
        assert_eq!(v("Pod", &host, "spec.hostNetwork").as_deref(), Some("true"));
        let node = json!({"spec": {}});
        assert_eq!(
            v("Node", &node, "spec.unschedulable").as_deref(),
            Some("false")
        );
        let rc = json!({"status": {"replicas": 3}});
        assert_eq!(
            v("ReplicationController", &rc, "status.replicas").as_deref(),
            Some("3")
        );
        let job = json!({"status": {"succeeded": 2}});
        assert_eq!(v("Job", &job, "status.successful").as_deref(), Some("2"));
        let ev = json!({"source": {"component": ""}, "reportingComponent": "ctl", "involvedObject": {"kind": "Pod"}});
        assert_eq!(v("Event", &ev, "source").as_deref(), Some("ctl"));
        assert_eq!(
            v("Event", &ev, "involvedObject.kind").as_deref(),
            Some("Pod")
        );
        let ev = json!({"source": {"component": "kubelet"}});
        assert_eq!(v("Event", &ev, "source").as_deref(), Some("kubelet"));

        let s = parse("spec.nodeName=n1,status.phase=Running");
        assert!(s.matches(|p| field_value("Pod", &pod, p)));
        assert!(!parse("spec.nodeName=n2").matches(|p| field_value("Pod", &pod, p)));
    }
}
