//! The review APIs, answered from the request and never stored: TokenReview and
//! SelfSubjectReview (authentication.k8s.io), SubjectAccessReview, SelfSubjectAccessReview,
//! LocalSubjectAccessReview and SelfSubjectRulesReview (authorization.k8s.io).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::auth::{self, UserInfo};
use crate::authz::{Attributes, MASTERS};
use crate::error::{ApiError, Cause, Result};
use crate::resources::Resource;
use crate::state::ApiState;

/// The answer to a review `body` of kind `res` that `user` posted (in namespace `ns`).
pub async fn create(
    state: &ApiState,
    res: &Resource,
    ns: Option<&str>,
    user: &UserInfo,
    body: Value,
) -> Result<Value> {
    let mut review = body;
    review["apiVersion"] = json!(res.api_version());
    review["kind"] = json!(res.kind);
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    let spec = review["spec"].clone();
    review["status"] = match res.kind.as_str() {
        "TokenReview" => token_review(state, &spec).await?,
        "SelfSubjectReview" => json!({"userInfo": user_json(user)}),
        "SelfSubjectAccessReview" => access(state, user, &spec, res, None)?,
        "LocalSubjectAccessReview" => {
            let subject = subject_of(&spec, res)?;
            access(state, &subject, &spec, res, ns)?
        }
        "SubjectAccessReview" => {
            let subject = subject_of(&spec, res)?;
            access(state, &subject, &spec, res, None)?
        }
        "SelfSubjectRulesReview" => rules(state, user, &spec),
        other => return Err(ApiError::internal(format!("{other} is not a review"))),
    };
    Ok(review)
}

fn user_json(user: &UserInfo) -> Value {
    let mut out = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        out["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        out["extra"] = json!(user.extra);
    }
    out
}

/// A review that cannot be answered: 422 naming the field.
fn invalid(res: &Resource, field: &str, value: &Value, detail: &str) -> ApiError {
    ApiError::invalid(
        &res.group,
        &res.kind,
        "",
        vec![Cause::invalid(field, value, detail)],
    )
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

async fn token_review(state: &ApiState, spec: &Value) -> Result<Value> {
    let token = spec["token"].as_str().unwrap_or_default();
    let audiences = strings(&spec["audiences"]);
    let found = auth::authenticate_token(state, token, &audiences).await;
    Ok(match found {
        Some((user, audiences)) => {
            json!({"authenticated": true, "user": user_json(&user), "audiences": audiences})
        }
        None => json!({"user": {}, "error": "invalid bearer token"}),
    })
}

/// The user a (Local)SubjectAccessReview asks about.
fn subject_of(spec: &Value, res: &Resource) -> Result<UserInfo> {
    let name = spec["user"].as_str().unwrap_or_default().to_string();
    let groups = strings(&spec["groups"]);
    if name.is_empty() && groups.is_empty() {
        return Err(invalid(
            res,
            "spec.user",
            &json!(""),
            "at least one of user or group must be specified",
        ));
    }
    let extra: BTreeMap<String, Vec<String>> =
        serde_json::from_value(spec["extra"].clone()).unwrap_or_default();
    Ok(UserInfo {
        name,
        uid: spec["uid"].as_str().unwrap_or_default().to_string(),
        groups,
        extra,
    })
}

/// The status of an access review of `user`; `path_ns` is a LocalSubjectAccessReview's.
fn access(
    state: &ApiState,
    user: &UserInfo,
    spec: &Value,
    res: &Resource,
    path_ns: Option<&str>,
) -> Result<Value> {
    let resource = &spec["resourceAttributes"];
    let non_resource = &spec["nonResourceAttributes"];
    let field = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let attrs = match (resource.is_object(), non_resource.is_object()) {
        (true, false) => {
            let mut ns = field(resource, "namespace");
            if let Some(path_ns) = path_ns {
                if ns.is_empty() {
                    ns = path_ns.to_string();
                } else if ns != path_ns {
                    return Err(invalid(
                        res,
                        "spec.resourceAttributes.namespace",
                        &json!(ns),
                        "must match metadata.namespace",
                    ));
                }
            }
            Attributes::resource(
                user,
                &field(resource, "verb"),
                &field(resource, "group"),
                &field(resource, "resource"),
                &field(resource, "subresource"),
                &ns,
                &field(resource, "name"),
            )
        }
        (false, true) => Attributes::non_resource(
            user,
            &field(non_resource, "verb"),
            &field(non_resource, "path"),
        ),
        _ => {
            return Err(invalid(
                res,
                "spec.resourceAttributes",
                resource,
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
    };
    let decision = state.authz.authorize(&attrs);
    let mut status = json!({"allowed": decision.allowed()});
    if !decision.reason().is_empty() {
        status["reason"] = json!(decision.reason());
    }
    Ok(status)
}

fn rules(state: &ApiState, user: &UserInfo, spec: &Value) -> Value {
    let ns = spec["namespace"].as_str().unwrap_or_default();
    let mut held = state.authz.policy.snapshot().rules_for(user, ns);
    if user.in_group(MASTERS) && held.is_empty() {
        // As if bound to cluster-admin, which system:masters may do anyway.
        held = serde_json::from_value(json!([
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]}
        ]))
        .unwrap_or_default();
    }
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for rule in held {
        if let Some(urls) = rule.non_resource_urls.filter(|u| !u.is_empty()) {
            non_resource_rules.push(json!({"verbs": rule.verbs, "nonResourceURLs": urls}));
        }
        if let Some(resources) = rule.resources.filter(|r| !r.is_empty()) {
            let mut entry = json!({"verbs": rule.verbs, "apiGroups": rule.api_groups.unwrap_or_default(), "resources": resources});
            if let Some(names) = rule.resource_names.filter(|n| !n.is_empty()) {
                entry["resourceNames"] = json!(names);
            }
            resource_rules.push(entry);
        }
    }
    json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false})
}
