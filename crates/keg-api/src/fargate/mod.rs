//! Fargate's rules, as EKS applies them to a pod: which profile takes it ([`matching`]), what
//! size of node it gets ([`sizing`]), what it may not ask for ([`checks`]), and what its node
//! is called ([`node`]).

pub mod checks;
pub mod matching;
pub mod node;
pub mod sizing;

pub use checks::{VolumeLookup, unsupported_reasons};
pub use matching::{PROFILE_LABEL, Profile, select_profile};
pub use node::fargate_node_name;
pub use sizing::FargateSize;
