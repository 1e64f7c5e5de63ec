//! `keg server` with kube-rs as the client: watches and controllers, durability across
//! `kill -9` and restarts, and what bad input gets back.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::Server;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};

async fn client(server: &Server) -> Client {
    let token = server.token();
    client_with_token(server, Some(&token)).await
}

async fn client_with_token(server: &Server, token: Option<&str>) -> Client {
    // Two rustls backends are linked in (ring, and aws-lc-rs through oci-client); as the keg
    // binary does, choose ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let file = kube::config::Kubeconfig::read_from(server.kubeconfig()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .unwrap();
    config.auth_info.token = token.map(|t| t.to_owned().into());
    Client::try_from(config).unwrap()
}

async fn namespace(client: &Client, name: &str) {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

fn config_map(name: &str, data: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_owned(), data.to_owned())])),
        ..Default::default()
    }
}

async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_reflector_sees_create_update_and_delete_and_a_controller_reconciles() {
    let server = Server::start();
    let client = client(&server).await;
    namespace(&client, "watched").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "watched");

    let (reader, writer) = reflector::store();
    let stream = watcher(api.clone(), watcher::Config::default())
        .reflect(writer)
        .applied_objects();
    tokio::spawn(stream.for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();

    api.create(&PostParams::default(), &config_map("one", "a"))
        .await
        .unwrap();
    eventually("the reflector to see the create", || {
        let seen = reader.state().iter().any(|c| c.name_any() == "one");
        async move { seen.then_some(()) }
    })
    .await;
    api.patch(
        "one",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"k": "b"}})),
    )
    .await
    .unwrap();
    eventually("the reflector to see the update", || {
        let seen = reader.state().iter().any(|c| {
            c.data
                .as_ref()
                .is_some_and(|d| d.get("k").is_some_and(|k| k == "b"))
        });
        async move { seen.then_some(()) }
    })
    .await;
    api.delete("one", &DeleteParams::default()).await.unwrap();
    eventually("the reflector to see the delete", || {
        let gone = !reader.state().iter().any(|c| c.name_any() == "one");
        async move { gone.then_some(()) }
    })
    .await;

    // A controller in the shape keg's own controllers take: it marks each object it reconciles.
    let reconciled = Arc::new(AtomicUsize::new(0));
    let context = Arc::new((api.clone(), reconciled.clone()));
    // (The namespace's kube-root-ca.crt is not this controller's business.)
    let mine = watcher::Config::default().fields("metadata.name!=kube-root-ca.crt");
    let controller = Controller::new(api.clone(), mine).run(
        |cm: Arc<ConfigMap>, ctx: Arc<(Api<ConfigMap>, Arc<AtomicUsize>)>| async move {
            if cm.annotations().get("reconciled").is_none() {
                let patch = serde_json::json!({"metadata": {"annotations": {"reconciled": "yes"}}});
                ctx.0
                    .patch(
                        &cm.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await?;
                ctx.1.fetch_add(1, Ordering::SeqCst);
            }
            Ok::<_, kube::Error>(Action::await_change())
        },
        |_, _, _| Action::requeue(Duration::from_secs(1)),
        context,
    );
    tokio::spawn(controller.for_each(|_| async {}));
    api.create(&PostParams::default(), &config_map("two", "x"))
        .await
        .unwrap();
    let annotated = eventually("the controller to reconcile", || {
        let api = api.clone();
        async move {
            api.get("two")
                .await
                .ok()
                .filter(|c| c.annotations().contains_key("reconciled"))
        }
    })
    .await;
    assert_eq!(annotated.annotations()["reconciled"], "yes");
    assert_eq!(reconciled.load(Ordering::SeqCst), 1);
}

