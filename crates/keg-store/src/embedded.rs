//! The embedded backend: one redb file, written by a single group-committing writer thread.
//!
//! Tables: `kv` (key → current value), `log` (revision → change, with the previous value
//! inline) and `meta` (current and compacted revisions). Every write is acknowledged only
//! after its transaction committed with redb's immediate durability (fsync), so a write a
//! client saw succeed survives `kill -9`. Writes that arrive while a commit is in flight are
//! batched into the next transaction, which keeps throughput up under concurrent writers.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::codec::{decode_current, decode_event, encode_current, encode_event};
use crate::watch::watch_stream;
use crate::{
    Error, EventKind, KeyValue, ListOptions, ListPage, Result, Revision, Store, WatchEvent,
    WatchStream,
};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const CURRENT: &str = "current_revision";
const COMPACTED: &str = "compacted_revision";

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;
/// Live events buffered per watcher before it must catch up from the log.
const EVENT_BUFFER: usize = 4096;

/// The embedded, crash-safe store (see the module docs).
#[derive(Clone)]
pub struct RedbStore {
    shared: Arc<Shared>,
    writer: mpsc::UnboundedSender<Request>,
    writer_thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

/// State readers and the writer share.
pub(crate) struct Shared {
    pub(crate) db: Database,
    pub(crate) current: AtomicU64,
    pub(crate) compacted: AtomicU64,
    pub(crate) events: broadcast::Sender<Arc<WatchEvent>>,
}

enum Op {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<Option<KeyValue>>>,
}

impl RedbStore {
    /// Opens (or creates) the store file at `path`.
    pub async fn open(path: &Path) -> Result<RedbStore> {
        let path = path.to_owned();
        let db = tokio::task::spawn_blocking(move || {
            Database::create(&path).map_err(|e| backend(&path.display(), e))
        })
        .await
        .map_err(|e| Error::Backend(e.to_string()))??;
        RedbStore::start(db)
    }

    /// A store that lives in memory only: for unit tests, never for a cluster.
    pub fn in_memory() -> RedbStore {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("an in-memory redb database can always be created");
        RedbStore::start(db).expect("an empty in-memory database initialises")
    }

    fn start(db: Database) -> Result<RedbStore> {
        let (current, compacted) = initialise(&db)?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            db,
            current: AtomicU64::new(current),
            compacted: AtomicU64::new(compacted),
            events,
        });
        let (writer, requests) = mpsc::unbounded_channel();
        let for_writer = shared.clone();
        let thread = std::thread::Builder::new()
            .name("keg-store-writer".into())
            .spawn(move || write_loop(for_writer, requests))
            .map_err(|e| Error::Backend(format!("starting the store writer: {e}")))?;
        Ok(RedbStore {
            shared,
            writer,
            writer_thread: Arc::new(std::sync::Mutex::new(Some(thread))),
        })
    }

    /// Closes the store, waiting for the writer to finish, so the file can be opened again.
    /// Takes effect when this is the last handle; open watch streams keep the file open.
    pub async fn close(self) {
        let RedbStore {
            shared,
            writer,
            writer_thread,
        } = self;
        drop((shared, writer));
        let thread = writer_thread.lock().expect("writer thread lock").take();
        if let Some(thread) = thread.filter(|_| Arc::strong_count(&writer_thread) == 1) {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    async fn submit(&self, op: Op) -> Result<Option<KeyValue>> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Request { op, reply })
            .map_err(|_| Error::Backend("the store writer stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Backend("the store writer stopped".into()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(|e| Error::Backend(e.to_string()))?
    }
}

fn backend(what: &dyn std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("{what}: {e}"))
}

fn db_err(e: impl Into<redb::Error>) -> Error {
    Error::Backend(e.into().to_string())
}

/// Creates the tables on first open and reads the revisions back.
fn initialise(db: &Database) -> Result<(Revision, Revision)> {
    let txn = db.begin_write().map_err(db_err)?;
    let revisions = {
        txn.open_table(KV).map_err(db_err)?;
        txn.open_table(LOG).map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        let current = meta
            .get(CURRENT)
            .map_err(db_err)?
            .map(|v| v.value())
            .unwrap_or(0);
        let compacted = meta
            .get(COMPACTED)
            .map_err(db_err)?
            .map(|v| v.value())
            .unwrap_or(0);
        (current, compacted)
    };
    txn.commit().map_err(db_err)?;
    Ok(revisions)
}

/// The writer thread: takes every waiting request, applies them in one transaction, commits,
/// and only then answers the callers and publishes the events.
fn write_loop(shared: Arc<Shared>, mut requests: mpsc::UnboundedReceiver<Request>) {
    let shared = &*shared;
    while let Some(first) = requests.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let mut revision = shared.current.load(Ordering::SeqCst);
        match apply_batch(shared, &batch, &mut revision) {
            Ok((outcomes, events, compacted)) => {
                shared.current.store(revision, Ordering::SeqCst);
                if let Some(compacted) = compacted {
                    shared.compacted.store(compacted, Ordering::SeqCst);
                }
                for event in events {
                    // No receivers is fine: nobody is watching.
                    let _ = shared.events.send(Arc::new(event));
                }
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = request.reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store commit failed; the batch's writes were not applied");
                for request in batch {
                    let _ = request.reply.send(Err(Error::Backend(e.to_string())));
                }
            }
        }
    }
}

