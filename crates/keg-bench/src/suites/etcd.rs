//! keg's API on etcd beside keg on its embedded store and beside etcd itself, in one run on
//! one machine: the `api` suite's workload (create, update, get of single ConfigMaps at 1,
//! 16 and 128 clients) against keg on a three-member etcd, keg on a one-member etcd and keg
//! on the embedded store, and etcd's own puts and gets at the same concurrency, with the
//! etcd-client crate, of keys shaped like keg's and values the size keg stored. The ratios
//! (keg on etcd ÷ raw etcd, keg embedded ÷ raw etcd) are the point; `etcdctl check perf
//! --load=s` runs on the three members too (full size only: it takes 60 s).
//!
//! etcd's data directories are in the suite's temporary directory on a real disk (not
//! `/dev/shm`), so every write pays for its fsync; the file system is named in the notes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use etcd_client::{Client, ConnectOptions, GetOptions};
use k8s_openapi::api::core::v1::ConfigMap;
use keg_store::local_etcd::LocalEtcd;
use kube::api::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::api::{self, CLIENTS, Measured, Phase};
use super::{Ctx, Outcome, Size};
use crate::kube_util;
use crate::report::{Latencies, Row, round};
use crate::server::Server;

const SUITE: &str = "etcd";
/// keg's `--etcd-prefix`; the raw keys' prefix has the same length, so keys are alike.
const KEG_PREFIX: &str = "/keg-bench";
const RAW_PREFIX: &str = "/bench-raw";

/// etcd's published baseline (etcd's op-guide "Performance" page: three members of 8 vCPU,
/// 16 GB and SSD each, a 16 vCPU client machine, etcd 3.2, 8-byte keys, 256-byte values).
fn published(verb: &str, clients: usize) -> &'static str {
    match (verb, clients) {
        ("get", 1) => "1,353 linearizable reads/s, 0.7 ms mean (1 client)",
        ("get", 128) => "141,578 linearizable reads/s, 5.5 ms mean at 1,000 clients",
        (_, 1) => "583 writes/s, 1.6 ms mean (1 client)",
        (_, 128) => "44,341 writes/s, 22 ms mean at 1,000 clients (50,104, 20 ms to all members)",
        _ => "",
    }
}

