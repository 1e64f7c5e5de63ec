//! The image store: content-addressed OCI images on local disk, shared by every node of the
//! machine.
//!
//! Layout under the store's root:
//!
//! ```text
//! blobs/sha256/<hex>   image configs and manifests, by digest
//! layers/<hex>/        each layer unpacked once, named by its diff id (digest of the tar)
//! images/<hex>.json    one record per image, named by its id (the config digest)
//! tmp/                 work space for imports and pulls (same file system, so renames work)
//! lock                 flock serialising writers, also across processes
//! ```
//!
//! Layers are unpacked as overlayfs lower directories: a `.wh.<name>` whiteout becomes a
//! 0/0 character device and `.wh..wh..opq` the `trusted.overlay.opaque` xattr, which is what
//! overlayfs itself writes. So a container's root is an overlay of the layers, never a copy.

mod archive;
mod layer;
mod pull;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_client::Reference;
use serde::{Deserialize, Serialize};

use crate::fsutil::{self, FileLock};

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system operation on the store failed.
    #[error("image store: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An image reference could not be parsed.
    #[error("invalid image reference {reference:?}: {message}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it is invalid.
        message: String,
    },
    /// An archive or registry delivered something that is not a usable image.
    #[error("invalid image {what}: {message}")]
    InvalidImage {
        /// Which image or file.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// Pulling from a registry failed; `message` carries the registry's own words.
    #[error("failed to pull image {reference:?}: {message}")]
    Pull {
        /// The reference being pulled.
        reference: String,
        /// The registry's (or transport's) message, e.g. "manifest unknown".
        message: String,
    },
    /// No image matches the reference.
    #[error("image {0:?} not found in the local store")]
    NotFound(String),
}

/// Result of image-store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// The parts of an image's config that decide how its containers run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`, as `NAME=value`.
    pub env: Vec<String>,
    /// `WorkingDir` (empty: `/`).
    pub working_dir: String,
    /// `User`: `uid`, `uid:gid`, `name` or `name:group` (empty: root).
    pub user: String,
    /// `StopSignal`, e.g. `SIGQUIT`.
    pub stop_signal: Option<String>,
    /// `ExposedPorts` keys, e.g. `8080/tcp`.
    pub exposed_ports: Vec<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
}

/// An image in the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The image id: the digest of its config, `sha256:<hex>`.
    pub id: String,
    /// Normalised tags naming it, e.g. `docker.io/library/busybox:latest`.
    pub repo_tags: Vec<String>,
    /// Normalised digests naming it, e.g. `docker.io/library/busybox@sha256:...`.
    pub repo_digests: Vec<String>,
    /// Diff ids of its layers, bottom first.
    pub layers: Vec<String>,
    /// Unpacked size of its layers in bytes.
    pub size: u64,
    /// How its containers run.
    pub config: ImageConfig,
}

/// A content-addressed image store under one directory; cheap to clone.
#[derive(Clone, Debug)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
}

