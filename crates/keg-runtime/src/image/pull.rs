//! Pulling images from OCI / Docker registries.

use std::io::Read;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::{Error, Image, ImageStore, Result, io_err, layer, parse_config, parse_reference};
use crate::fsutil;

pub(super) async fn pull(
    store: &ImageStore,
    reference: &str,
    auth: Option<(String, String)>,
    insecure_registries: &[String],
) -> Result<Image> {
    let image_ref = parse_reference(reference)?;
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(insecure_registries.to_vec()),
        ..Default::default()
    });
    let auth = match auth {
        Some((user, password)) => RegistryAuth::Basic(user, password),
        None => RegistryAuth::Anonymous,
    };
    let fail = |e: OciDistributionError| Error::Pull {
        reference: reference.to_string(),
        message: message_of(e),
    };
    let (manifest, manifest_digest, list_digest) = client
        .pull_image_manifest_and_list_digest(&image_ref, &auth)
        .await
        .map_err(fail)?;
    let mut config = Vec::new();
    client
        .pull_blob(&image_ref, &manifest.config, &mut config)
        .await
        .map_err(fail)?;
    let (_, diff_ids) = parse_config(&config)?;
    if diff_ids.len() != manifest.layers.len() {
        return Err(Error::InvalidImage {
            what: reference.to_string(),
            message: format!(
                "{} layers but {} diff ids in the config",
                manifest.layers.len(),
                diff_ids.len()
            ),
        });
    }
    for (layer_desc, diff_id) in manifest.layers.iter().zip(&diff_ids) {
        if store.layer_dir(diff_id)?.is_dir() {
            continue;
        }
        let tmp = store.tmp_dir("pull")?;
        let result = fetch_layer(store, &client, &image_ref, layer_desc, diff_id, &tmp).await;
        let _ = fsutil::remove_dir_all_if_exists(&tmp);
        result.map_err(|e| match e {
            FetchError::Registry(e) => fail(e),
            FetchError::Store(e) => e,
        })?;
    }
    let repo_digest = format!(
        "{}/{}@{}",
        image_ref.registry(),
        image_ref.repository(),
        list_digest.unwrap_or(manifest_digest)
    );
    let tags = match (image_ref.tag(), image_ref.digest()) {
        (Some(_), None) => vec![image_ref.whole()],
        _ => vec![],
    };
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.commit(&config, Some(repo_digest), &tags))
        .await
        .map_err(|e| io_err("commit task")(std::io::Error::other(e)))?
}

enum FetchError {
    Registry(OciDistributionError),
    Store(Error),
}

/// Downloads one layer blob to a file (the client checks its digest), then unpacks it.
async fn fetch_layer(
    store: &ImageStore,
    client: &Client,
    image_ref: &Reference,
    desc: &oci_client::manifest::OciDescriptor,
    diff_id: &str,
    tmp: &std::path::Path,
) -> Result<(), FetchError> {
    let blob = tmp.join("blob");
    let mut file = tokio::fs::File::create(&blob)
        .await
        .map_err(|e| FetchError::Store(io_err("create layer download")(e)))?;
    client
        .pull_blob(image_ref, desc, &mut file)
        .await
        .map_err(FetchError::Registry)?;
    drop(file);
    let store = store.clone();
    let diff_id = diff_id.to_string();
    tokio::task::spawn_blocking(move || {
        layer::ensure_layer(&store, Some(&diff_id), || {
            Ok(Box::new(std::fs::File::open(&blob)?) as Box<dyn Read>)
        })
    })
    .await
    .map_err(|e| FetchError::Store(io_err("unpack task")(std::io::Error::other(e))))?
    .map(|_| ())
    .map_err(FetchError::Store)
}

/// The registry's own words where it gave some (`manifest unknown`), else the client's error.
fn message_of(e: OciDistributionError) -> String {
    match e {
        OciDistributionError::RegistryError { envelope, url } => {
            let parts: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| {
                    let code = serde_json::to_value(&e.code)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    format!("{} ({code})", e.message)
                })
                .collect();
            format!("{} (from {url})", parts.join("; "))
        }
        OciDistributionError::ServerError { code, url, message } => {
            format!("registry answered {code} for {url}: {}", message.trim())
        }
        other => {
            // Transport errors hide the useful part (connection refused, TLS) in their sources.
            let mut text = other.to_string();
            let mut source = std::error::Error::source(&other);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}
