//! Metering's writes: a record is created once and closed once. Closing reads the record
//! fresh and replaces it at that resourceVersion, so an end already set (by an earlier pass
//! the cache has not caught up with) is never moved.

use std::collections::HashSet;

use jiff::Timestamp;
use keg_api::usage::{Compute, EndReason, Subject, UsageRecord, UsageRecordSpec};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};

pub(super) struct Writes {
    records: Api<UsageRecord>,
    /// Records created by this process that the cache may not show yet.
    created: HashSet<String>,
}

impl Writes {
    pub(super) fn new(client: Client) -> Writes {
        Writes {
            records: Api::all(client),
            created: HashSet::new(),
        }
    }

    /// Makes the stored record agree with `want`; false if a write failed.
    pub(super) async fn apply(
        &mut self,
        want: &UsageRecordSpec,
        existing: Option<&UsageRecordSpec>,
    ) -> bool {
        let name = want.object_name();
        let stored_open = match existing {
            Some(have) => {
                self.created.remove(&name);
                have.is_open()
            }
            None if self.created.contains(&name) => true,
            None => return self.create(want).await,
        };
        match (stored_open, want.end) {
            (true, Some(end)) => {
                let reason = want.end_reason.unwrap_or(EndReason::Removed);
                self.close(&name, end, reason).await
            }
            _ => true,
        }
    }

    async fn create(&mut self, want: &UsageRecordSpec) -> bool {
        let name = want.object_name();
        let billed = want.subject == Subject::Node || want.compute == Compute::Fargate;
        if billed && want.hourly_rate == 0.0 {
            tracing::warn!(
                record = %name,
                "metering: no price for {} in {}; its time is recorded at $0 (add the price \
                 to a price file)",
                want.instance_type.as_deref().unwrap_or("Fargate"),
                want.region
            );
        }
        let mut record = UsageRecord::new(&name, want.clone());
        record.metadata = ObjectMeta {
            name: Some(name.clone()),
            labels: Some(want.labels()),
            ..ObjectMeta::default()
        };
        match self.records.create(&PostParams::default(), &record).await {
            Ok(_) => {
                tracing::info!(record = %name, target = %want.name, "metering: opened");
                self.created.insert(name);
                true
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.created.insert(name.clone());
                match want.end {
                    Some(end) => {
                        let reason = want.end_reason.unwrap_or(EndReason::Removed);
                        self.close(&name, end, reason).await
                    }
                    None => true,
                }
            }
            Err(e) => {
                tracing::warn!(record = %name, "metering: creating the record: {e}");
                false
            }
        }
    }

    /// Sets the record's end unless it has one; false if that could not be written.
    pub(super) async fn close(&mut self, name: &str, end: Timestamp, reason: EndReason) -> bool {
        let mut record = match self.records.get_opt(name).await {
            Ok(Some(record)) => record,
            Ok(None) => return true,
            Err(e) => {
                tracing::warn!(record = %name, "metering: reading the record: {e}");
                return false;
            }
        };
        if record.spec.end.is_some() {
            return true;
        }
        record.spec.end = Some(end.max(record.spec.start));
        record.spec.end_reason = Some(reason);
        // The resourceVersion read above makes this a compare-and-swap.
        match self
            .records
            .replace(name, &PostParams::default(), &record)
            .await
        {
            Ok(_) => {
                tracing::info!(
                    record = %name,
                    target = %record.spec.name,
                    ?reason,
                    billed_seconds = record.spec.billed_seconds(end),
                    "metering: closed"
                );
                true
            }
            Err(e) => {
                tracing::debug!(record = %record.name_any(), "metering: closing the record: {e}");
                false
            }
        }
    }
}
