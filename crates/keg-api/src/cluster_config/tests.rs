use super::*;

const HEAD: &str = "\
apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata:
  name: c
  region: eu-west-1
";

fn error(text: &str) -> Error {
    match ClusterConfig::parse("f.yaml", text) {
        Ok(config) => panic!("expected an error, parsed {config:?}"),
        Err(err) => err,
    }
}

fn check(cases: &[(&str, String, &str)], kind: fn(&Error) -> bool) {
    for (name, text, want) in cases {
        let err = error(text);
        assert_eq!(err.to_string(), *want, "case {name}");
        assert!(kind(&err), "case {name}: wrong kind {err:?}");
    }
}

fn with_head(rest: &str) -> String {
    format!("{HEAD}{rest}")
}

#[test]
fn yaml_syntax_errors() {
    let cases = [
        (
            "bad indentation",
            "metadata:\n  name: c\n   region: x\n".to_owned(),
            "f.yaml:3:10: metadata.name: mapping values are not allowed in this context",
        ),
        (
            "unclosed flow sequence",
            with_head("fargateProfiles: [\n"),
            "f.yaml:6:18: fargateProfiles: unclosed bracket '['",
        ),
    ];
    check(&cases, |e| matches!(e, Error::Syntax(_)));
}

#[test]
fn unknown_keys_and_wrong_types() {
    let cases = [
        (
            "unknown top-level key",
            with_head("vpc:\n  cidr: 10.0.0.0/16\n"),
            "f.yaml:6:1: vpc: unknown field `vpc`, expected one of apiVersion, kind, metadata, \
             nodeGroups, managedNodeGroups, fargateProfiles",
        ),
        (
            "unknown profile key",
            with_head("fargateProfiles:\n  - name: fp\n    selector:\n      - namespace: a\n"),
            "f.yaml:8:5: fargateProfiles[0].selector: unknown field `selector`, expected one of \
             name, selectors, podExecutionRoleARN, subnets, tags",
        ),
        (
            "unknown taint key in the list form",
            with_head(
                "nodeGroups:\n  - name: ng\n    taints:\n      - key: a\n        efect: NoSchedule\n",
            ),
            "f.yaml:10:9: nodeGroups[0].taints[0].efect: unknown field `efect`, expected one of \
             key, value, effect",
        ),
        (
            "count that is a word",
            with_head("nodeGroups:\n  - name: ng\n    desiredCapacity: two\n"),
            "f.yaml:8:22: nodeGroups[0].desiredCapacity: expected a whole number of 0 or more",
        ),
        (
            "negative count",
            with_head("nodeGroups:\n  - name: ng\n    maxSize: -1\n"),
            "f.yaml:8:14: nodeGroups[0].maxSize: expected a whole number of 0 or more",
        ),
        (
            "selectors that are not a list",
            with_head("fargateProfiles:\n  - name: fp\n    selectors: default\n"),
            "f.yaml:8:16: fargateProfiles[0].selectors: expected a list",
        ),
        (
            "metadata that is not a mapping",
            "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: c\n".to_owned(),
            "f.yaml:3:11: metadata: expected a mapping (key: value)",
        ),
    ];
    check(&cases, |e| matches!(e, Error::Schema(_)));
}

#[test]
fn header_and_metadata_rules() {
    let cases = [
        (
            "wrong apiVersion",
            HEAD.replace("v1alpha5", "v1alpha4"),
            "f.yaml:1:13: apiVersion: no kind \"ClusterConfig\" is registered for version \
             \"eksctl.io/v1alpha4\"",
        ),
        (
            "wrong kind",
            HEAD.replace("kind: ClusterConfig", "kind: Cluster"),
            "f.yaml:2:7: kind: no kind \"Cluster\" is registered for version \"eksctl.io/v1alpha5\"",
        ),
        (
            "no apiVersion",
            HEAD.replace("apiVersion: eksctl.io/v1alpha5\n", ""),
            "f.yaml:1:1: apiVersion: must be set",
        ),
        (
            "no metadata",
            "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\n".to_owned(),
            "f.yaml:1:1: metadata: must be set",
        ),
        (
            "no name",
            HEAD.replace("  name: c\n", ""),
            "f.yaml:4:3: metadata.name: must be set",
        ),
        (
            "no region",
            HEAD.replace("  region: eu-west-1\n", ""),
            "f.yaml:4:3: metadata.region: must be set",
        ),
    ];
    check(&cases, |e| matches!(e, Error::Rule(_)));
}