/// What ran on one etcd cluster.
struct OnEtcd {
    members: usize,
    /// keg on this etcd, the API workload.
    keg: Vec<Measured>,
    /// etcd-client on this etcd, the same calls as puts and gets.
    raw: Vec<Measured>,
    /// The mean size of the values keg stored for the workload's ConfigMaps (the raw size).
    value_len: usize,
    /// For create, update and get: etcd requests (Range, Txn, Put) per API call.
    requests: Vec<(&'static str, Requests)>,
    /// Mean WAL fsync over the members and the whole run, as etcd's metrics report it.
    wal_fsync_ms: Option<f64>,
    /// `etcdctl check perf --load=s`, where it ran.
    check_perf: Option<CheckPerf>,
}

/// Runs the suite.
pub async fn run(ctx: &Ctx) -> Result<Outcome> {
    let scratch = tempfile::Builder::new()
        .prefix("keg-bench-etcd-")
        .tempdir()
        .context("creating the suite's directory")?;
    let disk = filesystem(scratch.path());
    let ops = ctx.size.pick(16, 2000);
    let probe = scratch.path().to_owned();
    let fdatasync = tokio::task::spawn_blocking(move || fdatasync_latencies(&probe, 200))
        .await?
        .context("timing fdatasync in the suite's directory")?;

    let mut clusters = Vec::new();
    for members in [3, 1] {
        match on_etcd(ctx, scratch.path(), members, ops).await? {
            Some(run) => clusters.push(run),
            None => {
                return Ok(Outcome::Skipped(
                    "no etcd binary (Debian's etcd-server, installed by scripts/install-deps.sh)"
                        .into(),
                ));
            }
        }
    }

    let server = Server::start(&ctx.keg, &["--no-node-agent"]).await?;
    let embedded_disk = filesystem(&server.dir);
    let embedded = api::workload(&server.client().await?, ops).await?;
    drop(server);

    let mut rows = Vec::new();
    let fsync_anchor = "etcd's performance guide: fdatasync often < 1 ms on SSD, ~10 ms on a \
                        spinning disk";
    rows.push(
        Row::new(
            SUITE,
            "fdatasync of a 4 KiB append p50",
            fdatasync.ms(0.5),
            "ms",
        )
        .anchor(fsync_anchor),
    );
    rows.push(Row::new(
        SUITE,
        "fdatasync of a 4 KiB append p99",
        fdatasync.ms(0.99),
        "ms",
    ));
    for c in &clusters {
        let (raw, keg) = (raw_name(c.members), keg_name(c.members));
        rows.extend(measured_rows(&raw, &c.raw));
        rows.extend(measured_rows(&keg, &c.keg));
        rows.extend(ratio_rows(&keg, &c.keg, &raw, &c.raw));
        rows.extend(ratio_rows("keg embedded", &embedded, &raw, &c.raw));
        rows.push(Row::new(
            SUITE,
            format!(
                "value size (keg's stored ConfigMap, raw puts), {}",
                members(c.members)
            ),
            c.value_len as f64,
            "bytes",
        ));
        for (verb, r) in &c.requests {
            for (what, n) in [("Range", r.range), ("Txn", r.txn), ("Put", r.put)] {
                rows.push(Row::new(
                    SUITE,
                    format!("{keg}: etcd {what} requests per {verb}"),
                    n,
                    "requests",
                ));
            }
        }
        if let Some(ms) = c.wal_fsync_ms {
            rows.push(Row::new(
                SUITE,
                format!("etcd WAL fsync mean, {}, whole run", members(c.members)),
                ms,
                "ms",
            ));
        }
        if let Some(check) = &c.check_perf {
            rows.extend(check.rows());
        }
    }
    rows.extend(measured_rows("keg embedded", &embedded));

    let mut notes = vec![
        format!(
            "etcd {} on loopback, each member's data under {} on {disk}{}; keg embedded's data \
             dir on {embedded_disk}",
            etcd_version(),
            scratch.path().display(),
            if disk.starts_with("tmpfs") {
                ": fsync costs nothing there, so etcd's and redb's writes are flattered"
            } else {
                ", so fsync is real"
            },
        ),
        format!(
            "{ops} calls per verb and client count (at least one per client); keg: ConfigMaps \
             of ~150 bytes over HTTPS from one kube-rs client; raw etcd: one etcd-client \
             connected to every member (as keg's store is), create = put of a new key, update \
             = put of the same key, get = linearizable range of it (as keg's store reads), \
             keys shaped like keg's, values the size keg stored"
        ),
        "every process (the etcd members, keg, the harness) shares this machine's cores".into(),
    ];
    for c in &clusters {
        if let Some(check) = &c.check_perf {
            notes.push(format!(
                "etcdctl check perf --load=s on {} (150 writes/s from 50 clients for 60 s, \
                 256-byte keys, 1 KiB values): {}",
                members(c.members),
                check.summary.join(" · ")
            ));
        }
    }
    if ctx.size == Size::Tiny {
        notes.push("etcdctl check perf skipped at tiny size (it takes 60 s)".into());
    }
    let table = table(&clusters, &embedded);
    Ok(Outcome::Ran {
        rows,
        notes,
        table: Some(table),
    })
}

fn members(n: usize) -> String {
    format!("{n} member{}", if n == 1 { "" } else { "s" })
}

fn raw_name(n: usize) -> String {
    format!("raw etcd, {}", members(n))
}

fn keg_name(n: usize) -> String {
    format!("keg on etcd, {}", members(n))
}

/// keg on a new etcd of `members`, then etcd-client on the same etcd; `None` without etcd.
async fn on_etcd(ctx: &Ctx, scratch: &Path, members: usize, ops: usize) -> Result<Option<OnEtcd>> {
    let base = scratch.join(format!("etcd-{members}"));
    std::fs::create_dir_all(&base)?;
    // Starting members blocks (and panics where it cannot, e.g. no etcd under CI=true).
    let started = tokio::task::spawn_blocking(move || LocalEtcd::start_cluster_in(members, &base))
        .await
        .map_err(|e| anyhow!("starting {}: {e}", self::members(members)))?;
    let Some(cluster) = started else {
        return Ok(None);
    };
    let endpoints: Vec<String> = cluster.iter().map(LocalEtcd::endpoint).collect();

    let store = format!("etcd://{}", endpoints.join(","));
    let server = Server::start(
        &ctx.keg,
        &[
            "--no-node-agent",
            "--store",
            &store,
            "--etcd-prefix",
            KEG_PREFIX,
        ],
    )
    .await?;
    let client = server.client().await?;
    let keg = api::workload(&client, ops).await?;
    let requests = requests_per_call(&client, &endpoints, ctx.size.pick(5, 100)).await?;
    // keg stops before etcd's own run, so it takes none of the cores then.
    drop(server);

    let etcd = connect(&endpoints).await?;
    let value_len = stored_value_len(&etcd).await?;
    let raw = raw_workload(&etcd, ops, value_len).await?;
    let check_perf = match (members, ctx.size) {
        (3, Size::Full) => Some(check_perf(&endpoints).await?),
        _ => None,
    };
    let wal_fsync_ms = wal_fsync_ms(&endpoints).await.ok();
    // Kills each member by its PID and removes its directory.
    drop(cluster);
    Ok(Some(OnEtcd {
        members,
        keg,
        raw,
        value_len,
        requests,
        wal_fsync_ms,
        check_perf,
    }))
}

/// An etcd-client connected as keg's store connects (every member, the same keep-alive).
async fn connect(endpoints: &[String]) -> Result<Client> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
        .with_keep_alive_while_idle(true);
    Client::connect(endpoints, Some(options))
        .await
        .with_context(|| format!("connecting to etcd at {endpoints:?}"))
}

