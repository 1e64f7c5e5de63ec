//! The Store contract, checked against the embedded backend (on a file and in memory) and
//! against etcd (a real `etcd` process per test, started by `keg_store::local_etcd`).
//!
//! etcd's first revision is 1, not 0, so the contract tests count revisions from the store's
//! revision when the test starts (`base`), not from 0.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use keg_store::etcd_pki::EtcdPki;
use keg_store::local_etcd::LocalEtcd;
use keg_store::{Error, EtcdStore, EventKind, ListOptions, RedbStore, Store, WatchEvent};

async fn on_file() -> (tempfile::TempDir, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("state.redb"))
        .await
        .unwrap();
    (dir, store)
}

/// A fresh etcd of its own and a store on it under `prefix`; `None` where etcd is missing
/// (and not in CI: there `LocalEtcd::start` fails instead).
async fn on_etcd(prefix: &str) -> Option<(LocalEtcd, EtcdStore)> {
    let etcd = LocalEtcd::start()?;
    let store = EtcdStore::connect(&[etcd.endpoint()], prefix, None)
        .await
        .unwrap_or_else(|e| panic!("connecting to etcd: {e}\n{}", etcd.log()));
    Some((etcd, store))
}

fn b(s: &str) -> Bytes {
    Bytes::from(s.to_owned())
}

fn keys(page: &keg_store::ListPage) -> Vec<&str> {
    page.items.iter().map(|kv| kv.key.as_str()).collect()
}

async fn next(stream: &mut keg_store::WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event")
        .expect("open")
        .unwrap()
}

macro_rules! every_backend {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $name() { super::$name(&keg_store::RedbStore::in_memory()).await; })*
        }
        mod file {
            $(#[tokio::test] async fn $name() { let (_dir, store) = super::on_file().await; super::$name(&store).await; })*
        }
        mod etcd {
            $(#[tokio::test] async fn $name() {
                // A prefix, so the mapping of keys to etcd keys is exercised as well.
                let Some((_etcd, store)) = super::on_etcd("/keg-test").await else { return };
                super::$name(&store).await;
            })*
        }
    };
}

every_backend!(
    writes_advance_one_global_revision,
    create_refuses_existing_keys,
    update_and_delete_compare_and_swap,
    list_pages_by_prefix_in_key_order,
    list_at_a_past_revision_sees_that_state,
    watch_replays_history_then_follows_live_changes,
    watch_from_a_compacted_revision_fails,
    compaction_keeps_current_values,
    a_lagging_watcher_catches_up_without_gaps,
    paging_stays_at_the_first_pages_revision,
    compaction_expires_past_lists_and_watches,
);

async fn writes_advance_one_global_revision<S: Store>(store: &S) {
    let base = store.current_revision();
    let a = store.create("/a", b("1")).await.unwrap();
    let bkv = store.create("/b", b("1")).await.unwrap();
    assert_eq!((a.create_revision, a.mod_revision), (base + 1, base + 1));
    assert_eq!(
        (bkv.create_revision, bkv.mod_revision),
        (base + 2, base + 2)
    );
    let a2 = store.update("/a", b("2"), base + 1).await.unwrap();
    assert_eq!((a2.create_revision, a2.mod_revision), (base + 1, base + 3));
    assert_eq!(store.current_revision(), base + 3);
    assert_eq!(store.get("/a").await.unwrap().unwrap().value, b("2"));
    assert_eq!(store.get("/missing").await.unwrap(), None);
}