#[test]
fn node_group_rules() {
    let cases = [
        (
            "no name",
            with_head("nodeGroups:\n  - instanceType: t3.medium\n"),
            "f.yaml:7:5: nodeGroups[0].name: must be set",
        ),
        (
            "name used by a managed group too",
            with_head("nodeGroups:\n  - name: ng\nmanagedNodeGroups:\n  - name: ng\n"),
            "f.yaml:9:11: managedNodeGroups[0].name: \"ng\" is not unique",
        ),
        (
            "unknown instance type",
            with_head("nodeGroups:\n  - name: ng\n    instanceType: x1.huge\n"),
            "f.yaml:8:19: nodeGroups[0].instanceType: instance type \"x1.huge\" is not in keg's \
             instance-type table (the t2, t3, m5, c5 and r5 families)",
        ),
        (
            "unknown type among instanceTypes",
            with_head("managedNodeGroups:\n  - name: ng\n    instanceTypes: [t3.large, t9.huge]\n"),
            "f.yaml:8:31: managedNodeGroups[0].instanceTypes[1]: instance type \"t9.huge\" is not \
             in keg's instance-type table (the t2, t3, m5, c5 and r5 families)",
        ),
        (
            "instanceTypes on a self-managed group",
            with_head("nodeGroups:\n  - name: ng\n    instanceTypes: [t3.large]\n"),
            "f.yaml:8:20: nodeGroups[0].instanceTypes: is only supported for managedNodeGroups",
        ),
        (
            "desired below min",
            with_head("nodeGroups:\n  - name: ng\n    desiredCapacity: 1\n    minSize: 2\n"),
            "f.yaml:8:22: nodeGroups[0].desiredCapacity: desiredCapacity value (1) cannot be lower \
             than minSize value (2)",
        ),
        (
            "desired above max",
            with_head("nodeGroups:\n  - name: ng\n    desiredCapacity: 3\n    maxSize: 2\n"),
            "f.yaml:8:22: nodeGroups[0].desiredCapacity: desiredCapacity value (3) cannot be \
             greater than maxSize value (2)",
        ),
        (
            "min above max",
            with_head("nodeGroups:\n  - name: ng\n    minSize: 3\n    maxSize: 2\n"),
            "f.yaml:8:14: nodeGroups[0].minSize: minSize value (3) cannot be greater than maxSize \
             value (2)",
        ),
        (
            "max below the default min",
            with_head("nodeGroups:\n  - name: ng\n    maxSize: 1\n"),
            "f.yaml:8:14: nodeGroups[0].maxSize: minSize value (2) cannot be greater than maxSize \
             value (1)",
        ),
        (
            "taint effect, map form",
            with_head(
                "nodeGroups:\n  - name: ng\n    taints:\n      dedicated: \"db:NoScheduel\"\n",
            ),
            "f.yaml:9:18: nodeGroups[0].taints.dedicated: invalid taint effect: NoScheduel, \
             unsupported taint effect",
        ),
        (
            "taint without effect, map form",
            with_head("nodeGroups:\n  - name: ng\n    taints:\n      dedicated: db\n"),
            "f.yaml:9:18: nodeGroups[0].taints.dedicated: invalid taint \"db\": expected \
             \"value:Effect\"",
        ),
        (
            "taint effect, list form",
            with_head(
                "nodeGroups:\n  - name: ng\n    taints:\n      - key: dedicated\n        \
                 effect: Sometimes\n",
            ),
            "f.yaml:10:17: nodeGroups[0].taints[0].effect: invalid taint effect: Sometimes, \
             unsupported taint effect",
        ),
    ];
    check(&cases, |e| matches!(e, Error::Rule(_)));
}

