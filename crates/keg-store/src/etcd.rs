//! The etcd backend: the same [`Store`] contract over an etcd v3 cluster.
//!
//! * **Keys.** A store key `K` is kept in etcd as `prefix + K`, nothing more: the mapping is a
//!   plain prepend, so it is reversible and the store stays ignorant of what keys mean. keg's
//!   own keys already begin with `/registry/`, so with the empty prefix (the server's default)
//!   etcd holds them where a kube-apiserver keeps its objects; a prefix such as `/keg-a` gives
//!   each of several keg clusters sharing one etcd its own subtree (`/keg-a/registry/...`).
//!   A prefix's trailing `/` is dropped, since every key begins with one.
//! * **Revisions** are etcd's: `mod_revision` and `create_revision` of its key values, and
//!   the header revision of a response. etcd starts at revision 1, not 0, so the first write
//!   to a new etcd is revision 2.
//! * **Writes** are single transactions that compare the key's `create_revision` (create)
//!   or `mod_revision` (update, delete) and, when the comparison fails, read the key in the
//!   same transaction, so `AlreadyExists` and `Conflict` carry the value that won.
//! * **Lists** are one range request `[prefix + start_after + "\0", end of prefix)` with
//!   etcd's limit at the requested revision; the page's revision is the request's or, for a
//!   read of the present, the response header's, which the next page then passes on.
//! * **Watches** are etcd watches from `after + 1` with previous values and progress
//!   notifications. A compaction etcd reports on the watch ends it with `Compacted`; a broken
//!   connection is resumed from the last delivered revision. Progress notifications carry no
//!   event: the trait has no bookmark item, so they only refresh [`Store::current_revision`].
//! * **`current_revision()`** must answer without a round trip, so it is the highest
//!   revision seen in any response this process got (every read, write and watch message,
//!   plus a refresh every few seconds). It can trail writes made by *other* clients of the
//!   same etcd by up to that refresh interval; it never runs ahead of etcd.
//! * **`compacted_revision()`** is learnt when connecting (by bisecting for the oldest
//!   readable revision), and raised by this process's compactions and by any compaction a
//!   read or watch runs into. A compaction by another client is seen when it is run into.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions,
    GetResponse, Identity, PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, TxnResponse,
    WatchOptions,
};
use futures::future::BoxFuture;

use crate::{
    Error, EventKind, KeyValue, ListOptions, ListPage, Result, Revision, Store, WatchEvent,
    WatchStream,
};

/// How long one unary request may take before it fails with `Backend`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request that failed in a way that allows it is sent again (see [`Retry`]), so
/// that a member's death costs a retry rather than a failed request, and a lost quorum a
/// failure in seconds rather than a hang.
const RETRY_FOR: Duration = Duration::from_secs(5);
/// How long /readyz waits for etcd to answer (kube-apiserver's etcd check waits 2 s).
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the background task refreshes the current revision.
const REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// The largest response accepted: a list of every object of a kind easily passes tonic's
/// default of 4 MiB, and etcd itself limits only requests (1.5 MiB by default).
const MAX_RESPONSE: usize = 1 << 30;
/// How many times in a row a broken watch is re-established before it fails.
const WATCH_RETRIES: u32 = 5;

/// Files for TLS to etcd: PEM, as etcd's own `--cacert`, `--cert` and `--key` take them.
#[derive(Debug, Clone, Default)]
pub struct EtcdTls {
    /// The CA that signed etcd's serving certificate (the system roots are not used).
    pub ca_file: Option<std::path::PathBuf>,
    /// A client certificate, for an etcd started with `--client-cert-auth`.
    pub cert_file: Option<std::path::PathBuf>,
    /// The client certificate's private key.
    pub key_file: Option<std::path::PathBuf>,
}

/// The store on an etcd cluster (see the module docs).
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    prefix: Arc<str>,
    revisions: Arc<Revisions>,
}

struct Revisions {
    current: AtomicU64,
    compacted: AtomicU64,
}

impl Revisions {
    fn saw(&self, revision: i64) {
        if let Ok(revision) = u64::try_from(revision) {
            self.current.fetch_max(revision, Ordering::SeqCst);
        }
    }

