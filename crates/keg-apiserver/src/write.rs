//! Create, update (PUT) and patch: decoding, field validation, defaulting, admission,
//! validation and optimistic concurrency, in upstream's order.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use keg_apimachinery::patch::{PatchType, apply_patch};
use serde_json::{Value, json};

use crate::admission::{Attributes, Operation};
use crate::auth::UserInfo;
use crate::error::{ApiError, Result};
use crate::fieldcheck::unknown_fields;
use crate::objects::{self, finalizers, is_deleting, meta_mut, name, parse_resource_version};
use crate::request::Query;
use crate::resources::Resource;
use crate::state::ApiState;
use crate::strategy;

/// Largest stored object, as etcd's default request limit.
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;

/// One write request's context.
pub struct WriteContext<'a> {
    /// Shared state.
    pub state: &'a Arc<ApiState>,
    /// The resource written.
    pub res: &'a Arc<Resource>,
    /// Namespace from the path.
    pub ns: Option<&'a str>,
    /// Query options.
    pub query: &'a Query,
    /// Who writes.
    pub user: &'a UserInfo,
}

/// What a write stored (or, under dryRun, would store), for the response.
pub struct Written {
    /// The HTTP status: 201 for a create, 200 otherwise.
    pub code: u16,
    /// The object as stored.
    pub object: Value,
    /// `Warning` headers (e.g. unknown fields under fieldValidation=Warn).
    pub warnings: Vec<String>,
}

/// Decodes a request body as JSON, YAML or Kubernetes protobuf (as the content type says)
/// into an object.
pub fn decode_body(headers: &HeaderMap, body: &Bytes) -> Result<Value> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media == crate::protobuf::MEDIA_TYPE {
        // kubectl 1.32+ sends built-in kinds so and does not retry in JSON after a 415.
        return Ok(crate::protobuf::decode(body)?);
    }
    if !(media.is_empty() || media == "application/json" || media.contains("yaml")) {
        return Err(ApiError::unsupported_body(media));
    }
    let value: Value = if content_type.contains("yaml") {
        serde_yaml_ng::from_slice(body).map_err(|e| ApiError::bad_request(format!("yaml: {e}")))?
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "Object 'Kind' is missing in the request body",
        ));
    }
    Ok(value)
}

