//! `keg image import` and `keg image ls`: the machine's image store, shared by every node of
//! every cluster on it (`$KEG_HOME/images`), filled without a registry.

use std::path::PathBuf;

use anyhow::{Context, Result};
use keg_runtime::ImageStore;

/// What `keg image` does.
#[derive(clap::Subcommand)]
pub enum ImageCommand {
    /// Load OCI or docker archives (as `docker save` or `skopeo copy ... oci-archive:` write them).
    Import {
        /// The archive files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the stored images.
    #[command(alias = "list")]
    Ls,
}

/// The machine's image store.
pub fn store() -> Result<ImageStore> {
    let root = super::cluster::keg_home().join("images");
    ImageStore::open(&root).with_context(|| format!("opening the image store {}", root.display()))
}

/// Runs `keg image ...`.
pub async fn run(command: ImageCommand) -> Result<()> {
    let images = store()?;
    match command {
        ImageCommand::Import { files } => {
            for file in files {
                let imported = images
                    .import_archive(&file)
                    .await
                    .with_context(|| format!("importing {}", file.display()))?;
                for image in imported {
                    let name = image
                        .repo_tags
                        .first()
                        .cloned()
                        .unwrap_or_else(|| image.id.clone());
                    println!("imported {name} ({})", short_id(&image.id));
                }
            }
        }
        ImageCommand::Ls => {
            println!("{:<50} {:<14} {:>10}", "IMAGE", "IMAGE ID", "SIZE");
            for image in images.list()? {
                let names = if image.repo_tags.is_empty() {
                    vec!["<none>".to_owned()]
                } else {
                    image.repo_tags.clone()
                };
                for name in names {
                    println!(
                        "{name:<50} {:<14} {:>10}",
                        short_id(&image.id),
                        human_size(image.size)
                    );
                }
            }
        }
    }
    Ok(())
}

fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(13)]
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{size:.1}{}", UNITS[unit])
}
