//! Revisioned key-value store: the one place keg keeps state. Knows nothing of Kubernetes.
//!
//! Every write gets the next global revision (what the Kubernetes API calls
//! `resourceVersion`). Updates and deletes compare-and-swap on the key's last
//! modification revision. History is kept until compaction so that lists can be
//! served at a past revision and watches can resume from one.
//!
//! Two backends implement [`Store`]: [`RedbStore`], embedded in the process (the default),
//! and [`EtcdStore`], on an etcd cluster.

mod codec;
mod embedded;
mod etcd;
pub mod etcd_member;
pub mod etcd_pki;
pub mod local_etcd;
pub mod test_store;
mod watch;

pub use embedded::RedbStore;
pub use etcd::{EtcdStore, EtcdTls};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

/// A global store revision. Revision 0 means "before any write".
pub type Revision = u64;

/// One key with its current value and the revisions that created and last changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value bytes (opaque to the store).
    pub value: Bytes,
    /// Revision of the write that created this key (since it last did not exist).
    pub create_revision: Revision,
    /// Revision of the write that produced this value; for a delete event, the delete's revision.
    pub mod_revision: Revision,
}

/// What a watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated; `kv` is the new value.
    Put,
    /// The key was deleted; `kv.value` is the value it had, `kv.mod_revision` the delete's revision.
    Delete,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change (for deletes: the last value, stamped with the delete revision).
    pub kv: KeyValue,
    /// The value before the change, if the key existed.
    pub prev: Option<KeyValue>,
}

/// Options for [`Store::list`].
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Only keys starting with this prefix.
    pub prefix: String,
    /// Only keys strictly greater than this one (for paging).
    pub start_after: Option<String>,
    /// At most this many items; `None` or 0 means all.
    pub limit: Option<usize>,
    /// Read as of this revision; `None` means the current revision.
    pub revision: Option<Revision>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Items in key order.
    pub items: Vec<KeyValue>,
    /// The revision the list was read at.
    pub revision: Revision,
    /// Whether more keys with the prefix follow the last item.
    pub more: bool,
}

/// A stream of changes, in revision order.
pub type WatchStream = BoxStream<'static, Result<WatchEvent>>;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key does not exist.
    #[error("key {0} not found")]
    NotFound(String),
    /// `create` of a key that exists.
    #[error("key {key} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
        /// Its current value.
        current: KeyValue,
    },
    /// The expected revision did not match the key's current one.
    #[error("key {key}: expected revision {expected}, current is {}", current.mod_revision)]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The key's current value.
        current: KeyValue,
    },
    /// The requested revision has been compacted away.
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted {
        /// What was asked for.
        requested: Revision,
        /// The store's compaction revision.
        compacted: Revision,
    },
    /// The requested revision is newer than the store's current one.
    #[error("revision {requested} is in the future (current is {current})")]
    FutureRevision {
        /// What was asked for.
        requested: Revision,
        /// The current revision.
        current: Revision,
    },
    /// A watcher fell too far behind and was dropped; resume with a new watch.
    #[error("watcher fell behind at revision {0}; watch again from it")]
    WatchLagged(Revision),
    /// The backend failed.
    #[error("storage backend: {0}")]
    Backend(String),
}

/// Store results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A revisioned key-value store. All methods are safe to call concurrently.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current key value, if any.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;
    /// Keys with a prefix, in order, optionally paged and at a past revision.
    async fn list(&self, options: ListOptions) -> Result<ListPage>;
    /// Creates a key that must not exist. Durable when it returns.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue>;
    /// Replaces a key whose `mod_revision` must equal `expected`. Durable when it returns.
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue>;
    /// Deletes a key, checking its `mod_revision` when `expected` is given. Returns the last value.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue>;
    /// Changes to keys under `prefix` with revisions greater than `after`, then live ones.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;
    /// Drops history older than `revision`; lists and watches before it fail with `Compacted`.
    async fn compact(&self, revision: Revision) -> Result<()>;
    /// Whether the backend serves requests now (for the API server's /readyz): an embedded
    /// store always does; etcd when a quorum of its members answers.
    async fn check(&self) -> Result<()> {
        Ok(())
    }
    /// The newest revision.
    fn current_revision(&self) -> Revision;
    /// The oldest revision still readable (0 if never compacted).
    fn compacted_revision(&self) -> Revision;
}
