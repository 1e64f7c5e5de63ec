//! The cluster file's rules and defaults: from what was written to what keg will build.
//!
//! Rules stop at the first violation, as eksctl does, and keep eksctl's wording where eksctl
//! has the rule (pkg/apis/eksctl.io/v1alpha5/validation.go, pkg/cfn/builder/nodegroup.go);
//! the key path it would embed in the message is printed before it instead.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Taint;

use super::locate::KeyPath;
use super::raw::{
    RawClusterConfig, RawFargateProfile, RawMetadata, RawNodeGroup, RawSelector, RawTaints,
};
use super::{
    API_VERSION, ClusterConfig, DEFAULT_INSTANCE_TYPE, DEFAULT_NODE_COUNT, FargateProfileConfig,
    KIND, MAX_FARGATE_PROFILES, MAX_SELECTOR_LABELS, MAX_SELECTORS, Metadata, NodeGroupConfig,
    RESERVED_PROFILE_PREFIX,
};
use crate::crds::FargateProfileSelector;
use crate::instance_types::InstanceType;

/// A broken rule: where, and what.
#[derive(Debug)]
pub(super) struct Violation {
    pub path: KeyPath,
    pub message: String,
}

type Checked<T> = Result<T, Violation>;

fn violation<T>(path: KeyPath, message: impl Into<String>) -> Checked<T> {
    Err(Violation {
        path,
        message: message.into(),
    })
}

/// Checks every rule and fills in eksctl's defaults.
pub(super) fn resolve(raw: RawClusterConfig) -> Checked<ClusterConfig> {
    check_header(&raw.api_version, &raw.kind)?;
    let metadata = resolve_metadata(raw.metadata)?;
    // Node group names are unique across both lists, as in eksctl.
    let mut names = HashSet::new();
    let mut groups = |key: &str, list: Vec<RawNodeGroup>, managed: bool| {
        let path = KeyPath::root().key(key);
        list.into_iter()
            .enumerate()
            .map(|(i, ng)| resolve_node_group(path.index(i), ng, managed, &mut names))
            .collect::<Checked<Vec<_>>>()
    };
    let node_groups = groups("nodeGroups", raw.node_groups, false)?;
    let managed_node_groups = groups("managedNodeGroups", raw.managed_node_groups, true)?;
    let fargate_profiles = resolve_fargate_profiles(raw.fargate_profiles)?;
    Ok(ClusterConfig {
        metadata,
        node_groups,
        managed_node_groups,
        fargate_profiles,
    })
}

fn check_header(api_version: &str, kind: &str) -> Checked<()> {
    let root = KeyPath::root();
    if api_version.is_empty() {
        return violation(root.key("apiVersion"), "must be set");
    }
    if kind.is_empty() {
        return violation(root.key("kind"), "must be set");
    }
    // The wording of Kubernetes' scheme, which eksctl decodes the file with.
    let unregistered = format!("no kind {kind:?} is registered for version {api_version:?}");
    if api_version != API_VERSION {
        return violation(root.key("apiVersion"), unregistered);
    }
    if kind != KIND {
        return violation(root.key("kind"), unregistered);
    }
    Ok(())
}

fn resolve_metadata(raw: Option<RawMetadata>) -> Checked<Metadata> {
    let path = KeyPath::root().key("metadata");
    let Some(raw) = raw else {
        return violation(path, "must be set");
    };
    if raw.name.is_empty() {
        return violation(path.key("name"), "must be set");
    }
    if raw.region.is_empty() {
        return violation(path.key("region"), "must be set");
    }
    Ok(Metadata {
        name: raw.name,
        region: raw.region,
        version: raw.version,
        tags: raw.tags,
    })
}

