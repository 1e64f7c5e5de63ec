//! `keg cost`: what a cluster's pods and node groups have cost so far and cost an hour now,
//! beside what the same pods would have cost on node groups alone and on Fargate alone.
//! The figures are summed from the cluster's `UsageRecord`s (see `keg_api::usage`); the
//! node-group autoscaler's decisions follow, priced ([`decisions`]).

mod decisions;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use decisions::{Decision, decisions};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Event;
use keg_api::crds::NodeGroup;
use keg_api::prices::PriceTable;
use keg_api::usage::UsageRecord;
use keg_api::usage::report::{GroupBy, Report, Row, Scenario, report};
use kube::api::{Api, ListParams};

use super::cluster::{ClusterDir, keg_home, running_cluster_client};

/// Options of `keg cost`.
#[derive(clap::Args)]
pub struct CostArgs {
    /// The cluster's name.
    #[arg(long)]
    cluster: String,
    /// Only spend from this time on: RFC 3339 (`2025-06-01T12:00:00Z`), a date
    /// (`2025-06-01`, UTC) or a span back from now (`90s`, `30m`, `1h30m`, `2d`, `1w`).
    #[arg(long)]
    since: Option<String>,
    /// What each row is: namespace, profile, nodegroup, pod or label=KEY (a pod label).
    #[arg(long, value_parser = GroupBy::parse, default_value = "namespace")]
    by: GroupBy,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Output,
    /// A price file laid over the built-in prices (default: $KEG_HOME/prices.yaml if present).
    #[arg(long)]
    prices: Option<PathBuf>,
}

/// How the report is printed.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Output {
    Table,
    Json,
    Csv,
}

/// Runs `keg cost`.
pub async fn run(args: CostArgs) -> Result<()> {
    let now = Timestamp::now();
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, now))
        .transpose()?;
    let prices = load_prices(args.prices.as_deref())?;
    let client = running_cluster_client(&args.cluster).await?;
    let records: Vec<_> = Api::<UsageRecord>::all(client.clone())
        .list(&ListParams::default())
        .await
        .context("listing the cluster's usage records")?
        .items
        .into_iter()
        .map(|r| r.spec)
        .collect();
    let region = match records.first() {
        Some(record) => record.region.clone(),
        None => cluster_region(&ClusterDir::new(&args.cluster))
            .unwrap_or_else(|| "us-east-1".to_owned()),
    };
    let report = report(&records, &prices, &region, args.by, since, now);
    let events = Api::<Event>::all(client.clone())
        .list(&ListParams::default().fields("involvedObject.kind=NodeGroup"))
        .await
        .context("listing the autoscaler's events")?
        .items;
    let groups = Api::<NodeGroup>::all(client)
        .list(&ListParams::default())
        .await
        .context("listing the node groups")?
        .items;
    let decisions = decisions(&events, &groups, &prices, &region, since);
    let text = match args.output {
        Output::Table => table(&args.cluster, &report, &decisions),
        Output::Json => json(&args.cluster, &report, &decisions)?,
        Output::Csv => csv(&report, &decisions),
    };
    print!("{text}");
    Ok(())
}

/// The prices metering and `keg cost` use: the built-in table, with `path` (or, when none is
/// given, `$KEG_HOME/prices.yaml` if it exists) laid over it.
pub fn load_prices(path: Option<&Path>) -> Result<PriceTable> {
    let default = keg_home().join("prices.yaml");
    let path = match path {
        Some(path) => path,
        None if default.exists() => &default,
        None => return Ok(PriceTable::aws()),
    };
    Ok(PriceTable::load(path)?)
}

/// The region in the cluster file kept at creation.
fn cluster_region(dir: &ClusterDir) -> Option<String> {
    let path = dir.config();
    let text = std::fs::read_to_string(&path).ok()?;
    let config = keg_api::ClusterConfig::parse(&path.display().to_string(), &text).ok()?;
    Some(config.metadata.region)
}

/// `--since`: a timestamp, a date (midnight UTC) or a span back from `now`.
fn parse_since(text: &str, now: Timestamp) -> Result<Timestamp> {
    if let Ok(time) = text.parse::<Timestamp>() {
        return Ok(time);
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return Ok(date.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp());
    }
    let span = parse_span(text).with_context(|| {
        format!("--since {text:?}: expected a time (2025-06-01T12:00:00Z), a date (2025-06-01) or a span (30m, 1h30m, 2d)")
    })?;
    Ok(now - span)
}

/// `1h30m`, `90s`, `2d`, `1w`: whole numbers with units, added up.
fn parse_span(text: &str) -> Result<SignedDuration> {
    let mut seconds: i64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => bail!("unknown unit {c:?}"),
        };
        let n: i64 = number.parse().context("a unit without a number")?;
        seconds = seconds.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() || seconds == 0 {
        bail!("a span needs a unit after each number, and must not be zero");
    }
    Ok(SignedDuration::from_secs(seconds))
}

fn dollars(usd: f64) -> String {
    format!("${usd:.5}")
}

/// `2h03m04s`; `-` for nothing billed.
fn duration(seconds: f64) -> String {
    if seconds <= 0.0 {
        return "-".into();
    }
    let s = seconds.ceil() as u64;
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}

fn key_header(by: &GroupBy) -> String {
    match by {
        GroupBy::Namespace => "NAMESPACE".into(),
        GroupBy::Profile => "PROFILE".into(),
        GroupBy::Nodegroup => "NODEGROUP".into(),
        GroupBy::Pod => "POD".into(),
        GroupBy::Label(key) => format!("LABEL {key}"),
    }
}