/// The workload's ConfigMaps' key prefix under `prefix`.
fn configmaps(prefix: &str) -> String {
    format!("{prefix}/registry/core/configmaps/{}/", api::NAMESPACE)
}

/// The mean size of the values keg stored for the workload's ConfigMaps.
async fn stored_value_len(etcd: &Client) -> Result<usize> {
    let options = GetOptions::new().with_prefix().with_limit(1000);
    let found = etcd
        .kv_client()
        .get(configmaps(KEG_PREFIX), Some(options))
        .await
        .context("reading keg's ConfigMaps from etcd")?;
    let kvs = found.kvs();
    if kvs.is_empty() {
        bail!("no ConfigMaps under {} in etcd", configmaps(KEG_PREFIX));
    }
    Ok(kvs.iter().map(|kv| kv.value().len()).sum::<usize>() / kvs.len())
}

/// etcd's own calls, as the API workload's: at each client count, `ops` puts of new keys,
/// `ops` puts of the same keys again, `ops` linearizable gets of them.
async fn raw_workload(etcd: &Client, ops: usize, value_len: usize) -> Result<Vec<Measured>> {
    let created = Arc::new(vec![b'x'; value_len]);
    let updated = Arc::new(vec![b'y'; value_len]);
    let mut measured = Vec::new();
    for clients in CLIENTS {
        let n = ops.max(clients);
        for (verb, value) in [
            ("create", created.clone()),
            ("update", updated.clone()),
            ("get", created.clone()),
        ] {
            let kv = etcd.kv_client();
            let timing = kube_util::run_pool(n, clients, move |i| {
                let (mut kv, value) = (kv.clone(), value.clone());
                let key = format!("{}c{clients}-{i}", configmaps(RAW_PREFIX));
                async move {
                    if verb == "get" {
                        let found = kv.get(key.as_str(), None).await?;
                        if found.kvs().is_empty() {
                            bail!("raw etcd: {key} is missing");
                        }
                    } else {
                        kv.put(key, value.as_slice(), None).await?;
                    }
                    Ok(())
                }
            })
            .await?;
            measured.push(Measured::new(verb, clients, timing));
        }
    }
    Ok(measured)
}

/// etcd requests (unary gRPC calls handled, summed over the members) per API call.
#[derive(Debug, Clone, Copy, Default)]
struct Requests {
    range: f64,
    txn: f64,
    put: f64,
}

impl Requests {
    fn shown(&self) -> String {
        let parts: Vec<String> = [("Range", self.range), ("Txn", self.txn), ("Put", self.put)]
            .iter()
            .filter(|(_, n)| *n >= 0.005)
            .map(|(what, n)| format!("{} {what}", round((n * 100.0).round() / 100.0)))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(" + ")
        }
    }
}

