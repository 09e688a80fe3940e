//! `svcscale`: Services at scale. Brings up a one-node lab with `examples/pods.yaml`, puts one real
//! ClusterIP Service in front of the `server` pod, then publishes N synthetic Services with K endpoints
//! each through the agent's manifest source (one file in the lab's cluster directory) and reports:
//!
//! - time to first full sync: from the file's rename until the agent's `/syncz` says a sync that began
//!   after the rename has finished (polled every 10 ms), cross-checked with the agent's own
//!   `services synced` log line (its timestamp and `took_ms`, the kernel-map part of the sync);
//! - time to apply one change: the same, after rewriting the file with one service's endpoints changed
//!   (`took_ms` and the `unchanged` count show whether untouched entries are skipped);
//! - the agent's RSS before and after (and its peak, VmHWM);
//! - connection latency (connect + one-line answer + close, from `default/client`, in its namespace and
//!   cgroup so the socket hooks translate) through the real ClusterIP with 1 and with N services, and
//!   straight to the server pod (the floor), with the ratios between them.
//!
//! Needs root. The lab has a run-unique name and is torn down on success, error, panic, SIGINT, SIGTERM
//! and SIGHUP. `sudo target/debug/svcscale [--services N] [--endpoints K] [--connects C] [--json]`.

use std::{
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, ensure};
use clap::Parser;
use nix::sys::signal::{SigSet, Signal};
use serde::Serialize;
use strait_bench::svcscale::{Format, MAX_BACKENDS, MAX_SERVICES, SyncLine, status_kib};
use strait_lab::{cluster::Lab, connbench::ConnStats};

mod dir_run;
mod kube_proxy;
mod kube_run;
mod report;
mod start_run;

use dir_run::run;
use report::print_table;

/// The client and server pods of `examples/pods.yaml`.
const CLIENT: &str = "default/client";
const SERVER: &str = "default/server";
/// How often `/syncz` is polled while waiting for a sync.
const SYNC_POLL: Duration = Duration::from_millis(10);
/// Alternating blocks each latency phase is measured in.
const BLOCKS: usize = 10;
/// When the log shows the sync but `/syncz` does not move for this long, the log's figure is used.
const SYNCZ_STALL: Duration = Duration::from_secs(2);

