use serde_json::{Value, json};

use super::*;

fn json_patch(doc: Value, patch: Value) -> Result<Value> {
    apply_patch("ConfigMap", &doc, &patch, PatchType::Json, false)
}

fn smp(kind: &str, current: Value, patch: Value) -> Value {
    apply_patch(kind, &current, &patch, PatchType::StrategicMerge, false)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn smp_err(kind: &str, current: Value, patch: Value) -> String {
    apply_patch(kind, &current, &patch, PatchType::StrategicMerge, false)
        .unwrap_err()
        .to_string()
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

#[test]
fn content_types() {
    assert_eq!(
        PatchType::from_content_type("application/json-patch+json"),
        Some(PatchType::Json)
    );
    assert_eq!(
        PatchType::from_content_type("application/merge-patch+json"),
        Some(PatchType::Merge)
    );
    assert_eq!(
        PatchType::from_content_type("application/strategic-merge-patch+json"),
        Some(PatchType::StrategicMerge)
    );
    assert_eq!(
        PatchType::from_content_type("application/apply-patch+yaml"),
        Some(PatchType::Apply)
    );
    assert_eq!(PatchType::from_content_type("application/json"), None);
    assert_eq!(
        PatchType::Merge.content_type(),
        "application/merge-patch+json"
    );
}

#[test]
fn json_patch_operations() {
    let doc = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"list": [1, 2, 3]}});
    let out = json_patch(
        doc,
        json!([
            {"op": "add", "path": "/metadata/labels/y", "value": "2"},
            {"op": "replace", "path": "/metadata/labels/x", "value": "one"},
            {"op": "remove", "path": "/data/list/0"},
            {"op": "add", "path": "/data/list/-", "value": 4},
            {"op": "add", "path": "/data/list/1", "value": 9},
            {"op": "copy", "from": "/metadata/name", "path": "/data/copy"},
            {"op": "move", "from": "/data/copy", "path": "/data/moved"},
            {"op": "test", "path": "/data/moved", "value": "a"},
            {"op": "add", "path": "/metadata/annotations", "value": {}},
            {"op": "add", "path": "/metadata/annotations/a~1b~0c", "value": "v"},
        ]),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({
            "metadata": {"name": "a", "labels": {"x": "one", "y": "2"}, "annotations": {"a/b~c": "v"}},
            "data": {"list": [2, 9, 3, 4], "moved": "a"}
        })
    );
}

#[test]
fn json_patch_negative_indices_and_replace_of_absent_member() {
    let doc = json!({"l": [1, 2, 3], "m": {}});
    let out = json_patch(
        doc,
        json!([
            {"op": "remove", "path": "/l/-1"},
            {"op": "replace", "path": "/l/-2", "value": 0},
            {"op": "replace", "path": "/m/new", "value": true},
        ]),
    )
    .unwrap();
    assert_eq!(out, json!({"l": [0, 2], "m": {"new": true}}));
}

