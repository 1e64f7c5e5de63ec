//! RBAC evaluation: which bindings apply to a user, and whether a rule of their roles allows
//! a request, with upstream's matching rules (`*` wildcards, `*/subresource`, resource
//! names, non-resource URL prefixes ending in `*`).

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject};

use super::{Attributes, Decision};
use crate::auth::UserInfo;

/// The RBAC objects at one moment: roles by (namespace, name), cluster roles by name, and the
/// bindings.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Rules of each Role.
    pub roles: BTreeMap<(String, String), Vec<PolicyRule>>,
    /// Rules of each ClusterRole (aggregated ones hold their aggregated rules).
    pub cluster_roles: BTreeMap<String, Vec<PolicyRule>>,
    /// RoleBindings by (namespace, name).
    pub role_bindings: BTreeMap<(String, String), RoleBinding>,
    /// ClusterRoleBindings by name.
    pub cluster_role_bindings: BTreeMap<String, ClusterRoleBinding>,
}

fn has(list: &Option<Vec<String>>, wanted: &str) -> bool {
    list.iter().flatten().any(|v| v == "*" || v == wanted)
}

/// Whether `rule` allows the request.
pub fn rule_allows(attrs: &Attributes, rule: &PolicyRule) -> bool {
    if !rule.verbs.iter().any(|v| v == "*" || *v == attrs.verb) {
        return false;
    }
    if !attrs.resource_request {
        return rule.non_resource_urls.iter().flatten().any(|url| {
            url == "*"
                || *url == attrs.path
                || url
                    .strip_suffix('*')
                    .is_some_and(|prefix| attrs.path.starts_with(prefix))
        });
    }
    if !has(&rule.api_groups, &attrs.api_group) {
        return false;
    }
    let full = attrs.full_resource();
    let resource_matches = rule.resources.iter().flatten().any(|r| {
        r == "*"
            || *r == full
            || (!attrs.subresource.is_empty() && r.strip_prefix("*/") == Some(&attrs.subresource))
    });
    if !resource_matches {
        return false;
    }
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => !attrs.name.is_empty() && names.contains(&attrs.name),
    }
}

/// Whether a binding's subject is the user; `binding_ns` is where a service account with no
/// namespace of its own lives.
fn applies(subject: &Subject, user: &UserInfo, binding_ns: &str) -> bool {
    match subject.kind.as_str() {
        "User" => subject.name == user.name,
        "Group" => user.in_group(&subject.name),
        "ServiceAccount" => {
            let ns = subject.namespace.as_deref().unwrap_or(binding_ns);
            user.name == format!("system:serviceaccount:{ns}:{}", subject.name)
        }
        _ => false,
    }
}

fn describe(subject: &Subject, binding_ns: &str) -> String {
    match subject.kind.as_str() {
        "ServiceAccount" => {
            let ns = subject.namespace.as_deref().unwrap_or(binding_ns);
            format!("ServiceAccount \"{}/{ns}\"", subject.name)
        }
        kind => format!("{kind} {:?}", subject.name),
    }
}

impl Policy {
    fn rules_of(&self, role_ref: &RoleRef, ns: &str) -> Option<&Vec<PolicyRule>> {
        match role_ref.kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&role_ref.name),
            "Role" => self.roles.get(&(ns.to_string(), role_ref.name.clone())),
            _ => None,
        }
    }

    /// Visits every rule that applies to `user` in `namespace` (cluster-wide ones always),
    /// with a description of the binding that grants it; stops when `visit` says so.
    fn visit(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(&PolicyRule, &dyn Fn() -> String) -> bool,
    ) {
        let cluster_wide = self.cluster_role_bindings.iter().map(|(name, b)| {
            (
                "ClusterRoleBinding",
                "",
                name.as_str(),
                &b.role_ref,
                &b.subjects,
            )
        });
        let in_namespace = (!namespace.is_empty())
            .then(|| {
                self.role_bindings.range(
                    (namespace.to_string(), String::new())
                        ..(format!("{namespace}\0"), String::new()),
                )
            })
            .into_iter()
            .flatten()
            .map(|((ns, name), b)| {
                (
                    "RoleBinding",
                    ns.as_str(),
                    name.as_str(),
                    &b.role_ref,
                    &b.subjects,
                )
            });
        for (kind, ns, name, role_ref, subjects) in cluster_wide.chain(in_namespace) {
            let Some(subject) = subjects.iter().flatten().find(|s| applies(s, user, ns)) else {
                continue;
            };
            let Some(rules) = self.rules_of(role_ref, ns) else {
                continue;
            };
            let source = || {
                let binding = if ns.is_empty() {
                    format!("{name:?}")
                } else {
                    format!("\"{name}/{ns}\"")
                };
                format!(
                    "{kind} {binding} of {} {:?} to {}",
                    role_ref.kind,
                    role_ref.name,
                    describe(subject, ns)
                )
            };
            for rule in rules {
                if visit(rule, &source) {
                    return;
                }
            }
        }
    }

    /// Every rule that applies to `user` in `namespace` (for SelfSubjectRulesReview and the
    /// escalation check).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        let mut rules = Vec::new();
        self.visit(user, namespace, |rule, _| {
            rules.push(rule.clone());
            false
        });
        rules
    }
}