async fn create_refuses_existing_keys<S: Store>(store: &S) {
    let base = store.current_revision();
    store.create("/a", b("1")).await.unwrap();
    match store.create("/a", b("2")).await {
        Err(Error::AlreadyExists { key, current }) => {
            assert_eq!(key, "/a");
            assert_eq!(current.value, b("1"));
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        store.current_revision(),
        base + 1,
        "a refused write takes no revision"
    );
}

async fn update_and_delete_compare_and_swap<S: Store>(store: &S) {
    let a = store.create("/a", b("1")).await.unwrap();
    let first = a.mod_revision;
    let a = store.update("/a", b("2"), a.mod_revision).await.unwrap();
    match store.update("/a", b("3"), first).await {
        Err(Error::Conflict {
            expected, current, ..
        }) => {
            assert_eq!(expected, first);
            assert_eq!(current.mod_revision, a.mod_revision);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(matches!(
        store.delete("/a", Some(first)).await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        store.update("/nope", b("x"), first).await,
        Err(Error::NotFound(_))
    ));
    // Revision 0 is what etcd compares a missing key as: an update must still not create it.
    assert!(matches!(
        store.update("/nope", b("x"), 0).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(store.get("/nope").await.unwrap(), None);
    let last = store.delete("/a", Some(a.mod_revision)).await.unwrap();
    assert_eq!(last.value, b("2"));
    assert_eq!(
        last.mod_revision, a.mod_revision,
        "the last value as it was"
    );
    assert!(matches!(
        store.delete("/a", None).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.delete("/a", Some(a.mod_revision)).await,
        Err(Error::NotFound(_))
    ));
    // A re-created key starts a new life.
    let again = store.create("/a", b("new")).await.unwrap();
    assert_eq!(again.create_revision, again.mod_revision);
    assert!(again.create_revision > a.mod_revision);
    let updated = store
        .update("/a", b("newer"), again.mod_revision)
        .await
        .unwrap();
    assert_eq!(updated.create_revision, again.create_revision);
}

async fn list_pages_by_prefix_in_key_order<S: Store>(store: &S) {
    let base = store.current_revision();
    for key in [
        "/pods/ns1/c",
        "/pods/ns1/a",
        "/pods/ns2/x",
        "/pods/ns1/b",
        "/podsx/y",
        "/services/s",
    ] {
        store.create(key, b(key)).await.unwrap();
    }
    let all = store
        .list(ListOptions {
            prefix: "/pods/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        keys(&all),
        ["/pods/ns1/a", "/pods/ns1/b", "/pods/ns1/c", "/pods/ns2/x"]
    );
    assert!(!all.more);
    assert_eq!(all.revision, base + 6);

    let first = store
        .list(ListOptions {
            prefix: "/pods/".into(),
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(keys(&first), ["/pods/ns1/a", "/pods/ns1/b"]);
    assert!(first.more);
    let rest = store
        .list(ListOptions {
            prefix: "/pods/".into(),
            start_after: Some("/pods/ns1/b".into()),
            limit: Some(2),
            revision: Some(first.revision),
        })
        .await
        .unwrap();
    assert_eq!(keys(&rest), ["/pods/ns1/c", "/pods/ns2/x"]);
    assert!(!rest.more, "nothing follows the last key");
}

async fn list_at_a_past_revision_sees_that_state<S: Store>(store: &S) {
    let base = store.current_revision();
    store.create("/k/a", b("a1")).await.unwrap(); // 1
    store.create("/k/b", b("b1")).await.unwrap(); // 2
    let snapshot = store.current_revision();
    store.update("/k/a", b("a2"), base + 1).await.unwrap(); // 3
    store.delete("/k/b", None).await.unwrap(); // 4
    store.create("/k/c", b("c1")).await.unwrap(); // 5
    store.create("/k/0", b("01")).await.unwrap(); // 6

    let then = store
        .list(ListOptions {
            prefix: "/k/".into(),
            revision: Some(snapshot),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(keys(&then), ["/k/a", "/k/b"]);
    assert_eq!(then.items[0].value, b("a1"));
    assert_eq!(then.items[0].mod_revision, base + 1);
    assert_eq!(then.revision, snapshot);

    // Paging through the past is consistent too.
    let page = store
        .list(ListOptions {
            prefix: "/k/".into(),
            revision: Some(snapshot),
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(keys(&page), ["/k/a"]);
    assert!(page.more);

    let now = store
        .list(ListOptions {
            prefix: "/k/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(keys(&now), ["/k/0", "/k/a", "/k/c"]);

    let future = store
        .list(ListOptions {
            prefix: "/k/".into(),
            revision: Some(base + 99),
            ..Default::default()
        })
        .await;
    match future {
        Err(Error::FutureRevision { requested, current }) => {
            assert_eq!((requested, current), (base + 99, base + 6));
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
}

async fn watch_replays_history_then_follows_live_changes<S: Store>(store: &S) {
    let base = store.current_revision();
    store.create("/w/a", b("1")).await.unwrap(); // 1
    store.create("/other", b("1")).await.unwrap(); // 2
    store.update("/w/a", b("2"), base + 1).await.unwrap(); // 3
    let mut stream = store.watch("/w/", base + 1).await.unwrap();
    let replayed = next(&mut stream).await;
    assert_eq!(
        (replayed.kind.clone(), replayed.kv.mod_revision),
        (EventKind::Put, base + 3)
    );
    assert_eq!(replayed.kv.create_revision, base + 1);
    assert_eq!(replayed.prev.unwrap().value, b("1"));

    store.create("/w/b", b("x")).await.unwrap(); // 4
    store.create("/zzz", b("x")).await.unwrap(); // 5: not under the prefix
    store.delete("/w/a", None).await.unwrap(); // 6
    let created = next(&mut stream).await;
    assert_eq!(
        (
            created.kind,
            created.kv.key.as_str(),
            created.kv.mod_revision
        ),
        (EventKind::Put, "/w/b", base + 4)
    );
    assert_eq!(created.prev, None);
    let deleted = next(&mut stream).await;
    assert_eq!(deleted.kind, EventKind::Delete);
    assert_eq!(
        (deleted.kv.key.as_str(), deleted.kv.mod_revision),
        ("/w/a", base + 6)
    );
    assert_eq!(deleted.kv.value, b("2"), "a delete carries the last value");
    assert_eq!(deleted.kv.create_revision, base + 1);
    assert_eq!(deleted.prev.unwrap().mod_revision, base + 3);

    assert!(matches!(
        store.watch("/w/", base + 99).await,
        Err(Error::FutureRevision { .. })
    ));
    // Watching from now sees only what follows.
    let mut from_now = store.watch("/w/", store.current_revision()).await.unwrap();
    store.create("/w/c", b("x")).await.unwrap(); // 7
    assert_eq!(next(&mut from_now).await.kv.mod_revision, base + 7);
}

async fn watch_from_a_compacted_revision_fails<S: Store>(store: &S) {
    let base = store.current_revision();
    for i in 0..5 {
        store.create(&format!("/c/{i}"), b("x")).await.unwrap();
    }
    store.compact(base + 4).await.unwrap();
    assert_eq!(store.compacted_revision(), base + 4);
    match store.watch("/c/", base + 2).await {
        Err(Error::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (base + 2, base + 4)),
        Err(e) => panic!("expected Compacted, got {e:?}"),
        Ok(_) => panic!("expected Compacted, got a watch"),
    }
    let past = store
        .list(ListOptions {
            prefix: "/c/".into(),
            revision: Some(base + 3),
            ..Default::default()
        })
        .await;
    assert!(matches!(past, Err(Error::Compacted { .. })));
    let mut stream = store.watch("/c/", base + 4).await.unwrap();
    assert_eq!(next(&mut stream).await.kv.mod_revision, base + 5);
}

async fn compaction_keeps_current_values<S: Store>(store: &S) {
    let base = store.current_revision();
    let kv = store.create("/x", b("1")).await.unwrap();
    store.update("/x", b("2"), kv.mod_revision).await.unwrap();
    store.create("/y", b("1")).await.unwrap();
    store.compact(store.current_revision()).await.unwrap();
    let all = store.list(ListOptions::default()).await.unwrap();
    assert_eq!(keys(&all), ["/x", "/y"]);
    assert_eq!(all.items[0].value, b("2"));
    // Compacting backwards is a no-op, not an error.
    store.compact(base + 1).await.unwrap();
    assert_eq!(store.compacted_revision(), base + 3);
    // And so is compacting past the present: it compacts to the present.
    store.compact(base + 99).await.unwrap();
    assert_eq!(store.compacted_revision(), base + 3);
}

async fn a_lagging_watcher_catches_up_without_gaps<S: Store + Clone>(store: &S) {
    let base = store.current_revision();
    let mut stream = store.watch("/lag/", base).await.unwrap();
    // More writes than the live buffer holds, before the watcher reads any of them.
    let total = 5000u64;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..total / 4 {
                    store
                        .create(&format!("/lag/{w}-{i}"), b("x"))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let mut seen = 0;
    let mut last = base;
    while seen < total {
        let event = next(&mut stream).await;
        assert!(
            event.kv.mod_revision > last,
            "revisions arrive in order, once each"
        );
        last = event.kv.mod_revision;
        seen += 1;
    }
    assert_eq!(last, base + total);
}

/// Pages after the first are read at the first page's revision, whatever was written since.
async fn paging_stays_at_the_first_pages_revision<S: Store>(store: &S) {
    for i in 0..5 {
        store.create(&format!("/p/{i}"), b("v1")).await.unwrap();
    }
    let first = store
        .list(ListOptions {
            prefix: "/p/".into(),
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(keys(&first), ["/p/0", "/p/1"]);
    assert!(first.more);
    // Changes behind, inside and ahead of the pages still to come.
    let two = store.get("/p/2").await.unwrap().unwrap();
    store
        .update("/p/2", b("v2"), two.mod_revision)
        .await
        .unwrap();
    store.delete("/p/3", None).await.unwrap();
    store.create("/p/5", b("v1")).await.unwrap();
    store.create("/p/00", b("v1")).await.unwrap();
    let mut seen = Vec::new();
    let mut after = first.items.last().map(|kv| kv.key.clone());
    loop {
        let page = store
            .list(ListOptions {
                prefix: "/p/".into(),
                start_after: after.clone(),
                limit: Some(2),
                revision: Some(first.revision),
            })
            .await
            .unwrap();
        assert_eq!(page.revision, first.revision);
        seen.extend(
            page.items
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone())),
        );
        after = page.items.last().map(|kv| kv.key.clone());
        if !page.more {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            ("/p/2".to_owned(), b("v1")),
            ("/p/3".to_owned(), b("v1")),
            ("/p/4".to_owned(), b("v1")),
        ]
    );
}

/// After a compaction, lists at older revisions and watches from them fail with `Compacted`
/// (the API's 410 Expired); at and after it they work.
async fn compaction_expires_past_lists_and_watches<S: Store>(store: &S) {
    let base = store.current_revision();
    for i in 0..4 {
        store.create(&format!("/e/{i}"), b("x")).await.unwrap();
    }
    let first = store
        .list(ListOptions {
            prefix: "/e/".into(),
            limit: Some(1),
            revision: Some(base + 2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(keys(&first), ["/e/0"]);
    store.compact(base + 3).await.unwrap();
    // The next page of a list begun before the compaction has expired.
    match store
        .list(ListOptions {
            prefix: "/e/".into(),
            start_after: Some("/e/0".into()),
            limit: Some(1),
            revision: Some(first.revision),
        })
        .await
    {
        Err(Error::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (base + 2, base + 3)),
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(matches!(
        store.watch("/e/", base).await,
        Err(Error::Compacted { .. })
    ));
    let at = store
        .list(ListOptions {
            prefix: "/e/".into(),
            revision: Some(base + 3),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(keys(&at), ["/e/0", "/e/1", "/e/2"]);
    let mut stream = store.watch("/e/", base + 3).await.unwrap();
    assert_eq!(next(&mut stream).await.kv.key, "/e/3");
}

#[tokio::test]
async fn reopened_file_keeps_data_and_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        let store = RedbStore::open(&path).await.unwrap();
        store.create("/a", b("1")).await.unwrap();
        store.create("/b", b("2")).await.unwrap();
        store.compact(1).await.unwrap();
        store.close().await;
    }
    let store = RedbStore::open(&path).await.unwrap();
    assert_eq!(store.current_revision(), 2);
    assert_eq!(store.compacted_revision(), 1);
    assert_eq!(store.create("/c", b("3")).await.unwrap().mod_revision, 3);
}

/// Kills a writer process with SIGKILL mid-stream; every write it acknowledged must be there.
#[test]
fn acknowledged_writes_survive_kill_9() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    if let Ok(path) = std::env::var("KEG_STORE_KILL_TEST_WRITER") {
        return write_until_killed(&path);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "acknowledged_writes_survive_kill_9",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KEG_STORE_KILL_TEST_WRITER", &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acknowledged = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(key) = line.strip_prefix("ACK ") {
            acknowledged.push(key.to_owned());
            if acknowledged.len() == 300 {
                nix_kill(child.id());
                break;
            }
        }
    }
    child.wait().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = RedbStore::open(&path).await.unwrap();
        for key in &acknowledged {
            assert!(
                store.get(key).await.unwrap().is_some(),
                "acknowledged {key} was lost"
            );
        }
        assert!(store.current_revision() >= acknowledged.len() as u64);
    });
}

fn nix_kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn write_until_killed(path: &str) {
    use std::io::Write;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = RedbStore::open(std::path::Path::new(path)).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for w in 0..8 {
            let (store, tx) = (store.clone(), tx.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("/k/{w}/{i}");
                    store
                        .create(&key, Bytes::from(vec![b'x'; 512]))
                        .await
                        .unwrap();
                    if tx.send(key).is_err() {
                        return;
                    }
                }
            });
        }
        let mut out = std::io::stdout().lock();
        while let Some(key) = rx.recv().await {
            writeln!(out, "ACK {key}").unwrap();
            out.flush().unwrap();
        }
    });
}

/// etcd with `--client-cert-auth`: a client with a certificate from the trusted CA reads and
/// writes; one without a certificate, or with one from another CA, is refused.
#[tokio::test]
async fn etcd_over_tls_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = EtcdPki::create(dir.path(), "etcd-ca").unwrap();
    let Some(etcd) = LocalEtcd::start_tls(&keg_store::local_etcd::ServerTls {
        peers: false,
        ..pki.member_tls()
    }) else {
        return;
    };
    let endpoints = [etcd.endpoint()];
    let tls = pki.client_tls();
    let store = EtcdStore::connect(&endpoints, "/tls", Some(tls))
        .await
        .unwrap_or_else(|e| panic!("connecting with a client certificate: {e}\n{}", etcd.log()));
    let kv = store.create("/a", b("secret")).await.unwrap();
    let got = store.get("/a").await.unwrap().unwrap();
    assert_eq!(
        (got.value, got.mod_revision),
        (b("secret"), kv.mod_revision)
    );

    let anonymous = keg_store::EtcdTls {
        ca_file: Some(pki.ca_file.clone()),
        ..Default::default()
    };
    let refused = EtcdStore::connect(&endpoints, "/tls", Some(anonymous)).await;
    assert!(
        matches!(refused, Err(Error::Backend(_))),
        "connected without a client certificate"
    );

    let other = EtcdPki::create(dir.path(), "other-ca").unwrap();
    let stranger = keg_store::EtcdTls {
        ca_file: Some(pki.ca_file.clone()),
        cert_file: Some(other.client_cert),
        key_file: Some(other.client_key),
    };
    let refused = EtcdStore::connect(&endpoints, "/tls", Some(stranger)).await;
    assert!(
        matches!(refused, Err(Error::Backend(_))),
        "connected with a certificate from another CA"
    );

    // Nor does a client that does not trust etcd's CA connect (no system roots).
    let untrusting = keg_store::EtcdTls {
        ca_file: Some(other.ca_file),
        cert_file: Some(pki.client_cert.clone()),
        key_file: Some(pki.client_key.clone()),
    };
    assert!(
        EtcdStore::connect(&endpoints, "/tls", Some(untrusting))
            .await
            .is_err()
    );
}

/// Two stores on one etcd under different prefixes see only their own keys; a store with
/// no prefix sees both, under the prefixes.
#[tokio::test]
async fn etcd_prefixes_keep_stores_apart() {
    let Some(etcd) = LocalEtcd::start() else {
        return;
    };
    let endpoints = [etcd.endpoint()];
    let a = EtcdStore::connect(&endpoints, "/keg-a/", None)
        .await
        .unwrap();
    let b_store = EtcdStore::connect(&endpoints, "/keg-b", None)
        .await
        .unwrap();
    let root = EtcdStore::connect(&endpoints, "", None).await.unwrap();
    assert_eq!(a.prefix(), "/keg-a");
    a.create("/registry/x", b("a")).await.unwrap();
    b_store.create("/registry/x", b("b")).await.unwrap();
    assert_eq!(a.get("/registry/x").await.unwrap().unwrap().value, b("a"));
    let listed = b_store.list(ListOptions::default()).await.unwrap();
    assert_eq!(keys(&listed), ["/registry/x"]);
    assert_eq!(listed.items[0].value, b("b"));
    let everything = root.list(ListOptions::default()).await.unwrap();
    assert_eq!(
        keys(&everything),
        ["/keg-a/registry/x", "/keg-b/registry/x"]
    );
    // Watches are confined to the prefix too.
    let mut watch = a.watch("/", 0).await.unwrap();
    assert_eq!(next(&mut watch).await.kv.value, b("a"));
    b_store.create("/registry/y", b("b")).await.unwrap();
    a.create("/registry/y", b("a")).await.unwrap();
    let event = next(&mut watch).await;
    assert_eq!(
        (event.kv.key.as_str(), event.kv.value),
        ("/registry/y", b("a"))
    );
}

/// A second process (another store on the same etcd) compacting history is seen: a watch
/// running from before it ends with `Compacted` once it reaches the compacted range, and
/// a new store learns the compaction revision when it connects.
#[tokio::test]
async fn etcd_compaction_by_another_client_is_seen() {
    let Some(etcd) = LocalEtcd::start() else {
        return;
    };
    let endpoints = [etcd.endpoint()];
    let one = EtcdStore::connect(&endpoints, "/s", None).await.unwrap();
    let base = one.current_revision();
    for i in 0..4 {
        one.create(&format!("/k/{i}"), b("x")).await.unwrap();
    }
    let other = EtcdStore::connect(&endpoints, "/s", None).await.unwrap();
    other.compact(base + 3).await.unwrap();
    let late = EtcdStore::connect(&endpoints, "/s", None).await.unwrap();
    assert_eq!(late.compacted_revision(), base + 3);
    // `one` does not know yet, but etcd tells it.
    match one.watch("/k/", base).await {
        Err(Error::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (base, base + 3)),
        Err(e) => panic!("expected Compacted, got {e:?}"),
        Ok(_) => panic!("expected Compacted, got a watch"),
    }
    assert_eq!(one.compacted_revision(), base + 3);
    // `current_revision` follows other clients' writes within the refresh interval.
    other.create("/k/9", b("x")).await.unwrap();
    let target = other.current_revision();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while one.current_revision() < target {
        assert!(
            std::time::Instant::now() < deadline,
            "current revision never refreshed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The etcd process a test started is gone once the test's `LocalEtcd` is dropped.
#[test]
fn a_local_etcd_is_killed_when_dropped() {
    let Some(etcd) = LocalEtcd::start() else {
        return;
    };
    let pid = etcd.pid();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(etcd);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

/// A list whose answer is larger than gRPC's usual 4 MiB message limit still arrives.
#[tokio::test]
async fn etcd_lists_larger_than_four_megabytes() {
    let Some((_etcd, store)) = on_etcd("/big").await else {
        return;
    };
    let value = Bytes::from(vec![b'x'; 1024 * 1024]);
    for i in 0..6 {
        store
            .create(&format!("/b/{i}"), value.clone())
            .await
            .unwrap();
    }
    let all = store
        .list(ListOptions {
            prefix: "/b/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 6);
    let mut watch = store.watch("/b/", 0).await.unwrap();
    for _ in 0..6 {
        assert_eq!(next(&mut watch).await.kv.value.len(), value.len());
    }
}

/// With no prefix at all, the whole keyspace is the store's: lists and watches of it work.
#[tokio::test]
async fn etcd_without_a_prefix() {
    let Some((_etcd, store)) = on_etcd("").await else {
        return;
    };
    let mut watch = store.watch("", store.current_revision()).await.unwrap();
    store.create("/registry/a", b("1")).await.unwrap();
    assert_eq!(next(&mut watch).await.kv.key, "/registry/a");
    let all = store.list(ListOptions::default()).await.unwrap();
    assert_eq!(keys(&all), ["/registry/a"]);
}

/// A watch outlives a crash and restart of etcd: it resumes from the last revision it
/// delivered, so the writes after the restart arrive once each and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_watch_resumes_after_etcd_restarts() {
    let Some((mut etcd, store)) = on_etcd("/r").await else {
        return;
    };
    let base = store.current_revision();
    let mut watch = store.watch("/w/", base).await.unwrap();
    store.create("/w/1", b("x")).await.unwrap();
    assert_eq!(next(&mut watch).await.kv.mod_revision, base + 1);
    tokio::task::block_in_place(|| etcd.restart());
    // The client reconnects on its own; the first write may need a retry while it does.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match store.create("/w/2", b("x")).await {
            Ok(_) => break,
            Err(Error::Backend(e)) if std::time::Instant::now() < deadline => {
                eprintln!("while etcd restarts: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("writing after the restart: {e}"),
        }
    }
    store.create("/w/3", b("x")).await.unwrap();
    let second = next(&mut watch).await;
    let third = next(&mut watch).await;
    assert_eq!(
        (second.kv.key.as_str(), third.kv.key.as_str()),
        ("/w/2", "/w/3")
    );
    assert_eq!(third.kv.mod_revision, second.kv.mod_revision + 1);
}