    fn saw_compaction(&self, revision: Revision) {
        self.compacted.fetch_max(revision, Ordering::SeqCst);
    }
}

fn backend(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("etcd {what}: {e}"))
}

/// The error of a failed request, readable: etcd's own message (`etcdserver: no leader`) or
/// the client's with its cause (`tcp connect error: Connection refused`), and when etcd could
/// not serve it at all (gRPC's Unavailable), that etcd is unavailable.
fn failed(what: &str, e: &etcd_client::Error) -> Error {
    let etcd_client::Error::GRpcStatus(status) = e else {
        return backend(what, e);
    };
    let mut detail = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    let mut deepest = None;
    while let Some(cause) = source {
        deepest = Some(cause);
        source = cause.source();
    }
    if let Some(cause) = deepest.map(ToString::to_string)
        && !detail.contains(&cause)
    {
        detail = format!("{detail}: {cause}");
    }
    if status.code() == tonic::Code::Unavailable {
        Error::Backend(format!("etcd is unavailable ({what}: {detail})"))
    } else {
        backend(what, detail)
    }
}

/// Which failures of a request may be sent again, for up to [`RETRY_FOR`]. As with etcd's Go
/// client, reads are retried whenever etcd was unavailable, and writes only when they
/// certainly were not carried out: a write whose connection broke, or that timed out in
/// raft, may yet have been committed, and sending it again would make a create fail as
/// AlreadyExists and an update as Conflict against itself.
#[derive(Clone, Copy)]
enum Retry {
    /// A read (or the creation of a watch): sent again after any Unavailable.
    Read,
    /// A write: sent again only after Unavailable before it reached a member.
    Write,
}

impl Retry {
    fn allows(self, e: &etcd_client::Error) -> bool {
        let etcd_client::Error::GRpcStatus(status) = e else {
            return false;
        };
        if status.code() != tonic::Code::Unavailable {
            return false;
        }
        match self {
            Retry::Read => true,
            Retry::Write => unsent(status),
        }
    }
}

/// Whether a request certainly did not reach etcd's raft: no connection to the member could
/// be made (a dead member: the client's balancer still tries it), or the member refused it for
/// having no leader (the store asks every member to, `with_require_leader`).
fn unsent(status: &tonic::Status) -> bool {
    if status.message() == "etcdserver: no leader" {
        return true;
    }
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        if cause.is::<tonic::ConnectError>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Whether etcd itself answered with this failure (the client's own have a cause attached).
fn from_etcd(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(status)
        if std::error::Error::source(status).is_none())
}

/// How a failed etcd request maps onto the store's errors, before the details are filled in.
enum Failure {
    Compacted,
    Future,
    Other(Error),
}

fn classify(what: &str, e: &etcd_client::Error) -> Failure {
    if let etcd_client::Error::GRpcStatus(status) = e {
        let message = status.message();
        if message.contains("required revision has been compacted") {
            return Failure::Compacted;
        }
        if message.contains("required revision is a future revision") {
            return Failure::Future;
        }
    }
    Failure::Other(failed(what, e))
}

/// Where a range of keys starting with `prefix` begins: etcd refuses the empty key, and
/// "\0" is the least key it allows.
fn range_start(prefix: Vec<u8>) -> Vec<u8> {
    if prefix.is_empty() { vec![0] } else { prefix }
}

/// The first key after every key starting with `prefix` (etcd's range end for a prefix).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // The empty prefix (or all 0xff): "\0" as a range end means "to the end of the keyspace".
    vec![0]
}

fn revision_arg(revision: Revision) -> Result<i64> {
    i64::try_from(revision).map_err(|_| Error::Backend(format!("revision {revision} is too large")))
}

