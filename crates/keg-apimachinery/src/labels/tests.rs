use super::*;
use serde_json::json;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn err(s: &str) -> String {
    Selector::parse(s).unwrap_err().to_string()
}

#[test]
fn parses_and_prints_canonically() {
    let cases = [
        ("", ""),
        ("x=a", "x=a"),
        ("x==a", "x==a"),
        ("x!=a", "x!=a"),
        ("x=a,y!=b", "x=a,y!=b"),
        ("y!=b,x=a", "x=a,y!=b"),
        ("x in (b,a)", "x in (a,b)"),
        ("x notin (a)", "x notin (a)"),
        (
            "x in (foo,,baz),y,z notin ()",
            "x in (,baz,foo),y,z notin ()",
        ),
        ("!x", "!x"),
        ("x", "x"),
        ("x>1", "x>1"),
        ("x<1", "x<1"),
        ("  x = a , y  ", "x=a,y"),
        ("x=", "x="),
        ("x=,z= ", "x=,z="),
        ("x in (in)", "x in (in)"),
        ("in=notin", "in=notin"),
        ("a.b/c-d=e_f", "a.b/c-d=e_f"),
    ];
    for (input, printed) in cases {
        assert_eq!(sel(input).to_string(), printed, "{input}");
    }
}

#[test]
fn matching() {
    let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
    let yes = [
        "",
        "app=web",
        "app==web",
        "app!=db",
        "missing!=x",
        "app in (db,web)",
        "app notin (db)",
        "missing notin (x)",
        "app",
        "!missing",
        "n>4",
        "n<6",
        "app=web,tier=front",
    ];
    let no = [
        "app=db",
        "app!=web",
        "missing=x",
        "app notin (web)",
        "missing in (x)",
        "missing",
        "!app",
        "n>5",
        "n<5",
        "app>1",
        "missing<1",
        "app=web,tier=back",
    ];
    for s in yes {
        assert!(sel(s).matches(&l), "{s} should match");
    }
    for s in no {
        assert!(!sel(s).matches(&l), "{s} should not match");
    }
    let obj = json!({"app": "web", "n": 5});
    assert!(sel("app=web").matches_json(obj.as_object().unwrap()));
    assert!(!sel("n").matches_json(obj.as_object().unwrap()));
    assert!(sel("").is_empty());
    assert!(!sel("a").is_empty());
}

#[test]
fn syntax_errors_use_upstream_wording() {
    assert_eq!(
        err("a b"),
        "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
    );
    assert_eq!(err("a=b c"), "found 'c', expected: ',' or 'end of string'");
    assert_eq!(
        err(",a"),
        "found ',', expected: !, identifier, or 'end of string'"
    );
    assert_eq!(err("a,"), "found '', expected: identifier after ','");
    assert_eq!(
        err("a in"),
        "unable to parse requirement: found '' expected: '('"
    );
    assert_eq!(
        err("a in (b"),
        "unable to parse requirement: found '', expected: ',' or ')'"
    );
    assert_eq!(
        err("a in (=)"),
        "unable to parse requirement: found '=', expected: ',', ')' or identifier"
    );
    assert_eq!(
        err("a=("),
        "unable to parse requirement: found '(', expected: identifier"
    );
    assert_eq!(
        err("!=a"),
        "found '!=', expected: !, identifier, or 'end of string'"
    );
    assert_eq!(
        err("! =a"),
        "unable to parse requirement: found '=', expected: identifier"
    );
}

#[test]
fn invalid_keys_and_values() {
    assert_eq!(
        err("a$=b"),
        "unable to parse requirement: <nil>: Invalid value: \"a$\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    );
    assert_eq!(
        err("a=b$"),
        "unable to parse requirement: values[0][a]: Invalid value: \"b$\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    );
    assert_eq!(
        err("a>b"),
        "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer"
    );
    assert!(
        err("a>-b").starts_with(
            "unable to parse requirement: [values[0]: Invalid value: \"-b\": for 'Gt'"
        )
    );
}

#[test]
fn from_label_selector_objects() {
    assert!(
        Selector::from_label_selector(&Value::Null)
            .unwrap()
            .is_empty()
    );
    assert!(
        Selector::from_label_selector(&json!({}))
            .unwrap()
            .is_empty()
    );
    let s = Selector::from_label_selector(&json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["b", "a"]},
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "team", "operator": "Exists", "values": []},
        ]
    }))
    .unwrap();
    assert_eq!(
        s.to_string(),
        "app=web,!canary,env notin (prod),team,tier in (a,b)"
    );
    let l = labels(&[("app", "web"), ("tier", "a"), ("team", "x")]);
    assert!(s.matches(&l));
    assert_eq!(s.requires_exact_match("app"), Some("web"));
    assert_eq!(s.requires_exact_match("tier"), None);
}

#[test]
fn label_selector_errors() {
    let e = |v: Value| Selector::from_label_selector(&v).unwrap_err().to_string();
    assert_eq!(
        e(json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]})),
        "\"Foo\" is not a valid label selector operator"
    );
    assert_eq!(
        e(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})),
        "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
    );
    assert_eq!(
        e(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x", "y"]}]})),
        "values: Invalid value: []string{\"x\", \"y\"}: values set must be empty for exists and does not exist"
    );
    assert!(
        e(json!({"matchLabels": {"a$": "b"}})).starts_with("key: Invalid value: \"a$\": name part")
    );
    assert!(e(json!({"matchLabels": {"a": 1}})).contains("cannot unmarshal number"));
}
