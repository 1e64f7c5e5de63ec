//! DELETE: preconditions, graceful deletion of pods, finalizers and propagation policies.

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::admission::{Attributes, Operation};
use crate::error::{ApiError, Result};
use crate::filter::Filter;
use crate::objects::{self, finalizers, is_deleting, meta_str, stored_revision};
use crate::request::Query;
use crate::resources::Resource;
use crate::rest::json_response;
use crate::state::ApiState;
use crate::write::WriteContext;

/// The options of a delete, from the body (DeleteOptions) and the query.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    grace_period: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    orphan_dependents: Option<bool>,
}

impl DeleteOptions {
    /// Reads DeleteOptions from a body (may be empty) and the query.
    pub fn parse(body: &Bytes, query: &Query) -> Result<DeleteOptions> {
        let body: Value = if body.is_empty() {
            Value::Null
        } else if crate::protobuf::is_protobuf(body) {
            // kubectl 1.32+ sends DeleteOptions in protobuf; the magic prefix tells it apart.
            crate::protobuf::decode(body)?
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
        };
        let grace_period = body["gracePeriodSeconds"].as_i64().or(query
            .number("gracePeriodSeconds")
            .map_err(ApiError::bad_request)?);
        let mut propagation = body["propagationPolicy"]
            .as_str()
            .or(query.get("propagationPolicy"))
            .map(String::from);
        let orphan_dependents = body["orphanDependents"].as_bool().or_else(|| {
            query
                .get("orphanDependents")
                .map(|_| query.flag("orphanDependents"))
        });
        if orphan_dependents == Some(true) {
            propagation = Some("Orphan".into());
        }
        Ok(DeleteOptions {
            grace_period,
            propagation,
            uid: body["preconditions"]["uid"].as_str().map(String::from),
            resource_version: body["preconditions"]["resourceVersion"]
                .as_str()
                .map(String::from),
            orphan_dependents,
        })
    }
}

/// Removes an object from storage and lets admission release what it held.
pub async fn remove(
    state: &Arc<ApiState>,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    expected: Option<u64>,
) -> Result<Value> {
    let mut deleted = state.objects.delete(res, ns, name, expected).await?;
    let mut attrs = Attributes {
        operation: Operation::Delete,
        resource: res,
        subresource: None,
        object: &mut deleted,
        old: None,
        dry_run: false,
        user: crate::auth::UserInfo::apiserver(),
    };
    state.admission.admit(state, &mut attrs).await?;
    crate::hooks::after_delete(state, res, &deleted).await;
    Ok(deleted)
}

