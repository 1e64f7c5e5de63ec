//! Image store: importing OCI and docker archives of a busybox image.

use keg_runtime::ImageStore;
use keg_runtime::testing::{self, build_busybox_image};

#[tokio::test]
async fn imports_an_oci_archive_and_honours_whiteouts() {
    if !testing::require_root("imports_an_oci_archive_and_honours_whiteouts") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let image = build_busybox_image(&tmp.path().join("src"), "busybox:test").unwrap();
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let imported = store.import_archive(&image.oci_archive).await.unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].id, image.id);
    assert_eq!(imported[0].repo_tags, ["docker.io/library/busybox:test"]);
    assert_eq!(imported[0].config.cmd, ["sh"]);
    let found = store
        .resolve("busybox:test")
        .unwrap()
        .expect("resolvable by tag");
    assert_eq!(found.id, image.id);
    assert!(
        store.resolve(&image.id).unwrap().is_some(),
        "resolvable by id"
    );
    assert!(
        store.resolve(&image.id[7..19]).unwrap().is_some(),
        "resolvable by short id"
    );
    assert!(store.resolve("busybox:other").unwrap().is_none());

    let dirs = store.layer_dirs(&found).unwrap();
    assert_eq!(dirs.len(), 2);
    assert!(dirs[0].join("bin/busybox").is_file());
    let whiteout = std::fs::symlink_metadata(dirs[1].join("etc/motd")).unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(
        whiteout.file_type().is_char_device() && whiteout.rdev() == 0,
        "whiteout is a 0/0 char device"
    );
    let mut opaque = [0u8; 1];
    let path =
        std::ffi::CString::new(dirs[1].join("opt/old").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid path and buffer.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            opaque.as_mut_ptr().cast(),
            1,
        )
    };
    assert_eq!((n, opaque[0]), (1, b'y'), "opaque directory is marked");

    // A second import reuses the unpacked layers and keeps one record.
    store.import_archive(&image.oci_archive).await.unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
}

#[tokio::test]
async fn imports_a_docker_archive() {
    if !testing::require_root("imports_a_docker_archive") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let image =
        build_busybox_image(&tmp.path().join("src"), "example.com/tools/busybox:v1").unwrap();
    let store = ImageStore::open(tmp.path().join("store")).unwrap();
    let imported = store.import_archive(&image.docker_archive).await.unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].id, image.id);
    assert_eq!(imported[0].repo_tags, ["example.com/tools/busybox:v1"]);
    assert_eq!(store.layer_dirs(&imported[0]).unwrap().len(), 2);

    // Tagging moves a tag; removing drops the record and pruning the unused layers.
    store.tag(&image.id, "busybox:moved").unwrap();
    assert!(store.resolve("busybox:moved").unwrap().is_some());
    store.remove(&image.id).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert_eq!(store.prune_layers().unwrap().len(), 2);
}
