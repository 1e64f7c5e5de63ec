//! What `keg cost` shows: spend and hourly run rate by namespace, profile, node group or pod,
//! and beside them what the same pods would have cost on node groups alone and on Fargate
//! alone.
//!
//! - Node-group spend is the nodes' (every node is billed, busy or idle). The rows show it
//!   where it is billed, on the nodes, whose pods' records cost nothing of their own; the
//!   report's [`Report::allocation`] divides it among the pods by their requests
//!   ([`super::allocation`]), by the same keys, with each node group's idle rest as its own
//!   row (`__idle__/<group>`).
//! - **Fargate alone**: every pod at the Fargate size its requests round up to (a Fargate
//!   pod's own size), under Fargate's billing rules, over its recorded lifetime.
//! - **Node groups alone**: over time, the pods running at each moment packed onto the
//!   cheapest instance type that holds them ([`super::packing`]); EC2's one-minute minimum per
//!   instance is not modelled there, which flatters this alternative slightly.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use super::allocation::{Amount, allocate, idle_key};
use super::packing::{Packing, cheapest_fit};
use super::{Compute, Requests, Subject, UsageRecordSpec, billing};
use crate::fargate::FargateSize;
use crate::fargate::sizing::MEMORY_OVERHEAD_MIB;
use crate::prices::PriceTable;

/// What rows are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// A row per pod namespace, and one per node group for its nodes.
    Namespace,
    /// A row per Fargate profile, and one for all node groups.
    Profile,
    /// A row per node group, and one for all of Fargate.
    Nodegroup,
    /// A row per pod, and one per node-group node.
    Pod,
    /// A row per value of the pod label with this key ([`UNLABELLED`] for pods without it),
    /// and one per node group for its nodes.
    Label(String),
}

impl GroupBy {
    /// `namespace`, `profile`, `nodegroup`, `pod` or `label=KEY`, as `keg cost --by` takes it.
    pub fn parse(text: &str) -> Result<GroupBy, String> {
        match text {
            "namespace" => Ok(GroupBy::Namespace),
            "profile" => Ok(GroupBy::Profile),
            "nodegroup" => Ok(GroupBy::Nodegroup),
            "pod" => Ok(GroupBy::Pod),
            _ => match text.strip_prefix("label=") {
                Some(key) if !key.is_empty() => Ok(GroupBy::Label(key.to_owned())),
                _ => Err(format!(
                    "{text:?}: expected namespace, profile, nodegroup, pod or label=KEY"
                )),
            },
        }
    }
}

/// The key of pods without the label `--by label=KEY` asks for (OpenCost's word).
pub const UNLABELLED: &str = "__unallocated__";

/// One row of the allocation: what its pods were allocated, Fargate pods' own bills and
/// node-group pods' shares of their nodes; or a node group's idle rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Allocated {
    /// What the row is about: the same keys as the report's rows, or `__idle__/<group>`.
    pub key: String,
    /// Pods that ran in the window.
    pub pods: usize,
    /// USD allocated in the window.
    pub spend: f64,
    /// USD an hour allocated at the current run rate.
    pub hourly: f64,
}

/// One row of the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// What the row is about (a namespace, `nodegroup/ng-1`, ...).
    pub key: String,
    /// Pods that ran in the window.
    pub pods: usize,
    /// Node-group nodes that ran in the window.
    pub nodes: usize,
    /// Billed seconds in the window, over the row's records that are billed.
    pub billed_seconds: f64,
    /// USD spent in the window.
    pub spend: f64,
    /// USD an hour at the current run rate.
    pub hourly: f64,
}

/// What a way of running the pods costs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Scenario {
    /// USD spent in the window.
    pub spend: f64,
    /// USD an hour at the current run rate.
    pub hourly: f64,
    /// What it is made of now (e.g. `2 x t3.medium`).
    pub detail: String,
}

/// The report `keg cost` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The region whose prices apply.
    pub region: String,
    /// The start of the window; none for everything recorded.
    pub since: Option<Timestamp>,
    /// When the report was made.
    pub now: Timestamp,
    /// How rows are grouped.
    pub by: GroupBy,
    /// The rows, by key.
    pub rows: Vec<Row>,
    /// All rows together.
    pub total: Row,
    /// The same spend with node-group nodes' bills divided among their pods, by the same
    /// keys, and each node group's idle rest as a row `__idle__/<group>`; it adds up to the
    /// total.
    pub allocation: Vec<Allocated>,
    /// How the allocation weighs pods.
    pub allocation_basis: String,
    /// What ran, as it ran.
    pub actual: Scenario,
    /// The same pods on node groups alone.
    pub node_groups_only: Scenario,
    /// The same pods on Fargate alone.
    pub fargate_only: Scenario,
    /// Where the prices come from.
    pub price_source: String,
}

