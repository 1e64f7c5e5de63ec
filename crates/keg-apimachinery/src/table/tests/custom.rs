//! Custom resources printed from CRD printer columns, and the JSONPath they use.

use serde_json::{Value, json};

use super::{HOUR, MIN, ago, now};
use crate::table::jsonpath;
use crate::table::{IncludeObject, custom_table};

fn certificate(name: &str, ready: &str) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": ago(3 * HOUR)},
        "spec": {"secretName": format!("{name}-tls"), "dnsNames": ["a.example.com", "b.example.com"],
                 "duration": 2160, "renewBefore": 0.5},
        "status": {
            "conditions": [
                {"type": "Issuing", "status": "False"},
                {"type": "Ready", "status": ready, "message": "Certificate is up to date and has not expired"},
            ],
            "notAfter": ago(-90 * 24 * HOUR),
            "revision": 2,
        },
    })
}

fn columns() -> Vec<Value> {
    vec![
        json!({"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}),
        json!({"name": "Secret", "type": "string", "jsonPath": ".spec.secretName"}),
        json!({"name": "Issuer", "type": "string", "jsonPath": ".spec.issuerRef.name", "priority": 1}),
        json!({"name": "Status", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message", "priority": 1}),
        json!({"name": "Revision", "type": "integer", "jsonPath": ".status.revision"}),
        json!({"name": "Renew", "type": "number", "jsonPath": ".spec.renewBefore"}),
        json!({"name": "Hosts", "type": "string", "jsonPath": ".spec.dnsNames"}),
        json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "When it was made."}),
    ]
}

#[test]
fn printer_columns_become_typed_cells() {
    let items = [certificate("web", "True"), certificate("api", "False")];
    let t = custom_table(&columns(), &items, now(), IncludeObject::None);
    assert_eq!(t["kind"], "Table");
    let defs = t["columnDefinitions"].as_array().unwrap();
    assert_eq!(defs.len(), 9);
    assert_eq!(defs[0]["name"], "Name");
    assert_eq!(defs[0]["format"], "name");
    assert_eq!(
        defs[1],
        json!({"name": "Ready", "type": "string", "format": "", "priority": 0,
               "description": "Custom resource definition column (in JSONPath format): .status.conditions[?(@.type==\"Ready\")].status"})
    );
    assert_eq!(defs[3]["priority"], 1);
    assert_eq!(defs[8]["description"], "When it was made.");
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "web",
            "True",
            "web-tls",
            null,
            "Certificate is up to date and has not expired",
            2,
            0.5,
            "[\"a.example.com\",\"b.example.com\"]",
            "3h"
        ])
    );
    assert_eq!(t["rows"][1]["cells"][1], "False");
    assert_eq!(t["rows"][1]["object"], Value::Null);
}

#[test]
fn cells_convert_like_upstream() {
    let cols = [
        json!({"name": "A", "type": "integer", "jsonPath": ".spec.renewBefore"}),
        json!({"name": "B", "type": "integer", "jsonPath": ".spec.secretName"}),
        json!({"name": "C", "type": "boolean", "jsonPath": ".spec.flag"}),
        json!({"name": "D", "type": "string", "jsonPath": ".spec.duration"}),
        json!({"name": "E", "type": "date", "jsonPath": ".spec.when"}),
        json!({"name": "F", "type": "date", "jsonPath": ".spec.bad"}),
        json!({"name": "G", "type": "string", "jsonPath": ".spec.flag"}),
    ];
    let mut item = certificate("x", "True");
    item["spec"]["flag"] = json!(true);
    item["spec"]["when"] = json!(ago(5 * MIN + 30));
    item["spec"]["bad"] = json!("yesterday");
    let t = custom_table(&cols, &[item], now(), IncludeObject::Metadata);
    assert_eq!(
        t["rows"][0]["cells"],
        json!(["x", 0, null, true, "2160", "5m30s", "<invalid>", "true"])
    );
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "x");
}

#[test]
fn no_printer_columns_means_name_and_age() {
    let t = custom_table(
        &[],
        &[certificate("web", "True")],
        now(),
        IncludeObject::Object,
    );
    let names: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Name", "Age"]);
    assert_eq!(t["rows"][0]["cells"], json!(["web", "3h"]));
    assert_eq!(t["rows"][0]["object"]["kind"], "Certificate");
}

#[test]
fn an_invalid_path_drops_it_and_later_columns() {
    let cols = [
        json!({"name": "Ok", "type": "string", "jsonPath": ".spec.secretName"}),
        json!({"name": "Bad", "type": "string", "jsonPath": ".spec[unclosed"}),
        json!({"name": "Later", "type": "string", "jsonPath": ".spec.secretName"}),
    ];
    let t = custom_table(
        &cols,
        &[certificate("web", "True")],
        now(),
        IncludeObject::None,
    );
    assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 2);
    assert_eq!(t["rows"][0]["cells"], json!(["web", "web-tls"]));
}

fn eval(path: &str, doc: &Value) -> Vec<Value> {
    let path = jsonpath::parse(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    path.eval(doc).into_iter().cloned().collect()
}

#[test]
fn jsonpath_subset() {
    let doc = json!({
        "metadata": {"name": "n", "labels": {"app.kubernetes.io/name": "web"}},
        "spec": {"replicas": 3, "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]},
    });
    assert_eq!(eval(".spec.replicas", &doc), [json!(3)]);
    assert_eq!(eval("$.spec.replicas", &doc), [json!(3)]);
    assert_eq!(eval("{.spec.replicas}", &doc), [json!(3)]);
    assert_eq!(eval(".spec.missing.deeper", &doc), Vec::<Value>::new());
    assert_eq!(eval(".spec.ports[1].port", &doc), [json!(443)]);
    assert_eq!(eval(".spec.ports[-1].name", &doc), [json!("https")]);
    assert_eq!(eval(".spec.ports[5].name", &doc), Vec::<Value>::new());
    assert_eq!(eval(".spec.ports[*].port", &doc), [json!(80), json!(443)]);
    assert_eq!(eval(".spec.ports[0:1].name", &doc), [json!("http")]);
    assert_eq!(
        eval(".metadata.labels['app.kubernetes.io/name']", &doc),
        [json!("web")]
    );
    assert_eq!(
        eval(r".metadata.labels.app\.kubernetes\.io/name", &doc),
        [json!("web")]
    );
    assert_eq!(
        eval(".status.conditions[?(@.type==\"Synced\")].status", &doc),
        [json!("False")]
    );
    assert_eq!(
        eval(".status.conditions[?(@.type=='Ready')].status", &doc),
        [json!("True")]
    );
    assert_eq!(
        eval(".status.conditions[?(@.status != \"True\")].type", &doc),
        [json!("Synced")]
    );
    assert_eq!(
        eval(".spec.ports[?(@.port > 100)].name", &doc),
        [json!("https")]
    );
    assert_eq!(
        eval(".spec.ports[?(@.port<=80)].name", &doc),
        [json!("http")]
    );
    assert_eq!(
        eval(".spec.ports[?(@.name)].port", &doc),
        [json!(80), json!(443)]
    );
    assert_eq!(eval("..port", &doc), [json!(80), json!(443)]);
    assert!(jsonpath::parse(".spec[").is_err());
    assert!(jsonpath::parse("spec").is_err());
    assert!(jsonpath::parse(".a[?(@.b == nope)]").is_err());
}
