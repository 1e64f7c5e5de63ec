//! The user's kubeconfig: the cluster's context merged in (and made current) at creation,
//! and taken out at deletion, as eksctl does. The file is `$KUBECONFIG` (its first entry) or
//! `~/.kube/config`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kube::config::{Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};

/// The kubeconfig file keg writes to: `--kubeconfig`, else `$KUBECONFIG`'s first entry, else `~/.kube/config`.
pub fn user_kubeconfig(explicit: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_owned();
    }
    match std::env::var("KUBECONFIG") {
        Ok(list) if !list.is_empty() => PathBuf::from(list.split(':').next().unwrap_or_default()),
        _ => super::home_dir().join(".kube").join("config"),
    }
}

/// Merges the admin kubeconfig's cluster and user into `target` under `context`, made current.
pub fn merge(admin: &Path, target: &Path, context: &str) -> Result<()> {
    let source =
        Kubeconfig::read_from(admin).with_context(|| format!("reading {}", admin.display()))?;
    let mut config = read_or_empty(target)?;
    remove_entries(&mut config, context);
    let mut cluster = source
        .clusters
        .into_iter()
        .next()
        .context("the admin kubeconfig has no cluster")?;
    cluster.name = cluster_entry(context);
    let mut user = source
        .auth_infos
        .into_iter()
        .next()
        .context("the admin kubeconfig has no user")?;
    user.name = context.to_owned();
    let mut ctx = source
        .contexts
        .into_iter()
        .next()
        .context("the admin kubeconfig has no context")?;
    ctx.name = context.to_owned();
    if let Some(c) = ctx.context.as_mut() {
        c.cluster = cluster.name.clone();
        c.user = Some(user.name.clone());
    }
    config.clusters.push(cluster);
    config.auth_infos.push(user);
    config.contexts.push(ctx);
    config.current_context = Some(context.to_owned());
    write(target, &config)
}

/// Takes the context (and its cluster and user) out of `target`, if it is there.
pub fn remove(target: &Path, context: &str) -> Result<()> {
    if !target.exists() {
        return Ok(());
    }
    let mut config = read_or_empty(target)?;
    remove_entries(&mut config, context);
    if config.current_context.as_deref() == Some(context) {
        config.current_context = None;
    }
    write(target, &config)
}

/// eksctl names the cluster entry as the context without the user part.
fn cluster_entry(context: &str) -> String {
    context
        .split_once('@')
        .map_or(context, |(_, cluster)| cluster)
        .to_owned()
}

fn remove_entries(config: &mut Kubeconfig, context: &str) {
    let cluster = cluster_entry(context);
    config.clusters.retain(|c: &NamedCluster| c.name != cluster);
    config
        .auth_infos
        .retain(|u: &NamedAuthInfo| u.name != context);
    config.contexts.retain(|c: &NamedContext| c.name != context);
}

fn read_or_empty(path: &Path) -> Result<Kubeconfig> {
    if path.exists() {
        Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))
    } else {
        Ok(Kubeconfig {
            api_version: Some("v1".into()),
            kind: Some("Config".into()),
            ..Kubeconfig::default()
        })
    }
}

fn write(path: &Path, config: &Kubeconfig) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_saphyr::to_string(config).context("writing kubeconfig YAML")?;
    let tmp = path.with_extension("keg-tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