#[test]
fn json_patch_errors() {
    let doc = json!({"metadata": {"labels": {"app": "web"}}, "l": [1]});
    let e = |patch: Value| json_patch(doc.clone(), patch).unwrap_err();
    let test = e(json!([{"op": "test", "path": "/metadata/labels/app", "value": "db"}]));
    assert_eq!(
        test,
        Error::TestFailed {
            path: "/metadata/labels/app".into()
        }
    );
    assert_eq!(
        test.to_string(),
        "testing value /metadata/labels/app failed: test failed"
    );
    assert_eq!(
        e(json!([{"op": "remove", "path": "/metadata/labels/nope"}])).to_string(),
        "error in remove for path: '/metadata/labels/nope': Unable to remove nonexistent key: nope: missing value"
    );
    assert_eq!(
        e(json!([{"op": "remove", "path": "/spec/x"}])).to_string(),
        "remove operation does not apply: doc is missing path: \"/spec/x\": missing value"
    );
    assert_eq!(
        e(json!([{"op": "add", "path": "/spec/x/y", "value": 1}])).to_string(),
        "add operation does not apply: doc is missing path: \"/spec/x/y\": missing value"
    );
    assert_eq!(
        e(json!([{"op": "replace", "path": "/l/5", "value": 1}])).to_string(),
        "replace operation does not apply: doc is missing key: /l/5: missing value"
    );
    assert_eq!(
        e(json!([{"op": "add", "path": "/l/5", "value": 1}])).to_string(),
        "error in add for path: '/l/5': Unable to access invalid index: 5: invalid index referenced"
    );
    assert_eq!(
        e(json!([{"op": "add", "path": "/l/x", "value": 1}])).to_string(),
        "error in add for path: '/l/x': value was not a proper array index: 'x': strconv.Atoi: parsing \"x\": invalid syntax"
    );
    assert_eq!(
        e(json!([{"op": "frob", "path": "/a"}])).to_string(),
        "Unexpected kind: frob"
    );
    assert_eq!(
        e(json!([{"op": "move", "path": "/a"}])).to_string(),
        "move operation failed to decode from: operation, missing from field: missing value"
    );
    assert_eq!(
        e(json!({"op": "add"})).to_string(),
        "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
    );
    // A failing operation leaves nothing half-applied: the caller keeps `current`.
    assert!(
        json_patch(
            doc.clone(),
            json!([{"op": "test", "path": "/missing", "value": null}])
        )
        .is_ok()
    );
}

#[test]
fn merge_patch_rfc7386() {
    let current = json!({"a": {"b": 1, "c": [1, 2]}, "d": "x", "kind": "ConfigMap"});
    let out = apply_patch(
        "ConfigMap",
        &current,
        &json!({"a": {"b": null, "c": [3], "n": {"x": null, "y": 1}}, "d": null, "e": [null]}),
        PatchType::Merge,
        false,
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"a": {"c": [3], "n": {"y": 1}}, "e": [null], "kind": "ConfigMap"})
    );
    assert_eq!(
        apply_patch("ConfigMap", &current, &json!([1]), PatchType::Merge, false).unwrap_err(),
        Error::InvalidMergePatch
    );
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a", "b"]},
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.14",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
                        },
                        {"name": "sidecar", "image": "busybox"}
                    ],
                    "tolerations": [{"key": "k1", "operator": "Exists"}]
                }
            }
        }
    })
}

#[test]
fn strategic_changes_one_container_image() {
    let out = smp(
        "Deployment",
        deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.16"}]}}}}),
    );
    let mut want = deployment();
    want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.16");
    assert_eq!(out, want);
}

#[test]
fn strategic_adds_new_items_before_existing_ones_like_upstream() {
    let out = smp(
        "Deployment",
        deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "redis", "image": "redis"}]}}}}),
    );
    assert_eq!(
        names(&out["spec"]["template"]["spec"]["containers"]),
        ["redis", "nginx", "sidecar"]
    );
}

#[test]
fn strategic_deletes_env_var_and_merges_nested_lists() {
    let out = smp(
        "Deployment",
        deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{
            "name": "nginx",
            "env": [{"name": "A", "$patch": "delete"}, {"name": "B", "value": "3"}],
            "ports": [{"containerPort": 80, "name": "http"}]
        }]}}}}),
    );
    let c = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["env"], json!([{"name": "B", "value": "3"}]));
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}])
    );
    assert_eq!(c["image"], "nginx:1.14");
}

