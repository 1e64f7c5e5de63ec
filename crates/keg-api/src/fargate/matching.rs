//! Which Fargate profile takes a pod.
//!
//! A selector matches a pod when the namespace matches and the pod carries every one of the
//! selector's labels; `*` (any run of characters) and `?` (one character) are wildcards in
//! namespaces, label keys and label values. A selector without labels takes the whole
//! namespace. Of several matching profiles the first by name wins, so the choice is stable;
//! a pod can name its profile with the label [`PROFILE_LABEL`], and must then still match
//! one of that profile's selectors (EKS user guide, "Define which Pods use AWS Fargate").

use std::collections::BTreeMap;

use crate::cluster_config::FargateProfileConfig;
use crate::crds::{FargateProfile, FargateProfileSelector};

/// The pod label that names the profile a pod wants.
pub const PROFILE_LABEL: &str = "eks.amazonaws.com/fargate-profile";

/// What matching needs of a profile: its name and selectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile<'a> {
    /// The profile's name.
    pub name: &'a str,
    /// Its selectors; matching any one is enough.
    pub selectors: &'a [FargateProfileSelector],
}

impl<'a> From<&'a FargateProfile> for Profile<'a> {
    fn from(profile: &'a FargateProfile) -> Self {
        Profile {
            name: profile.metadata.name.as_deref().unwrap_or_default(),
            selectors: &profile.spec.selectors,
        }
    }
}

impl<'a> From<&'a FargateProfileConfig> for Profile<'a> {
    fn from(profile: &'a FargateProfileConfig) -> Self {
        Profile {
            name: &profile.name,
            selectors: &profile.selectors,
        }
    }
}

impl Profile<'_> {
    /// Whether a pod in `namespace` with `labels` matches one of the selectors.
    pub fn matches(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.selectors
            .iter()
            .any(|s| selector_matches(s, namespace, labels))
    }
}