fn rv(obj: &impl kube::Resource) -> u64 {
    obj.meta()
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn kill_9_during_a_burst_loses_no_acknowledged_create() {
    let mut server = Server::start();
    let client = client(&server).await;
    namespace(&client, "burst").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "burst");

    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<(String, u64)>::new()));
    let (for_burst, acks) = (api.clone(), acknowledged.clone());
    let creates = futures::stream::iter(0..1000).map(move |i| {
        let (api, acknowledged) = (for_burst.clone(), acks.clone());
        async move {
            if let Ok(cm) = api
                .create(
                    &PostParams::default(),
                    &config_map(&format!("cm-{i}"), "burst"),
                )
                .await
            {
                acknowledged.lock().unwrap().push((cm.name_any(), rv(&cm)));
            }
        }
    });
    let burst = tokio::spawn(creates.buffer_unordered(64).collect::<Vec<()>>());
    eventually("a third of the burst to be acknowledged", || {
        let n = acknowledged.lock().unwrap().len();
        async move { (n >= 300).then_some(()) }
    })
    .await;
    server.kill9();
    burst.await.unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 300 && acknowledged.len() < 1000,
        "the kill landed mid-burst ({})",
        acknowledged.len()
    );
    let last_seen = acknowledged.iter().map(|(_, rv)| *rv).max().unwrap();

    server.restart();
    let client = self::client(&server).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "burst");
    let stored = api.list(&ListParams::default()).await.unwrap();
    let names: std::collections::HashSet<String> =
        stored.items.iter().map(|c| c.name_any()).collect();
    for (name, _) in &acknowledged {
        assert!(
            names.contains(name),
            "{name} was acknowledged with 201 but is gone after kill -9"
        );
    }
    let after = api
        .create(&PostParams::default(), &config_map("after", "x"))
        .await
        .unwrap();
    assert!(
        rv(&after) > last_seen,
        "resourceVersions keep increasing across the crash"
    );

    // A watch resumed from the last version seen gets every create it did not see acknowledged.
    let unseen: std::collections::HashSet<String> = stored
        .items
        .iter()
        .filter(|c| rv(*c) > last_seen)
        .map(|c| c.name_any())
        .chain(["after".to_owned()])
        .collect();
    let params = WatchParams::default().timeout(5);
    let mut events = api
        .watch(&params, &last_seen.to_string())
        .await
        .unwrap()
        .boxed();
    let mut missing = unseen.clone();
    while !missing.is_empty() {
        match tokio::time::timeout(Duration::from_secs(10), events.try_next()).await {
            Ok(Ok(Some(WatchEvent::Added(cm)))) => {
                missing.remove(&cm.name_any());
            }
            Ok(Ok(Some(_))) => {}
            other => panic!(
                "watch ended with {} not delivered: {other:?}",
                missing.len()
            ),
        }
    }
}

#[tokio::test]
async fn a_restart_keeps_every_object_and_the_kubeconfig() {
    let mut server = Server::start();
    let client = client(&server).await;
    namespace(&client, "kept").await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kept");
    let before = api
        .create(&PostParams::default(), &config_map("settings", "v1"))
        .await
        .unwrap();
    server.stop();
    server.restart();
    let api: Api<ConfigMap> = Api::namespaced(self::client(&server).await, "kept");
    let after = api.get("settings").await.unwrap();
    assert_eq!(after.metadata.uid, before.metadata.uid);
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert_eq!(after.data, before.data);
}