type BatchResult = (
    Vec<Result<Option<KeyValue>>>,
    Vec<WatchEvent>,
    Option<Revision>,
);

fn apply_batch(shared: &Shared, batch: &[Request], revision: &mut Revision) -> Result<BatchResult> {
    let txn = shared.db.begin_write().map_err(db_err)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut events = Vec::new();
    let mut compacted = None;
    {
        let mut kv = txn.open_table(KV).map_err(db_err)?;
        let mut log = txn.open_table(LOG).map_err(db_err)?;
        let mut meta = txn.open_table(META).map_err(db_err)?;
        for request in batch {
            let outcome = match &request.op {
                Op::Compact { revision: target } => {
                    let target = (*target).min(*revision);
                    let floor =
                        compacted.unwrap_or_else(|| shared.compacted.load(Ordering::SeqCst));
                    if target > floor {
                        log.retain_in(..target, |_, _| false).map_err(db_err)?;
                        meta.insert(COMPACTED, target).map_err(db_err)?;
                        compacted = Some(target);
                    }
                    Ok(None)
                }
                op => {
                    let (key, value, expected, creating) = match op {
                        Op::Create { key, value } => (key, Some(value), None, true),
                        Op::Update {
                            key,
                            value,
                            expected,
                        } => (key, Some(value), Some(*expected), false),
                        Op::Delete { key, expected } => (key, None, *expected, false),
                        Op::Compact { .. } => unreachable!("handled above"),
                    };
                    let prev = match kv.get(key.as_str()).map_err(db_err)? {
                        Some(bytes) => Some(decode_current(key, bytes.value())?),
                        None => None,
                    };
                    match check(key, prev.as_ref(), expected, creating) {
                        Err(e) => Err(e),
                        Ok(()) => {
                            *revision += 1;
                            let event = match value {
                                Some(value) => {
                                    let create_revision =
                                        prev.as_ref().map_or(*revision, |p| p.create_revision);
                                    let next = KeyValue {
                                        key: key.clone(),
                                        value: value.clone(),
                                        create_revision,
                                        mod_revision: *revision,
                                    };
                                    kv.insert(key.as_str(), encode_current(&next).as_slice())
                                        .map_err(db_err)?;
                                    WatchEvent {
                                        kind: EventKind::Put,
                                        kv: next,
                                        prev,
                                    }
                                }
                                None => {
                                    kv.remove(key.as_str()).map_err(db_err)?;
                                    let last = prev.clone().expect("checked to exist");
                                    let gone = KeyValue {
                                        mod_revision: *revision,
                                        ..last
                                    };
                                    WatchEvent {
                                        kind: EventKind::Delete,
                                        kv: gone,
                                        prev,
                                    }
                                }
                            };
                            log.insert(*revision, encode_event(&event).as_slice())
                                .map_err(db_err)?;
                            let result = match event.kind {
                                EventKind::Put => event.kv.clone(),
                                EventKind::Delete => {
                                    event.prev.clone().expect("deletes have a previous value")
                                }
                            };
                            events.push(event);
                            Ok(Some(result))
                        }
                    }
                }
            };
            outcomes.push(outcome);
        }
        meta.insert(CURRENT, *revision).map_err(db_err)?;
    }
    txn.commit().map_err(db_err)?;
    Ok((outcomes, events, compacted))
}

/// Whether a write may go ahead given the key's current value.
fn check(
    key: &str,
    current: Option<&KeyValue>,
    expected: Option<Revision>,
    creating: bool,
) -> Result<()> {
    match (current, creating) {
        (Some(current), true) => Err(Error::AlreadyExists {
            key: key.to_owned(),
            current: current.clone(),
        }),
        (None, true) => Ok(()),
        (None, false) => Err(Error::NotFound(key.to_owned())),
        (Some(current), false) => match expected {
            Some(expected) if expected != current.mod_revision => Err(Error::Conflict {
                key: key.to_owned(),
                expected,
                current: current.clone(),
            }),
            _ => Ok(()),
        },
    }
}