/// Services at scale: sync time, change time, agent RSS and ClusterIP connection latency with N
/// services (needs root).
#[derive(Parser, Debug)]
#[command(name = "svcscale", version)]
struct Args {
    /// Synthetic Services to publish.
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// Endpoints per synthetic Service.
    #[arg(long, default_value_t = 5)]
    endpoints: usize,
    /// Sequential connections per latency figure.
    #[arg(long, default_value_t = 2_000)]
    connects: usize,
    /// One-change measurements (each flips one service's EndpointSlice); p50 and p99 are reported.
    #[arg(long, default_value_t = 100)]
    changes: usize,
    /// How the objects are published to the directory source: one multi-document YAML file, one file
    /// of concatenated JSON values, or one JSON file per object (as the lab writes them; a change then
    /// rewrites one file, and only this layout gets the sustained-rate run).
    #[arg(long, value_enum, default_value_t = Format::Files)]
    format: Format,
    /// Which agent source to measure: the manifest directory (a lab with the real agent), the
    /// Kubernetes API (the agent's sync loop and kube source in this process, against a stand-in API
    /// server on loopback, writing real kernel maps), or both.
    #[arg(long, value_enum, default_value_t = SourceArg::Both)]
    source: SourceArg,
    /// Changes per second in the sustained run (each to another Service).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds the sustained run lasts.
    #[arg(long, default_value_t = 3.0)]
    sustain_s: f64,
    /// kube-proxy's own sync costs at the same scale, measured here: iptables-restore only, or also
    /// nft (minutes at 10,000 Services), or none.
    #[arg(long, value_enum, default_value_t = KubeProxyArg::All)]
    kube_proxy: KubeProxyArg,
    /// Stop timing a kube-proxy tool after this many seconds (reported as timed out).
    #[arg(long, default_value_t = 300)]
    kube_proxy_limit_s: u64,
    /// A bounded run for CI: 1,000 Services, 20 changes, 1 s of sustained changes, 200 connects.
    #[arg(long)]
    quick: bool,
    /// Give up waiting for a sync after this many seconds.
    #[arg(long, default_value_t = 600)]
    sync_timeout_s: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `--source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum SourceArg {
    Dir,
    Kube,
    Both,
}

/// `--kube-proxy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum KubeProxyArg {
    None,
    Iptables,
    All,
}

fn progress(message: impl std::fmt::Display) {
    eprintln!("svcscale: {message}");
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A duration in ms, rounded to 0.1 ms.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Tears the lab down when dropped (success, error or panic).
struct LabGuard {
    name: String,
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        progress(format_args!("tearing down lab {}", self.name));
        if let Err(error) = strait_lab::down(&self.name) {
            eprintln!("svcscale: cleaning up lab {}: {error}", self.name);
        }
    }
}

/// Set by the first SIGINT, SIGTERM or SIGHUP: the run stops at its next [`checkpoint`] and the guard
/// tears the lab down.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Fails once a stop signal has arrived.
fn checkpoint() -> anyhow::Result<()> {
    ensure!(!INTERRUPTED.load(Ordering::SeqCst), "interrupted");
    Ok(())
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (and so in every thread started later) and starts a
/// thread that waits for them. The first one makes the run stop at its next checkpoint (within seconds)
/// and tear the lab down in order; a second one tears the lab down at once and exits. Must run before
/// any other thread starts.
fn tear_down_on_signal(lab: String) -> anyhow::Result<()> {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    set.thread_block().context("blocking signals")?;
    std::thread::spawn(move || {
        while let Ok(signal) = set.wait() {
            if !INTERRUPTED.swap(true, Ordering::SeqCst) {
                eprintln!(
                    "svcscale: {signal}: stopping after the current step (again to stop now)"
                );
                continue;
            }
            eprintln!("svcscale: {signal}: tearing down lab {lab} now");
            if let Err(error) = strait_lab::down(&lab) {
                eprintln!("svcscale: cleaning up lab {lab}: {error}");
            }
            std::process::exit(130);
        }
    });
    Ok(())
}

/// Where the lab finds `straitd`, `strait-cni` and `strait`: STRAIT_BIN_DIR, else next to this binary.
fn export_bin_dir() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("STRAIT_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe()
            .context("finding the current executable")?
            .parent()
            .map(Path::to_path_buf)
            .context("the current executable has no directory")?,
    };
    for bin in ["strait", "straitd", "strait-cni"] {
        ensure!(
            dir.join(bin).exists(),
            "{bin} is not in {}: run `cargo build --bins` first, or set STRAIT_BIN_DIR",
            dir.display()
        );
    }
    // SAFETY: set before any other thread of ours starts.
    unsafe { std::env::set_var("STRAIT_BIN_DIR", &dir) };
    Ok(dir)
}

/// One wait for the agent to pick up a rewritten file.
#[derive(Clone, Copy, Debug, Serialize)]
struct SyncTiming {
    /// From the rename until `/syncz` showed a sync that began after it (10 ms polling), or the log's
    /// figure when `/syncz` stalled.
    wall_ms: f64,
    /// How long the renames themselves took (the agent may start on the first files meanwhile).
    renames_ms: f64,
    /// From the rename until the agent logged the sync's end (its own clock, ms resolution).
    log_ms: Option<i64>,
    /// The agent's `services synced` line for this sync.
    agent: SyncLine,
    /// Rename until the kernel-map part began: poll wait (0-200 ms), reading, parsing, translating.
    before_map_sync_ms: Option<i64>,
    /// The slowest `/syncz` answer while waiting (the agent serves HTTP on the thread that syncs).
    slowest_syncz_ms: f64,
    /// True when `/syncz` never moved past the rename and the log's figure was used.
    syncz_stalled: bool,
    /// When stalled: the last `/syncz` value minus the rename time (ms; <= 0), and whether `/syncz`
    /// moved at all (a sync was stamped, just not after the rename).
    #[serde(skip_serializing_if = "Option::is_none")]
    stalled_syncz_minus_rename_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stalled_syncz_moved: Option<bool>,
}

/// Memory of the agent, KiB.
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
}

