//! Cached views of the cluster for loops that look at everything at once (schedulers, the
//! load balancer): a reflector store per kind, and one signal that fires on any change.

use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use tokio::sync::watch;

/// Keeps a store of `api`'s objects, current through a watch, and bumps `changes` on every event.
pub fn follow<K>(api: Api<K>, changes: Arc<watch::Sender<u64>>) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changes.send_modify(|n| *n += 1),
                Err(e) => tracing::debug!("watch: {e}"),
            }
        }
    });
    reader
}
