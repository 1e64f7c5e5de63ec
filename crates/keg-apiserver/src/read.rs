//! GET of one object and of lists, with paging and resourceVersion semantics.

use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::filter::Filter;
use crate::negotiate::Output;
use crate::objects::parse_resource_version;
use crate::render;
use crate::request::Query;
use crate::resources::Resource;
use crate::rest::json_response;
use crate::state::ApiState;

/// GET of one object.
pub async fn get(
    state: &ApiState,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    output: Output,
    query: &Query,
) -> Result<Response> {
    let obj = state.objects.get(res, ns, name).await?;
    Ok(json_response(200, &render::object(res, obj, output, query)))
}

/// A continue token: the revision of the first page and the last key returned.
fn encode_continue(revision: u64, key: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": key});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, String)> {
    let bad = || ApiError::bad_request(format!("invalid continue token: {token}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rv = value["rv"].as_u64().ok_or_else(bad)?;
    let start = value["start"].as_str().ok_or_else(bad)?.to_string();
    Ok((rv, start))
}

const EXPIRED_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// The revision a list must be read at, from resourceVersion and resourceVersionMatch.
fn list_revision(state: &ApiState, query: &Query) -> Result<Option<u64>> {
    let rv = query.get("resourceVersion");
    match (rv, query.get("resourceVersionMatch")) {
        (None, Some(_)) => Err(ApiError::bad_request(
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        )),
        (Some(rv), Some("Exact")) => {
            let rv = parse_resource_version(rv)?;
            Ok(Some(rv))
        }
        (Some(rv), None | Some("NotOlderThan")) => {
            let rv = parse_resource_version(rv)?;
            let current = state.objects.store().current_revision();
            if rv > current {
                return Err(ApiError::timeout(format!(
                    "Too large resource version: {rv}, current: {current}"
                )));
            }
            Ok(None)
        }
        (Some(_), Some(other)) => Err(ApiError::bad_request(format!(
            "resourceVersionMatch: Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\""
        ))),
        (None, None) => Ok(None),
    }
}

/// Reads matching objects: all of them, or one page of `limit` with a continue token.
pub async fn select(
    state: &ApiState,
    res: &Resource,
    ns: Option<&str>,
    filter: &Filter,
    query: &Query,
) -> Result<(Vec<Value>, u64, Option<String>)> {
    let limit = query
        .number("limit")
        .map_err(ApiError::bad_request)?
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let (mut revision, mut start) = match query.get("continue") {
        Some(token) => {
            let (rv, start) = decode_continue(token)?;
            (Some(rv), Some(start))
        }
        None => (list_revision(state, query)?, None),
    };
    let mut items = Vec::new();
    loop {
        // Read in pages so a selective filter with a limit still stops early.
        let page_size =
            limit.map(|l| (l - items.len()).max(if filter.is_everything() { 1 } else { 500 }));
        let page = state
            .objects
            .list(res, ns, start.clone(), page_size, revision)
            .await
            .map_err(|e| {
                if e.code == 410 && query.get("continue").is_some() {
                    ApiError::expired(EXPIRED_CONTINUE)
                } else {
                    e
                }
            })?;
        revision = Some(page.revision);
        items.extend(page.items.into_iter().filter(|o| filter.matches(o)));
        if let Some(limit) = limit.filter(|l| items.len() >= *l) {
            let more = items.len() > limit || page.next_key.is_some();
            items.truncate(limit);
            let cont = more.then(|| {
                let last = items.last().unwrap_or(&Value::Null);
                encode_continue(
                    page.revision,
                    &res.key(ns_of(res, Some(last)), crate::objects::name(last)),
                )
            });
            return Ok((items, page.revision, cont));
        }
        match page.next_key {
            Some(next) => start = Some(next),
            None => return Ok((items, page.revision, None)),
        }
    }
}

fn ns_of<'a>(res: &Resource, obj: Option<&'a Value>) -> Option<&'a str> {
    if res.namespaced {
        obj.and_then(|o| crate::objects::meta_str(o, "namespace"))
    } else {
        None
    }
}

/// GET of a list.
pub async fn list(
    state: &ApiState,
    res: &Resource,
    ns: Option<&str>,
    output: Output,
    query: &Query,
) -> Result<Response> {
    let filter = Filter::from_query(res, query)?;
    let (items, revision, cont) = select(state, res, ns, &filter, query).await?;
    Ok(json_response(
        200,
        &render::list(res, items, revision, cont, output, query),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let token = encode_continue(42, "/registry/core/pods/default/web-1");
        assert_eq!(
            decode_continue(&token).unwrap(),
            (42, "/registry/core/pods/default/web-1".to_string())
        );
        assert_eq!(decode_continue("!!").unwrap_err().code, 400);
    }
}