impl ImageStore {
    /// Opens (creating if needed) the store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for dir in ["blobs/sha256", "layers", "images", "tmp"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(io_err(format!("create {}", path.display())))?;
        }
        Ok(Self {
            inner: Arc::new(Inner { root }),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Imports every image of an OCI image-layout archive (`skopeo copy ... oci-archive:`,
    /// `umoci`) or a docker-archive (`docker save`); returns the images imported.
    pub async fn import_archive(&self, path: impl AsRef<Path>) -> Result<Vec<Image>> {
        let store = self.clone();
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || archive::import(&store, &path))
            .await
            .map_err(|e| Error::Io {
                what: "import task".into(),
                source: std::io::Error::other(e),
            })?
    }

    /// Pulls `reference` from its registry. `auth` is a user and password; registries listed
    /// in `insecure_registries` (`host[:port]`) are spoken to over plain HTTP.
    pub async fn pull(
        &self,
        reference: &str,
        auth: Option<(String, String)>,
        insecure_registries: &[String],
    ) -> Result<Image> {
        pull::pull(self, reference, auth, insecure_registries).await
    }

    /// All images in the store.
    pub fn list(&self) -> Result<Vec<Image>> {
        let dir = self.root().join("images");
        let entries = std::fs::read_dir(&dir).map_err(io_err(format!("list {}", dir.display())))?;
        let mut images = Vec::new();
        for entry in entries {
            let path = entry.map_err(io_err("list images"))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let image: Option<Image> =
                    fsutil::read_json(&path).map_err(io_err(format!("read {}", path.display())))?;
                images.extend(image);
            }
        }
        images.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(images)
    }

    /// Finds the image a reference names: an id (`sha256:<hex>`, or a unique hex prefix of at
    /// least 12 digits), a tag (`busybox`, `busybox:1.36`, `host:5000/app:v1`) or a digest.
    pub fn resolve(&self, reference: &str) -> Result<Option<Image>> {
        let images = self.list()?;
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut matches = images
                .iter()
                .filter(|i| i.id["sha256:".len()..].starts_with(hex));
            if let (Some(found), None) = (matches.next(), matches.next()) {
                return Ok(Some(found.clone()));
            }
            if reference.starts_with("sha256:") {
                return Ok(None);
            }
        }
        let normalized = normalize(reference)?;
        Ok(images
            .into_iter()
            .find(|i| i.repo_tags.contains(&normalized) || i.repo_digests.contains(&normalized)))
    }

    /// Like [`ImageStore::resolve`] but a missing image is an error.
    pub fn get(&self, reference: &str) -> Result<Image> {
        self.resolve(reference)?
            .ok_or_else(|| Error::NotFound(reference.to_string()))
    }

    /// Adds the tag `reference` to the image `id` (moving it off any other image).
    pub fn tag(&self, id: &str, reference: &str) -> Result<Image> {
        let image = self.get(id)?;
        let config = self.read_blob(&image.id)?;
        self.commit(&config, None, &[normalize(reference)?])
    }

    /// Removes an image record; its layers stay until [`ImageStore::prune_layers`].
    pub fn remove(&self, reference: &str) -> Result<()> {
        let image = self.get(reference)?;
        let _lock = self.lock()?;
        let path = self.record_path(&image.id);
        fsutil::remove_file_if_exists(&path).map_err(io_err(format!("remove {}", path.display())))
    }

    /// Deletes unpacked layers that no image record uses any more. The caller makes sure no
    /// container still runs on them (the store does not know the containers of every node).
    pub fn prune_layers(&self) -> Result<Vec<String>> {
        let _lock = self.lock()?;
        let used: std::collections::HashSet<String> =
            self.list()?.into_iter().flat_map(|i| i.layers).collect();
        let dir = self.root().join("layers");
        let mut removed = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_err("list layers"))? {
            let entry = entry.map_err(io_err("list layers"))?;
            let diff_id = format!("sha256:{}", entry.file_name().to_string_lossy());
            if !used.contains(&diff_id) {
                fsutil::remove_dir_all_if_exists(&entry.path()).map_err(io_err("remove layer"))?;
                removed.push(diff_id);
            }
        }
        Ok(removed)
    }

    /// The unpacked directories of an image's layers, bottom first.
    pub fn layer_dirs(&self, image: &Image) -> Result<Vec<PathBuf>> {
        image
            .layers
            .iter()
            .map(|diff_id| {
                let dir = self.layer_dir(diff_id)?;
                if dir.is_dir() {
                    Ok(dir)
                } else {
                    Err(Error::InvalidImage {
                        what: image.id.clone(),
                        message: format!(
                            "layer {diff_id} is missing from the store; pull or import it again"
                        ),
                    })
                }
            })
            .collect()
    }

    fn layer_dir(&self, diff_id: &str) -> Result<PathBuf> {
        Ok(self.root().join("layers").join(digest_hex(diff_id)?))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.root()
            .join("images")
            .join(format!("{}.json", id.trim_start_matches("sha256:")))
    }

    fn lock(&self) -> Result<FileLock> {
        FileLock::acquire(&self.root().join("lock")).map_err(io_err("lock the image store"))
    }

    fn tmp_dir(&self, prefix: &str) -> Result<PathBuf> {
        let dir = self
            .root()
            .join("tmp")
            .join(format!("{prefix}-{}", fsutil::random_hex(8)));
        std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        Ok(dir)
    }

    fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.root().join("blobs/sha256").join(digest_hex(digest)?);
        std::fs::read(&path).map_err(io_err(format!("read {}", path.display())))
    }

    fn write_blob(&self, data: &[u8]) -> Result<String> {
        let hex = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(data));
        let path = self.root().join("blobs/sha256").join(&hex);
        if !path.exists() {
            fsutil::write_atomic(&path, data)
                .map_err(io_err(format!("write {}", path.display())))?;
        }
        Ok(format!("sha256:{hex}"))
    }

    /// Records an image whose layers are all unpacked: stores its config, merges the names
    /// into its record and moves those tags off any other image, as `docker tag` does.
    fn commit(
        &self,
        config_json: &[u8],
        repo_digest: Option<String>,
        tags: &[String],
    ) -> Result<Image> {
        let parsed = parse_config(config_json)?;
        let _lock = self.lock()?;
        let id = self.write_blob(config_json)?;
        let mut size = 0;
        for diff_id in &parsed.1 {
            let dir = self.layer_dir(diff_id)?;
            if !dir.is_dir() {
                return Err(Error::InvalidImage {
                    what: id,
                    message: format!("layer {diff_id} is not unpacked"),
                });
            }
            size += layer::dir_size(&dir);
        }
        for mut other in self.list()? {
            if other.id != id && other.repo_tags.iter().any(|t| tags.contains(t)) {
                other.repo_tags.retain(|t| !tags.contains(t));
                self.write_record(&other)?;
            }
        }
        let mut image: Image = fsutil::read_json(&self.record_path(&id))
            .map_err(io_err("read image record"))?
            .unwrap_or(Image {
                id: id.clone(),
                repo_tags: vec![],
                repo_digests: vec![],
                layers: vec![],
                size: 0,
                config: ImageConfig::default(),
            });
        image.config = parsed.0;
        image.layers = parsed.1;
        image.size = size;
        for tag in tags {
            if !image.repo_tags.contains(tag) {
                image.repo_tags.push(tag.clone());
            }
        }
        if let Some(d) = repo_digest.filter(|d| !image.repo_digests.contains(d)) {
            image.repo_digests.push(d);
        }
        self.write_record(&image)?;
        Ok(image)
    }

    fn write_record(&self, image: &Image) -> Result<()> {
        let path = self.record_path(&image.id);
        fsutil::write_json(&path, image).map_err(io_err(format!("write {}", path.display())))
    }
}

