//! Metering's checkpoint: the last time it had looked at every pod and node, kept in the
//! store as the renew time of the Lease `kube-system/keg-metering`. When metering starts,
//! the previous checkpoint is the best end it can give a pod or node that went while it was
//! not running: billed up to the last moment it was known to run (at most one checkpoint
//! interval short), never for the time metering was down.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

/// The Lease's namespace.
pub const NAMESPACE: &str = "kube-system";
/// The Lease's name.
pub const NAME: &str = "keg-metering";

/// The checkpoint Lease.
pub struct Checkpoint {
    leases: Api<Lease>,
    exists: bool,
}

impl Checkpoint {
    /// Reads the previous checkpoint (none the first time metering runs).
    pub async fn open(client: Client) -> kube::Result<(Checkpoint, Option<Timestamp>)> {
        let leases: Api<Lease> = Api::namespaced(client, NAMESPACE);
        let lease = leases.get_opt(NAME).await?;
        let previous = lease
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| t.0);
        let exists = lease.is_some();
        Ok((Checkpoint { leases, exists }, previous))
    }

    /// Records `now` as the checkpoint.
    pub async fn write(&mut self, now: Timestamp) -> kube::Result<()> {
        if !self.exists {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(NAME.into()),
                    namespace: Some(NAMESPACE.into()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(NAME.into()),
                    renew_time: Some(MicroTime(now)),
                    ..LeaseSpec::default()
                }),
            };
            match self.leases.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.exists = true;
                    return Ok(());
                }
                // Made meanwhile (another start-up): renew it below.
                Err(kube::Error::Api(s)) if s.code == 409 => self.exists = true,
                Err(e) => return Err(e),
            }
        }
        let patch = json!({"spec": {"renewTime": MicroTime(now)}});
        self.leases
            .patch(NAME, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
    }
}
