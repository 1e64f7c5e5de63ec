//! eksctl's cluster file (`apiVersion: eksctl.io/v1alpha5`, `kind: ClusterConfig`): the part
//! keg builds from, read strictly, with eksctl's defaults and rules.
//!
//! Every error names the file, line, column and key path, e.g.
//! `eks-terrax-fargate.yaml:14:11: fargateProfiles[0].name: invalid Fargate profile "eks-x":
//! name should NOT start with "eks-"`.

mod locate;
mod objects;
mod raw;
mod resolve;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use k8s_openapi::api::core::v1::Taint;
use serde_saphyr::{MessageFormatter, UserMessageFormatter};

use crate::crds::FargateProfileSelector;
use locate::{KeyPath, NodeMap, Pos};

/// The `apiVersion` of the files keg reads.
pub const API_VERSION: &str = "eksctl.io/v1alpha5";
/// The `kind` of the files keg reads.
pub const KIND: &str = "ClusterConfig";
/// eksctl's instance type for a node group that names none.
pub const DEFAULT_INSTANCE_TYPE: &str = "m5.large";
/// eksctl's node count for a node group that gives no size.
pub const DEFAULT_NODE_COUNT: u32 = 2;
/// The prefix AWS keeps for its own Fargate profile names.
pub const RESERVED_PROFILE_PREFIX: &str = "eks-";
/// EKS's limit of Fargate profiles per cluster.
pub const MAX_FARGATE_PROFILES: usize = 10;
/// EKS's limit of selectors per Fargate profile.
pub const MAX_SELECTORS: usize = 5;
/// EKS's limit of labels per Fargate profile selector.
pub const MAX_SELECTOR_LABELS: usize = 5;

/// A cluster file, its defaults applied and its rules checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// The cluster's name, region, version and tags.
    pub metadata: Metadata,
    /// Self-managed node groups (`nodeGroups`).
    pub node_groups: Vec<NodeGroupConfig>,
    /// EKS-managed node groups (`managedNodeGroups`).
    pub managed_node_groups: Vec<NodeGroupConfig>,
    /// Fargate profiles (`fargateProfiles`).
    pub fargate_profiles: Vec<FargateProfileConfig>,
}

/// `metadata` of a cluster file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The cluster's name.
    pub name: String,
    /// The AWS region it stands for (names Fargate nodes and picks prices).
    pub region: String,
    /// The Kubernetes version asked for; any string is accepted.
    pub version: Option<String>,
    /// Free-form tags.
    pub tags: BTreeMap<String, String>,
}

/// One entry of `nodeGroups` or `managedNodeGroups`, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeGroupConfig {
    /// Unique across both lists.
    pub name: String,
    /// The type of every node: `instanceType`, else the first of `instanceTypes`, else m5.large.
    pub instance_type: String,
    /// `instanceTypes` as written (managed groups only).
    pub instance_types: Vec<String>,
    /// How many nodes the group starts with.
    pub desired_capacity: u32,
    /// The fewest nodes.
    pub min_size: u32,
    /// The most nodes.
    pub max_size: u32,
    /// Labels of every node.
    pub labels: BTreeMap<String, String>,
    /// Taints of every node, whichever form they were written in.
    pub taints: Vec<Taint>,
    /// Root volume size in GiB.
    pub volume_size: Option<u32>,
    /// Free-form tags.
    pub tags: BTreeMap<String, String>,
}

/// One entry of `fargateProfiles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FargateProfileConfig {
    /// The profile's name; never starts with `eks-`.
    pub name: String,
    /// One to five selectors.
    pub selectors: Vec<FargateProfileSelector>,
    /// `podExecutionRoleARN`, kept for fidelity.
    pub pod_execution_role_arn: Option<String>,
    /// Subnets, kept for fidelity.
    pub subnets: Vec<String>,
    /// Free-form tags.
    pub tags: BTreeMap<String, String>,
}

/// Where in which file something is wrong, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file name as given to [`ClusterConfig::parse`].
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The key path, e.g. `fargateProfiles[0].selectors[1].namespace`; `(root)` for the file.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Located {
            file,
            line,
            column,
            key,
            message,
        } = self;
        write!(f, "{file}:{line}:{column}: {key}: {message}")
    }
}

/// Errors from reading a cluster file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The path given.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not well-formed YAML.
    #[error("{0}")]
    Syntax(Located),
    /// Well-formed, but an unknown key or a value of the wrong type.
    #[error("{0}")]
    Schema(Located),
    /// Well-typed, but it breaks one of eksctl's rules.
    #[error("{0}")]
    Rule(Located),
}

impl Error {
    /// Where the error is, unless the file could not be read at all.
    pub fn located(&self) -> Option<&Located> {
        match self {
            Error::Read { .. } => None,
            Error::Syntax(at) | Error::Schema(at) | Error::Rule(at) => Some(at),
        }
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl ClusterConfig {
    /// Reads, checks and completes the cluster file at `path`; errors name it as given.
    pub fn from_file(path: impl AsRef<Path>) -> Result<ClusterConfig> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&file, &text)
    }

    /// Parses, checks and completes a cluster file; `file_name` is what errors call it.
    pub fn parse(file_name: &str, text: &str) -> Result<ClusterConfig> {
        let nodes = NodeMap::build(text);
        let at = |pos: Pos, key: KeyPath, message: String| Located {
            file: file_name.to_owned(),
            line: pos.line,
            column: pos.column,
            key: key.to_string(),
            message,
        };
        let raw: raw::RawClusterConfig = serde_saphyr::from_str(text).map_err(|err| {
            let pos = err.location().map_or(Pos::START, |loc| Pos {
                line: loc.line() as usize,
                column: loc.column() as usize,
            });
            let located = at(pos, nodes.path_at(pos), serde_message(&err));
            if nodes.syntax_error {
                Error::Syntax(located)
            } else {
                Error::Schema(located)
            }
        })?;
        resolve::resolve(raw).map_err(|v| {
            let pos = nodes.position_of(&v.path);
            Error::Rule(at(pos, v.path, v.message))
        })
    }
}

/// serde-saphyr's message without its location (we print ours), in plainer words where its
/// own name Rust types.
fn serde_message(err: &serde_saphyr::Error) -> String {
    let message = UserMessageFormatter.format_message(err.without_snippet());
    let plain = match message.as_ref() {
        "invalid u32" => "expected a whole number of 0 or more",
        "expected string scalar" => "expected a string",
        "expected mapping start" => "expected a mapping (key: value)",
        "expected sequence start" => "expected a list",
        other => other,
    };
    plain.to_owned()
}