/// RBAC's decision on a request.
pub fn authorize(policy: &Policy, attrs: &Attributes) -> Decision {
    let mut reason = None;
    policy.visit(&attrs.user, &attrs.namespace, |rule, source| {
        if rule_allows(attrs, rule) {
            reason = Some(format!("RBAC: allowed by {}", source()));
            true
        } else {
            false
        }
    });
    match reason {
        Some(reason) => Decision::Allow(reason),
        None => Decision::Deny(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
        let strings = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        PolicyRule {
            api_groups: strings(groups),
            resources: strings(resources),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            resource_names: if names.is_empty() {
                None
            } else {
                strings(names)
            },
            non_resource_urls: None,
        }
    }

    fn request(verb: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        let user = UserInfo {
            name: "alice".into(),
            ..UserInfo::default()
        };
        Attributes::resource(&user, verb, "", resource, sub, "tb-demo", name)
    }

    #[test]
    fn rules_match_as_upstream() {
        let pods = rule(&[""], &["pods"], &["get", "list"], &[]);
        assert!(rule_allows(&request("list", "pods", "", ""), &pods));
        assert!(!rule_allows(&request("delete", "pods", "", "x"), &pods));
        // A resource does not grant its subresources; `*/log` grants every kind's log.
        assert!(!rule_allows(&request("get", "pods", "log", "x"), &pods));
        let logs = rule(&[""], &["*/log"], &["get"], &[]);
        assert!(rule_allows(&request("get", "pods", "log", "x"), &logs));
        let named = rule(&[""], &["pods"], &["get"], &["web"]);
        assert!(rule_allows(&request("get", "pods", "", "web"), &named));
        assert!(!rule_allows(&request("get", "pods", "", "db"), &named));
        assert!(!rule_allows(&request("list", "pods", "", ""), &named));
        let apps = rule(&["apps"], &["*"], &["*"], &[]);
        assert!(!rule_allows(&request("get", "pods", "", "x"), &apps));
        let paths = PolicyRule {
            non_resource_urls: Some(vec!["/apis/*".into(), "/version".into()]),
            verbs: vec!["get".into()],
            ..PolicyRule::default()
        };
        let user = UserInfo::default();
        assert!(rule_allows(
            &Attributes::non_resource(&user, "get", "/apis/apps/v1"),
            &paths
        ));
        assert!(!rule_allows(
            &Attributes::non_resource(&user, "get", "/api"),
            &paths
        ));
    }

    #[test]
    fn forbidden_messages_read_as_upstream() {
        assert_eq!(
            request("list", "pods", "", "").forbidden_message(),
            "User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"tb-demo\""
        );
        let mut nodes = request("get", "nodes", "", "n1");
        nodes.namespace.clear();
        assert_eq!(
            nodes.forbidden_message(),
            "User \"alice\" cannot get resource \"nodes\" in API group \"\" at the cluster scope"
        );
        let refused = super::super::forbidden(&request("get", "pods", "log", "web"), "");
        assert_eq!(
            refused.message,
            "pods \"web\" is forbidden: User \"alice\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"tb-demo\""
        );
    }
}
