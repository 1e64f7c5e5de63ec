//! keg's cost metrics, summed at each scrape from the `UsageRecord`s in the store with the
//! same billing rules `keg cost` uses. Records are never deleted by keg and an open record's
//! bill only grows, so these counters only go up, across restarts too.

use std::collections::BTreeMap;

use jiff::Timestamp;
use keg_api::usage::{Compute, Subject, UsageRecordSpec};

use super::exposition::{Exposition, Labels};
use crate::error::Result;
use crate::state::ApiState;

/// Sums of the records, by series.
#[derive(Default)]
struct Sums {
    vcpu_seconds: BTreeMap<Labels, f64>,
    gb_seconds: BTreeMap<Labels, f64>,
    instance_seconds: BTreeMap<Labels, f64>,
    dollars: BTreeMap<Labels, f64>,
    dollars_per_hour: BTreeMap<Labels, f64>,
}

impl Sums {
    fn add(&mut self, record: &UsageRecordSpec, now: Timestamp) {
        let billed = record.billed_seconds(now) as f64;
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let compute = match record.compute {
            Compute::Fargate => "fargate",
            Compute::Nodegroup => "nodegroup",
        };
        let where_: Labels = vec![
            ("namespace", text(&record.namespace)),
            ("profile", text(&record.profile)),
        ];
        match (record.subject, record.compute) {
            (Subject::Pod, Compute::Fargate) => {
                let vcpu = record.cpu_millis as f64 / 1000.0;
                let gb = record.memory_mib as f64 / 1024.0;
                *self.vcpu_seconds.entry(where_.clone()).or_default() += vcpu * billed;
                *self.gb_seconds.entry(where_.clone()).or_default() += gb * billed;
            }
            (Subject::Node, _) => {
                let labels = vec![
                    ("nodegroup", text(&record.node_group)),
                    ("instance_type", text(&record.instance_type)),
                ];
                *self.instance_seconds.entry(labels).or_default() += billed;
            }
            // A pod on a node group is paid for by its node.
            (Subject::Pod, Compute::Nodegroup) => return,
        }
        let mut labels = where_;
        labels.push(("nodegroup", text(&record.node_group)));
        labels.push(("compute", compute.to_owned()));
        *self.dollars.entry(labels.clone()).or_default() += record.cost(now);
        *self.dollars_per_hour.entry(labels).or_default() += record.run_rate();
    }
}

/// Writes the cost metrics as of `now`.
pub async fn write(state: &ApiState, now: Timestamp, out: &mut Exposition) -> Result<()> {
    let mut sums = Sums::default();
    // Before the definition is installed there are no records, and nothing to sum.
    if let Some(res) = state.registry.get("keg.dev", "v1", "usagerecords") {
        let page = state.objects.list(&res, None, None, None, None).await?;
        for item in page.items {
            match serde_json::from_value::<UsageRecordSpec>(item["spec"].clone()) {
                Ok(record) => sums.add(&record, now),
                Err(e) => tracing::debug!("metrics: skipping a malformed usage record: {e}"),
            }
        }
    }
    out.values(
        "keg_fargate_vcpu_seconds_total",
        "counter",
        "Billed Fargate vCPU-seconds (provisioned vCPUs times billed seconds), by namespace and \
         profile.",
        &sums.vcpu_seconds,
    );
    out.values(
        "keg_fargate_gb_seconds_total",
        "counter",
        "Billed Fargate GB-seconds (provisioned memory times billed seconds), by namespace and \
         profile.",
        &sums.gb_seconds,
    );
    out.values(
        "keg_nodegroup_instance_seconds_total",
        "counter",
        "Billed node-group instance-seconds, by node group and instance type.",
        &sums.instance_seconds,
    );
    out.values(
        "keg_cost_dollars_total",
        "counter",
        "USD billed so far, by namespace and profile (Fargate pods) or node group (nodes).",
        &sums.dollars,
    );
    out.values(
        "keg_cost_dollars_per_hour",
        "gauge",
        "USD an hour at the current run rate, by namespace and profile or node group.",
        &sums.dollars_per_hour,
    );
    Ok(())
}
