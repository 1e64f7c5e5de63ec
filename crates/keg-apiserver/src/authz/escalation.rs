//! Escalation prevention, as upstream's RBAC storage: a user may write a Role or ClusterRole
//! only with rules they hold themselves (or the `escalate` verb), and bind a role only if they
//! hold its rules (or the `bind` verb on it).

use async_trait::async_trait;
use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};

use super::{Attributes, MASTERS};
use crate::admission::{AdmissionPlugin, Attributes as Write, Operation};
use crate::auth::UserInfo;
use crate::error::{ApiError, Result};
use crate::objects::{meta_str, name};
use crate::state::ApiState;

const GROUP: &str = "rbac.authorization.k8s.io";

/// The admission plugin that refuses RBAC writes granting more than the writer holds.
pub struct NoEscalation;

#[async_trait]
impl AdmissionPlugin for NoEscalation {
    async fn admit(&self, state: &ApiState, attrs: &mut Write<'_>) -> Result<()> {
        let res = attrs.resource;
        if res.group != GROUP
            || attrs.operation == Operation::Delete
            || attrs.user.in_group(MASTERS)
        {
            return Ok(());
        }
        let ns = meta_str(attrs.object, "namespace").unwrap_or_default();
        let object_name = name(attrs.object).to_string();
        let user = attrs.user;
        let may = |verb: &str, resource: &str, object: &str| {
            state
                .authz
                .authorize(&Attributes::resource(
                    user, verb, GROUP, resource, "", ns, object,
                ))
                .allowed()
        };
        let wanted: Vec<PolicyRule> = match res.kind.as_str() {
            "Role" | "ClusterRole" => {
                if may("escalate", &res.plural, &object_name) {
                    return Ok(());
                }
                rules_in(&attrs.object["rules"])
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                let Ok(role_ref) =
                    serde_json::from_value::<RoleRef>(attrs.object["roleRef"].clone())
                else {
                    return Ok(()); // validation names what is wrong with it
                };
                let plural = if role_ref.kind == "Role" {
                    "roles"
                } else {
                    "clusterroles"
                };
                if may("bind", plural, &role_ref.name) {
                    return Ok(());
                }
                let policy = state.authz.policy.snapshot();
                let rules = match role_ref.kind.as_str() {
                    "Role" => policy.roles.get(&(ns.to_string(), role_ref.name.clone())),
                    _ => policy.cluster_roles.get(&role_ref.name),
                };
                match rules {
                    Some(rules) => rules.clone(),
                    None => {
                        let kind = if role_ref.kind == "Role" {
                            "roles"
                        } else {
                            "clusterroles"
                        };
                        return Err(ApiError::forbidden(
                            GROUP,
                            &res.plural,
                            &object_name,
                            &format!(
                                "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
                                user.name,
                                go_quoted(&user.groups),
                                ApiError::not_found(GROUP, kind, &role_ref.name).message
                            ),
                        ));
                    }
                }
            }
            _ => return Ok(()),
        };
        let held = state.authz.policy.snapshot().rules_for(user, ns);
        let missing: Vec<PolicyRule> = atomic(&wanted)
            .into_iter()
            .filter(|rule| !held.iter().any(|h| covers(h, rule)))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(ApiError::forbidden(
            GROUP,
            &res.plural,
            &object_name,
            &not_held(user, &missing),
        ))
    }
}

fn rules_in(value: &serde_json::Value) -> Vec<PolicyRule> {
    serde_json::from_value(value.clone()).unwrap_or_default()
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// Upstream's compact form of a rule: `{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`.
fn compact(rule: &PolicyRule) -> String {
    let mut parts = Vec::new();
    let mut field = |label: &str, values: &Option<Vec<String>>| {
        if let Some(v) = values.as_ref().filter(|v| !v.is_empty()) {
            parts.push(format!("{label}:{}", go_quoted(v)));
        }
    };
    field("APIGroups", &rule.api_groups);
    field("Resources", &rule.resources);
    field("NonResourceURLs", &rule.non_resource_urls);
    field("ResourceNames", &rule.resource_names);
    field("Verbs", &Some(rule.verbs.clone()));
    format!("{{{}}}", parts.join(", "))
}

fn not_held(user: &UserInfo, missing: &[PolicyRule]) -> String {
    let rules: Vec<String> = missing.iter().map(compact).collect();
    format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        go_quoted(&user.groups),
        rules.join("\n")
    )
}

