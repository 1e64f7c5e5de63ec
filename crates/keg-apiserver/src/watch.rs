//! Watch: newline-delimited JSON events from a resourceVersion on, with initial events,
//! bookmarks, selector transitions (an object leaving a selection is DELETED for that watch),
//! and 410 Expired as an ERROR event for compacted versions.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use keg_store::{EventKind, WatchEvent};
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::filter::Filter;
use crate::negotiate::Output;
use crate::objects::parse_resource_version;
use crate::render;
use crate::request::Query;
use crate::resources::Resource;
use crate::state::ApiState;
use crate::storage::decode_for;

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(15);
/// Watches without timeoutSeconds end after this long, as upstream's do (clients re-watch).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

struct WatchRequest {
    res: Arc<Resource>,
    ns: Option<String>,
    filter: Filter,
    output: Output,
    query: Query,
    bookmarks: bool,
}

impl WatchRequest {
    fn line(&self, kind: &str, obj: Value) -> Bytes {
        let object = render::object(&self.res, obj, self.output, &self.query);
        let mut line = json!({"type": kind, "object": object}).to_string();
        line.push('\n');
        Bytes::from(line)
    }

    fn bookmark(&self, revision: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": metadata});
        Bytes::from(format!(
            "{}\n",
            json!({"type": "BOOKMARK", "object": object})
        ))
    }

    /// The event line a store event becomes for this watch, if any.
    fn translate(&self, event: &WatchEvent) -> Option<Bytes> {
        let new = decode_for(&self.res, &event.kv).ok()?;
        let old_matches = event
            .prev
            .as_ref()
            .and_then(|p| decode_for(&self.res, p).ok())
            .is_some_and(|o| self.filter.matches(&o));
        match event.kind {
            EventKind::Delete => old_matches.then(|| self.line("DELETED", new)),
            EventKind::Put => match (old_matches, self.filter.matches(&new)) {
                (true, true) => Some(self.line("MODIFIED", new)),
                (false, true) => Some(self.line("ADDED", new)),
                (true, false) => Some(self.line("DELETED", new)),
                (false, false) => None,
            },
        }
    }
}

fn error_line(err: &ApiError) -> Bytes {
    Bytes::from(format!(
        "{}\n",
        json!({"type": "ERROR", "object": err.status()})
    ))
}

/// Starts a watch; the response streams until the timeout, the client leaves, or the server ends.
pub async fn watch(
    state: Arc<ApiState>,
    res: Arc<Resource>,
    ns: Option<String>,
    output: Output,
    query: Query,
) -> Result<Response> {
    let filter = Filter::from_query(&res, &query)?;
    let timeout = match query
        .number("timeoutSeconds")
        .map_err(ApiError::bad_request)?
    {
        Some(secs) if secs > 0 => Duration::from_secs(secs as u64),
        _ => DEFAULT_TIMEOUT,
    };
    let rv = query
        .get("resourceVersion")
        .map(parse_resource_version)
        .transpose()?;
    let send_initial = match query.get("sendInitialEvents") {
        Some(_) => query.flag("sendInitialEvents"),
        None => matches!(rv, None | Some(0)),
    };
    let req = WatchRequest {
        bookmarks: query.flag("allowWatchBookmarks"),
        res,
        ns,
        filter,
        output,
        query,
    };
    let prefix = req.res.key_prefix(req.ns.as_deref());

    // Initial state: list at a revision, then watch from it so nothing falls in between.
    let mut initial = Vec::new();
    let start = if send_initial {
        let page = state
            .objects
            .list(&req.res, req.ns.as_deref(), None, None, None)
            .await?;
        for obj in page.items.into_iter().filter(|o| req.filter.matches(o)) {
            initial.push(req.line("ADDED", obj));
        }
        if req.query.flag("sendInitialEvents") && req.bookmarks {
            initial.push(req.bookmark(page.revision, true));
        }
        page.revision
    } else {
        rv.unwrap_or(0)
    };

    let events = match state.objects.store().watch(&prefix, start).await {
        Ok(events) => events,
        Err(e) => {
            // A compacted resourceVersion is reported in-band, as upstream does.
            let err = ApiError::from(e);
            return Ok(stream_response(
                futures::stream::once(async move { Ok::<_, std::io::Error>(error_line(&err)) })
                    .boxed(),
            ));
        }
    };

    let stream = async_stream(req, initial, events, start, timeout);
    Ok(stream_response(stream))
}

fn async_stream(
    req: WatchRequest,
    initial: Vec<Bytes>,
    mut events: keg_store::WatchStream,
    start: u64,
    timeout: Duration,
) -> futures::stream::BoxStream<'static, std::io::Result<Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut bookmark = tokio::time::interval(BOOKMARK_INTERVAL);
        bookmark.tick().await;
        let mut last = start;
        loop {
            let line = tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = bookmark.tick(), if req.bookmarks => Some(req.bookmark(last, false)),
                event = events.next() => match event {
                    Some(Ok(event)) => {
                        last = event.kv.mod_revision;
                        req.translate(&event)
                    }
                    Some(Err(keg_store::Error::WatchLagged(_))) | None => return,
                    Some(Err(e)) => Some(error_line(&ApiError::from(e))),
                },
            };
            if let Some(line) = line
                && tx.send(line).await.is_err()
            {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(Ok)
        .boxed()
}

fn stream_response(
    stream: futures::stream::BoxStream<'static, std::io::Result<Bytes>>,
) -> Response {
    Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .expect("valid response")
}
