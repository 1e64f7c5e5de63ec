//! Results: rows of measurements with the published figure each compares to, the machine
//! they ran on, a Markdown table for people and JSON for tools.

use std::time::Duration;

use serde::Serialize;

/// One measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The suite that measured it.
    pub suite: String,
    /// What was measured, e.g. `create p99 (16 clients)`.
    pub metric: String,
    /// The value, in `unit`.
    pub value: f64,
    /// The unit, e.g. `ms`, `pods/s`, `MiB`.
    pub unit: String,
    /// The published figure it compares to, if any.
    pub anchor: String,
}

impl Row {
    /// A row without an anchor.
    pub fn new(suite: &str, metric: impl Into<String>, value: f64, unit: &str) -> Row {
        Row {
            suite: suite.to_owned(),
            metric: metric.into(),
            value,
            unit: unit.to_owned(),
            anchor: String::new(),
        }
    }

    /// The same row with an anchor.
    pub fn anchor(mut self, anchor: &str) -> Row {
        self.anchor = anchor.to_owned();
        self
    }

    /// The value with its unit, rounded for reading.
    pub fn shown(&self) -> String {
        format!("{} {}", round(self.value), self.unit)
    }
}

/// A value rounded for reading: three significant figures or so.
pub fn round(value: f64) -> String {
    if value.abs() >= 100.0 || value == value.trunc() {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else if value.abs() >= 0.1 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// How a suite ended.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteResult {
    /// The suite's name.
    pub name: String,
    /// `ok`, `skipped` or `failed`.
    pub status: String,
    /// Why it was skipped or failed, or what to know about how it ran.
    pub notes: Vec<String>,
    /// Wall time of the suite, server start and clean-up included.
    pub seconds: f64,
    /// The suite's own Markdown table, printed in place of its rows (the JSON has the rows).
    #[serde(skip)]
    pub table: Option<String>,
}

/// The machine the harness ran on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// MemTotal from /proc/meminfo, in GiB.
    pub memory_gib: f64,
    /// The kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads /proc for this machine's facts.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Machine {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu,
            memory_gib: (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }
}

/// The whole run, as written to `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `tiny` or `full`.
    pub size: String,
    /// The machine.
    pub machine: Machine,
    /// Each suite that was asked for, in order.
    pub suites: Vec<SuiteResult>,
    /// Every measurement.
    pub rows: Vec<Row>,
}

impl Report {
    /// The results as a Markdown table (suite, metric, keg, published anchor), then the
    /// tables of suites that print their own instead of rows, then notes.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| suite | metric | keg | published anchor |\n| --- | --- | --- | --- |\n",
        );
        let own_table = |suite: &str| {
            self.suites
                .iter()
                .any(|s| s.name == suite && s.table.is_some())
        };
        for row in self.rows.iter().filter(|r| !own_table(&r.suite)) {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                row.suite,
                row.metric,
                row.shown(),
                row.anchor
            ));
        }
        out.push('\n');
        for suite in &self.suites {
            if let Some(table) = &suite.table {
                out.push_str(&format!("{}:\n\n{table}\n", suite.name));
            }
        }
        for suite in &self.suites {
            out.push_str(&format!(
                "- {} {} in {:.0} s",
                suite.name, suite.status, suite.seconds
            ));
            for note in &suite.notes {
                out.push_str(&format!("; {note}"));
            }
            out.push('\n');
        }
        out
    }
}

/// Latencies, summarised.
pub struct Latencies(Vec<Duration>);

impl Latencies {
    /// Sorts the samples.
    pub fn new(mut samples: Vec<Duration>) -> Latencies {
        samples.sort();
        Latencies(samples)
    }

    /// The nearest-rank percentile `q` (0 to 1), in milliseconds; 0 without samples.
    pub fn ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1].as_secs_f64() * 1000.0
    }

    /// The mean, in milliseconds; 0 without samples.
    pub fn mean_ms(&self) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / self.0.len() as f64
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0 / 1024.0
}