#[test]
fn strategic_replaces_lists_without_merge_key() {
    let out = smp(
        "Deployment",
        deployment(),
        json!({"spec": {"template": {"spec": {"tolerations": [{"key": "k2", "operator": "Exists"}]}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "k2", "operator": "Exists"}])
    );
}

#[test]
fn strategic_replace_and_delete_directives() {
    let out = smp(
        "Deployment",
        deployment(),
        json!({
            "metadata": {"labels": {"$patch": "replace", "tier": "front"}},
            "spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]}}}
        }),
    );
    assert_eq!(out["metadata"]["labels"], json!({"tier": "front"}));
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "only", "image": "x"}])
    );
    let out = smp(
        "Deployment",
        deployment(),
        json!({"metadata": {"labels": {"$patch": "delete"}}, "spec": {"replicas": null}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({}));
    assert!(out["spec"].get("replicas").is_none());
}

#[test]
fn strategic_primitive_lists_merge_as_ordered_sets() {
    let out = smp(
        "Deployment",
        deployment(),
        json!({"metadata": {"finalizers": ["b", "c"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
    let out = smp(
        "Deployment",
        deployment(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["z"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["z", "b"]));
    let out = smp(
        "Pod",
        json!({"metadata": {}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(out, json!({"metadata": {}}));
}

#[test]
fn strategic_upstream_order_cases() {
    let current = json!({"spec": {"containers": [
        {"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"}
    ]}});
    let out = smp(
        "Pod",
        current.clone(),
        json!({"spec": {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}}),
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "2", "image": "b"}, {"name": "3", "image": "c"}, {"name": "1", "image": "a"}])
    );
    let out = smp(
        "Pod",
        current,
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
            "containers": [{"name": "2", "image": "bb"}]
        }}),
    );
    assert_eq!(names(&out["spec"]["containers"]), ["3", "2", "1"]);
    assert_eq!(out["spec"]["containers"][1]["image"], "bb");
    let out = smp(
        "Pod",
        json!({"metadata": {"finalizers": ["1", "2", "3"]}}),
        json!({"metadata": {"finalizers": ["3", "1"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["2", "3", "1"]));
}

#[test]
fn strategic_dedups_and_deletes_duplicates() {
    let current = json!({"spec": {"containers": [
        {"name": "1"}, {"name": "1"}, {"name": "2", "image": "a"}, {"name": "3"}, {"name": "3"}
    ]}});
    let out = smp(
        "Pod",
        current,
        json!({"spec": {"containers": [
            {"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}
        ]}}),
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "2", "image": "a"}])
    );
}

#[test]
fn strategic_retain_keys() {
    let current =
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let out = smp(
        "Deployment",
        current.clone(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    );
    assert_eq!(out, json!({"spec": {"strategy": {"type": "Recreate"}}}));
    assert_eq!(
        smp_err(
            "Deployment",
            current,
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "other": 1}}})
        ),
        "invalid patch format of retainKeys"
    );
}

#[test]
fn strategic_merge_keys_of_other_kinds() {
    let node = json!({"status": {
        "conditions": [{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]
    }});
    let out = smp(
        "Node",
        node,
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "Hostname", "address": "n1"}]}}),
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}])
    );
    assert_eq!(out["status"]["addresses"].as_array().unwrap().len(), 2);

    let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
    let out = smp(
        "Service",
        svc,
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
    );
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
    );

    let owned = json!({"metadata": {"ownerReferences": [{"uid": "u1", "name": "a"}]}});
    let out = smp(
        "ConfigMap",
        owned,
        json!({"metadata": {"ownerReferences": [{"uid": "u1", "controller": true}]}}),
    );
    assert_eq!(
        out["metadata"]["ownerReferences"],
        json!([{"uid": "u1", "name": "a", "controller": true}])
    );

    let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "a"}, {"name": "d"}]}}}}}});
    let out = smp(
        "CronJob",
        cron,
        json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "b"}]}}}}}}),
    );
    assert_eq!(
        out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"],
        json!([{"name": "c", "image": "b"}, {"name": "d"}])
    );

    let pod = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}], "phase": "Pending"}});
    let out = smp(
        "Pod",
        pod,
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}])
    );
    assert_eq!(out["status"]["phase"], "Pending");
}