/// Runs a request made by `call`, each attempt within [`REQUEST_TIMEOUT`], sending it again
/// while `retry` allows and [`RETRY_FOR`] has not passed. Of several failures, the last that
/// etcd itself answered is reported (`etcdserver: no leader` says more than a refused
/// connection to a dead member).
async fn timed<T, F, Fut>(what: &str, retry: Retry, mut call: F) -> std::result::Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(20);
    let mut answered = None;
    loop {
        let e = match tokio::time::timeout(REQUEST_TIMEOUT, call()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e,
            Err(_) => {
                return Err(Failure::Other(backend(
                    what,
                    format!("no answer in {REQUEST_TIMEOUT:?}"),
                )));
            }
        };
        if !retry.allows(&e) || started.elapsed() + pause > RETRY_FOR {
            let reported = if from_etcd(&e) {
                e
            } else {
                answered.unwrap_or(e)
            };
            return Err(classify(what, &reported));
        }
        tracing::debug!("etcd {what} failed, trying again: {e}");
        if from_etcd(&e) {
            answered = Some(e);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (`host:port`, or URLs with `http://` or `https://`),
    /// keeping every key under `prefix`. With `tls`, bare `host:port` endpoints use HTTPS.
    /// Fails unless etcd answers.
    pub async fn connect(
        endpoints: &[String],
        prefix: &str,
        tls: Option<EtcdTls>,
    ) -> Result<EtcdStore> {
        if endpoints.is_empty() {
            return Err(Error::Backend("no etcd endpoints given".into()));
        }
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true)
            // A member that has lost its leader refuses requests at once ("etcdserver: no
            // leader") instead of holding them until raft's timeout, and ends the watches it
            // serves, so that they move to a member of the quorum.
            .with_require_leader(true);
        if let Some(tls) = tls {
            options = options.with_tls(tls_options(&tls)?);
        }
        let client =
            tokio::time::timeout(REQUEST_TIMEOUT, Client::connect(endpoints, Some(options)))
                .await
                .map_err(|_| backend("connect", format!("no answer from {endpoints:?}")))?
                .map_err(|e| backend(&format!("connect to {endpoints:?}"), e))?;
        let store = EtcdStore {
            client,
            prefix: prefix.trim_end_matches('/').into(),
            revisions: Arc::new(Revisions {
                current: AtomicU64::new(0),
                compacted: AtomicU64::new(0),
            }),
        };
        store.fresh_revision().await?;
        let compacted = store.find_compacted().await?;
        store.revisions.saw_compaction(compacted);
        spawn_refresher(
            store.client.clone(),
            store.probe_key(),
            Arc::downgrade(&store.revisions),
        );
        Ok(store)
    }

    /// The prefix keys are kept under in etcd (without a trailing `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn etcd_key(&self, key: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + key.len());
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(key.as_bytes());
        out
    }

    /// A key no store key maps to (keg's keys hold no NUL), for requests that read nothing
    /// but a revision; etcd refuses an empty key, which the empty prefix would give.
    fn probe_key(&self) -> Vec<u8> {
        self.etcd_key("\0")
    }

    fn store_key(&self, key: &[u8]) -> Result<String> {
        let rest = key.strip_prefix(self.prefix.as_bytes()).ok_or_else(|| {
            Error::Backend(format!("etcd returned a key outside the prefix: {key:?}"))
        })?;
        String::from_utf8(rest.to_vec())
            .map_err(|_| Error::Backend(format!("etcd key {key:?} is not UTF-8")))
    }

    fn kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        Ok(KeyValue {
            key: self.store_key(kv.key())?,
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: kv.create_revision().max(0) as u64,
            mod_revision: kv.mod_revision().max(0) as u64,
        })
    }

    fn kv_client(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE)
    }

    /// A range request that [`timed`] can send again: each attempt on its own handle.
    fn range(
        &self,
        key: Vec<u8>,
        options: Option<GetOptions>,
    ) -> impl FnMut() -> BoxFuture<'static, std::result::Result<GetResponse, etcd_client::Error>>
    {
        let kv = self.kv_client();
        move || {
            let (mut kv, key, options) = (kv.clone(), key.clone(), options.clone());
            Box::pin(async move { kv.get(key, options).await })
        }
    }

    /// Asks etcd for its revision now (a count of one key), and records it.
    async fn fresh_revision(&self) -> Result<Revision> {
        let count = Some(GetOptions::new().with_count_only());
        let response = timed(
            "read revision",
            Retry::Read,
            self.range(self.probe_key(), count),
        )
        .await
        .map_err(|f| self.settle(f, "read revision"))?;
        let revision = response.header().map_or(0, |h| h.revision());
        self.revisions.saw(revision);
        Ok(revision.max(0) as u64)
    }

    /// Whether the state at `revision` can still be read: `Ok(false)` when compacted away.
    async fn readable(&self, revision: Revision) -> Result<bool> {
        let options = GetOptions::new()
            .with_count_only()
            .with_revision(revision_arg(revision)?);
        match timed(
            "read at a revision",
            Retry::Read,
            self.range(self.probe_key(), Some(options)),
        )
        .await
        {
            Ok(response) => {
                self.revisions
                    .saw(response.header().map_or(0, |h| h.revision()));
                Ok(true)
            }
            Err(Failure::Compacted) => Ok(false),
            Err(Failure::Future) => Err(self.future(revision).await),
            Err(Failure::Other(e)) => Err(e),
        }
    }

    /// etcd's compaction revision: the oldest readable revision, bisected between what this
    /// process last knew and now (0 when nothing was ever compacted).
    async fn find_compacted(&self) -> Result<Revision> {
        let mut low = self.revisions.compacted.load(Ordering::SeqCst).max(1);
        let mut high = self.fresh_revision().await?.max(low);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.readable(middle).await? {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        Ok(if low <= 1 { 0 } else { low })
    }

    /// The `Compacted` error for a request at `requested`, with etcd's compaction revision.
    async fn compacted(&self, requested: Revision) -> Error {
        match self.find_compacted().await {
            Ok(compacted) => {
                self.revisions.saw_compaction(compacted);
                Error::Compacted {
                    requested,
                    compacted,
                }
            }
            Err(e) => e,
        }
    }

    /// The `FutureRevision` error for a request at `requested`.
    async fn future(&self, requested: Revision) -> Error {
        // A count of one key, at the present: cannot itself be in the future.
        let count = Some(GetOptions::new().with_count_only());
        let current = match timed(
            "read revision",
            Retry::Read,
            self.range(self.probe_key(), count),
        )
        .await
        {
            Ok(response) => {
                let revision = response.header().map_or(0, |h| h.revision());
                self.revisions.saw(revision);
                revision.max(0) as u64
            }
            Err(_) => self.current_revision(),
        };
        Error::FutureRevision { requested, current }
    }

    /// For failures of requests that name no revision, where neither mapping applies.
    fn settle(&self, failure: Failure, what: &str) -> Error {
        match failure {
            Failure::Other(e) => e,
            Failure::Compacted | Failure::Future => {
                Error::Backend(format!("etcd {what}: unexpected revision error"))
            }
        }
    }

    async fn txn(&self, what: &str, txn: Txn) -> Result<TxnResponse> {
        let kv = self.kv_client();
        let send = || {
            let (mut kv, txn) = (kv.clone(), txn.clone());
            async move { kv.txn(txn).await }
        };
        let response = timed(what, Retry::Write, send)
            .await
            .map_err(|f| self.settle(f, what))?;
        self.revisions
            .saw(response.header().map_or(0, |h| h.revision()));
        Ok(response)
    }

    /// The key value a failed transaction's `else` branch read, if the key exists.
    fn read_back(&self, response: &TxnResponse) -> Result<Option<KeyValue>> {
        for op in response.op_responses() {
            if let TxnOpResponse::Get(get) = op {
                return get.kvs().first().map(|kv| self.kv(kv)).transpose();
            }
        }
        Err(Error::Backend(
            "etcd transaction answered without its read".into(),
        ))
    }

    fn txn_revision(response: &TxnResponse) -> Revision {
        response.header().map_or(0, |h| h.revision()).max(0) as u64
    }

    /// The watch itself, from `start` (inclusive), with the range of `prefix`.
    async fn open_watch(&self, prefix: &str, start: Revision) -> Result<etcd_client::WatchStream> {
        let key = self.etcd_key(prefix);
        let options = WatchOptions::new()
            .with_range(prefix_end(&key))
            .with_start_revision(revision_arg(start)?)
            .with_prev_key()
            .with_progress_notify();
        let start = range_start(key);
        let client = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_RESPONSE);
        let open = || {
            let (mut client, start, options) = (client.clone(), start.clone(), options.clone());
            async move { client.watch(start, Some(options)).await }
        };
        let mut stream = timed("watch", Retry::Read, open)
            .await
            .map_err(|f| self.settle(f, "watch"))?;
        // The first message confirms the watch was created.
        let created = match tokio::time::timeout(REQUEST_TIMEOUT, stream.message()).await {
            Ok(Ok(Some(created))) => created,
            Ok(Ok(None)) => return Err(Error::Backend("etcd closed the watch at once".into())),
            Ok(Err(e)) => return Err(failed("watch", &e)),
            Err(_) => {
                return Err(backend(
                    "watch",
                    format!("no answer in {REQUEST_TIMEOUT:?}"),
                ));
            }
        };
        if !created.created() {
            return Err(Error::Backend(format!(
                "etcd did not create the watch: {}",
                created.cancel_reason()
            )));
        }
        self.revisions
            .saw(created.header().map_or(0, |h| h.revision()));
        Ok(stream)
    }

    fn event(&self, event: &etcd_client::Event) -> Result<WatchEvent> {
        let kv = event
            .kv()
            .ok_or_else(|| Error::Backend("etcd sent an event without a key".into()))?;
        let prev = event.prev_kv().map(|kv| self.kv(kv)).transpose()?;
        Ok(match event.event_type() {
            EventType::Put => WatchEvent {
                kind: EventKind::Put,
                kv: self.kv(kv)?,
                prev,
            },
            EventType::Delete => {
                // etcd's delete event has only the key and the delete's revision; the trait's
                // carries the last value, which the previous key value has.
                let gone = KeyValue {
                    key: self.store_key(kv.key())?,
                    value: prev.as_ref().map(|p| p.value.clone()).unwrap_or_default(),
                    create_revision: prev.as_ref().map_or(0, |p| p.create_revision),
                    mod_revision: kv.mod_revision().max(0) as u64,
                };
                WatchEvent {
                    kind: EventKind::Delete,
                    kv: gone,
                    prev,
                }
            }
        })
    }
}