/// How many etcd requests each create, update and get makes: `calls` sequential calls of each
/// verb (the workload's own phases, one client), etcd's request counters read around each.
/// keg's background requests (leases, its revision refresh) in those moments are counted too.
async fn requests_per_call(
    client: &kube::Client,
    endpoints: &[String],
    calls: usize,
) -> Result<Vec<(&'static str, Requests)>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), api::NAMESPACE);
    let phase = Phase::new(&api, "probe", 1, calls);
    let mut out = Vec::new();
    for verb in ["create", "update", "get"] {
        let before = grpc_handled(endpoints).await?;
        match verb {
            "create" => phase.create().await?,
            "update" => phase.update().await?,
            _ => phase.get().await?,
        };
        let after = grpc_handled(endpoints).await?;
        let per = |a: f64, b: f64| (a - b) / calls as f64;
        out.push((
            verb,
            Requests {
                range: per(after.range, before.range),
                txn: per(after.txn, before.txn),
                put: per(after.put, before.put),
            },
        ));
    }
    Ok(out)
}

/// A member's `/metrics` (etcd serves them on the client port).
async fn metrics(endpoint: &str) -> Result<String> {
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(endpoint).await?;
        stream
            .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {endpoint}\r\n\r\n").as_bytes())
            .await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        anyhow::Ok(body)
    };
    tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .map_err(|_| anyhow!("no /metrics from {endpoint} in 10 s"))?
        .with_context(|| format!("reading /metrics from {endpoint}"))
}

/// The KV service's unary calls handled so far, summed over the members.
async fn grpc_handled(endpoints: &[String]) -> Result<Requests> {
    let mut total = Requests::default();
    for endpoint in endpoints {
        for line in metrics(endpoint).await?.lines() {
            if !line.starts_with("grpc_server_handled_total{")
                || !line.contains("grpc_service=\"etcdserverpb.KV\"")
            {
                continue;
            }
            let value: f64 = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            if line.contains("grpc_method=\"Range\"") {
                total.range += value;
            } else if line.contains("grpc_method=\"Txn\"") {
                total.txn += value;
            } else if line.contains("grpc_method=\"Put\"") {
                total.put += value;
            }
        }
    }
    Ok(total)
}

/// Mean WAL fsync over every member since it started, from etcd's own histogram.
async fn wal_fsync_ms(endpoints: &[String]) -> Result<f64> {
    let (mut sum, mut count) = (0.0, 0.0);
    for endpoint in endpoints {
        for line in metrics(endpoint).await?.lines() {
            let value = |name: &str| {
                line.strip_prefix(name)
                    .and_then(|v| v.trim().parse::<f64>().ok())
            };
            if let Some(v) = value("etcd_disk_wal_fsync_duration_seconds_sum ") {
                sum += v;
            } else if let Some(v) = value("etcd_disk_wal_fsync_duration_seconds_count ") {
                count += v;
            }
        }
    }
    if count == 0.0 {
        bail!("no WAL fsyncs in etcd's metrics");
    }
    Ok(sum / count * 1000.0)
}

/// What `etcdctl check perf` printed, and the numbers in it.
struct CheckPerf {
    /// Its verdict lines (`PASS: Throughput is 151 writes/s`, ..., `PASS` or `FAIL`).
    summary: Vec<String>,
    throughput: Option<f64>,
    slowest_ms: Option<f64>,
    stddev_ms: Option<f64>,
}

impl CheckPerf {
    fn rows(&self) -> Vec<Row> {
        let what = "etcdctl check perf --load=s, 3 members";
        let mut rows = Vec::new();
        if let Some(v) = self.throughput {
            rows.push(
                Row::new(SUITE, format!("{what}: throughput"), v, "writes/s")
                    .anchor("its pass mark: > 90% of the 150 writes/s it offers"),
            );
        }
        if let Some(v) = self.slowest_ms {
            rows.push(
                Row::new(SUITE, format!("{what}: slowest request"), v, "ms")
                    .anchor("its pass mark: <= 500 ms"),
            );
        }
        if let Some(v) = self.stddev_ms {
            rows.push(
                Row::new(SUITE, format!("{what}: latency stddev"), v, "ms")
                    .anchor("its pass mark: <= 100 ms"),
            );
        }
        rows
    }
}