fn agent_memory(pid: i32) -> anyhow::Result<Memory> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status of the agent"))?;
    Ok(Memory {
        rss_kib: status_kib(&status, "VmRSS").context("no VmRSS in the agent's status")?,
        hwm_kib: status_kib(&status, "VmHWM").unwrap_or_default(),
    })
}

/// Latency figures of one phase.
#[derive(Clone, Copy, Debug, Serialize)]
struct Phase {
    services: usize,
    direct: ConnStats,
    cluster_ip: ConnStats,
}

/// The headline figures (from the directory run when there is one, else the kube run), then each
/// run's details.
#[derive(Debug, Serialize)]
struct Report {
    services: usize,
    endpoints_per_service: usize,
    /// Time to the first full sync of an agent starting with every object in place, ms: the directory
    /// source's median over rounds when it ran, else the kube source's.
    full_sync_ms: f64,
    /// The directory source's bulk publication: from the first of N files renamed into a running
    /// agent's directory to its sync of the last (the renames themselves included), ms.
    dir_publish_sync_ms: Option<f64>,
    /// One EndpointSlice change, from the agent hearing of it to its last map write: p50 and p99, ms.
    change_p50_ms: f64,
    change_p99_ms: f64,
    /// The agent's RSS after the changes (directory run only), MiB.
    agent_rss_mib: Option<f64>,
    /// The same figures for the kube source.
    kube_full_sync_ms: Option<f64>,
    kube_change_p50_ms: Option<f64>,
    kube_change_p99_ms: Option<f64>,
    dir: Option<DirRun>,
    dir_start: Option<start_run::StartRun>,
    kube: Option<kube_run::KubeRun>,
    kube_proxy: Option<kube_proxy::KubeProxySync>,
}

/// Nearest-rank percentile of `values` (`q` in 0..=1); 0 for none.
fn percentile(values: &[u64], q: f64) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return 0;
    }
    let rank = whole(q * count_f64(sorted.len())).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A count as a float (exact far beyond any count here).
#[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
pub(crate) fn count_f64(n: usize) -> f64 {
    n as f64
}

/// `x` rounded up to a whole count (negative and NaN give 0).
#[expect(
    clippy::cast_sign_loss,
    clippy::cast_possible_truncation,
    reason = "clamped to 0 first; counts far below usize::MAX"
)]
pub(crate) fn whole(x: f64) -> usize {
    x.ceil().max(0.0) as usize
}

fn us_to_ms(us: u64) -> f64 {
    float(us) / 1e3
}

#[derive(Debug, Serialize)]
struct DirRun {
    lab: String,
    bin_dir: String,
    services: usize,
    endpoints_per_service: usize,
    frontends: usize,
    connects: usize,
    format: String,
    file_bytes: usize,
    cluster_ip: Ipv4Addr,
    server_ip: Ipv4Addr,
    first_sync: SyncTiming,
    /// The median of `change_rounds` by wall time.
    one_change: SyncTiming,
    change_rounds: Vec<SyncTiming>,
    memory_before: Memory,
    memory_after_sync: Memory,
    memory_after_change: Memory,
    latency_1: Phase,
    latency_n: Phase,
    /// ClusterIP latency ratios.
    cluster_ip_ratios: Ratios,
    /// The agent's event-to-map latency of each change round, µs.
    change_latency_us: Vec<u64>,
    /// A stream of changes at a fixed rate (per-object files only).
    sustained: Option<kube_run::Sustained>,
}