fn profiles(count: usize) -> String {
    let mut text = String::from("fargateProfiles:\n");
    for i in 0..count {
        text += &format!("  - name: fp-{i}\n    selectors:\n      - namespace: ns\n");
    }
    with_head(&text)
}

#[test]
fn fargate_profile_rules() {
    let six_selectors: String = (0..6)
        .map(|i| format!("      - namespace: n{i}\n"))
        .collect();
    let cases = [
        (
            "reserved prefix",
            with_head("fargateProfiles:\n  - name: eks-x\n    selectors:\n      - namespace: a\n"),
            "f.yaml:7:11: fargateProfiles[0].name: invalid Fargate profile \"eks-x\": name should \
             NOT start with \"eks-\"",
        ),
        (
            "no name",
            with_head("fargateProfiles:\n  - selectors:\n      - namespace: a\n"),
            "f.yaml:7:5: fargateProfiles[0].name: invalid Fargate profile: empty name",
        ),
        (
            "duplicate name",
            with_head(
                "fargateProfiles:\n  - name: fp\n    selectors: [{namespace: a}]\n  - name: fp\n    \
                 selectors: [{namespace: b}]\n",
            ),
            "f.yaml:9:11: fargateProfiles[1].name: invalid Fargate profile \"fp\": name is not \
             unique",
        ),
        (
            "no selector",
            with_head("fargateProfiles:\n  - name: fp\n"),
            "f.yaml:7:5: fargateProfiles[0].selectors: invalid Fargate profile \"fp\": no profile \
             selector",
        ),
        (
            "selector without namespace",
            with_head(
                "fargateProfiles:\n  - name: fp\n    selectors:\n      - labels:\n          app: x\n",
            ),
            "f.yaml:9:9: fargateProfiles[0].selectors[0].namespace: invalid Fargate profile \"fp\": \
             invalid profile selector at index #0: empty namespace",
        ),
        (
            "six selectors",
            with_head(&format!(
                "fargateProfiles:\n  - name: fp\n    selectors:\n{six_selectors}"
            )),
            "f.yaml:14:9: fargateProfiles[0].selectors[5]: invalid Fargate profile \"fp\": at most 5 \
             selectors are allowed, found 6",
        ),
        (
            "six labels",
            with_head(
                "fargateProfiles:\n  - name: fp\n    selectors:\n      - namespace: a\n        \
                 labels: {a: x, b: x, c: x, d: x, e: x, f: x}\n",
            ),
            "f.yaml:10:17: fargateProfiles[0].selectors[0].labels: invalid Fargate profile \"fp\": \
             invalid profile selector at index #0: at most 5 labels are allowed, found 6",
        ),
        (
            "eleven profiles",
            profiles(11),
            "f.yaml:37:5: fargateProfiles[10]: too many Fargate profiles (11): a cluster may have at \
             most 10",
        ),
    ];
    check(&cases, |e| matches!(e, Error::Rule(_)));
    ClusterConfig::parse("f.yaml", &profiles(10)).expect("ten profiles are allowed");
}

#[test]
fn node_group_defaults_follow_eksctl() {
    let text = with_head(
        "nodeGroups:
  - name: plain
  - name: three
    desiredCapacity: 3
  - name: ranged
    minSize: 1
    maxSize: 4
  - name: floor
    minSize: 3
managedNodeGroups:
  - name: managed
    instanceTypes: [t3.medium, t3.large]
",
    );
    let config = ClusterConfig::parse("f.yaml", &text).unwrap();
    let sizes: Vec<_> = config
        .node_groups
        .iter()
        .map(|ng| {
            (
                ng.name.as_str(),
                ng.instance_type.as_str(),
                ng.desired_capacity,
                ng.min_size,
                ng.max_size,
            )
        })
        .collect();
    assert_eq!(
        sizes,
        [
            ("plain", "m5.large", 2, 2, 2),
            ("three", "m5.large", 3, 3, 3),
            ("ranged", "m5.large", 1, 1, 4),
            ("floor", "m5.large", 3, 3, 3),
        ]
    );
    assert_eq!(config.managed_node_groups[0].instance_type, "t3.medium");
}