fn tls_options(tls: &EtcdTls) -> Result<TlsOptions> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| Error::Backend(format!("reading {}: {e}", path.display())))
    };
    let mut options = TlsOptions::new();
    if let Some(ca) = &tls.ca_file {
        options = options.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            options = options.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        (None, None) => {}
        _ => {
            return Err(Error::Backend(
                "an etcd client certificate needs both the certificate and the key file".into(),
            ));
        }
    }
    Ok(options)
}

/// Refreshes the current revision every few seconds while any handle to the store lives.
fn spawn_refresher(client: Client, key: Vec<u8>, revisions: Weak<Revisions>) {
    tokio::spawn(async move {
        let mut kv = client.kv_client();
        let mut tick = tokio::time::interval(REFRESH_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(revisions) = revisions.upgrade() else {
                return;
            };
            let read = kv.get(key.clone(), Some(GetOptions::new().with_count_only()));
            match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
                Ok(Ok(response)) => revisions.saw(response.header().map_or(0, |h| h.revision())),
                Ok(Err(e)) => tracing::debug!("refreshing the etcd revision: {e}"),
                Err(_) => tracing::debug!("refreshing the etcd revision: no answer"),
            }
        }
    });
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let response = timed("get", Retry::Read, self.range(self.etcd_key(key), None))
            .await
            .map_err(|f| self.settle(f, "get"))?;
        self.revisions
            .saw(response.header().map_or(0, |h| h.revision()));
        response.kvs().first().map(|kv| self.kv(kv)).transpose()
    }

    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        let prefix = self.etcd_key(&options.prefix);
        let start = match &options.start_after {
            Some(after) => {
                let mut after = self.etcd_key(after);
                after.push(0);
                after.max(prefix.clone())
            }
            None => range_start(prefix.clone()),
        };
        let mut get = GetOptions::new().with_range(prefix_end(&prefix));
        let requested = options.revision.filter(|r| *r != 0);
        if let Some(revision) = requested {
            get = get.with_revision(revision_arg(revision)?);
        }
        if let Some(limit) = options.limit.filter(|l| *l > 0) {
            get = get.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let listed = timed("list", Retry::Read, self.range(start, Some(get)));
        let response = match listed.await {
            Ok(response) => response,
            Err(Failure::Compacted) => {
                return Err(self.compacted(requested.unwrap_or(0)).await);
            }
            Err(Failure::Future) => return Err(self.future(requested.unwrap_or(0)).await),
            Err(Failure::Other(e)) => return Err(e),
        };
        let header = response.header().map_or(0, |h| h.revision());
        self.revisions.saw(header);
        let items = response
            .kvs()
            .iter()
            .map(|kv| self.kv(kv))
            .collect::<Result<Vec<_>>>()?;
        Ok(ListPage {
            items,
            revision: requested.unwrap_or(header.max(0) as u64),
            more: response.more(),
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let etcd_key = self.etcd_key(key);
        let txn = Txn::new()
            .when([Compare::create_revision(
                etcd_key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(etcd_key.clone(), value.to_vec(), None)])
            .or_else([TxnOp::get(etcd_key, None)]);
        let response = self.txn("create", txn).await?;
        if response.succeeded() {
            let revision = Self::txn_revision(&response);
            return Ok(KeyValue {
                key: key.to_owned(),
                value,
                create_revision: revision,
                mod_revision: revision,
            });
        }
        match self.read_back(&response)? {
            Some(current) => Err(Error::AlreadyExists {
                key: key.to_owned(),
                current,
            }),
            // Deleted again between the comparison and... cannot happen within one txn.
            None => Err(Error::Backend(format!(
                "etcd refused to create {key} but has no value for it"
            ))),
        }
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        let etcd_key = self.etcd_key(key);
        // etcd compares a missing key as revision 0, so "exists" is checked explicitly: an
        // update must never create.
        let txn = Txn::new()
            .when([
                Compare::create_revision(etcd_key.clone(), CompareOp::Greater, 0),
                Compare::mod_revision(etcd_key.clone(), CompareOp::Equal, revision_arg(expected)?),
            ])
            .and_then([TxnOp::put(
                etcd_key.clone(),
                value.to_vec(),
                Some(PutOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(etcd_key, None)]);
        let response = self.txn("update", txn).await?;
        if response.succeeded() {
            let revision = Self::txn_revision(&response);
            let create_revision = response
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Put(put) => put.prev_key().map(|kv| kv.create_revision()),
                    _ => None,
                })
                .map_or(revision, |r| r.max(0) as u64);
            return Ok(KeyValue {
                key: key.to_owned(),
                value,
                create_revision,
                mod_revision: revision,
            });
        }
        match self.read_back(&response)? {
            Some(current) => Err(Error::Conflict {
                key: key.to_owned(),
                expected,
                current,
            }),
            None => Err(Error::NotFound(key.to_owned())),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        let etcd_key = self.etcd_key(key);
        let mut when = vec![Compare::create_revision(
            etcd_key.clone(),
            CompareOp::Greater,
            0,
        )];
        if let Some(expected) = expected {
            when.push(Compare::mod_revision(
                etcd_key.clone(),
                CompareOp::Equal,
                revision_arg(expected)?,
            ));
        }
        let txn = Txn::new()
            .when(when)
            .and_then([TxnOp::delete(
                etcd_key.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(etcd_key, None)]);
        let response = self.txn("delete", txn).await?;
        if response.succeeded() {
            for op in response.op_responses() {
                if let TxnOpResponse::Delete(delete) = op
                    && let Some(last) = delete.prev_kvs().first()
                {
                    return self.kv(last);
                }
            }
            return Err(Error::Backend(format!(
                "etcd deleted {key} without its last value"
            )));
        }
        match (self.read_back(&response)?, expected) {
            (Some(current), Some(expected)) => Err(Error::Conflict {
                key: key.to_owned(),
                expected,
                current,
            }),
            _ => Err(Error::NotFound(key.to_owned())),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        // etcd would wait for a future start revision and report compaction only on the
        // stream; the trait wants both as the answer to `watch` itself. Reading at `after`
        // fails exactly when the embedded store's watch would (after < compaction revision).
        if !self.readable(after.max(1)).await? {
            return Err(self.compacted(after).await);
        }
        let mut stream = self.open_watch(prefix, after + 1).await?;
        let store = self.clone();
        let prefix = prefix.to_owned();
        Ok(Box::pin(async_stream::stream! {
            let mut last = after;
            let mut retries = 0;
            loop {
                let message = match stream.message().await {
                    Ok(Some(message)) => message,
                    Ok(None) | Err(_) if retries < WATCH_RETRIES => {
                        // The connection broke (or etcd closed the stream): watch again from
                        // the last revision delivered, so nothing is lost or repeated.
                        retries += 1;
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(retries))).await;
                        match store.open_watch(&prefix, last + 1).await {
                            Ok(again) => stream = again,
                            Err(e) => tracing::debug!("re-establishing an etcd watch: {e}"),
                        }
                        continue;
                    }
                    Ok(None) => {
                        yield Err(Error::Backend("etcd ended the watch".into()));
                        return;
                    }
                    Err(e) => {
                        yield Err(failed("watch", &e));
                        return;
                    }
                };
                retries = 0;
                store.revisions.saw(message.header().map_or(0, |h| h.revision()));
                if message.compact_revision() > 0 {
                    let compacted = message.compact_revision() as u64;
                    store.revisions.saw_compaction(compacted);
                    yield Err(Error::Compacted { requested: last, compacted });
                    return;
                }
                if message.canceled() {
                    yield Err(Error::Backend(format!(
                        "etcd cancelled the watch: {}",
                        message.cancel_reason()
                    )));
                    return;
                }
                // A message without events is a progress notification: the header revision,
                // recorded above, is all it says.
                for event in message.events() {
                    match store.event(event) {
                        Ok(event) => {
                            if event.kv.mod_revision <= last {
                                continue;
                            }
                            last = event.kv.mod_revision;
                            yield Ok(event);
                        }
                        Err(e) => {
                            yield Err(e);
                            return;
                        }
                    }
                }
            }
        }))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let current = self.fresh_revision().await?;
        let target = revision.min(current);
        if target <= self.compacted_revision() || target <= 1 {
            return Ok(());
        }
        let target_arg = revision_arg(target)?;
        // Compacting again to the same revision changes nothing: safe to send again.
        let kv = self.kv_client();
        let send = || {
            let mut kv = kv.clone();
            async move { kv.compact(target_arg, None).await }
        };
        match timed("compact", Retry::Read, send).await {
            Ok(response) => {
                self.revisions
                    .saw(response.header().map_or(0, |h| h.revision()));
                self.revisions.saw_compaction(target);
                Ok(())
            }
            // Someone compacted as far already: as with the embedded store, a no-op.
            Err(Failure::Compacted) => {
                let compacted = self.find_compacted().await?;
                self.revisions.saw_compaction(compacted);
                Ok(())
            }
            Err(failure) => Err(self.settle(failure, "compact")),
        }
    }

    async fn check(&self) -> Result<()> {
        // A linearizable read: etcd answers it only with a quorum behind its leader.
        let count = Some(GetOptions::new().with_count_only());
        let read = timed(
            "health check",
            Retry::Read,
            self.range(self.probe_key(), count),
        );
        match tokio::time::timeout(CHECK_TIMEOUT, read).await {
            Ok(Ok(response)) => {
                self.revisions
                    .saw(response.header().map_or(0, |h| h.revision()));
                Ok(())
            }
            Ok(Err(failure)) => Err(self.settle(failure, "health check")),
            Err(_) => Err(Error::Backend(format!(
                "etcd is unavailable (health check: no answer in {CHECK_TIMEOUT:?})"
            ))),
        }
    }

    fn current_revision(&self) -> Revision {
        self.revisions.current.load(Ordering::SeqCst)
    }

    fn compacted_revision(&self) -> Revision {
        self.revisions.compacted.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b""), b"\0");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }
}