/// Errors from matching a pod that names its profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The pod names a profile that does not exist.
    #[error("the pod's label {PROFILE_LABEL}={profile} names no Fargate profile")]
    UnknownProfile {
        /// The name the pod gives.
        profile: String,
    },
    /// The pod names a profile none of whose selectors match it.
    #[error(
        "the pod's label {PROFILE_LABEL}={profile} names a Fargate profile none of whose \
         selectors match the pod"
    )]
    NotSelected {
        /// The name the pod gives.
        profile: String,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The profile that takes a pod in `namespace` with `labels`, or `None` when no profile does.
pub fn select_profile<'a>(
    profiles: &[Profile<'a>],
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Option<&'a str>> {
    if let Some(wanted) = labels.get(PROFILE_LABEL) {
        let Some(profile) = profiles.iter().find(|p| p.name == wanted) else {
            return Err(Error::UnknownProfile {
                profile: wanted.clone(),
            });
        };
        if !profile.matches(namespace, labels) {
            return Err(Error::NotSelected {
                profile: wanted.clone(),
            });
        }
        return Ok(Some(profile.name));
    }
    Ok(profiles
        .iter()
        .filter(|p| p.matches(namespace, labels))
        .map(|p| p.name)
        .min())
}

fn selector_matches(
    selector: &FargateProfileSelector,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    glob(&selector.namespace, namespace)
        && selector
            .labels
            .iter()
            .all(|(key, value)| labels.iter().any(|(k, v)| glob(key, k) && glob(value, v)))
}

/// Wildcard match of the whole `text`: `*` is any run of characters, `?` exactly one.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it is currently taken to end at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((star_pi, star_ti)) = star {
            // Let the last `*` swallow one more character and retry from there.
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(namespace: &str, labels: &[(&str, &str)]) -> FargateProfileSelector {
        FargateProfileSelector {
            namespace: namespace.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn glob_wildcards() {
        let cases = [
            ("default", "default", true),
            ("default", "defaults", false),
            ("*", "", true),
            ("*", "anything", true),
            ("tb-*", "tb-demo", true),
            ("tb-*", "tb-", true),
            ("tb-*", "prod", false),
            ("*-system", "kube-system", true),
            ("k?be-*", "kube-system", true),
            ("k?be", "kbe", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("*a*", "bab", true),
            ("", "", true),
            ("", "x", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(glob(pattern, text), want, "{pattern:?} vs {text:?}");
        }
    }

    #[test]
    fn seed_profiles() {
        let default = [selector("default", &[]), selector("kube-system", &[])];
        let demo = [selector("tb-demo", &[("app", "service")])];
        let profiles = [
            Profile {
                name: "fp-default",
                selectors: &default,
            },
            Profile {
                name: "fp-demo-service",
                selectors: &demo,
            },
        ];
        let cases = [
            (
                "kube-system",
                labels(&[("k8s-app", "kube-dns")]),
                Some("fp-default"),
            ),
            ("default", labels(&[]), Some("fp-default")),
            (
                "tb-demo",
                labels(&[("app", "service")]),
                Some("fp-demo-service"),
            ),
            // The database pod stays on the node group.
            ("tb-demo", labels(&[("app", "database")]), None),
            ("tb-demo", labels(&[]), None),
            ("other", labels(&[("app", "service")]), None),
        ];
        for (namespace, pod_labels, want) in cases {
            let got = select_profile(&profiles, namespace, &pod_labels).unwrap();
            assert_eq!(got, want, "{namespace} {pod_labels:?}");
        }
    }

    #[test]
    fn wildcards_in_label_keys_and_values() {
        let sel = [selector("team-?", &[("app.kubernetes.io/*", "web-*")])];
        let profiles = [Profile {
            name: "fp",
            selectors: &sel,
        }];
        let pick = |ns, l: &[(&str, &str)]| select_profile(&profiles, ns, &labels(l)).unwrap();
        assert_eq!(
            pick("team-a", &[("app.kubernetes.io/name", "web-1")]),
            Some("fp")
        );
        assert_eq!(
            pick("team-ab", &[("app.kubernetes.io/name", "web-1")]),
            None
        );
        assert_eq!(pick("team-a", &[("app", "web-1")]), None);
        assert_eq!(pick("team-a", &[("app.kubernetes.io/name", "api")]), None);
    }

    #[test]
    fn first_by_name_wins_and_the_label_chooses() {
        let all = [selector("*", &[])];
        let shop = [selector("shop", &[])];
        let profiles = [
            Profile {
                name: "zeta",
                selectors: &all,
            },
            Profile {
                name: "alpha",
                selectors: &shop,
            },
            Profile {
                name: "beta",
                selectors: &shop,
            },
        ];
        assert_eq!(
            select_profile(&profiles, "shop", &labels(&[])).unwrap(),
            Some("alpha")
        );
        assert_eq!(
            select_profile(&profiles, "other", &labels(&[])).unwrap(),
            Some("zeta")
        );
        let pinned = labels(&[(PROFILE_LABEL, "zeta")]);
        assert_eq!(
            select_profile(&profiles, "shop", &pinned).unwrap(),
            Some("zeta")
        );
        let pinned = labels(&[(PROFILE_LABEL, "beta")]);
        assert_eq!(
            select_profile(&profiles, "other", &pinned),
            Err(Error::NotSelected {
                profile: "beta".into()
            })
        );
        let pinned = labels(&[(PROFILE_LABEL, "gamma")]);
        let err = select_profile(&profiles, "shop", &pinned).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the pod's label eks.amazonaws.com/fargate-profile=gamma names no Fargate profile"
        );
    }

    #[test]
    fn profiles_from_objects_and_config() {
        let config = crate::ClusterConfig::parse(
            "f.yaml",
            "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: c, region: r}\n\
             fargateProfiles:\n  - name: fp\n    selectors: [{namespace: ns}]\n",
        )
        .unwrap();
        let objects = config.fargate_profile_objects();
        let from_objects: Vec<Profile> = objects.iter().map(Profile::from).collect();
        let from_config: Vec<Profile> = config.fargate_profiles.iter().map(Profile::from).collect();
        assert_eq!(from_objects, from_config);
        assert_eq!(
            select_profile(&from_objects, "ns", &labels(&[])).unwrap(),
            Some("fp")
        );
    }
}
