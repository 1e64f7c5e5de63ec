//! Test helpers shared with other crates' tests (feature `testing`): a tiny busybox OCI image
//! built from Debian's `busybox-static`, unique network settings, root checks and leak checks.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};

/// Where Debian's `busybox-static` installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// A busybox image written in every format the store imports.
#[derive(Clone, Debug)]
pub struct TestImage {
    /// The name it is tagged with in the archives, e.g. `busybox:test`.
    pub name: String,
    /// An OCI image layout directory (`skopeo copy oci:<layout>:<name> ...` reads it).
    pub layout: PathBuf,
    /// The layout packed as an `oci-archive` tarball.
    pub oci_archive: PathBuf,
    /// The same image as a `docker save` tarball.
    pub docker_archive: PathBuf,
    /// The image id (config digest).
    pub id: String,
}

/// Builds a two-layer busybox image under `dir`. The second layer deletes `/etc/motd` with a
/// whiteout and replaces `/opt/old` with an opaque directory holding only `new`, so tests can
/// see that whiteouts work.
pub fn build_busybox_image(dir: &Path, name: &str) -> io::Result<TestImage> {
    std::fs::create_dir_all(dir)?;
    let base = base_layer()?;
    let top = whiteout_layer()?;
    let diff_ids: Vec<String> = [&base, &top].iter().map(|l| sha256(l)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))?;
    let layout = dir.join("layout");
    write_layout(&layout, name, &config, &[&base, &top])?;
    let oci_archive = dir.join("image-oci.tar");
    tar_dir(&layout, &oci_archive)?;
    let docker_archive = dir.join("image-docker.tar");
    write_docker_archive(&docker_archive, name, &config, &[&base, &top])?;
    Ok(TestImage {
        name: name.to_string(),
        layout,
        oci_archive,
        docker_archive,
        id: sha256(&config),
    })
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

fn add_dir(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> io::Result<()> {
    b.append_data(
        &mut header(tar::EntryType::Directory, mode, 0),
        path,
        io::empty(),
    )
}

fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
    b.append_data(
        &mut header(tar::EntryType::Regular, mode, data.len() as u64),
        path,
        data,
    )
}

fn base_layer() -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (d, mode) in [
        ("bin", 0o755),
        ("etc", 0o755),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("proc", 0o555),
    ] {
        add_dir(&mut b, d, mode)?;
    }
    for d in ["sys", "dev", "var", "opt", "opt/old", "usr", "usr/bin"] {
        add_dir(&mut b, d, 0o755)?;
    }
    add_file(&mut b, "bin/busybox", 0o755, &std::fs::read(BUSYBOX)?)?;
    let list = std::process::Command::new(BUSYBOX).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|a| *a != "busybox")
    {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    add_file(
        &mut b,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    add_file(&mut b, "etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")?;
    add_file(&mut b, "etc/motd", 0o644, b"deleted by the next layer\n")?;
    add_file(
        &mut b,
        "opt/old/stale",
        0o644,
        b"hidden by an opaque directory\n",
    )?;
    b.into_inner()
}

fn whiteout_layer() -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    add_dir(&mut b, "etc", 0o755)?;
    add_file(&mut b, "etc/.wh.motd", 0o644, b"")?;
    add_dir(&mut b, "opt/old", 0o755)?;
    add_file(&mut b, "opt/old/.wh..wh..opq", 0o644, b"")?;
    add_file(&mut b, "opt/old/new", 0o644, b"from the top layer\n")?;
    b.into_inner()
}

fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data)?;
    enc.finish()
}

fn write_blob(layout: &Path, data: &[u8]) -> io::Result<(String, usize)> {
    let digest = sha256(data);
    std::fs::write(layout.join("blobs/sha256").join(&digest[7..]), data)?;
    Ok((digest, data.len()))
}

fn write_layout(layout: &Path, name: &str, config: &[u8], layers: &[&Vec<u8>]) -> io::Result<()> {
    std::fs::create_dir_all(layout.join("blobs/sha256"))?;
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let (config_digest, config_size) = write_blob(layout, config)?;
    let mut layer_descs = Vec::new();
    for layer in layers {
        let (digest, size) = write_blob(layout, &gzip(layer)?)?;
        layer_descs.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest,
            "size": size,
        }));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": layer_descs,
    }))?;
    let (manifest_digest, manifest_size) = write_blob(layout, &manifest)?;
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": name},
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)
}

fn tar_dir(dir: &Path, out: &Path) -> io::Result<()> {
    let mut b = tar::Builder::new(std::fs::File::create(out)?);
    b.append_dir_all(".", dir)?;
    b.into_inner()?.sync_all()
}

