//! Leader election on a Lease against a real API server in-process: one candidate holds the
//! Lease at a time, another takes it once the holder stops renewing for the lease duration
//! (or at once when it releases it), and `run` starts and stops the leader's work.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use keg_controllers::leader::{self, Config, Elector};
use kube::Api;

async fn client() -> anyhow::Result<(kube::Client, common::TestApi)> {
    let api = common::TestApi::open().await;
    Ok((api.client(), api))
}

fn fast(identity: &str) -> Config {
    Config {
        lease_duration: Duration::from_millis(1500),
        renew_deadline: Duration::from_millis(1000),
        retry_period: Duration::from_millis(200),
        ..Config::new("test-lease", identity)
    }
}

async fn lease(client: &kube::Client) -> Lease {
    Api::<Lease>::namespaced(client.clone(), leader::NAMESPACE)
        .get("test-lease")
        .await
        .unwrap()
}

#[tokio::test]
async fn one_holder_at_a_time_and_takeover_after_the_lease_duration() -> anyhow::Result<()> {
    let (client, _api) = client().await?;
    let mut a = Elector::new(client.clone(), fast("a"));
    let mut b = Elector::new(client.clone(), fast("b"));
    assert!(
        a.try_acquire_or_renew().await?,
        "the first candidate creates it"
    );
    assert!(!b.try_acquire_or_renew().await?, "held and fresh");
    assert_eq!(b.holder(), Some("a"));
    let first = lease(&client).await.spec.unwrap();
    assert_eq!(first.holder_identity.as_deref(), Some("a"));
    assert_eq!(first.lease_duration_seconds, Some(1));
    assert_eq!(first.lease_transitions, Some(0));
    // Renewing moves renewTime only.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(a.try_acquire_or_renew().await?);
    let renewed = lease(&client).await.spec.unwrap();
    assert_eq!(renewed.acquire_time, first.acquire_time);
    assert!(renewed.renew_time > first.renew_time);
    assert_eq!(renewed.lease_transitions, Some(0));
    // a stops renewing: b takes over once it has seen the record unchanged for 1.5 s.
    let started = Instant::now();
    loop {
        if b.try_acquire_or_renew().await? {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no takeover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(1400));
    let taken = lease(&client).await.spec.unwrap();
    assert_eq!(taken.holder_identity.as_deref(), Some("b"));
    assert_eq!(taken.lease_transitions, Some(1));
    assert!(taken.acquire_time > first.acquire_time);
    // The old holder finds it deposed.
    assert!(!a.try_acquire_or_renew().await?);
    assert_eq!(a.holder(), Some("b"));
    assert!(!a.is_leader());
    // A released Lease is taken at once.
    b.release().await?;
    assert!(a.try_acquire_or_renew().await?);
    assert_eq!(
        lease(&client).await.spec.unwrap().lease_transitions,
        Some(2)
    );
    Ok(())
}

#[tokio::test]
async fn run_starts_and_stops_the_work_of_exactly_one_leader() -> anyhow::Result<()> {
    let (client, _api) = client().await?;
    let leading = Arc::new(AtomicI32::new(0));
    let spawn = |identity: &str| {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (started, stopped) = (leading.clone(), leading.clone());
        let task = tokio::spawn(leader::run(
            client.clone(),
            fast(identity),
            move || {
                started.fetch_add(1, Ordering::SeqCst);
            },
            move |()| {
                stopped.fetch_sub(1, Ordering::SeqCst);
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
        (stop_tx, task)
    };
    let (stop_a, task_a) = spawn("a");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (stop_b, task_b) = spawn("b");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(leading.load(Ordering::SeqCst), 1, "exactly one leads");
    assert_eq!(
        lease(&client)
            .await
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("a")
    );
    // a shuts down: its work stops, it releases the Lease, b leads within a retry period.
    let _ = stop_a.send(());
    task_a.await?;
    let started = Instant::now();
    while lease(&client)
        .await
        .spec
        .unwrap()
        .holder_identity
        .as_deref()
        != Some("b")
    {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "b did not take over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(leading.load(Ordering::SeqCst), 1);
    let _ = stop_b.send(());
    task_b.await?;
    assert_eq!(leading.load(Ordering::SeqCst), 0);
    Ok(())
}