/// The latency ratios the benchmark exists for.
#[derive(Clone, Copy, Debug, Serialize)]
struct Ratios {
    /// ClusterIP p50 (mean) with N services over ClusterIP p50 (mean) with 1.
    p50_n_over_1: f64,
    mean_n_over_1: f64,
    /// ClusterIP p50 over direct p50, with 1 service and with N.
    p50_over_direct_1: f64,
    p50_over_direct_n: f64,
}

impl Ratios {
    fn of(one: &Phase, n: &Phase) -> Self {
        Self {
            p50_n_over_1: ratio(n.cluster_ip.p50_us, one.cluster_ip.p50_us),
            mean_n_over_1: ratio(n.cluster_ip.mean_us, one.cluster_ip.mean_us),
            p50_over_direct_1: ratio(one.cluster_ip.p50_us, one.direct.p50_us),
            p50_over_direct_n: ratio(n.cluster_ip.p50_us, n.direct.p50_us),
        }
    }
}

/// Applies `--quick` and checks the arguments.
fn checked(mut args: Args) -> anyhow::Result<Args> {
    if args.quick {
        args.services = 1_000;
        args.changes = 20;
        args.sustain_s = 1.0;
        args.connects = 200;
    }
    ensure!(
        nix::unistd::geteuid().is_root(),
        "svcscale builds a lab (namespaces, BPF): run it as root"
    );
    ensure!(
        (1..=MAX_SERVICES).contains(&args.services),
        "--services must be between 1 and {MAX_SERVICES}"
    );
    ensure!(
        (1..=100).contains(&args.endpoints) && args.services * args.endpoints <= MAX_BACKENDS,
        "--endpoints must be between 1 and 100, and services x endpoints at most {MAX_BACKENDS}"
    );
    ensure!(
        (1..=100_000).contains(&args.connects),
        "--connects must be between 1 and 100000"
    );
    ensure!(
        (1..=1_000).contains(&args.changes),
        "--changes must be between 1 and 1000"
    );
    ensure!(
        args.rate > 0.0 && args.rate <= 10_000.0 && args.sustain_s > 0.0 && args.sustain_s <= 60.0,
        "--rate must be in (0, 10000] and --sustain-s in (0, 60]"
    );
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = checked(Args::parse())?;
    let bin_dir = export_bin_dir()?;
    let name = format!(
        "svcscale{}",
        strait_bench::netbench::run::base36(std::process::id())
    );
    tear_down_on_signal(name.clone())?;
    let dir = if args.source == SourceArg::Kube {
        None
    } else {
        let guard = LabGuard { name };
        let dir = run(&args, &guard.name, &bin_dir);
        drop(guard);
        if INTERRUPTED.load(Ordering::SeqCst) {
            std::process::exit(130);
        }
        let dir = dir?;
        let start = start_run::run(
            args.services,
            args.endpoints,
            Duration::from_secs(args.sync_timeout_s),
        )
        .context("the agent-start run")?;
        progress(format_args!(
            "directory source, agent start over {} files: first full sync median {:.0} ms (rounds {:?})",
            start.files, start.median_ms, start.rounds_ms
        ));
        progress(format_args!(
            "directory source: first full sync {:.0} ms; change p50 {:.3} ms, p99 {:.3} ms (event to map); agent RSS {:.1} MiB",
            dir.first_sync.wall_ms,
            us_to_ms(percentile(&dir.change_latency_us, 0.5)),
            us_to_ms(percentile(&dir.change_latency_us, 0.99)),
            mib(dir.memory_after_change.rss_kib)
        ));
        Some((dir, start))
    };
    let (dir, dir_start) = dir.unzip();
    let kube = if args.source == SourceArg::Dir {
        None
    } else {
        progress(format_args!(
            "kube source: {} Services x {} endpoints from a stand-in API server on loopback",
            args.services, args.endpoints
        ));
        let run = kube_run::run(
            args.services,
            args.endpoints,
            args.changes,
            args.rate,
            args.sustain_s,
            Duration::from_secs(args.sync_timeout_s),
        )
        .context("the kube-source run")?;
        progress(format_args!(
            "kube source: first full sync {:.0} ms; change p50 {:.3} ms, p99 {:.3} ms (event to map)",
            run.full_sync_ms,
            us_to_ms(percentile(&run.change_latency_us, 0.5)),
            us_to_ms(percentile(&run.change_latency_us, 0.99)),
        ));
        Some(run)
    };
    let kube_proxy = if args.kube_proxy == KubeProxyArg::None {
        None
    } else {
        progress(format_args!(
            "kube-proxy: timing iptables-restore{} at the same scale",
            if args.kube_proxy == KubeProxyArg::All {
                " and nft"
            } else {
                ""
            }
        ));
        Some(
            kube_proxy::measure(
                args.services,
                args.endpoints,
                args.kube_proxy == KubeProxyArg::All,
                Duration::from_secs(args.kube_proxy_limit_s),
            )
            .context("timing kube-proxy's syncs")?,
        )
    };
    let report = Report::new(&args, dir, dir_start, kube, kube_proxy);
    if args.json {
        match strait_bench::stdout::print(serde_json::to_string_pretty(&report)?) {
            Err(error) if strait_bench::stdout::is_closed_stdout(&error) => {}
            result => result?,
        }
    } else {
        print_table(&report);
    }
    Ok(())
}