impl Shared {
    /// Changes with revisions in `(after, ..]` under `prefix`, read from the log, oldest first.
    pub(crate) fn log_since(&self, prefix: &str, after: Revision) -> Result<Vec<WatchEvent>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        let compacted = meta
            .get(COMPACTED)
            .map_err(db_err)?
            .map(|v| v.value())
            .unwrap_or(0);
        if after < compacted {
            return Err(Error::Compacted {
                requested: after,
                compacted,
            });
        }
        let log = txn.open_table(LOG).map_err(db_err)?;
        let mut events = Vec::new();
        for entry in log.range(after + 1..).map_err(db_err)? {
            let (revision, bytes) = entry.map_err(db_err)?;
            let event = decode_event(revision.value(), bytes.value())?;
            if event.kv.key.starts_with(prefix) {
                events.push(event);
            }
        }
        Ok(events)
    }

    fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        let current = meta
            .get(CURRENT)
            .map_err(db_err)?
            .map(|v| v.value())
            .unwrap_or(0);
        let compacted = meta
            .get(COMPACTED)
            .map_err(db_err)?
            .map(|v| v.value())
            .unwrap_or(0);
        let at = options.revision.filter(|r| *r != 0).unwrap_or(current);
        if at > current {
            return Err(Error::FutureRevision {
                requested: at,
                current,
            });
        }
        if at < compacted {
            return Err(Error::Compacted {
                requested: at,
                compacted,
            });
        }
        let in_range = |key: &str| {
            key.starts_with(options.prefix.as_str())
                && options
                    .start_after
                    .as_deref()
                    .is_none_or(|after| key > after)
        };
        // The state at `at` is the current state with every later change undone: for each key
        // changed since, the value before its first later change.
        let mut overrides = std::collections::BTreeMap::<String, Option<KeyValue>>::new();
        if at < current {
            let log = txn.open_table(LOG).map_err(db_err)?;
            for entry in log.range(at + 1..).map_err(db_err)? {
                let (revision, bytes) = entry.map_err(db_err)?;
                let event = decode_event(revision.value(), bytes.value())?;
                if in_range(&event.kv.key) && !overrides.contains_key(&event.kv.key) {
                    overrides.insert(event.kv.key.clone(), event.prev);
                }
            }
        }
        let kv = txn.open_table(KV).map_err(db_err)?;
        let start = options
            .start_after
            .as_deref()
            .map_or(options.prefix.as_str(), |after| after.max(&options.prefix));
        let limit = options.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut current_items = kv
            .range(start..)
            .map_err(db_err)?
            .map_while(|entry| match entry {
                Ok((key, bytes)) => {
                    let key = key.value();
                    if !key.starts_with(options.prefix.as_str()) {
                        return None;
                    }
                    Some(decode_current(key, bytes.value()))
                }
                Err(e) => Some(Err(db_err(e))),
            });
        let mut past_items = overrides.into_iter().peekable();
        let mut items = Vec::new();
        let mut next_current = current_items.next().transpose()?;
        loop {
            // Merge the current keys (minus those changed since) with the keys as they were.
            while next_current.as_ref().is_some_and(|kv| !in_range(&kv.key)) {
                next_current = current_items.next().transpose()?;
            }
            let take_past = match (&next_current, past_items.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(now), Some((key, _))) => key <= &now.key,
            };
            let item = if take_past {
                let (key, value) = past_items.next().expect("peeked");
                if next_current.as_ref().is_some_and(|now| now.key == key) {
                    next_current = current_items.next().transpose()?;
                }
                value
            } else {
                let item = next_current.take();
                next_current = current_items.next().transpose()?;
                item
            };
            if let Some(item) = item {
                if items.len() == limit {
                    return Ok(ListPage {
                        items,
                        revision: at,
                        more: true,
                    });
                }
                items.push(item);
            }
        }
        Ok(ListPage {
            items,
            revision: at,
            more: false,
        })
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let kv = txn.open_table(KV).map_err(db_err)?;
        match kv.get(key).map_err(db_err)? {
            Some(bytes) => Ok(Some(decode_current(key, bytes.value())?)),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.read(move |shared| shared.get(&key)).await
    }

    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        self.read(move |shared| shared.list(&options)).await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let written = self
            .submit(Op::Create {
                key: key.to_owned(),
                value,
            })
            .await?;
        Ok(written.expect("writes return the new value"))
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        let written = self
            .submit(Op::Update {
                key: key.to_owned(),
                value,
                expected,
            })
            .await?;
        Ok(written.expect("writes return the new value"))
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        let deleted = self
            .submit(Op::Delete {
                key: key.to_owned(),
                expected,
            })
            .await?;
        Ok(deleted.expect("deletes return the last value"))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let current = self.current_revision();
        if after > current {
            return Err(Error::FutureRevision {
                requested: after,
                current,
            });
        }
        let compacted = self.compacted_revision();
        if after < compacted {
            return Err(Error::Compacted {
                requested: after,
                compacted,
            });
        }
        Ok(watch_stream(self.shared.clone(), prefix.to_owned(), after))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.submit(Op::Compact { revision }).await.map(|_| ())
    }

    fn current_revision(&self) -> Revision {
        self.shared.current.load(Ordering::SeqCst)
    }

    fn compacted_revision(&self) -> Revision {
        self.shared.compacted.load(Ordering::SeqCst)
    }
}
