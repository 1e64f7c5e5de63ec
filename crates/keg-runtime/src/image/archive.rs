//! Importing image archives: OCI image layouts (`oci-archive`) and `docker save` tarballs.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{
    Error, Image, ImageStore, Result, digest_hex, io_err, layer, parse_config, parse_reference,
};
use crate::fsutil;

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

pub(super) fn import(store: &ImageStore, archive: &Path) -> Result<Vec<Image>> {
    let tmp = store.tmp_dir("import")?;
    let result = extract(archive, &tmp).and_then(|()| {
        if tmp.join("manifest.json").is_file() {
            import_docker(store, &tmp)
        } else if tmp.join("index.json").is_file() {
            import_oci(store, &tmp)
        } else {
            Err(Error::InvalidImage {
                what: archive.display().to_string(),
                message:
                    "neither an OCI image layout (index.json) nor a docker-archive (manifest.json)"
                        .into(),
            })
        }
    });
    let _ = fsutil::remove_dir_all_if_exists(&tmp);
    result
}

fn extract(archive: &Path, into: &Path) -> Result<()> {
    let file =
        std::fs::File::open(archive).map_err(io_err(format!("open {}", archive.display())))?;
    let mut buffered = BufReader::new(file);
    let gzip = buffered
        .fill_buf()
        .map_err(io_err("read archive"))?
        .starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    tar::Archive::new(reader)
        .unpack(into)
        .map_err(io_err(format!("unpack {}", archive.display())))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(default)]
    media_type: String,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// Reads a blob of an OCI layout, checking that its content matches its digest.
fn read_blob(layout: &Path, digest: &str) -> Result<Vec<u8>> {
    let path = layout.join("blobs/sha256").join(digest_hex(digest)?);
    let data = std::fs::read(&path).map_err(io_err(format!("read {}", path.display())))?;
    let actual = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
    if actual != digest {
        return Err(Error::InvalidImage {
            what: digest.into(),
            message: format!("content has digest {actual}"),
        });
    }
    Ok(data)
}

fn import_oci(store: &ImageStore, layout: &Path) -> Result<Vec<Image>> {
    let index: Index =
        parse_json(&std::fs::read(layout.join("index.json")).map_err(io_err("read index.json"))?)?;
    let mut images = Vec::new();
    for desc in &index.manifests {
        let names = names_of(desc);
        let manifest_digest = resolve_platform(layout, desc)?;
        let manifest: Manifest = parse_json(&read_blob(layout, &manifest_digest)?)?;
        if INDEX_TYPES.contains(&manifest.media_type.as_str()) {
            return Err(Error::InvalidImage {
                what: manifest_digest,
                message: "nested image index".into(),
            });
        }
        let config = read_blob(layout, &manifest.config.digest)?;
        let (_, diff_ids) = parse_config(&config)?;
        unpack_layers(store, &diff_ids, manifest.layers.len(), |i| {
            Ok(layout
                .join("blobs/sha256")
                .join(digest_hex(&manifest.layers[i].digest)?))
        })?;
        let repo_digest = names
            .first()
            .map(|n| format!("{}@{manifest_digest}", repo_of(n)));
        images.push(store.commit(&config, repo_digest, &names)?);
    }
    Ok(images)
}

/// Follows an image index to the manifest for this machine's platform.
fn resolve_platform(layout: &Path, desc: &Descriptor) -> Result<String> {
    if !INDEX_TYPES.contains(&desc.media_type.as_str()) {
        return Ok(desc.digest.clone());
    }
    let index: Index = parse_json(&read_blob(layout, &desc.digest)?)?;
    let arch = host_arch();
    index
        .manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .map(|m| m.digest.clone())
        .ok_or_else(|| Error::InvalidImage {
            what: desc.digest.clone(),
            message: format!("the image index has no linux/{arch} image"),
        })
}

/// The OCI name of this machine's architecture.
pub(super) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Names an OCI layout gives an image. `org.opencontainers.image.ref.name` is often only a
/// tag (umoci writes `latest`); a bare tag names no repository, so it is not used as a name.
fn names_of(desc: &Descriptor) -> Vec<String> {
    let full = desc.annotations.get("io.containerd.image.name");
    let ref_name = desc.annotations.get("org.opencontainers.image.ref.name");
    full.or(ref_name.filter(|r| r.contains(['/', ':', '@'])))
        .and_then(|n| parse_reference(n).ok())
        .filter(|r| r.tag().is_some())
        .map(|r| vec![r.whole()])
        .unwrap_or_default()
}

/// `registry/repo` of a normalised `registry/repo:tag`.
fn repo_of(name: &str) -> String {
    parse_reference(name)
        .map(|r| format!("{}/{}", r.registry(), r.repository()))
        .unwrap_or_else(|_| name.to_string())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn import_docker(store: &ImageStore, dir: &Path) -> Result<Vec<Image>> {
    let manifests: Vec<DockerManifest> = parse_json(
        &std::fs::read(dir.join("manifest.json")).map_err(io_err("read manifest.json"))?,
    )?;
    let mut images = Vec::new();
    for m in manifests {
        let config_path = inside(dir, &m.config)?;
        let config = std::fs::read(&config_path).map_err(io_err(format!("read {}", m.config)))?;
        let (_, diff_ids) = parse_config(&config)?;
        unpack_layers(store, &diff_ids, m.layers.len(), |i| {
            inside(dir, &m.layers[i])
        })?;
        let tags = m
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| super::normalize(t))
            .collect::<Result<Vec<_>>>()?;
        images.push(store.commit(&config, None, &tags)?);
    }
    Ok(images)
}

fn unpack_layers(
    store: &ImageStore,
    diff_ids: &[String],
    count: usize,
    path_of: impl Fn(usize) -> Result<PathBuf>,
) -> Result<()> {
    if diff_ids.len() != count {
        return Err(Error::InvalidImage {
            what: "image".into(),
            message: format!(
                "{count} layers but {} diff ids in the config",
                diff_ids.len()
            ),
        });
    }
    for (i, diff_id) in diff_ids.iter().enumerate() {
        let path = path_of(i)?;
        layer::ensure_layer(store, Some(diff_id), || {
            Ok(Box::new(std::fs::File::open(&path)?) as Box<dyn Read>)
        })?;
    }
    Ok(())
}

/// A path named inside an archive, refused if it points outside the extracted archive.
fn inside(dir: &Path, rel: &str) -> Result<PathBuf> {
    if Path::new(rel)
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(Error::InvalidImage {
            what: rel.into(),
            message: "path outside the archive".into(),
        });
    }
    Ok(dir.join(rel))
}

fn parse_json<T: serde::de::DeserializeOwned>(data: &[u8]) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| Error::InvalidImage {
        what: "archive".into(),
        message: e.to_string(),
    })
}
