//! Every suite at `--size tiny` against the built keg, so the harness does not rot. Nothing
//! about timing is asserted: only that each suite ran and left its rows in the JSON.

use std::path::PathBuf;
use std::process::Command;

const SUITES: [&str; 7] = [
    "api",
    "watch",
    "scheduling",
    "pod-start",
    "scale",
    "memory",
    "etcd",
];

#[test]
fn every_suite_runs_at_tiny_size() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_keg-bench"));
    let keg = bench.with_file_name("keg");
    assert!(
        keg.is_file(),
        "{} is missing: build keg first (cargo build -p keg; cargo test --workspace does)",
        keg.display()
    );
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("bench.json");
    let run = Command::new(&bench)
        .args(["--size", "tiny", "--json"])
        .arg(&json)
        .env("KEG_BIN", &keg)
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    println!("{printed}");
    assert!(run.status.success(), "keg-bench failed:\n{printed}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let root = is_root();
    for suite in SUITES {
        let result = report["suites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == suite)
            .unwrap_or_else(|| panic!("no result for suite {suite}"));
        // Only pod-start may skip, and only where it cannot run pods; CI runs as root.
        if suite == "pod-start" && !root && std::env::var_os("CI").is_none() {
            continue;
        }
        // etcd may skip only where it is not installed; CI installs it.
        if suite == "etcd" && !on_path("etcd") && std::env::var_os("CI").is_none() {
            continue;
        }
        assert_eq!(result["status"], "ok", "suite {suite}: {result}");
        let rows = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["suite"] == suite)
            .count();
        assert!(rows > 0, "suite {suite} wrote no rows");
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}

fn on_path(name: &str) -> bool {
    std::env::var_os("ETCD_BIN").is_some()
        || std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}
