//! Unpacking layer tarballs into overlayfs lower directories.

use std::ffi::CString;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Error, ImageStore, Result, io_err};
use crate::fsutil;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Unpacks a layer (plain or gzip tar) into the store unless a layer with diff id `expected`
/// is already there; returns the diff id (sha256 of the uncompressed tar).
pub(super) fn ensure_layer(
    store: &ImageStore,
    expected: Option<&str>,
    open: impl FnOnce() -> io::Result<Box<dyn Read>>,
) -> Result<String> {
    if let Some(diff_id) = expected
        && store.layer_dir(diff_id)?.is_dir()
    {
        return Ok(diff_id.to_string());
    }
    let tmp = store.tmp_dir("layer")?;
    let result = unpack_to(&tmp, open);
    let diff_id = match result {
        Ok(d) => d,
        Err(e) => {
            let _ = fsutil::remove_dir_all_if_exists(&tmp);
            return Err(e);
        }
    };
    if let Some(want) = expected
        && want != diff_id
    {
        let _ = fsutil::remove_dir_all_if_exists(&tmp);
        return Err(Error::InvalidImage {
            what: want.to_string(),
            message: format!("layer content has diff id {diff_id}, the config says {want}"),
        });
    }
    let target = store.layer_dir(&diff_id)?;
    if let Err(e) = std::fs::rename(&tmp, &target) {
        // Another import unpacked the same layer meanwhile: theirs is as good as ours.
        let _ = fsutil::remove_dir_all_if_exists(&tmp);
        if !target.is_dir() {
            return Err(io_err(format!("rename layer to {}", target.display()))(e));
        }
    }
    Ok(diff_id)
}

fn unpack_to(dir: &Path, open: impl FnOnce() -> io::Result<Box<dyn Read>>) -> Result<String> {
    let raw = open().map_err(io_err("open layer"))?;
    let mut buffered = BufReader::new(raw);
    let magic = buffered.fill_buf().map_err(io_err("read layer"))?;
    let decompressed: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(Error::InvalidImage {
            what: "layer".into(),
            message: "zstd-compressed layers are not supported yet".into(),
        });
    } else {
        Box::new(buffered)
    };
    let mut hashing = HashingReader {
        inner: decompressed,
        hasher: Sha256::new(),
    };
    unpack_tar(&mut hashing, dir)?;
    // The tar reader stops at the end-of-archive blocks; the diff id covers the padding too.
    io::copy(&mut hashing, &mut io::sink()).map_err(io_err("read layer"))?;
    Ok(format!("sha256:{}", hex::encode(hashing.hasher.finalize())))
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn unpack_tar(reader: &mut dyn Read, dir: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(io_err("read layer"))? {
        let mut entry = entry.map_err(io_err("read layer entry"))?;
        let path = entry
            .path()
            .map_err(io_err("read layer entry path"))?
            .into_owned();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kind = entry.header().entry_type();
        if name == OPAQUE_MARKER {
            let parent = safe_join(dir, path.parent().unwrap_or(Path::new("")))?;
            std::fs::create_dir_all(&parent).map_err(io_err("create opaque dir"))?;
            set_xattr(&parent, "trusted.overlay.opaque", b"y")?;
        } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let parent = safe_join(dir, path.parent().unwrap_or(Path::new("")))?;
            std::fs::create_dir_all(&parent).map_err(io_err("create whiteout dir"))?;
            make_node(&parent.join(hidden), libc::S_IFCHR, 0, 0)?;
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            // The tar crate writes these as regular files; a root file system needs real nodes.
            let target = safe_join(dir, &path)?;
            let header = entry.header();
            let file_type = match () {
                _ if kind.is_character_special() => libc::S_IFCHR,
                _ if kind.is_block_special() => libc::S_IFBLK,
                _ => libc::S_IFIFO,
            };
            let mode = header.mode().unwrap_or(0o644) & 0o7777;
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            make_node(&target, file_type | mode, major, minor)?;
            let (uid, gid) = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
            std::os::unix::fs::lchown(&target, Some(uid as u32), Some(gid as u32))
                .map_err(io_err(format!("chown {}", target.display())))?;
        } else {
            entry
                .unpack_in(dir)
                .map_err(io_err(format!("unpack {}", path.display())))?;
        }
    }
    Ok(())
}

/// Joins an archive path below `dir`, refusing `..` so that no entry lands outside the layer.
fn safe_join(dir: &Path, rel: &Path) -> Result<PathBuf> {
    let mut out = dir.to_path_buf();
    for component in rel.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            _ => {
                return Err(Error::InvalidImage {
                    what: "layer".into(),
                    message: format!("entry {} escapes the layer", rel.display()),
                });
            }
        }
    }
    Ok(out)
}

fn cpath(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::InvalidImage {
        what: "layer".into(),
        message: format!("path {} contains a NUL byte", path.display()),
    })
}

fn make_node(path: &Path, mode: u32, major: u32, minor: u32) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => Ok(()),
    }
    .map_err(io_err(format!("replace {}", path.display())))?;
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated path.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode, libc::makedev(major, minor)) };
    if rc != 0 {
        return Err(io_err(format!("mknod {}", path.display()))(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<()> {
    let c = cpath(path)?;
    let n = CString::new(name).expect("static xattr name");
    // SAFETY: valid C strings and a value buffer of the given length.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(io_err(format!("set {name} on {}", path.display()))(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Bytes used by regular files under `dir` (best effort: unreadable entries count as 0).
pub(super) fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_join_refuses_parent_components() {
        let dir = Path::new("/x");
        assert_eq!(
            safe_join(dir, Path::new("./a/b")).unwrap(),
            Path::new("/x/a/b")
        );
        assert!(safe_join(dir, Path::new("a/../../etc")).is_err());
    }
}