/// The grace period a pod gets: the request's, else its spec's; none when never started.
fn pod_grace(obj: &Value, requested: Option<i64>) -> i64 {
    let unscheduled = obj["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
    let finished = matches!(
        obj["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if unscheduled || finished {
        return 0;
    }
    requested
        .unwrap_or_else(|| {
            obj["spec"]["terminationGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(30)
        })
        .max(0)
}

/// Whether a DELETE that removes the object at once answers with the object itself: the kinds
/// whose upstream registry sets `ReturnDeletedObject`. Every other kind answers a Status of
/// Success; typed clients (the Python client's models) parse the body as the declared type.
fn returns_deleted_object(res: &Resource) -> bool {
    res.group.is_empty()
        && matches!(
            res.plural.as_str(),
            "pods"
                | "services"
                | "serviceaccounts"
                | "namespaces"
                | "persistentvolumes"
                | "persistentvolumeclaims"
        )
}

/// The body of a DELETE that removed `obj` at once.
fn deleted_response(res: &Resource, obj: Value) -> Value {
    if returns_deleted_object(res) {
        obj
    } else {
        success_status(res, &obj)
    }
}

/// The code of a DELETE that only marked the object: upstream answers 202 only when the client
/// asked for cascading deletion with `orphanDependents: false`, 200 otherwise (changing that
/// would break clients, its handler says).
fn marked_code(options: &DeleteOptions) -> u16 {
    if options.orphan_dependents == Some(false) {
        202
    } else {
        200
    }
}

/// Deletes one object: at once, or by marking it (deletionTimestamp) when finalizers or a
/// grace period must run first. Answers with the code and the body upstream gives: the
/// deleted object or a Status (see [`returns_deleted_object`]), or the marked object.
pub async fn delete(
    ctx: &WriteContext<'_>,
    name: &str,
    options: &DeleteOptions,
) -> Result<(u16, Value)> {
    let res = ctx.res;
    loop {
        let obj = ctx.state.objects.get(res, ctx.ns, name).await?;
        let rv = stored_revision(&obj)?;
        check_preconditions(res, &obj, options)?;
        let mut marked = obj.clone();
        let mut pending_finalizers = finalizers(&obj);
        match options.propagation.as_deref() {
            Some("Foreground") => {
                add_finalizer(&mut marked, &mut pending_finalizers, "foregroundDeletion")
            }
            Some("Orphan") => add_finalizer(&mut marked, &mut pending_finalizers, "orphan"),
            Some("Background") | None => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Orphan\", \"Background\", \"Foreground\""
                )));
            }
        }
        let grace = if res.kind == "Pod" && res.group.is_empty() {
            pod_grace(&obj, options.grace_period)
        } else {
            0
        };
        let namespace_finalizing = res.kind == "Namespace"
            && obj["spec"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
        if pending_finalizers.is_empty() && grace == 0 && !namespace_finalizing {
            if ctx.query.dry_run() {
                return Ok((200, deleted_response(res, obj)));
            }
            return match remove(ctx.state, res, ctx.ns, name, Some(rv)).await {
                Ok(deleted) => Ok((200, deleted_response(res, deleted))),
                Err(e) if e.code == 409 && options.resource_version.is_none() => continue,
                Err(e) => Err(e),
            };
        }
        let already = is_deleting(&obj);
        let current_grace = obj["metadata"]["deletionGracePeriodSeconds"].as_i64();
        if already && current_grace.is_none_or(|g| grace >= g) && marked == obj {
            return Ok((marked_code(options), obj)); // already being deleted; nothing shortens it
        }
        let meta = objects::meta_mut(&mut marked);
        if !already || current_grace.is_some_and(|g| grace < g) {
            meta.insert("deletionTimestamp".into(), json!(objects::now_plus(grace)));
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
        if res.kind == "Namespace" {
            marked["status"]["phase"] = json!("Terminating");
        }
        if ctx.query.dry_run() {
            return Ok((marked_code(options), marked));
        }
        match ctx.state.objects.update(res, ctx.ns, &marked, rv).await {
            Ok(stored) => {
                crate::hooks::after_write(ctx.state, res, &stored).await;
                return Ok((marked_code(options), stored));
            }
            Err(e) if e.code == 409 && options.resource_version.is_none() => continue,
            Err(e) => return Err(e),
        }
    }
}

fn add_finalizer(obj: &mut Value, list: &mut Vec<String>, finalizer: &str) {
    if !list.iter().any(|f| f == finalizer) {
        list.push(finalizer.to_string());
        obj["metadata"]["finalizers"] = json!(list);
    }
}

fn check_preconditions(res: &Resource, obj: &Value, options: &DeleteOptions) -> Result<()> {
    let name = meta_str(obj, "name").unwrap_or_default();
    if let Some(uid) = &options.uid {
        let actual = meta_str(obj, "uid").unwrap_or_default();
        if uid != actual {
            return Err(ApiError::conflict_because(
                &res.group,
                &res.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            ));
        }
    }
    if let Some(rv) = &options.resource_version {
        let actual = meta_str(obj, "resourceVersion").unwrap_or_default();
        if rv != actual {
            return Err(ApiError::conflict_because(
                &res.group,
                &res.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                ),
            ));
        }
    }
    Ok(())
}

fn success_status(res: &Resource, obj: &Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": meta_str(obj, "name").unwrap_or_default(),
            "group": res.group,
            "kind": res.plural,
            "uid": meta_str(obj, "uid").unwrap_or_default(),
        }
    })
}

/// DELETE of a collection: every object the selectors match.
pub async fn delete_collection(
    ctx: &WriteContext<'_>,
    options: &DeleteOptions,
) -> Result<Response> {
    let filter = Filter::from_query(ctx.res, ctx.query)?;
    let (items, _, _) =
        crate::read::select(ctx.state, ctx.res, ctx.ns, &filter, &Query::default()).await?;
    let mut deleted = Vec::new();
    for obj in items {
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        let obj_ns = meta_str(&obj, "namespace").map(String::from);
        let scoped = WriteContext {
            ns: obj_ns.as_deref().or(ctx.ns),
            ..*ctx
        };
        match delete(&scoped, &name, options).await {
            Ok(_) => deleted.push(crate::render::with_type(ctx.res, obj)),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let list = json!({"kind": format!("{}List", ctx.res.kind), "apiVersion": ctx.res.api_version(), "metadata": {}, "items": deleted});
    Ok(json_response(200, &list))
}