#[test]
fn taints_in_both_forms_are_the_same() {
    let map = with_head(
        "nodeGroups:\n  - name: ng\n    taints:\n      dedicated: \"db:NoSchedule\"\n      \
         spot: \":PreferNoSchedule\"\n",
    );
    let list = with_head(
        "nodeGroups:\n  - name: ng\n    taints:\n      - {key: dedicated, value: db, effect: \
         NoSchedule}\n      - {key: spot, effect: PreferNoSchedule}\n",
    );
    let taints = |text: &str| {
        ClusterConfig::parse("f.yaml", text).unwrap().node_groups[0]
            .taints
            .clone()
    };
    let from_map = taints(&map);
    assert_eq!(from_map, taints(&list));
    assert_eq!(from_map[0].key, "dedicated");
    assert_eq!(from_map[0].value.as_deref(), Some("db"));
    assert_eq!(from_map[1].value, None);
    assert_eq!(from_map[1].effect, "PreferNoSchedule");
}

fn seed_file() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/terrax/eks-terrax-fargate.yaml")
}

#[test]
fn parses_the_seed_cluster_file() {
    let config = ClusterConfig::from_file(seed_file()).unwrap();
    assert_eq!(config.metadata.name, "terrax-fargate");
    assert_eq!(config.metadata.region, "eu-west-1");
    assert_eq!(config.metadata.version.as_deref(), Some("1.15"));
    let ng = &config.node_groups[0];
    assert_eq!(
        (ng.name.as_str(), ng.instance_type.as_str()),
        ("node-group", "t2.medium")
    );
    assert_eq!((ng.desired_capacity, ng.min_size, ng.max_size), (1, 1, 1));
    let namespaces: Vec<Vec<&str>> = config
        .fargate_profiles
        .iter()
        .map(|fp| fp.selectors.iter().map(|s| s.namespace.as_str()).collect())
        .collect();
    assert_eq!(
        namespaces,
        [vec!["default", "kube-system"], vec!["tb-demo"]]
    );
    assert_eq!(config.fargate_profiles[1].name, "fp-demo-service");
    assert_eq!(
        config.fargate_profiles[1].selectors[0].labels["app"],
        "service"
    );
}

#[test]
fn turns_entries_into_objects() {
    let config = ClusterConfig::from_file(seed_file()).unwrap();
    let groups = config.node_group_objects();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].metadata.name.as_deref(), Some("node-group"));
    assert_eq!(groups[0].spec.instance_type, "t2.medium");
    assert_eq!(groups[0].spec.desired_capacity, 1);
    assert!(!groups[0].spec.managed);
    let profiles = config.fargate_profile_objects();
    let names: Vec<_> = profiles
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["fp-default", "fp-demo-service"]);
    assert_eq!(
        profiles[1].spec.cluster_name.as_deref(),
        Some("terrax-fargate")
    );
    assert_eq!(
        profiles[1].spec.selectors,
        config.fargate_profiles[1].selectors
    );
}

#[test]
fn unreadable_file_names_the_path() {
    let err = ClusterConfig::from_file("/nonexistent/cluster.yaml").unwrap_err();
    assert!(
        err.to_string().starts_with("/nonexistent/cluster.yaml: "),
        "{err}"
    );
    assert!(err.located().is_none());
}

#[test]
fn errors_in_the_seed_file_point_into_it() {
    let text = std::fs::read_to_string(seed_file()).unwrap();
    let err = ClusterConfig::parse(
        "eks-terrax-fargate.yaml",
        &text.replace("fp-default", "eks-x"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "eks-terrax-fargate.yaml:15:11: fargateProfiles[0].name: invalid Fargate profile \
         \"eks-x\": name should NOT start with \"eks-\""
    );
    let located = err.located().unwrap();
    assert_eq!((located.line, located.column), (15, 11));
    let err = ClusterConfig::parse(
        "eks-terrax-fargate.yaml",
        &text.replace("labels:", "label:"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "eks-terrax-fargate.yaml:28:9: fargateProfiles[1].selectors[0].label: unknown field \
         `label`, expected one of namespace, labels"
    );
}