/// Runs `etcdctl check perf --load=s` against `endpoints` (60 s of writes); a FAIL verdict
/// is a result, not an error.
async fn check_perf(endpoints: &[String]) -> Result<CheckPerf> {
    let etcdctl = binary("ETCDCTL_BIN", "etcdctl").context("no etcdctl binary")?;
    let run = tokio::process::Command::new(&etcdctl)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .args(["check", "perf", "--load=s"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .map_err(|_| anyhow!("etcdctl check perf did not finish in 180 s"))?
        .with_context(|| format!("running {}", etcdctl.display()))?;
    let printed = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The progress bar redraws with carriage returns; the verdicts are whole lines after it.
    let summary: Vec<String> = printed
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| {
            l.starts_with("PASS")
                || l.starts_with("FAIL")
                || l.starts_with("Slowest")
                || l.starts_with("Stddev")
        })
        .map(str::to_owned)
        .collect();
    if summary.is_empty() {
        bail!("etcdctl check perf printed no verdict:\n{printed}");
    }
    let find = |word: &str| summary.iter().find(|l| l.contains(word));
    let seconds_at_end = |line: &String| {
        line.rsplit(' ')
            .next()
            .and_then(|v| v.trim_end_matches('s').parse::<f64>().ok())
            .map(|s| s * 1000.0)
    };
    let throughput = find("writes/s").and_then(|l| {
        let before = l.split(" writes/s").next()?;
        before.rsplit(' ').next()?.parse().ok()
    });
    Ok(CheckPerf {
        throughput,
        slowest_ms: find("Slowest").and_then(seconds_at_end),
        stddev_ms: find("Stddev").and_then(seconds_at_end),
        summary,
    })
}

/// `$VAR`, else `name` on the `PATH`.
fn binary(var: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// `3.4.23`, from `etcd --version`.
fn etcd_version() -> String {
    binary("ETCD_BIN", "etcd")
        .and_then(|etcd| {
            std::process::Command::new(etcd)
                .arg("--version")
                .output()
                .ok()
        })
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("etcd Version:").map(|v| v.trim().to_owned()))
        })
        .unwrap_or_else(|| "(unknown version)".into())
}

/// The file system `path` is on, e.g. `ext4 (/dev/vda, mounted on /)`, from /proc/self/mounts.
fn filesystem(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, mount, kind) = (fields.next()?, fields.next()?, fields.next()?);
            let mount = mount.replace("\\040", " ");
            path.starts_with(&mount).then_some((mount, device, kind))
        })
        .max_by_key(|(mount, _, _)| mount.len())
        .map(|(mount, device, kind)| format!("{kind} ({device}, mounted on {mount})"))
        .unwrap_or_else(|| "an unknown file system".into())
}

/// Appends 4 KiB and fdatasyncs, `n` times, in `dir`: what one durable write costs there.
fn fdatasync_latencies(dir: &Path, n: usize) -> Result<Latencies> {
    use std::io::Write;
    let path = dir.join("fdatasync-probe");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let block = [0u8; 4096];
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        samples.push(started.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(Latencies::new(samples))
}

/// p50, p99, mean and throughput of each verb and client count, as rows named `who: ...`.
fn measured_rows(who: &str, measured: &[Measured]) -> Vec<Row> {
    let mut rows = Vec::new();
    for m in measured {
        let (verb, clients) = (m.verb, m.who());
        let l = &m.latencies;
        for (stat, value, unit) in [
            ("p50", l.ms(0.5), "ms"),
            ("p99", l.ms(0.99), "ms"),
            ("mean", l.mean_ms(), "ms"),
            ("throughput", m.throughput(), "ops/s"),
        ] {
            let mut row = Row::new(
                SUITE,
                format!("{who}: {verb} {stat} ({clients})"),
                value,
                unit,
            );
            if who.starts_with("raw etcd, 3") && stat == "throughput" {
                row = row.anchor(published(verb, m.clients));
            }
            rows.push(row);
        }
    }
    rows
}

/// `a ÷ b` of p50, p99 and throughput for each verb and client count both measured.
fn ratio_rows(a_name: &str, a: &[Measured], b_name: &str, b: &[Measured]) -> Vec<Row> {
    let mut rows = Vec::new();
    for (x, y) in pairs(a, b) {
        for (stat, value) in ratios(x, y) {
            rows.push(Row::new(
                SUITE,
                format!("{a_name} ÷ {b_name}: {} {stat} ({})", x.verb, x.who()),
                value,
                "×",
            ));
        }
    }
    rows
}

/// The measurements of `a` and `b` of the same verb and client count.
fn pairs<'a>(
    a: &'a [Measured],
    b: &'a [Measured],
) -> impl Iterator<Item = (&'a Measured, &'a Measured)> {
    a.iter().filter_map(move |x| {
        b.iter()
            .find(|y| y.verb == x.verb && y.clients == x.clients)
            .map(|y| (x, y))
    })
}