impl Report {
    fn new(
        args: &Args,
        dir: Option<DirRun>,
        dir_start: Option<start_run::StartRun>,
        kube: Option<kube_run::KubeRun>,
        kube_proxy: Option<kube_proxy::KubeProxySync>,
    ) -> Self {
        let kube_changes = kube.as_ref().map(|k| k.change_latency_us.clone());
        let changes = match (&dir, &kube) {
            (Some(d), _) => d.change_latency_us.clone(),
            (None, Some(k)) => k.change_latency_us.clone(),
            (None, None) => Vec::new(),
        };
        let full_sync_ms = match (&dir_start, &kube) {
            (Some(s), _) => s.median_ms,
            (None, Some(k)) => k.full_sync_ms,
            (None, None) => f64::NAN,
        };
        Self {
            services: args.services,
            endpoints_per_service: args.endpoints,
            full_sync_ms,
            dir_publish_sync_ms: dir.as_ref().map(|d| d.first_sync.wall_ms),
            change_p50_ms: us_to_ms(percentile(&changes, 0.5)),
            change_p99_ms: us_to_ms(percentile(&changes, 0.99)),
            agent_rss_mib: dir.as_ref().map(|d| mib(d.memory_after_change.rss_kib)),
            kube_full_sync_ms: kube.as_ref().map(|k| k.full_sync_ms),
            kube_change_p50_ms: kube_changes.as_ref().map(|c| us_to_ms(percentile(c, 0.5))),
            kube_change_p99_ms: kube_changes.as_ref().map(|c| us_to_ms(percentile(c, 0.99))),
            dir,
            dir_start,
            kube,
            kube_proxy,
        }
    }
}

/// A count or size as a float, for display and ratios (exact far beyond any figure here).
#[expect(
    clippy::cast_precision_loss,
    reason = "byte and KiB figures for display only"
)]
fn float(v: u64) -> f64 {
    v as f64
}

fn mib(kib: u64) -> f64 {
    float(kib) / 1024.0
}

fn megabytes(bytes: usize) -> f64 {
    float(bytes as u64) / 1e6
}

fn ratio(a: u64, b: u64) -> f64 {
    float(a) / float(b).max(1.0)
}
