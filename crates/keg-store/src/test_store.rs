//! Which store the shared test suites run on. With `KEG_TEST_STORE=etcd` the fixtures of the
//! API server, kubectl and controller suites start a three-member [`LocalEtcd`] cluster for
//! each server they start and run it on that (the second pass of `scripts/test.sh`); unset or
//! `embedded`, they run on the embedded store.

use crate::local_etcd::LocalEtcd;

/// The environment variable that names the store of the test suites.
pub const VAR: &str = "KEG_TEST_STORE";

/// The members in a cluster of the suites: three, the smallest that survives losing one.
const MEMBERS: usize = 3;

/// A three-member local etcd cluster that one test server keeps its state in; dropping it
/// kills every member and removes its data.
pub struct SuiteEtcd {
    members: Vec<LocalEtcd>,
}

impl SuiteEtcd {
    /// A fresh cluster when `KEG_TEST_STORE=etcd`, `None` when the suites run on the embedded
    /// store. Panics on any other value (a misspelt store must not quietly test the embedded
    /// one) and where etcd is not installed: the pass asked for etcd, so it cannot skip.
    pub fn from_env() -> Option<SuiteEtcd> {
        match std::env::var(VAR).as_deref() {
            Err(_) | Ok("" | "embedded") => None,
            Ok("etcd") => {
                let members = LocalEtcd::start_cluster(MEMBERS).unwrap_or_else(|| {
                    panic!("{VAR}=etcd, but there is no etcd binary to run the suites on")
                });
                Some(SuiteEtcd { members })
            }
            Ok(other) => panic!("{VAR}={other}: expected `etcd` or `embedded`"),
        }
    }

    /// Every member's client endpoint, `127.0.0.1:PORT`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(LocalEtcd::endpoint).collect()
    }

    /// The cluster as `keg server --store` names it: `etcd://HOST:PORT,HOST:PORT,...`.
    pub fn store_flag(&self) -> String {
        format!("etcd://{}", self.endpoints().join(","))
    }

    /// Every member's log, for a failing test's message.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("--- etcd {} ---\n{}", m.endpoint(), m.log()))
            .collect()
    }
}