#[test]
fn strategic_cleans_directives_out_of_new_values() {
    let out = smp(
        "Pod",
        json!({"spec": {}}),
        json!({"spec": {
            "containers": [{"name": "a", "env": [{"name": "X", "$patch": "delete"}, {"name": "Y", "value": null}]}],
            "nodeSelector": {"$patch": "replace", "disk": "ssd", "gone": null}
        }}),
    );
    assert_eq!(
        out,
        json!({"spec": {"containers": [{"name": "a", "env": [{"name": "Y"}]}], "nodeSelector": {"disk": "ssd"}}})
    );
}

#[test]
fn strategic_errors_use_upstream_wording() {
    assert_eq!(
        smp_err(
            "Pod",
            json!({"spec": {}}),
            json!({"spec": {"$patch": "foo"}})
        ),
        "unknown patch type: foo in map: map[$patch:foo]"
    );
    assert_eq!(
        smp_err(
            "Pod",
            json!({"spec": {"containers": [{"name": "a"}]}}),
            json!({"spec": {"containers": [{"image": "x"}]}})
        ),
        "map: map[image:x] does not contain declared merge key: name"
    );
    assert_eq!(
        smp_err(
            "Pod",
            json!({"spec": {"containers": [{"name": "a"}]}}),
            json!({"spec": {"containers": [{"$patch": "merge"}]}})
        ),
        "merging lists cannot yet be specified in the patch"
    );
    assert_eq!(
        smp_err(
            "Pod",
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"finalizers": [1]}})
        ),
        "list element types are not identical: [[a] [1]]"
    );
    assert_eq!(
        smp_err(
            "Pod",
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}})
        ),
        "invalid patch format of primitive list"
    );
    assert_eq!(
        smp_err(
            "Pod",
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [{"name": "b", "image": "x"}]
            }})
        ),
        "The order in patch list:\n[map[image:x name:b]]\n doesn't match $setElementOrder list:\n[map[name:a]]\n"
    );
    assert_eq!(
        smp_err("Pod", json!({}), json!([1])),
        "invalid JSON document"
    );
}

#[test]
fn strategic_is_refused_for_custom_resources() {
    let err = apply_patch(
        "Widget",
        &json!({}),
        &json!({"spec": {}}),
        PatchType::StrategicMerge,
        true,
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::UnsupportedStrategicMerge {
            kind: "Widget".into()
        }
    );
}

#[test]
fn apply_approximation() {
    let out = apply_patch(
        "Deployment",
        &deployment(),
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}}}}),
        PatchType::Apply,
        false,
    )
    .unwrap();
    assert_eq!(
        names(&out["spec"]["template"]["spec"]["containers"]),
        ["nginx", "sidecar"]
    );
    let out = apply_patch(
        "Widget",
        &json!({"spec": {"items": [1, 2], "size": 1}}),
        &json!({"spec": {"items": [3]}}),
        PatchType::Apply,
        true,
    )
    .unwrap();
    assert_eq!(out, json!({"spec": {"items": [3], "size": 1}}));
}

#[test]
fn go_value_formatting() {
    use super::strategic::go_v;
    assert_eq!(
        go_v(&json!({"b": [1, "x"], "a": null})),
        "map[a:<nil> b:[1 x]]"
    );
    assert_eq!(go_v(&json!(1.5)), "1.5");
    assert_eq!(go_v(&json!(0.00001)), "1e-05");
}

#[test]
fn strategic_kubectl_generated_patches() {
    // The shape `kubectl edit` sends after removing env var A from one container.
    let out = smp(
        "Deployment",
        deployment(),
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
            "containers": [{
                "name": "nginx",
                "$setElementOrder/env": [{"name": "B"}],
                "env": [{"name": "A", "$patch": "delete"}]
            }]
        }}}}),
    );
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers), ["nginx", "sidecar"]);
    assert_eq!(containers[0]["env"], json!([{"name": "B", "value": "2"}]));

    // ... and after removing finalizer "a".
    let out = smp(
        "Deployment",
        deployment(),
        json!({"metadata": {
            "$setElementOrder/finalizers": ["b"],
            "$deleteFromPrimitiveList/finalizers": ["a"]
        }}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
}
