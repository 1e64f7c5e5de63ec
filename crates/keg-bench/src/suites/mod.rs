//! The suites, each runnable alone, each on a `keg server` of its own.

mod api;
mod etcd;
mod memory;
mod pod_start;
mod scale;
mod scheduling;
mod watch;

use std::path::PathBuf;

use anyhow::Result;
use clap::ValueEnum;

use crate::report::Row;

/// What every suite gets.
pub struct Ctx {
    /// The keg binary to start servers from.
    pub keg: PathBuf,
    /// How big to make each suite.
    pub size: Size,
}

/// How big each suite is: `Full` as the issue asks, `Tiny` to check that the harness works.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Seconds per suite; nothing measured means much.
    Tiny,
    /// The sizes BENCHMARKS.md reports.
    Full,
}

impl Size {
    /// The size's name.
    pub fn name(self) -> &'static str {
        match self {
            Size::Tiny => "tiny",
            Size::Full => "full",
        }
    }

    /// `tiny` or `full`, whichever this size is.
    pub fn pick<T>(self, tiny: T, full: T) -> T {
        match self {
            Size::Tiny => tiny,
            Size::Full => full,
        }
    }
}

/// How a suite ended.
pub enum Outcome {
    /// It measured these rows; the notes say how (e.g. nodes were API objects only).
    Ran {
        /// The measurements.
        rows: Vec<Row>,
        /// What a reader must know about how they were taken.
        notes: Vec<String>,
        /// A Markdown table of the suite's own, printed in place of its rows (which stay in
        /// the JSON): for comparisons that a row per number would bury.
        table: Option<String>,
    },
    /// It could not run here, and why.
    Skipped(String),
}

/// The suites, by the name given on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Suite {
    /// Create, update and get of single ConfigMaps at 1, 16 and 128 clients.
    Api,
    /// 1,000 watchers on pods: delay from a write to its delivery at every watcher.
    Watch,
    /// Pods bound per second: onto node-group nodes, and each onto a new Fargate node.
    Scheduling,
    /// 100 real pods on Fargate nodes: creation to Running.
    PodStart,
    /// 100,000 pods stored: memory, list latency, restart.
    Scale,
    /// The control plane's memory, idle and with the Terrax walkthrough deployed.
    Memory,
    /// The API workload on keg on etcd, on keg embedded, and etcd's own writes beside them.
    Etcd,
}

impl Suite {
    /// Every suite, in the order a full run takes them.
    pub fn all() -> [Suite; 7] {
        [
            Suite::Api,
            Suite::Watch,
            Suite::Scheduling,
            Suite::PodStart,
            Suite::Scale,
            Suite::Memory,
            Suite::Etcd,
        ]
    }

    /// The name on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Api => "api",
            Suite::Watch => "watch",
            Suite::Scheduling => "scheduling",
            Suite::PodStart => "pod-start",
            Suite::Scale => "scale",
            Suite::Memory => "memory",
            Suite::Etcd => "etcd",
        }
    }

    /// Runs the suite.
    pub async fn run(self, ctx: &Ctx) -> Result<Outcome> {
        match self {
            Suite::Api => api::run(ctx).await,
            Suite::Watch => watch::run(ctx).await,
            Suite::Scheduling => scheduling::run(ctx).await,
            Suite::PodStart => pod_start::run(ctx).await,
            Suite::Scale => scale::run(ctx).await,
            Suite::Memory => memory::run(ctx).await,
            Suite::Etcd => etcd::run(ctx).await,
        }
    }
}

/// Whether this process may run real pods (the node agent needs root).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
