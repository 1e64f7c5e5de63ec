//! Watch streams: history from the log, then live events, without gaps or duplicates.
//!
//! The stream subscribes to live events *before* it reads the log, so every change is seen
//! at least once; changes at or below the last revision already delivered are skipped, so
//! none is seen twice. A watcher that falls behind the live buffer does not fail: it
//! catches up from the log again, and fails with `Compacted` only if compaction overtook it.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;

use crate::embedded::Shared;
use crate::{Revision, WatchStream};

/// The stream of changes under `prefix` after revision `after`.
pub(crate) fn watch_stream(shared: Arc<Shared>, prefix: String, after: Revision) -> WatchStream {
    let mut live = shared.events.subscribe();
    Box::pin(async_stream::stream! {
        let mut last = after;
        let mut catch_up = true;
        loop {
            if catch_up {
                catch_up = false;
                let (for_read, from, prefix_copy) = (shared.clone(), last, prefix.clone());
                let history = tokio::task::spawn_blocking(move || for_read.log_since(&prefix_copy, from)).await;
                match history {
                    Ok(Ok(events)) => {
                        for event in events {
                            last = event.kv.mod_revision;
                            yield Ok(event);
                        }
                    }
                    Ok(Err(e)) => {
                        yield Err(e);
                        return;
                    }
                    Err(e) => {
                        yield Err(crate::Error::Backend(e.to_string()));
                        return;
                    }
                }
            }
            match live.recv().await {
                Ok(event) => {
                    if event.kv.mod_revision > last && event.kv.key.starts_with(prefix.as_str()) {
                        last = event.kv.mod_revision;
                        yield Ok(Arc::unwrap_or_clone(event));
                    }
                }
                Err(RecvError::Lagged(_)) => catch_up = true,
                Err(RecvError::Closed) => return,
            }
        }
    })
}
