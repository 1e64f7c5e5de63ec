//! The API server of these tests, in-process on a fresh data dir: on the embedded store, or
//! with `KEG_TEST_STORE=etcd` on a three-member etcd cluster of its own
//! (`keg_store::test_store`). keg-controllers' tests share it.
#![allow(dead_code)] // each test binary uses a different part

use keg_apiserver::{ApiServer, Config, StoreBackend, admission::Admission};
use keg_store::test_store::SuiteEtcd;

/// An opened API server with what it runs on; dropping it stops its etcd.
pub struct TestApi {
    /// The server.
    pub server: ApiServer,
    _etcd: Option<SuiteEtcd>,
    _dir: tempfile::TempDir,
}

impl TestApi {
    /// Opens a server with the standard admission on the store the suites run on.
    pub async fn open() -> TestApi {
        let dir = tempfile::tempdir().unwrap();
        // Starting etcd waits on its processes: off the runtime's threads.
        let etcd = tokio::task::spawn_blocking(SuiteEtcd::from_env)
            .await
            .unwrap();
        let mut config = Config::local(dir.path());
        if let Some(etcd) = &etcd {
            config.store = StoreBackend::Etcd {
                endpoints: etcd.endpoints(),
                prefix: "/keg-suite".into(),
                tls: None,
            };
        }
        let server = ApiServer::open(config, Admission::standard())
            .await
            .unwrap();
        TestApi {
            server,
            _etcd: etcd,
            _dir: dir,
        }
    }
}
