//! The official Kubernetes Python client works against keg unchanged: its script
//! (`tests/python/official_client.py`) lists, creates, patches, watches, scales and deletes,
//! and reads NotFound and AlreadyExists errors, through the kubeconfig keg writes.

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;

fn python_client_installed() -> bool {
    Command::new("python3")
        .args(["-c", "import kubernetes"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_official_python_client_drives_keg() {
    if !python_client_installed() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the Python kubernetes client is missing under CI (scripts/install-deps.sh installs it)"
        );
        println!(
            "skipped: the Python kubernetes client is not installed (scripts/install-deps.sh)"
        );
        return;
    }
    let server = Server::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/official_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(server.kubeconfig())
        .arg("py-demo")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}\n{}", server.log());
    assert!(text.contains("all checks passed"), "{text}");
}
