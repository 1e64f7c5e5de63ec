//! Resolving a container's user and groups from the image's `/etc/passwd` and `/etc/group`.

use std::path::Path;

use super::{Error, Result};
use crate::runtime::types::User;

/// The resolved identity: uid, gid, supplementary gids.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// Resolves the container's identity: the requested user, else the image's `User`.
pub(crate) fn resolve(
    requested: Option<User>,
    image_user: &str,
    extra: &[u32],
    rootfs: &Path,
) -> Result<Identity> {
    let passwd = read_db(rootfs, "etc/passwd");
    let group = read_db(rootfs, "etc/group");
    let (uid, gid, name) = match requested {
        Some(u) => {
            let entry = passwd
                .iter()
                .find(|e| e.get(2).and_then(|v| v.parse().ok()) == Some(u.uid));
            let gid = u
                .gid
                .or_else(|| entry.and_then(|e| e.get(3)?.parse().ok()))
                .unwrap_or(0);
            (u.uid, gid, entry.map(|e| e[0].clone()))
        }
        None => from_image(image_user, &passwd, &group)?,
    };
    let mut additional_gids: Vec<u32> = Vec::new();
    if let Some(name) = name {
        for g in &group {
            let members = g
                .get(3)
                .map(|m| m.split(',').any(|m| m == name))
                .unwrap_or(false);
            if let (true, Some(id)) = (members, g.get(2).and_then(|v| v.parse::<u32>().ok())) {
                additional_gids.push(id);
            }
        }
    }
    additional_gids.extend(extra);
    additional_gids.sort_unstable();
    additional_gids.dedup();
    additional_gids.retain(|g| *g != gid);
    Ok(Identity {
        uid,
        gid,
        additional_gids,
    })
}

/// Parses the image's `User`: `uid`, `uid:gid`, `name`, `name:group` (empty: root).
fn from_image(
    spec: &str,
    passwd: &[Vec<String>],
    group: &[Vec<String>],
) -> Result<(u32, u32, Option<String>)> {
    if spec.is_empty() {
        return Ok((0, 0, Some("root".into())));
    }
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let by_name = passwd.iter().find(|e| e[0] == user);
    let by_id = user.parse::<u32>().ok().map(|id| {
        (
            id,
            passwd.iter().find(|e| e.get(2) == Some(&id.to_string())),
        )
    });
    let (uid, entry) = match (by_id, by_name) {
        (Some((id, entry)), _) => (id, entry),
        (None, Some(entry)) => (parse_id(entry, 2, spec)?, Some(entry)),
        (None, None) => {
            return Err(Error::User(format!(
                "image user {user:?} is not in the image's /etc/passwd"
            )));
        }
    };
    let gid = match grp {
        Some(g) => match g.parse::<u32>() {
            Ok(id) => id,
            Err(_) => {
                let entry = group.iter().find(|e| e[0] == g);
                let entry = entry.ok_or_else(|| {
                    Error::User(format!("group {g:?} is not in the image's /etc/group"))
                })?;
                parse_id(entry, 2, spec)?
            }
        },
        None => entry.and_then(|e| e.get(3)?.parse().ok()).unwrap_or(0),
    };
    Ok((uid, gid, entry.map(|e| e[0].clone())))
}

fn parse_id(entry: &[String], field: usize, spec: &str) -> Result<u32> {
    entry
        .get(field)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            Error::User(format!(
                "bad entry for {spec:?} in the image's user database"
            ))
        })
}

/// Colon-separated records of a file in the root file system. A symlink is not followed:
/// it could point at the host's own file, which would say nothing about the image.
fn read_db(rootfs: &Path, rel: &str) -> Vec<Vec<String>> {
    let path = rootfs.join(rel);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => {}
        _ => return vec![],
    }
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(':'))
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\napp:x:1001:\nextra:x:2000:app\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn resolves_image_users() {
        let r = rootfs();
        let id = |s: &str| resolve(None, s, &[], r.path()).unwrap();
        assert_eq!(
            id(""),
            Identity {
                uid: 0,
                gid: 0,
                additional_gids: vec![]
            }
        );
        assert_eq!(
            id("app"),
            Identity {
                uid: 1000,
                gid: 1001,
                additional_gids: vec![2000]
            }
        );
        assert_eq!(id("1000:extra").gid, 2000);
        assert_eq!(
            id("4242"),
            Identity {
                uid: 4242,
                gid: 0,
                additional_gids: vec![]
            }
        );
        assert!(resolve(None, "nobody", &[], r.path()).is_err());
    }

    #[test]
    fn requested_user_takes_its_group_from_passwd() {
        let r = rootfs();
        let id = resolve(
            Some(User {
                uid: 1000,
                gid: None,
            }),
            "root",
            &[5],
            r.path(),
        )
        .unwrap();
        assert_eq!(
            id,
            Identity {
                uid: 1000,
                gid: 1001,
                additional_gids: vec![5, 2000]
            }
        );
    }
}