/// Normalises a reference the way Docker does: `busybox` is `docker.io/library/busybox:latest`.
pub fn normalize(reference: &str) -> Result<String> {
    Ok(parse_reference(reference)?.whole())
}

pub(crate) fn parse_reference(reference: &str) -> Result<Reference> {
    reference
        .parse::<Reference>()
        .map_err(|e| Error::InvalidReference {
            reference: reference.to_string(),
            message: e.to_string(),
        })
}

/// The hex part of a `sha256:` digest, checked so that it is safe as a file name.
pub(crate) fn digest_hex(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(hex),
        _ => Err(Error::InvalidImage {
            what: digest.to_string(),
            message: "only sha256 digests are supported".into(),
        }),
    }
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    config: Option<ConfigInner>,
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ConfigInner {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    stop_signal: Option<String>,
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    labels: Option<BTreeMap<String, String>>,
}

/// Parses an image config blob into the run settings and the layer diff ids.
fn parse_config(data: &[u8]) -> Result<(ImageConfig, Vec<String>)> {
    let file: ConfigFile = serde_json::from_slice(data).map_err(|e| Error::InvalidImage {
        what: "config".into(),
        message: e.to_string(),
    })?;
    let c = file.config.unwrap_or_default();
    let config = ImageConfig {
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        working_dir: c.working_dir.unwrap_or_default(),
        user: c.user.unwrap_or_default(),
        stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
        exposed_ports: c.exposed_ports.unwrap_or_default().into_keys().collect(),
        labels: c.labels.unwrap_or_default(),
    };
    for diff_id in &file.rootfs.diff_ids {
        digest_hex(diff_id)?;
    }
    Ok((config, file.rootfs.diff_ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_docker_hub_names() {
        assert_eq!(
            normalize("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize("127.0.0.1:5000/app:v1").unwrap(),
            "127.0.0.1:5000/app:v1"
        );
    }

    #[test]
    fn parses_a_config_without_a_config_section() {
        let (config, layers) =
            parse_config(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#).unwrap();
        assert_eq!(config, ImageConfig::default());
        assert!(layers.is_empty());
    }

    #[test]
    fn rejects_digests_that_are_not_file_names() {
        assert!(digest_hex("sha256:../../etc").is_err());
        assert!(digest_hex(&format!("sha256:{}", "a".repeat(64))).is_ok());
    }
}