/// Rows with columns padded to their widest cell, two spaces apart.
fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<width$}", width = widths[i]))
            .collect();
        out += cells.join("  ").trim_end();
        out.push('\n');
    }
    out
}

fn table_row(row: &Row) -> Vec<String> {
    vec![
        row.key.clone(),
        row.pods.to_string(),
        row.nodes.to_string(),
        duration(row.billed_seconds),
        dollars(row.spend),
        format!("{}/h", dollars(row.hourly)),
    ]
}

fn table(cluster: &str, report: &Report, decisions: &[Decision]) -> String {
    let window = match report.since {
        Some(since) => format!("from {} to {}", time(since), time(report.now)),
        None => format!("everything recorded, to {}", time(report.now)),
    };
    let mut out = format!("Cluster {cluster} ({}), {window}\n\n", report.region);
    let mut rows = vec![
        [
            key_header(&report.by).as_str(),
            "PODS",
            "NODES",
            "BILLED",
            "SPEND",
            "RUN RATE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    rows.extend(report.rows.iter().map(table_row));
    rows.push(table_row(&report.total));
    out += &aligned(&rows);
    out.push('\n');
    if !report.allocation.is_empty() {
        let mut rows = vec![vec![
            format!("ALLOCATED BY {}", key_header(&report.by)),
            "PODS".into(),
            "SPEND".into(),
            "RUN RATE".into(),
        ]];
        rows.extend(report.allocation.iter().map(|a| {
            vec![
                a.key.clone(),
                a.pods.to_string(),
                dollars(a.spend),
                format!("{}/h", dollars(a.hourly)),
            ]
        }));
        out += &aligned(&rows);
        out += &format!("Allocation: {}.\n\n", report.allocation_basis);
    }
    let scenario = |name: &str, s: &Scenario| {
        vec![
            name.to_owned(),
            dollars(s.spend),
            format!("{}/h", dollars(s.hourly)),
            s.detail.clone(),
        ]
    };
    out += &aligned(&[
        ["THE SAME PODS", "SPEND", "RUN RATE", "NOW"]
            .map(String::from)
            .to_vec(),
        scenario("as run", &report.actual),
        scenario("on node groups alone", &report.node_groups_only),
        scenario("on Fargate alone", &report.fargate_only),
    ]);
    out.push('\n');
    for (name, alternative) in [
        ("node groups alone", &report.node_groups_only),
        ("Fargate alone", &report.fargate_only),
    ] {
        out += &format!(
            "Against {name}: {}\n",
            saving(report.actual.spend, alternative.spend)
        );
    }
    if !decisions.is_empty() {
        out.push('\n');
        let mut rows = vec![
            ["AUTOSCALER", "GROUP", "NODES", "RUN RATE"]
                .map(String::from)
                .to_vec(),
        ];
        rows.extend(decisions.iter().map(|d| {
            let rate = match (d.hourly, &d.instance_type) {
                (Some(h), Some(t)) if h >= 0.0 => format!("+{}/h ({t})", dollars(h)),
                (Some(h), Some(t)) => format!("-{}/h saved ({t})", dollars(-h)),
                _ => "(group gone, not priced)".to_owned(),
            };
            vec![
                time(d.time),
                d.group.clone(),
                format!("{:+}", d.nodes),
                rate,
            ]
        }));
        out += &aligned(&rows);
    }
    out += &format!("Prices: {}\n", report.price_source);
    out
}

/// A time to the second, as kubectl prints them.
fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// "saves $0.01234 (12.3%)" or "costs $0.01234 more (1.4 times as much)".
fn saving(actual: f64, alternative: f64) -> String {
    let difference = alternative - actual;
    if difference >= 0.0 {
        let share = if alternative > 0.0 {
            format!(" ({:.1}%)", difference / alternative * 100.0)
        } else {
            String::new()
        };
        return format!("the mix as run saves {}{share}", dollars(difference));
    }
    let ratio = if alternative > 0.0 {
        format!(" ({:.1} times as much)", actual / alternative)
    } else {
        String::new()
    };
    format!("the mix as run costs {} more{ratio}", dollars(-difference))
}

fn json(cluster: &str, report: &Report, decisions: &[Decision]) -> Result<String> {
    let mut value = serde_json::to_value(report)?;
    value["cluster"] = cluster.into();
    value["autoscaler"] = serde_json::to_value(decisions)?;
    value["saving"] = report.saving().into();
    Ok(serde_json::to_string_pretty(&value)? + "\n")
}

fn csv(report: &Report, decisions: &[Decision]) -> String {
    let mut out = String::from("kind,key,pods,nodes,billed_seconds,spend_usd,hourly_usd\n");
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    for (kind, row) in report
        .rows
        .iter()
        .map(|r| ("row", r))
        .chain([("total", &report.total)])
    {
        out += &format!(
            "{kind},{},{},{},{},{},{}\n",
            quote(&row.key),
            row.pods,
            row.nodes,
            row.billed_seconds,
            row.spend,
            row.hourly
        );
    }
    for a in &report.allocation {
        out += &format!(
            "allocated,{},{},,,{},{}\n",
            quote(&a.key),
            a.pods,
            a.spend,
            a.hourly
        );
    }
    for (key, s) in [
        ("as run", &report.actual),
        ("node groups alone", &report.node_groups_only),
        ("fargate alone", &report.fargate_only),
    ] {
        out += &format!("scenario,{key},,,,{},{}\n", s.spend, s.hourly);
    }
    for d in decisions {
        let hourly = d.hourly.map(|h| h.to_string()).unwrap_or_default();
        out += &format!("autoscaler,{},,{},,,{hourly}\n", quote(&d.group), d.nodes);
    }
    out
}

#[cfg(test)]
mod tests;