impl WriteContext<'_> {
    fn cannot_handle(&self, detail: &str) -> ApiError {
        let kind = &self.res.kind;
        ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: {detail}",
            self.res.version
        ))
    }

    /// Checks the object's type and fields; returns warnings for unknown fields (Warn mode).
    fn check_fields(&self, obj: &mut Value) -> Result<Vec<String>> {
        let api_version = self.res.api_version();
        match obj["apiVersion"].as_str() {
            None | Some("") => obj["apiVersion"] = json!(api_version),
            Some(v) if v != api_version => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )));
            }
            _ => {}
        }
        match obj["kind"].as_str() {
            None | Some("") => obj["kind"] = json!(self.res.kind),
            Some(k) if k != self.res.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    self.res.kind
                )));
            }
            _ => {}
        }
        let unknown = self
            .res
            .schema()
            .map(|s| unknown_fields(s, obj))
            .unwrap_or_default();
        let mut warnings = Vec::new();
        if !unknown.is_empty() {
            let listed: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            match self.query.get("fieldValidation").unwrap_or("Warn") {
                "Strict" => {
                    return Err(self
                        .cannot_handle(&format!("strict decoding error: {}", listed.join(", "))));
                }
                "Ignore" => {}
                _ => warnings = listed,
            }
            crate::fieldcheck::prune(self.res.schema().expect("schema exists"), obj);
        }
        if let Some(typed) = self.res.typed {
            (typed.check)(obj).map_err(|e| self.cannot_handle(&e))?;
        }
        Ok(warnings)
    }

    fn check_size(&self, obj: &Value) -> Result<()> {
        let size = serde_json::to_vec(obj).map(|b| b.len()).unwrap_or(0);
        if size > MAX_OBJECT_BYTES {
            return Err(ApiError::too_large(format!(
                "Request entity too large: limit is {MAX_OBJECT_BYTES}"
            )));
        }
        Ok(())
    }

    fn invalid(&self, obj: &Value, causes: Vec<crate::error::Cause>) -> ApiError {
        ApiError::invalid(&self.res.group, &self.res.kind, name(obj), causes)
    }

    /// POST of a new object.
    pub async fn create(&self, headers: &HeaderMap, body: &Bytes) -> Result<Written> {
        let mut obj = decode_body(headers, body)?;
        let warnings = self.check_fields(&mut obj)?;
        self.create_object(obj, warnings).await
    }

    /// Creates a decoded, field-checked object: defaulting, validation, admission, storage.
    async fn create_object(&self, mut obj: Value, warnings: Vec<String>) -> Result<Written> {
        let meta = meta_mut(&mut obj);
        if self.res.namespaced {
            let url_ns = self.ns.unwrap_or_default();
            match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() && ns != url_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(url_ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
        let generate_name = meta
            .get("generateName")
            .and_then(Value::as_str)
            .map(String::from);
        if meta
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            && let Some(prefix) = generate_name
        {
            meta.insert("name".into(), json!(format!("{prefix}{}", random_suffix())));
        }
        for field in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ] {
            meta.remove(field);
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(objects::now()));
        if self.res.tracks_generation() {
            meta.insert("generation".into(), json!(1));
        }
        strategy::default_object(self.res, &mut obj);
        strategy::prepare_create(self.res, &mut obj, self.user);
        let causes = strategy::validate(self.res, &obj, None);
        if !causes.is_empty() {
            return Err(self.invalid(&obj, causes));
        }
        let dry_run = self.query.dry_run();
        let mut attrs = Attributes {
            operation: Operation::Create,
            resource: self.res,
            subresource: None,
            object: &mut obj,
            old: None,
            dry_run,
            user: self.user,
        };
        self.state.admission.admit(self.state, &mut attrs).await?;
        self.check_size(&obj)?;
        if dry_run {
            return Ok(Written {
                code: 201,
                object: obj,
                warnings,
            });
        }
        let created = self.state.objects.create(self.res, self.ns, &obj).await?;
        crate::hooks::after_write(self.state, self.res, &created).await;
        Ok(Written {
            code: 201,
            object: created,
            warnings,
        })
    }

    /// PUT of an object (or of its status with `subresource = Some("status")`).
    pub async fn update(
        &self,
        obj_name: &str,
        subresource: Option<&str>,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Written> {
        let mut obj = decode_body(headers, body)?;
        let warnings = self.check_fields(&mut obj)?;
        let body_name = name(&obj).to_string();
        if body_name != obj_name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({obj_name})"
            )));
        }
        let precondition = objects::meta_str(&obj, "resourceVersion")
            .map(parse_resource_version)
            .transpose()?;
        let stored = self
            .store_update(obj_name, subresource, precondition, |_| Ok(obj.clone()))
            .await?;
        Ok(Written {
            code: 200,
            object: stored,
            warnings,
        })
    }

    /// PATCH of an object or its status.
    pub async fn patch(
        &self,
        obj_name: &str,
        subresource: Option<&str>,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Written> {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media = content_type.split(';').next().unwrap_or_default().trim();
        let patch_type = PatchType::from_content_type(media)
            .ok_or_else(|| ApiError::unsupported_media_type(media))?;
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let precondition = patch["metadata"]["resourceVersion"]
            .as_str()
            .map(parse_resource_version)
            .transpose()?;
        if patch_type == PatchType::Apply && subresource.is_none() {
            // An apply of an object that does not exist yet creates it, as upstream.
            match self.state.objects.get(self.res, self.ns, obj_name).await {
                Err(e) if e.code == 404 => return self.apply_create(obj_name, &patch).await,
                Err(e) => return Err(e),
                Ok(_) => {}
            }
        }
        let mut warnings = Vec::new();
        let stored = self
            .store_update(obj_name, subresource, precondition, |current| {
                let mut patched = apply_patch(
                    &self.res.kind,
                    current,
                    &patch,
                    patch_type,
                    self.res.custom.is_some(),
                )
                .map_err(|e| patch_error(self.res, obj_name, e))?;
                warnings = self.check_fields(&mut patched)?;
                Ok(patched)
            })
            .await?;
        Ok(Written {
            code: 200,
            object: stored,
            warnings,
        })
    }

    /// The create that an apply of a missing object makes: the applied configuration, named
    /// by the URL. A create racing it is a 409 AlreadyExists, which the client retries.
    async fn apply_create(&self, obj_name: &str, patch: &Value) -> Result<Written> {
        let mut obj = apply_patch(
            &self.res.kind,
            &json!({}),
            patch,
            PatchType::Apply,
            self.res.custom.is_some(),
        )
        .map_err(|e| patch_error(self.res, obj_name, e))?;
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the applied configuration is not an object",
            ));
        }
        let body_name = name(&obj).to_string();
        if !body_name.is_empty() && body_name != obj_name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({obj_name})"
            )));
        }
        meta_mut(&mut obj).insert("name".into(), json!(obj_name));
        let warnings = self.check_fields(&mut obj)?;
        self.create_object(obj, warnings).await
    }

    /// Read-modify-write with retries: `change` gets the current object and returns the new
    /// one. With a resourceVersion precondition a mismatch is a 409 instead of a retry.
    pub async fn store_update(
        &self,
        obj_name: &str,
        subresource: Option<&str>,
        precondition: Option<u64>,
        mut change: impl FnMut(&Value) -> Result<Value>,
    ) -> Result<Value> {
        loop {
            let old = self.state.objects.get(self.res, self.ns, obj_name).await?;
            let old_rv = objects::stored_revision(&old)?;
            if precondition.is_some_and(|rv| rv != old_rv) {
                return Err(ApiError::conflict(
                    &self.res.group,
                    &self.res.plural,
                    obj_name,
                ));
            }
            let mut new = change(&old)?;
            strategy::prepare_update(self.res, subresource, &mut new, &old);
            if subresource.is_none() {
                strategy::default_object(self.res, &mut new);
            }
            let causes = strategy::validate(self.res, &new, Some(&old));
            if !causes.is_empty() {
                return Err(self.invalid(&new, causes));
            }
            let dry_run = self.query.dry_run();
            let mut attrs = Attributes {
                operation: Operation::Update,
                resource: self.res,
                subresource,
                object: &mut new,
                old: Some(&old),
                dry_run,
                user: self.user,
            };
            self.state.admission.admit(self.state, &mut attrs).await?;
            self.check_size(&new)?;
            meta_mut(&mut new).insert("resourceVersion".into(), json!(old_rv.to_string()));
            if objects::without_nulls(&new) == objects::without_nulls(&old) || dry_run {
                return Ok(new); // no change: nothing written, the resourceVersion stays
            }
            if is_deleting(&new)
                && finalizers(&new).is_empty()
                && new["metadata"]["deletionGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(0)
                    == 0
            {
                // The last finalizer is gone: the delete that was waiting completes now.
                let deleted =
                    crate::delete::remove(self.state, self.res, self.ns, obj_name, Some(old_rv))
                        .await;
                match deleted {
                    Err(e) if e.code == 409 && precondition.is_none() => continue,
                    other => return other,
                }
            }
            match self
                .state
                .objects
                .update(self.res, self.ns, &new, old_rv)
                .await
            {
                Ok(stored) => {
                    crate::hooks::after_write(self.state, self.res, &stored).await;
                    return Ok(stored);
                }
                Err(e) if e.code == 409 && precondition.is_none() => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

fn patch_error(res: &Resource, obj_name: &str, err: keg_apimachinery::patch::Error) -> ApiError {
    use keg_apimachinery::patch::Error as E;
    match err {
        E::UnsupportedStrategicMerge { .. } => {
            ApiError::unsupported_media_type("application/strategic-merge-patch+json")
        }
        other => ApiError::invalid(
            &res.group,
            &res.kind,
            obj_name,
            vec![crate::error::Cause {
                reason: "FieldValueInvalid",
                message: other.to_string(),
                field: String::new(),
            }],
        ),
    }
}

/// Five random lowercase alphanumerics, as upstream's generateName suffix.
pub(crate) fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
