//! keg's own API types: CRDs, the eksctl ClusterConfig, Fargate profile matching and sizing,
//! instance types and prices.
//!
//! Everything here is pure logic: no I/O besides reading a cluster file, no clock, no network.
//! The API server, the scheduler and the provisioner build on it.

pub mod cluster_config;
pub mod crds;
pub mod fargate;
pub mod instance_types;
pub mod node_fit;
pub mod nodes;
pub mod prices;
pub mod quantity;
pub mod usage;

pub use cluster_config::ClusterConfig;
pub use crds::{FargateProfile, FargateProfileSelector, NodeGroup, custom_resource_definitions};
pub use fargate::FargateSize;
pub use instance_types::InstanceType;
pub use usage::UsageRecord;
