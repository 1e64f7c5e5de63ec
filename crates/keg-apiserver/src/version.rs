//! The version the server reports: the Kubernetes API level keg serves.

use serde_json::{Value, json};

/// The gitVersion: Kubernetes 1.33 API, keg build as semver build metadata.
pub const GIT_VERSION: &str = concat!("v1.33.0+keg.", env!("CARGO_PKG_VERSION"));

/// The /version document.
pub fn info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": GIT_VERSION,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("linux/{}", if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" }),
    })
}