fn one(value: &str) -> Option<Vec<String>> {
    Some(vec![value.to_string()])
}

/// Rules broken into one group, resource, name and verb each, as upstream compares them.
fn atomic(rules: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for rule in rules {
        for verb in &rule.verbs {
            for url in rule.non_resource_urls.iter().flatten() {
                out.push(PolicyRule {
                    non_resource_urls: one(url),
                    verbs: vec![verb.clone()],
                    ..PolicyRule::default()
                });
            }
            for group in rule.api_groups.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    let base = PolicyRule {
                        api_groups: one(group),
                        resources: one(resource),
                        verbs: vec![verb.clone()],
                        ..PolicyRule::default()
                    };
                    match rule.resource_names.as_deref() {
                        None | Some([]) => out.push(base),
                        Some(names) => out.extend(names.iter().map(|n| PolicyRule {
                            resource_names: one(n),
                            ..base.clone()
                        })),
                    }
                }
            }
        }
    }
    out
}

fn first(values: &Option<Vec<String>>) -> &str {
    values
        .as_ref()
        .and_then(|v| v.first())
        .map(String::as_str)
        .unwrap_or_default()
}

fn holds(values: &Option<Vec<String>>, wanted: &str) -> bool {
    values.iter().flatten().any(|v| v == "*" || v == wanted)
}

/// Whether an `owner` rule grants all of the atomic rule `wanted`.
fn covers(owner: &PolicyRule, wanted: &PolicyRule) -> bool {
    let verb = wanted.verbs.first().map(String::as_str).unwrap_or_default();
    if !owner.verbs.iter().any(|v| v == "*" || v == verb) {
        return false;
    }
    if wanted.non_resource_urls.is_some() {
        let url = first(&wanted.non_resource_urls);
        return owner.non_resource_urls.iter().flatten().any(|o| {
            o == "*" || o == url || o.strip_suffix('*').is_some_and(|p| url.starts_with(p))
        });
    }
    let resource = first(&wanted.resources);
    let resource_held = owner.resources.iter().flatten().any(|o| {
        o == "*"
            || o == resource
            || resource
                .split_once('/')
                .is_some_and(|(_, sub)| o.strip_prefix("*/") == Some(sub))
    });
    if !holds(&owner.api_groups, first(&wanted.api_groups)) || !resource_held {
        return false;
    }
    match owner.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => {
            let wanted_name = first(&wanted.resource_names);
            !wanted_name.is_empty() && names.iter().any(|n| n == wanted_name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        let strings = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        PolicyRule {
            api_groups: strings(groups),
            resources: strings(resources),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            ..PolicyRule::default()
        }
    }

    #[test]
    fn what_is_not_held_is_named_as_upstream_does() {
        let held = [rule(&[""], &["pods"], &["get", "list"])];
        let wanted = [rule(&[""], &["pods", "secrets"], &["get"])];
        let missing: Vec<PolicyRule> = atomic(&wanted)
            .into_iter()
            .filter(|r| !held.iter().any(|h| covers(h, r)))
            .collect();
        assert_eq!(missing.len(), 1);
        assert_eq!(
            compact(&missing[0]),
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}"#
        );
        // A wildcard is only covered by a wildcard.
        assert!(!covers(
            &held[0],
            &atomic(&[rule(&[""], &["*"], &["get"])])[0]
        ));
        assert!(covers(
            &rule(&["*"], &["*"], &["*"]),
            &atomic(&[rule(&[""], &["*"], &["get"])])[0]
        ));
    }
}