/// p50, p99 and throughput of `x` over those of `y`.
fn ratios(x: &Measured, y: &Measured) -> [(&'static str, f64); 3] {
    let over = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    [
        ("p50", over(x.latencies.ms(0.5), y.latencies.ms(0.5))),
        ("p99", over(x.latencies.ms(0.99), y.latencies.ms(0.99))),
        ("throughput", over(x.throughput(), y.throughput())),
    ]
}

/// `1.23 / 4.56 ms, 812/s`: p50 / p99, throughput.
fn cell(m: &Measured) -> String {
    format!(
        "{} / {} ms, {}/s",
        round(m.latencies.ms(0.5)),
        round(m.latencies.ms(0.99)),
        round(m.throughput())
    )
}

/// `×2.1 / ×1.5, ×0.45`: the ratios of p50, p99 and throughput.
fn ratio_cell(x: &Measured, y: &Measured) -> String {
    let [p50, p99, throughput] = ratios(x, y).map(|(_, v)| format!("×{}", round(v)));
    format!("{p50} / {p99}, {throughput}")
}

/// The suite's Markdown: each etcd cluster's table (raw etcd, keg on it, keg embedded, the
/// ratios), then the etcd requests each API call made.
fn table(clusters: &[OnEtcd], embedded: &[Measured]) -> String {
    let mut out = String::new();
    for c in clusters {
        let with_anchor = c.members == 3;
        out.push_str(&format!(
            "{}: each cell p50 / p99 latency, throughput; ratios of the same three (latency \
             above ×1 is slower than raw etcd, throughput below ×1 is less)\n\n",
            members(c.members)
        ));
        out.push_str(
            "| call (clients) | raw etcd | keg on etcd | keg embedded | keg on etcd ÷ raw | \
             keg embedded ÷ raw |",
        );
        out.push_str(if with_anchor {
            " raw etcd mean | etcd.io published, 3 × 8 vCPU |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n"
        } else {
            "\n| --- | --- | --- | --- | --- | --- |\n"
        });
        for raw in &c.raw {
            let find = |set: &'_ [Measured]| {
                set.iter()
                    .find(|m| m.verb == raw.verb && m.clients == raw.clients)
                    .map(|m| (cell(m), ratio_cell(m, raw)))
                    .unwrap_or_default()
            };
            let (keg, keg_ratio) = find(&c.keg);
            let (emb, emb_ratio) = find(embedded);
            out.push_str(&format!(
                "| {} ({}) | {} | {keg} | {emb} | {keg_ratio} | {emb_ratio} |",
                raw.verb,
                raw.clients,
                cell(raw)
            ));
            if with_anchor {
                out.push_str(&format!(
                    " {} ms | {} |",
                    round(raw.latencies.mean_ms()),
                    published(raw.verb, raw.clients)
                ));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str("etcd requests per API call (one client, sequential; keg's background requests in the same moments included)\n\n| API call |");
    for c in clusters {
        out.push_str(&format!(" keg on etcd, {} |", members(c.members)));
    }
    out.push_str(&format!("\n| ---{} |\n", " | ---".repeat(clusters.len())));
    for verb in ["create", "update", "get"] {
        out.push_str(&format!("| {verb} |"));
        for c in clusters {
            let shown = c
                .requests
                .iter()
                .find(|(v, _)| *v == verb)
                .map(|(_, r)| r.shown())
                .unwrap_or_default();
            out.push_str(&format!(" {shown} |"));
        }
        out.push('\n');
    }
    let sizes: Vec<String> = clusters
        .iter()
        .map(|c| format!("{} bytes ({})", c.value_len, members(c.members)))
        .collect();
    out.push_str(&format!(
        "\nRaw etcd's values: {}, the mean size of what keg stored for the ConfigMaps.\n",
        sizes.join(", ")
    ));
    out
}
