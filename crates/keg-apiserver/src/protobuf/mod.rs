//! Request bodies in Kubernetes protobuf (`application/vnd.kubernetes.protobuf`), which kubectl
//! 1.32+ and Go clients send for built-in kinds, read into the JSON value the JSON path yields.
//!
//! A body is the magic `k8s\0`, then a `runtime.Unknown` {typeMeta = 1 {apiVersion = 1,
//! kind = 2}, raw = 2, contentEncoding = 3, contentType = 4} whose `raw` is the object. One
//! generic walker reads the object against a table of the built-in kinds' messages
//! (`schema.txt`, see decision 0008), so nothing downstream knows the body was protobuf.

mod schema;
mod special;
mod walk;
mod wire;

#[cfg(test)]
mod tests;

use serde_json::{Value, json};

use crate::error::ApiError;
use wire::{Fields, Wire};

/// The media type of Kubernetes protobuf.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The bytes every Kubernetes protobuf body starts with.
pub const MAGIC: [u8; 4] = *b"k8s\0";

/// Why a protobuf body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a well-formed body; the text says where and what.
    #[error("{0}")]
    Malformed(String),
    /// The object's kind has no protobuf form here (a custom resource, as upstream).
    #[error("no protobuf schema for kind {kind} of {api_version}")]
    UnknownKind {
        /// `apiVersion` of the envelope.
        api_version: String,
        /// `kind` of the envelope.
        kind: String,
    },
}

/// Results of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn malformed(message: impl Into<String>) -> Error {
        Error::Malformed(message.into())
    }

    /// Prefixes a malformed body's message with where it was found.
    fn within(self, place: &str) -> Error {
        match self {
            Error::Malformed(message) => Error::Malformed(format!("{place}: {message}")),
            other => other,
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        match error {
            Error::Malformed(message) => ApiError::bad_request(format!(
                "unable to decode protobuf request body: {message}"
            )),
            // Upstream's wording for a custom resource, whose only encodings are JSON and YAML.
            Error::UnknownKind { .. } => ApiError {
                code: 415,
                reason: "UnsupportedMediaType",
                message: "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml".into(),
                details: None,
            },
        }
    }
}

/// Whether a body is Kubernetes protobuf (JSON and YAML never start with the magic).
pub fn is_protobuf(body: &[u8]) -> bool {
    body.starts_with(&MAGIC)
}

/// Reads a protobuf body of a built-in kind into the JSON object a JSON client would send,
/// with `apiVersion` and `kind` from the envelope.
pub fn decode(body: &[u8]) -> Result<Value> {
    decode_envelope(&mut walk::Walker::new(schema::schema()), body)
}

/// Reads the envelope and the object in it with a walker (shared with nested objects).
fn decode_envelope(walker: &mut walk::Walker<'_>, body: &[u8]) -> Result<Value> {
    let Some(envelope) = body.strip_prefix(&MAGIC) else {
        return Err(Error::malformed(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]",
        ));
    };
    let unknown = Envelope::read(envelope).map_err(|e| e.within("runtime.Unknown"))?;
    if !unknown.content_encoding.is_empty() {
        return Err(Error::malformed(format!(
            "unsupported content encoding {:?}",
            unknown.content_encoding
        )));
    }
    if unknown.kind.is_empty() {
        return Err(Error::malformed(
            "Object 'Kind' is missing in the request body",
        ));
    }
    let key = schema::schema()
        .object_key(&unknown.api_version, &unknown.kind)
        .ok_or_else(|| Error::UnknownKind {
            api_version: unknown.api_version.clone(),
            kind: unknown.kind.clone(),
        })?;
    let mut object = walker
        .object(&key, unknown.raw)
        .map_err(|e| e.within(&key))?;
    object.insert("apiVersion".into(), json!(unknown.api_version));
    object.insert("kind".into(), json!(unknown.kind));
    Ok(Value::Object(object))
}

/// `runtime.Unknown`, the envelope of every protobuf body.
#[derive(Default)]
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
}

impl<'a> Envelope<'a> {
    fn read(data: &'a [u8]) -> Result<Envelope<'a>> {
        let mut envelope = Envelope::default();
        for item in Fields::new(data) {
            match item? {
                (1, Wire::Bytes(type_meta)) => {
                    for item in Fields::new(type_meta) {
                        match item.map_err(|e| e.within("typeMeta"))? {
                            (1, Wire::Bytes(v)) => envelope.api_version = utf8(v),
                            (2, Wire::Bytes(k)) => envelope.kind = utf8(k),
                            _ => {}
                        }
                    }
                }
                (2, Wire::Bytes(raw)) => envelope.raw = raw,
                (3, Wire::Bytes(encoding)) => envelope.content_encoding = utf8(encoding),
                // contentType names the raw bytes' encoding: always protobuf in a body.
                (4, Wire::Bytes(_)) => {}
                (1..=4, wire) => {
                    return Err(Error::malformed(format!(
                        "unexpected {} value",
                        wire.name()
                    )));
                }
                _ => {}
            }
        }
        Ok(envelope)
    }
}

fn utf8(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