/// Sums `records` into a report of the window from `since` to `now`.
pub fn report(
    records: &[UsageRecordSpec],
    prices: &PriceTable,
    region: &str,
    by: GroupBy,
    since: Option<Timestamp>,
    now: Timestamp,
) -> Report {
    let in_window: Vec<&UsageRecordSpec> = records
        .iter()
        .filter(|r| r.start <= now && (r.is_open() || ran_since(r, since, now)))
        .collect();
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for record in &in_window {
        let key = group_key(record, &by);
        let row = rows.entry(key.clone()).or_insert_with(|| Row {
            key,
            ..Row::default()
        });
        add(row, record, since, now);
    }
    let mut total = Row {
        key: "TOTAL".into(),
        ..Row::default()
    };
    for record in &in_window {
        add(&mut total, record, since, now);
    }
    let actual = Scenario {
        spend: total.spend,
        hourly: total.hourly,
        detail: actual_detail(&in_window),
    };
    Report {
        region: region.to_owned(),
        since,
        now,
        allocation: allocated_rows(&in_window, &by, since, now),
        allocation_basis: ALLOCATION_BASIS.to_owned(),
        by,
        rows: rows.into_values().collect(),
        node_groups_only: node_groups_only(&in_window, prices, region, since, now),
        fargate_only: fargate_only(&in_window, prices, region, since, now),
        total,
        actual,
        price_source: prices.source().to_owned(),
    }
}

impl Report {
    /// The fraction of the dearer single-kind alternative that the actual mix saves (negative
    /// when the mix costs more), by spend in the window.
    pub fn saving(&self) -> Option<f64> {
        let alternative = self.node_groups_only.spend.max(self.fargate_only.spend);
        (alternative > 0.0).then(|| 1.0 - self.actual.spend / alternative)
    }
}

/// Whether a record's bill (or, for pods on node groups, its run) reaches past `since`.
fn ran_since(record: &UsageRecordSpec, since: Option<Timestamp>, now: Timestamp) -> bool {
    let (_, billed_end) = record.billed_interval(now);
    since.is_none_or(|s| billed_end > s || record.end_or(now) > s)
}

fn add(row: &mut Row, record: &UsageRecordSpec, since: Option<Timestamp>, now: Timestamp) {
    match record.subject {
        Subject::Pod => row.pods += 1,
        Subject::Node => row.nodes += 1,
    }
    if record.hourly_rate > 0.0 {
        row.billed_seconds += record.billed_seconds_since(since, now);
    }
    row.spend += record.cost_since(since, now);
    row.hourly += record.run_rate();
}

/// What the allocation says it weighs pods by.
pub const ALLOCATION_BASIS: &str = "node-group nodes split over their pods by requests of \
CPU and memory (max(request, usage) once usage is recorded; it is not yet), the rest idle";

/// The allocation's rows: every pod's allocated spend under its key, and each node group's
/// idle rest. One computation ([`allocate`]) serves every key.
fn allocated_rows(
    records: &[&UsageRecordSpec],
    by: &GroupBy,
    since: Option<Timestamp>,
    now: Timestamp,
) -> Vec<Allocated> {
    let allocation = allocate(records, since, now);
    let mut rows: BTreeMap<String, Allocated> = BTreeMap::new();
    let mut add = |key: String, pods: usize, amount: Amount| {
        let row = rows.entry(key.clone()).or_insert_with(|| Allocated {
            key,
            ..Allocated::default()
        });
        row.pods += pods;
        row.spend += amount.spend;
        row.hourly += amount.hourly;
    };
    for (record, shared) in records.iter().zip(&allocation.pods) {
        if record.subject != Subject::Pod {
            continue;
        }
        // A Fargate pod pays its own bill; a node-group pod, its share of its node's.
        let own = Amount {
            spend: record.cost_since(since, now),
            hourly: record.run_rate(),
        };
        let amount = match record.compute {
            Compute::Fargate => own,
            Compute::Nodegroup => Amount {
                spend: own.spend + shared.spend,
                hourly: own.hourly + shared.hourly,
            },
        };
        add(group_key(record, by), 1, amount);
    }
    for (group, idle) in allocation.idle {
        add(idle_key(&group), 0, idle);
    }
    rows.into_values().collect()
}

fn group_key(record: &UsageRecordSpec, by: &GroupBy) -> String {
    let group = record.node_group.as_deref().unwrap_or("-");
    let namespace = record.namespace.as_deref().unwrap_or("-");
    match (by, record.subject, record.compute) {
        (GroupBy::Label(key), Subject::Pod, _) => record
            .pod_labels
            .get(key)
            .cloned()
            .unwrap_or_else(|| UNLABELLED.to_owned()),
        (GroupBy::Label(_), Subject::Node, _) => format!("nodegroup/{group}"),
        (GroupBy::Namespace, Subject::Pod, _) => namespace.to_owned(),
        (GroupBy::Namespace, Subject::Node, _) => format!("nodegroup/{group}"),
        (GroupBy::Pod, Subject::Pod, _) => format!("{namespace}/{}", record.name),
        (GroupBy::Pod, Subject::Node, _) => format!("node/{}", record.name),
        (GroupBy::Profile, _, Compute::Fargate) => {
            record.profile.clone().unwrap_or_else(|| "-".into())
        }
        (GroupBy::Profile, _, Compute::Nodegroup) => "(node groups)".into(),
        (GroupBy::Nodegroup, _, Compute::Fargate) => "(fargate)".into(),
        (GroupBy::Nodegroup, _, Compute::Nodegroup) => group.to_owned(),
    }
}

