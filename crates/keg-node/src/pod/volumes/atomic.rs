//! The kubelet's atomic writer: a volume's files live in a timestamped directory that the
//! `..data` symlink names; each top-level entry is a symlink through `..data`. An update
//! writes a new directory and swaps the symlink with one rename, so a container never sees
//! half of an update.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path};

/// A file to write: its content and mode.
pub(crate) type Files = BTreeMap<String, (Vec<u8>, u32)>;

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// Rejects paths that are absolute, empty, or climb out of the volume.
pub(crate) fn check_relative(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    if path.is_empty() || p.is_absolute() {
        return Err(format!("invalid path {path:?}: must be relative"));
    }
    if p.components().any(|c| !matches!(c, Component::Normal(_))) || path.starts_with("..") {
        return Err(format!("invalid path {path:?}: must not contain '..'"));
    }
    Ok(())
}

/// Makes `dir` hold exactly `files`; unchanged content is left alone.
pub(crate) fn write(dir: &Path, files: &Files) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if unchanged(dir, files) {
        return Ok(());
    }
    let stamp = jiff::Timestamp::now()
        .strftime("%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    let ts_name = format!("..{stamp}");
    let ts_dir = dir.join(&ts_name);
    std::fs::create_dir_all(&ts_dir)?;
    for (path, (content, mode)) in files {
        let target = ts_dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, content)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(*mode))?;
    }
    let old = std::fs::read_link(dir.join(DATA)).ok();
    let tmp = dir.join(DATA_TMP);
    let _ = std::fs::remove_file(&tmp);
    symlink(&ts_name, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA))?;
    let top: BTreeSet<String> = files
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("{DATA}/{name}"), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") || top.contains(&name) {
            continue;
        }
        if entry.file_type()?.is_symlink() {
            std::fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != ts_name.as_str()) {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

/// Whether the current `..data` already holds exactly `files`.
fn unchanged(dir: &Path, files: &Files) -> bool {
    let Ok(target) = std::fs::read_link(dir.join(DATA)) else {
        return false;
    };
    let data = dir.join(target);
    let mut count = 0;
    for (path, (content, mode)) in files {
        let file = data.join(path);
        match (std::fs::read(&file), std::fs::metadata(&file)) {
            (Ok(c), Ok(m)) if &c == content && m.permissions().mode() & 0o7777 == *mode => {}
            _ => return false,
        }
        count += 1;
    }
    count_files(&data) == count
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str)]) -> Files {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), (v.as_bytes().to_vec(), 0o644)))
            .collect()
    }

    #[test]
    fn swaps_contents_through_data_symlink() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &files(&[("a", "1"), ("sub/b", "2")])).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("a")).unwrap(), "1");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sub/b")).unwrap(),
            "2"
        );
        let first = std::fs::read_link(dir.path().join(DATA)).unwrap();
        write(dir.path(), &files(&[("a", "1"), ("sub/b", "2")])).unwrap();
        assert_eq!(
            std::fs::read_link(dir.path().join(DATA)).unwrap(),
            first,
            "no change, no write"
        );
        write(dir.path(), &files(&[("a", "3")])).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("a")).unwrap(), "3");
        assert!(
            std::fs::symlink_metadata(dir.path().join("sub")).is_err(),
            "removed key"
        );
        assert!(!dir.path().join(first).exists(), "old generation removed");
    }

    #[test]
    fn rejects_escaping_paths() {
        assert!(check_relative("a/b").is_ok());
        assert!(check_relative("../x").is_err());
        assert!(check_relative("/etc/x").is_err());
        assert!(check_relative("a/../../x").is_err());
        assert!(check_relative("..data").is_err());
    }
}
