//! The seed's walkthrough as a user runs it: `examples/terrax/build-images.sh` builds and
//! imports the beer API and MariaDB images, then `examples/terrax/walkthrough.sh` creates the
//! seed's cluster with this build's keg, deploys the database and the API, uses the API
//! through the load balancer (curl and Swagger UI in headless Chromium), checks persistence,
//! scales 2 -> 4 -> 1 with Fargate nodes following, shows the cost, deletes everything and
//! checks that nothing is left. Then `examples/terrax/workloads.sh` makes the cluster again
//! for the other workload kinds: the database as a StatefulSet, a Job on Fargate, a DaemonSet
//! on the node group. The scripts check each outcome; this test runs them in a fresh
//! KEG_HOME and kubeconfig and keeps their output and screenshot under `artifacts/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use keg_runtime::testing::require_root;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a script with the test's environment, printing its output and keeping it in
/// `artifacts/<script>.log`; panics when it fails.
fn run_script(script: &str, env: &[(&str, &Path)], extra: &[(&str, &str)]) -> String {
    let keg = PathBuf::from(env!("CARGO_BIN_EXE_keg"));
    let bin_dir = keg.parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(repo().join(script))
        .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
        .envs(extra.iter().copied())
        .env("PATH", path)
        .env("KEG", &keg)
        .env("KUBECTL", common::kubectl_binary("1.33"))
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    let name = Path::new(script).file_stem().unwrap().to_string_lossy();
    std::fs::write(repo().join("artifacts").join(format!("{name}.log")), &text).unwrap();
    assert!(out.status.success(), "{script} failed:\n{text}");
    text
}

#[test]
fn the_seed_walkthrough_runs_end_to_end() {
    if !require_root("the_seed_walkthrough_runs_end_to_end") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let keg_home = home.path().join("keg");
    let kubeconfig = home.path().join("kubeconfig");
    let build = home.path().join("build");
    let artifacts = repo().join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let env = [
        ("KEG_HOME", keg_home.as_path()),
        ("KUBECONFIG", kubeconfig.as_path()),
        ("BUILD_DIR", build.as_path()),
        ("ARTIFACTS", artifacts.as_path()),
    ];
    // The debug beer-api this test build already made, rather than a second, release build.
    run_script(
        "examples/terrax/build-images.sh",
        &env,
        &[("PROFILE", "dev")],
    );
    let output = run_script("examples/terrax/walkthrough.sh", &env, &[]);
    for outcome in [
        "created the beer \"Swagger Saison\" through swagger-ui: 201",
        "the beer survived new API pods and a new database pod",
        "mount or state of terrax-fargate is left",
    ] {
        assert!(output.contains(outcome), "missing {outcome:?}");
    }
    assert!(artifacts.join("swagger-ui.png").exists());

    // The same images, a new cluster: the other workload kinds on the seed's cluster.
    let output = run_script("examples/terrax/workloads.sh", &env, &[]);
    for outcome in [
        "the row survived: the new mysql-0 mounted data-mysql-0 again",
        "which went when the Job completed",
        "and no more since it completed",
        "the new node-group node got its DaemonSet pod; Fargate nodes got none",
        "Pod not supported on Fargate: DaemonSet not supported",
        "mount or state of terrax-fargate is left",
    ] {
        assert!(output.contains(outcome), "missing {outcome:?}");
    }
}