fn resolve_node_group(
    path: KeyPath,
    raw: RawNodeGroup,
    managed: bool,
    names: &mut HashSet<String>,
) -> Checked<NodeGroupConfig> {
    if raw.name.is_empty() {
        return violation(path.key("name"), "must be set");
    }
    if !names.insert(raw.name.clone()) {
        return violation(path.key("name"), format!("{:?} is not unique", raw.name));
    }
    let instance_type = resolve_instance_type(&path, &raw, managed)?;
    let (desired_capacity, min_size, max_size) =
        resolve_scaling(&path, raw.desired_capacity, raw.min_size, raw.max_size)?;
    let taints = resolve_taints(&path.key("taints"), raw.taints)?;
    Ok(NodeGroupConfig {
        name: raw.name,
        instance_type,
        instance_types: raw.instance_types,
        desired_capacity,
        min_size,
        max_size,
        labels: raw.labels,
        taints,
        volume_size: raw.volume_size,
        tags: raw.tags,
    })
}

/// The instance type every node of the group gets: `instanceType`, else the first of
/// `instanceTypes` (managed groups), else eksctl's default.
fn resolve_instance_type(path: &KeyPath, raw: &RawNodeGroup, managed: bool) -> Checked<String> {
    let list = path.key("instanceTypes");
    if !raw.instance_types.is_empty() {
        if !managed {
            return violation(list, "is only supported for managedNodeGroups");
        }
        if raw.instance_type.is_some() {
            return violation(list, "cannot be set together with instanceType");
        }
    }
    let named = raw
        .instance_type
        .iter()
        .map(|t| (path.key("instanceType"), t));
    let listed = raw
        .instance_types
        .iter()
        .enumerate()
        .map(|(i, t)| (list.index(i), t));
    for (at, name) in named.chain(listed) {
        if InstanceType::lookup(name).is_none() {
            return violation(
                at,
                format!(
                    "instance type {name:?} is not in keg's instance-type table \
                     (the t2, t3, m5, c5 and r5 families)"
                ),
            );
        }
    }
    let chosen = raw.instance_type.as_ref().or(raw.instance_types.first());
    Ok(chosen
        .map_or(DEFAULT_INSTANCE_TYPE, String::as_str)
        .to_owned())
}

/// eksctl's scaling defaults and checks (pkg/cfn/builder/nodegroup.go): minSize defaults to
/// desiredCapacity (else 2), maxSize to desiredCapacity (else minSize); desiredCapacity, left
/// unset, is what the auto scaling group then starts with, minSize. eksctl words these with
/// its flags (`--nodes`, `--nodes-min`, `--nodes-max`); a file has keys, so keys are named.
fn resolve_scaling(
    path: &KeyPath,
    desired: Option<u32>,
    min: Option<u32>,
    max: Option<u32>,
) -> Checked<(u32, u32, u32)> {
    let min_size = min.or(desired).unwrap_or(DEFAULT_NODE_COUNT);
    if let (Some(d), Some(m)) = (desired, min)
        && d < m
    {
        let message =
            format!("desiredCapacity value ({d}) cannot be lower than minSize value ({m})");
        return violation(path.key("desiredCapacity"), message);
    }
    let max_size = max.or(desired).unwrap_or(min_size);
    if let (Some(d), Some(x)) = (desired, max)
        && d > x
    {
        let message =
            format!("desiredCapacity value ({d}) cannot be greater than maxSize value ({x})");
        return violation(path.key("desiredCapacity"), message);
    }
    if max_size < min_size {
        let at = path.key(if min.is_some() { "minSize" } else { "maxSize" });
        let message =
            format!("minSize value ({min_size}) cannot be greater than maxSize value ({max_size})");
        return violation(at, message);
    }
    Ok((desired.unwrap_or(min_size), min_size, max_size))
}

fn resolve_taints(path: &KeyPath, raw: RawTaints) -> Checked<Vec<Taint>> {
    match raw {
        RawTaints::None => Ok(Vec::new()),
        RawTaints::Map(entries) => entries
            .into_iter()
            .map(|(key, spec)| {
                let at = path.key(&key);
                let Some((value, effect)) = spec.rsplit_once(':') else {
                    let message = format!("invalid taint {spec:?}: expected \"value:Effect\"");
                    return violation(at, message);
                };
                taint(at, key.clone(), value, effect)
            })
            .collect(),
        RawTaints::List(entries) => entries
            .into_iter()
            .enumerate()
            .map(|(i, entry)| {
                let at = path.index(i);
                if entry.key.is_empty() {
                    return violation(at.key("key"), "must be set");
                }
                taint(at.key("effect"), entry.key, &entry.value, &entry.effect)
            })
            .collect(),
    }
}

