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
                        let gone = ApiError::not_found(GROUP, plural, &role_ref.name).message;
                        return Err(ApiError::forbidden(
                            GROUP,
                            &res.plural,
                            &object_name,
                            &not_held(user, &gone),
                        ));
                    }
                }
            }
            _ => return Ok(()),
        };
        let held = state.authz.policy.snapshot().rules_for(user, ns);
        let missing = not_covered(&held, &wanted);
        if missing.is_empty() {
            return Ok(());
        }
        let missing: Vec<String> = missing.iter().map(compact).collect();
        Err(ApiError::forbidden(
            GROUP,
            &res.plural,
            &object_name,
            &not_held(user, &missing.join("\n")),
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

/// Upstream's refusal: what is not held is the missing rules, or why the role is unknown.
fn not_held(user: &UserInfo, what: &str) -> String {
    format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{what}",
        user.name,
        go_quoted(&user.groups),
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

/// The request an atomic rule stands for: allowed by a held rule exactly when that rule
/// covers it, by the authorizer's own matching.
fn as_request(rule: &PolicyRule) -> Attributes {
    let first = |v: &Option<Vec<String>>| v.iter().flatten().next().cloned().unwrap_or_default();
    let verb = rule.verbs.first().cloned().unwrap_or_default();
    let user = UserInfo::default();
    if rule.non_resource_urls.is_some() {
        return Attributes::non_resource(&user, &verb, &first(&rule.non_resource_urls));
    }
    let resource = first(&rule.resources);
    let (resource, subresource) = resource.split_once('/').unwrap_or((&resource, ""));
    let name = first(&rule.resource_names);
    Attributes::resource(
        &user,
        &verb,
        &first(&rule.api_groups),
        resource,
        subresource,
        "",
        &name,
    )
}

/// The atomic parts of `wanted` that no `held` rule covers.
fn not_covered(held: &[PolicyRule], wanted: &[PolicyRule]) -> Vec<PolicyRule> {
    atomic(wanted)
        .into_iter()
        .filter(|rule| {
            let request = as_request(rule);
            !held.iter().any(|h| super::rbac::rule_allows(&request, h))
        })
        .collect()
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
        let missing = not_covered(&held, &wanted);
        assert_eq!(missing.len(), 1);
        assert_eq!(
            compact(&missing[0]),
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}"#
        );
        // A wildcard is only covered by a wildcard.
        let all_of_core = [rule(&[""], &["*"], &["get"])];
        assert!(!not_covered(&held, &all_of_core).is_empty());
        assert!(not_covered(&[rule(&["*"], &["*"], &["*"])], &all_of_core).is_empty());
    }
}