#[tokio::test]
async fn bad_input_is_refused_with_a_status_and_changes_nothing() {
    let server = Server::start();
    let client = client(&server).await;
    namespace(&client, "bad").await;

    // Credentials: none, or a wrong token, get 401. Health and version answer requests
    // without credentials (system:public-info-viewer); a wrong token is a 401 everywhere, as
    // upstream's authenticator fails on an invalid token before anonymous access is tried.
    for token in [None, Some("not-the-token")] {
        let anonymous = client_with_token(&server, token).await;
        let err = Api::<Namespace>::all(anonymous.clone())
            .list(&ListParams::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, kube::Error::Api(s) if s.code == 401),
            "{err:?}"
        );
        let healthz = http::Request::get("/healthz").body(Vec::new()).unwrap();
        if token.is_none() {
            let version = anonymous.apiserver_version().await.unwrap();
            assert!(version.git_version.starts_with("v1.33"), "{version:?}");
            assert_eq!(anonymous.request_text(healthz).await.unwrap(), "ok");
        } else {
            let err = anonymous.request_text(healthz).await.unwrap_err();
            assert!(
                matches!(&err, kube::Error::Api(s) if s.code == 401),
                "{err:?}"
            );
        }
        // The streaming subresources, which take over the connection, check it first too.
        for sub in ["exec?command=true&stdout=true", "portforward"] {
            let request = http::Request::post(format!("/api/v1/namespaces/bad/pods/x/{sub}"))
                .body(Vec::new())
                .unwrap();
            let err = anonymous.request_text(request).await.unwrap_err();
            assert!(
                matches!(&err, kube::Error::Api(s) if s.code == 401),
                "{sub}: {err:?}"
            );
        }
    }
    let exec = http::Request::post("/api/v1/namespaces/bad/pods/x/exec?command=true&stdout=true")
        .body(Vec::new())
        .unwrap();
    let err = client.request_text(exec).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404 && s.message == r#"pods "x" not found"#),
        "{err:?}"
    );

    let post = |body: Vec<u8>, query: &str| {
        http::Request::post(format!("/api/v1/namespaces/bad/configmaps{query}"))
            .header("content-type", "application/json")
            .body(body)
            .unwrap()
    };
    let status = |err: kube::Error| match err {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("not a Status: {other:?}"),
    };
    let (code, reason, _) = status(
        client
            .request_text(post(b"{not json".to_vec(), ""))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));

    let unknown =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"bogus":1}"#.to_vec();
    let (code, _, message) = status(
        client
            .request_text(post(unknown, "?fieldValidation=Strict"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);
    assert!(message.contains("unknown field \"bogus\""), "{message}");

    let huge = serde_json::to_vec(&config_map("huge", &"x".repeat(1_600_000))).unwrap();
    let (code, _, _) = status(client.request_text(post(huge, "")).await.unwrap_err());
    assert_eq!(code, 413);

    // Every namespace holds the cluster CA (kube-root-ca.crt); nothing else may be there.
    let stored = Api::<ConfigMap>::namespaced(client.clone(), "bad")
        .list(&ListParams::default().fields("metadata.name!=kube-root-ca.crt"))
        .await
        .unwrap();
    assert!(
        stored.items.is_empty(),
        "refused writes stored something: {:?}",
        stored.items
    );
}

#[tokio::test]
async fn a_watch_from_a_compacted_version_gets_410_and_kube_rs_relists() {
    let server = Server::start_with(&["--compaction-interval", "1"]);
    let client = client(&server).await;
    namespace(&client, "quiet").await;
    namespace(&client, "busy").await;
    let quiet: Api<ConfigMap> = Api::namespaced(client.clone(), "quiet");
    let busy: Api<ConfigMap> = Api::namespaced(client.clone(), "busy");
    let first = quiet
        .create(&PostParams::default(), &config_map("first", "x"))
        .await
        .unwrap();

    // A kube-rs watcher on the quiet namespace whose watches end every second, so it
    // re-watches from the version it last saw, which compaction soon removes.
    let inits = Arc::new(AtomicUsize::new(0));
    let (reader, writer) = reflector::store();
    let counted = inits.clone();
    let stream = watcher(quiet.clone(), watcher::Config::default().timeout(1))
        .reflect(writer)
        .for_each(move |event| {
            if let Ok(watcher::Event::Init) = event {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            async {}
        });
    tokio::spawn(stream);
    reader.wait_until_ready().await.unwrap();

    let mut n = 0;
    let expired = eventually("compaction to pass the first object's version", || {
        n += 1;
        let (busy, quiet, since) = (busy.clone(), quiet.clone(), rv(&first).to_string());
        async move {
            busy.create(
                &PostParams::default(),
                &config_map(&format!("noise-{n}"), "x"),
            )
            .await
            .unwrap();
            let mut events = quiet
                .watch(&WatchParams::default().timeout(1), &since)
                .await
                .ok()?
                .boxed();
            match events.try_next().await {
                Ok(Some(WatchEvent::Error(status))) => Some(status),
                _ => None,
            }
        }
    })
    .await;
    assert_eq!(
        (expired.code, expired.reason.as_str()),
        (410, "Expired"),
        "{expired:?}"
    );

    quiet
        .create(&PostParams::default(), &config_map("second", "y"))
        .await
        .unwrap();
    eventually("the watcher to relist and see the new object", || {
        let seen = reader.state().iter().any(|c| c.name_any() == "second")
            && inits.load(Ordering::SeqCst) >= 2;
        async move { seen.then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn metadata_requests_apply_creates_and_deletes_answer_as_upstream_shapes_them() {
    use k8s_openapi::api::core::v1::{Pod, Service};
    let server = Server::start();
    let client = client(&server).await;
    namespace(&client, "shapes").await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "shapes");

    // A server-side apply of an object that does not exist creates it (201), as upstream.
    let applied = maps
        .patch(
            "applied",
            &PatchParams::apply("shapes-test"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "applied", "labels": {"tier": "one"}},
                "data": {"k": "v"},
            })),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["k"], "v");
    assert!(!applied.metadata.uid.unwrap_or_default().is_empty());

    // Metadata-only reads, patches and watches get PartialObjectMetadata back.
    let meta = maps.get_metadata("applied").await.unwrap();
    assert_eq!(
        meta.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );
    assert_eq!(meta.labels()["tier"], "one");
    let list = maps
        .list_metadata(&ListParams::default().fields("metadata.name!=kube-root-ca.crt"))
        .await
        .unwrap();
    assert_eq!(
        list.items.iter().map(|m| m.name_any()).collect::<Vec<_>>(),
        ["applied"]
    );
    let (watched_tx, mut watched_rx) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(
        // kube-rs makes an Api of PartialObjectMeta ask for metadata only (its metadata watcher).
        watcher(
            Api::<kube::core::PartialObjectMeta<ConfigMap>>::namespaced(client.clone(), "shapes"),
            watcher::Config::default(),
        )
        .applied_objects()
        .try_for_each(move |m| {
            let _ = watched_tx.send(m);
            async { Ok(()) }
        }),
    );
    let patched = maps
        .patch_metadata(
            "applied",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {"tier": "two"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );
    assert_eq!(patched.labels()["tier"], "two");
    let seen = eventually("the metadata watcher to see the patch", || {
        let next = watched_rx.try_recv().ok();
        async move { next.filter(|m| m.labels().get("tier").map(String::as_str) == Some("two")) }
    })
    .await;
    assert_eq!(seen.name_any(), "applied");
    watch.abort();

    // DELETE answers with the deleted object for the kinds upstream does (pods, services) and
    // with a Status of Success for the others (config maps).
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shapes");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let deleted = pods.delete("p", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        deleted.left().map(|p| p.name_any()).as_deref(),
        Some("p"),
        "a pod DELETE answers with the pod"
    );
    let services: Api<Service> = Api::namespaced(client.clone(), "shapes");
    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80}]},
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let deleted = services
        .delete("s", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(deleted.left().map(|s| s.name_any()).as_deref(), Some("s"));
    let deleted = maps
        .delete("applied", &DeleteParams::default())
        .await
        .unwrap();
    let status = deleted
        .right()
        .expect("a config map DELETE answers a Status");
    assert_eq!(
        status.status,
        Some(kube::core::response::StatusSummary::Success)
    );
}