fn taint(at: KeyPath, key: String, value: &str, effect: &str) -> Checked<Taint> {
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        // Kubernetes' wording, which eksctl's taint validation returns.
        return violation(
            at,
            format!("invalid taint effect: {effect}, unsupported taint effect"),
        );
    }
    Ok(Taint {
        key,
        value: (!value.is_empty()).then(|| value.to_owned()),
        effect: effect.to_owned(),
        time_added: None,
    })
}

fn resolve_fargate_profiles(raw: Vec<RawFargateProfile>) -> Checked<Vec<FargateProfileConfig>> {
    let path = KeyPath::root().key("fargateProfiles");
    if raw.len() > MAX_FARGATE_PROFILES {
        let message = format!(
            "too many Fargate profiles ({}): a cluster may have at most {MAX_FARGATE_PROFILES}",
            raw.len()
        );
        return violation(path.index(MAX_FARGATE_PROFILES), message);
    }
    let mut names = HashSet::new();
    raw.into_iter()
        .enumerate()
        .map(|(i, profile)| resolve_fargate_profile(path.index(i), profile, &mut names))
        .collect()
}

fn resolve_fargate_profile(
    path: KeyPath,
    raw: RawFargateProfile,
    names: &mut HashSet<String>,
) -> Checked<FargateProfileConfig> {
    let name = &raw.name;
    if name.is_empty() {
        return violation(path.key("name"), "invalid Fargate profile: empty name");
    }
    if name.starts_with(RESERVED_PROFILE_PREFIX) {
        let message = format!(
            "invalid Fargate profile {name:?}: name should NOT start with {RESERVED_PROFILE_PREFIX:?}"
        );
        return violation(path.key("name"), message);
    }
    if !names.insert(name.clone()) {
        let message = format!("invalid Fargate profile {name:?}: name is not unique");
        return violation(path.key("name"), message);
    }
    let at = path.key("selectors");
    if raw.selectors.is_empty() {
        return violation(
            at,
            format!("invalid Fargate profile {name:?}: no profile selector"),
        );
    }
    if raw.selectors.len() > MAX_SELECTORS {
        let message = format!(
            "invalid Fargate profile {name:?}: at most {MAX_SELECTORS} selectors are allowed, \
             found {}",
            raw.selectors.len()
        );
        return violation(at.index(MAX_SELECTORS), message);
    }
    let selectors = raw
        .selectors
        .into_iter()
        .enumerate()
        .map(|(i, selector)| resolve_selector(at.index(i), name, i, selector))
        .collect::<Checked<Vec<_>>>()?;
    Ok(FargateProfileConfig {
        name: raw.name,
        selectors,
        pod_execution_role_arn: raw.pod_execution_role_arn,
        subnets: raw.subnets,
        tags: raw.tags,
    })
}

fn resolve_selector(
    path: KeyPath,
    profile: &str,
    index: usize,
    raw: RawSelector,
) -> Checked<FargateProfileSelector> {
    let prefix =
        format!("invalid Fargate profile {profile:?}: invalid profile selector at index #{index}");
    if raw.namespace.is_empty() {
        return violation(path.key("namespace"), format!("{prefix}: empty namespace"));
    }
    if raw.labels.len() > MAX_SELECTOR_LABELS {
        let message = format!(
            "{prefix}: at most {MAX_SELECTOR_LABELS} labels are allowed, found {}",
            raw.labels.len()
        );
        return violation(path.key("labels"), message);
    }
    Ok(FargateProfileSelector {
        namespace: raw.namespace,
        labels: raw.labels,
    })
}