fn actual_detail(records: &[&UsageRecordSpec]) -> String {
    let open = |compute, subject| {
        records
            .iter()
            .filter(|r| r.is_open() && r.compute == compute && r.subject == subject)
            .count()
    };
    format!(
        "{} Fargate pods, {} node-group nodes running",
        open(Compute::Fargate, Subject::Pod),
        open(Compute::Nodegroup, Subject::Node)
    )
}

/// The Fargate size a pod would get: its own if it ran on Fargate, else its requests'.
fn fargate_size(record: &UsageRecordSpec) -> Option<FargateSize> {
    if let Some(size) = record.fargate_size() {
        return Some(size);
    }
    let requests = record.requests.unwrap_or_default();
    let memory_mib = u64::try_from(requests.memory_bytes).ok()?.div_ceil(1 << 20);
    let millicpu = u64::try_from(requests.cpu_millis).ok()?;
    FargateSize::round_up(millicpu, memory_mib + MEMORY_OVERHEAD_MIB).ok()
}

fn fargate_only(
    records: &[&UsageRecordSpec],
    prices: &PriceTable,
    region: &str,
    since: Option<Timestamp>,
    now: Timestamp,
) -> Scenario {
    let (mut spend, mut hourly, mut unfit) = (0.0, 0.0, 0);
    for record in records.iter().filter(|r| r.subject == Subject::Pod) {
        let Some(rate) = fargate_size(record).and_then(|s| prices.fargate_hourly(region, &s))
        else {
            unfit += 1;
            continue;
        };
        let as_fargate = UsageRecordSpec {
            hourly_rate: rate,
            ..(*record).clone()
        };
        spend += as_fargate.cost_since(since, now);
        hourly += as_fargate.run_rate();
    }
    let running = records
        .iter()
        .filter(|r| r.subject == Subject::Pod && r.is_open())
        .count();
    let mut detail = format!("{running} Fargate pods running");
    if unfit > 0 {
        detail += &format!(" ({unfit} pods left out: too large for Fargate or no price)");
    }
    Scenario {
        spend,
        hourly,
        detail,
    }
}

fn node_groups_only(
    records: &[&UsageRecordSpec],
    prices: &PriceTable,
    region: &str,
    since: Option<Timestamp>,
    now: Timestamp,
) -> Scenario {
    // A pod no priced type can hold is left out (and said so) rather than sinking the lot.
    let (pods, unfit): (Vec<_>, Vec<_>) = records
        .iter()
        .filter(|r| r.subject == Subject::Pod)
        .map(|r| (*r, r.requests.unwrap_or_default()))
        .partition(|(_, requests)| cheapest_fit(&[*requests], prices, region).is_some());
    let lifetimes: Vec<(Timestamp, Timestamp, Requests)> = pods
        .iter()
        .map(|(r, requests)| {
            let from = since.map_or(r.start, |s| r.start.max(s));
            (from, r.end_or(now).min(now), *requests)
        })
        .filter(|(from, to, _)| from < to)
        .collect();
    let mut cuts: Vec<Timestamp> = lifetimes.iter().flat_map(|(a, b, _)| [*a, *b]).collect();
    cuts.sort();
    cuts.dedup();
    let mut spend = 0.0;
    for pair in cuts.windows(2) {
        let running: Vec<Requests> = lifetimes
            .iter()
            .filter(|(from, to, _)| *from <= pair[0] && *to >= pair[1])
            .map(|(_, _, r)| *r)
            .collect();
        let packing = cheapest_fit(&running, prices, region).unwrap_or(Packing::NONE);
        let seconds = pair[1].duration_since(pair[0]).as_secs_f64();
        spend += billing::cost(packing.hourly, seconds);
    }
    let now_running: Vec<Requests> = pods
        .iter()
        .filter(|(r, _)| r.is_open())
        .map(|(_, requests)| *requests)
        .collect();
    let packing = cheapest_fit(&now_running, prices, region).unwrap_or(Packing::NONE);
    let mut detail = match &packing.instance_type {
        Some(t) => format!("{} x {t} now", packing.nodes),
        None => "no nodes now".to_owned(),
    };
    if !unfit.is_empty() {
        detail += &format!(
            " ({} pods left out: no priced instance type holds them)",
            unfit.len()
        );
    }
    Scenario {
        spend,
        hourly: packing.hourly,
        detail,
    }
}

#[cfg(test)]
mod tests;
