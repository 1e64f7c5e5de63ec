//! keg's benchmark harness: starts its own `keg server` for each suite, measures it through
//! the Kubernetes API with kube-rs, prints a Markdown table with the published figures
//! beside keg's, and writes JSON. `BENCHMARKS.md` holds a full run.

mod kube_util;
mod report;
mod server;
mod suites;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::{Parser, ValueEnum};

use report::{Machine, Report, SuiteResult};
use suites::{Ctx, Outcome, Size, Suite};

/// Benchmarks keg: API latency, watch fan-out, scheduling, pod start, scale, memory, and the
/// API on etcd beside etcd itself.
#[derive(Parser)]
#[command(name = "keg-bench")]
struct Args {
    /// Suites to run (default: all), in the order given.
    #[arg(value_enum)]
    suites: Vec<Suite>,
    /// `full` is what BENCHMARKS.md reports; `tiny` only checks that each suite works.
    #[arg(long, value_enum, default_value = "full")]
    size: SizeArg,
    /// Where to write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The keg binary (default: $KEG_BIN, else `keg` beside this binary).
    #[arg(long)]
    keg: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum SizeArg {
    Tiny,
    Full,
}

#[tokio::main]
async fn main() -> Result<()> {
    // rustls needs one process-wide crypto provider; keg uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    raise_open_files_limit();
    let size = match args.size {
        SizeArg::Tiny => Size::Tiny,
        SizeArg::Full => Size::Full,
    };
    let ctx = Ctx {
        keg: server::find_keg(args.keg)?,
        size,
    };
    let suites = if args.suites.is_empty() {
        Suite::all().to_vec()
    } else {
        args.suites
    };
    let mut report = Report {
        size: size.name().to_owned(),
        machine: Machine::detect(),
        suites: Vec::new(),
        rows: Vec::new(),
    };
    eprintln!(
        "keg-bench: {} on {} CPUs ({}), keg at {}",
        size.name(),
        report.machine.nproc,
        report.machine.cpu,
        ctx.keg.display()
    );
    let mut failed = false;
    for suite in suites {
        eprintln!("keg-bench: running {}", suite.name());
        let started = Instant::now();
        let (status, notes, table) = match suite.run(&ctx).await {
            Ok(Outcome::Ran { rows, notes, table }) => {
                match &table {
                    Some(table) => eprintln!("{table}"),
                    None => {
                        for row in &rows {
                            eprintln!("  {}: {}", row.metric, row.shown());
                        }
                    }
                }
                report.rows.extend(rows);
                ("ok", notes, table)
            }
            Ok(Outcome::Skipped(reason)) => {
                eprintln!("  skipped: {reason}");
                ("skipped", vec![reason], None)
            }
            Err(e) => {
                eprintln!("  failed: {e:#}");
                failed = true;
                ("failed", vec![format!("{e:#}")], None)
            }
        };
        report.suites.push(SuiteResult {
            name: suite.name().to_owned(),
            status: status.to_owned(),
            notes,
            seconds: started.elapsed().as_secs_f64(),
            table,
        });
    }
    println!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    if failed {
        anyhow::bail!("some suites failed");
    }
    Ok(())
}

/// Lets 1,000 watchers (and the server, which inherits the limit) hold their connections.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