fn write_docker_archive(
    out: &Path,
    name: &str,
    config: &[u8],
    layers: &[&Vec<u8>],
) -> io::Result<()> {
    let mut b = tar::Builder::new(std::fs::File::create(out)?);
    let config_name = format!("{}.json", &sha256(config)[7..]);
    add_to(&mut b, &config_name, config)?;
    let mut layer_paths = Vec::new();
    for layer in layers {
        let path = format!("{}/layer.tar", &sha256(layer)[7..]);
        add_to(&mut b, &path, layer)?;
        layer_paths.push(path);
    }
    let manifest = json!([{"Config": config_name, "RepoTags": [name], "Layers": layer_paths}]);
    add_to(&mut b, "manifest.json", &serde_json::to_vec(&manifest)?)?;
    b.into_inner()?.sync_all()
}

fn add_to<W: Write>(b: &mut tar::Builder<W>, path: &str, data: &[u8]) -> io::Result<()> {
    b.append_data(
        &mut header(tar::EntryType::Regular, 0o644, data.len() as u64),
        path,
        data,
    )
}

/// Builds the busybox image tagged `name` under `work` and imports it into the machine image
/// store at `images` (made if missing), as a cluster's pods would find it.
pub async fn busybox_in_store(
    work: &Path,
    images: impl Into<PathBuf>,
    name: &str,
) -> crate::image::Result<crate::ImageStore> {
    let image = build_busybox_image(&work.join("busybox-image"), name).map_err(|source| {
        crate::image::Error::Io {
            what: "building the busybox test image (needs Debian's busybox-static)".into(),
            source,
        }
    })?;
    let store = crate::ImageStore::open(images)?;
    store.import_archive(&image.oci_archive).await?;
    Ok(store)
}

/// True when the tests that need root can run. Off root they are skipped with a printed
/// reason, except in CI (`CI=true`), where skipping would hide a broken machine.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test} needs root, and CI=true does not allow skipping it");
    }
    // Straight to stderr: the test harness captures eprintln! output of passing tests.
    let _ = writeln!(
        io::stderr(),
        "skipping {test}: it needs root (namespaces, mounts, cgroups)"
    );
    false
}

/// A network of its own for one test: a random bridge name and a random /24 in 10.0.0.0/8
/// that no route of the machine uses yet, so tests can run side by side.
pub fn unique_network() -> crate::NetworkConfig {
    let routes = std::process::Command::new("ip")
        .args(["-4", "route", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    loop {
        let r = crate::fsutil::random_hex(3);
        let bytes = hex::decode(&r).expect("hex");
        let (a, b) = (100 + bytes[0] % 150, bytes[1]);
        let cidr = format!("10.{a}.{b}.0/24");
        if !routes.contains(&format!("10.{a}.{b}.")) {
            return crate::NetworkConfig {
                bridge: format!("kegt{r}"),
                cluster_cidr: cidr.parse().expect("valid CIDR"),
                pod_cidr: None,
                mtu: None,
            };
        }
    }
}

/// A cgroup of its own for one test's pods.
pub fn unique_cgroup_root() -> String {
    format!("/keg-test-{}", crate::fsutil::random_hex(4))
}

/// What a runtime left behind after [`crate::Runtime::remove_everything`]: mounts or files
/// under `root`, the bridge, cgroups under `cgroup_root`, the network namespaces of
/// `sandboxes`, and live monitor processes `monitors` (pid, start time). Empty when clean.
pub fn leftovers(
    root: &Path,
    network: &crate::NetworkConfig,
    cgroup_root: &str,
    sandboxes: &[String],
    monitors: &[(i32, u64)],
) -> Vec<String> {
    let mut found = Vec::new();
    let prefix = root.display().to_string();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for mount in mountinfo.lines().filter_map(|l| l.split(' ').nth(4)) {
        if mount.starts_with(&prefix) {
            found.push(format!("mount {mount}"));
        }
    }
    if root.exists() {
        found.push(format!("directory {}", root.display()));
    }
    let link = std::process::Command::new("ip")
        .args(["link", "show", "dev", &network.bridge])
        .output();
    if link.is_ok_and(|o| o.status.success()) {
        found.push(format!("bridge {}", network.bridge));
    }
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let dir = hierarchy.path().join(cgroup_root.trim_start_matches('/'));
        if dir.exists() {
            found.push(format!("cgroup {}", dir.display()));
        }
    }
    let v2 = Path::new("/sys/fs/cgroup").join(cgroup_root.trim_start_matches('/'));
    if v2.exists() && !found.iter().any(|f| f.ends_with(&v2.display().to_string())) {
        found.push(format!("cgroup {}", v2.display()));
    }
    for id in sandboxes {
        if Path::new("/run/netns").join(format!("keg-{id}")).exists() {
            found.push(format!("network namespace keg-{id}"));
        }
    }
    for (pid, start) in monitors {
        if crate::shim::process_start_time(*pid) == Some(*start) {
            found.push(format!("monitor process {pid}"));
        }
    }
    found
}

/// The monitor process (pid, start time) of a container, to check later that it ended.
pub fn monitor_of(root: &Path, container_id: &str) -> Option<(i32, u64)> {
    let path = root
        .join("containers")
        .join(container_id)
        .join("monitor.json");
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    Some((value["pid"].as_i64()? as i32, value["start_time"].as_u64()?))
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes; returns the last
/// answer.
pub async fn eventually(timeout: std::time::Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
