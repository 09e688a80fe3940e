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
    io::{Read as _, Seek as _, SeekFrom},
    net::Ipv4Addr,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use nix::sys::signal::{SigSet, Signal};
use serde::Serialize;
use serde_json::json;
use strait_bench::svcscale::{
    self as synth, Format, MAX_BACKENDS, MAX_SERVICES, SyncLine, Variant, parse_sync_line,
    status_kib,
};
use strait_lab::{cluster::Lab, connbench::ConnStats};

mod kube_proxy;
mod kube_run;
mod mock_api;

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

fn base36(mut n: u32) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit(n % 36, 36).unwrap_or('0'));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
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
    /// Time to the first full sync, ms.
    full_sync_ms: f64,
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
    let name = format!("svcscale{}", base36(std::process::id()));
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
        progress(format_args!(
            "directory source: first full sync {:.0} ms; change p50 {:.3} ms, p99 {:.3} ms (event to map); agent RSS {:.1} MiB",
            dir.first_sync.wall_ms,
            us_to_ms(percentile(&dir.change_latency_us, 0.5)),
            us_to_ms(percentile(&dir.change_latency_us, 0.99)),
            mib(dir.memory_after_change.rss_kib)
        ));
        Some(dir)
    };
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
    let report = Report::new(&args, dir, kube, kube_proxy);
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
        kube: Option<kube_run::KubeRun>,
        kube_proxy: Option<kube_proxy::KubeProxySync>,
    ) -> Self {
        let kube_changes = kube.as_ref().map(|k| k.change_latency_us.clone());
        let (full_sync_ms, changes) = match (&dir, &kube) {
            (Some(d), _) => (d.first_sync.wall_ms, d.change_latency_us.clone()),
            (None, Some(k)) => (k.full_sync_ms, k.change_latency_us.clone()),
            (None, None) => (f64::NAN, Vec::new()),
        };
        Self {
            services: args.services,
            endpoints_per_service: args.endpoints,
            full_sync_ms,
            change_p50_ms: us_to_ms(percentile(&changes, 0.5)),
            change_p99_ms: us_to_ms(percentile(&changes, 0.99)),
            agent_rss_mib: dir.as_ref().map(|d| mib(d.memory_after_change.rss_kib)),
            kube_full_sync_ms: kube.as_ref().map(|k| k.full_sync_ms),
            kube_change_p50_ms: kube_changes.as_ref().map(|c| us_to_ms(percentile(c, 0.5))),
            kube_change_p99_ms: kube_changes.as_ref().map(|c| us_to_ms(percentile(c, 0.99))),
            dir,
            kube,
            kube_proxy,
        }
    }
}

fn run(args: &Args, name: &str, bin_dir: &Path) -> anyhow::Result<DirRun> {
    let pods = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pods.yaml");
    progress(format_args!(
        "bringing up lab {name} (1 node, {}; binaries from {})",
        pods.display(),
        bin_dir.display()
    ));
    let mut lab = Lab::up(name, 1, Some(&pods)).context("bringing up the lab")?;
    checkpoint()?;
    let agent_pid = lab.state.nodes[0].agent_pid;
    let (vip, server_ip) = real_service(&mut lab)?;
    let latency_1 = measure_phase(&lab, 1, vip, server_ip, args.connects)?;
    let memory_before = agent_memory(agent_pid)?;
    checkpoint()?;

    // N synthetic services, one file, first sync.
    let frontends = args.services + 1;
    let publisher = Publisher::new(&lab, args);
    progress(format_args!(
        "generating {} Services x {} endpoints ({})",
        args.services, args.endpoints, args.format
    ));
    let files = publication(args, Variant::Original, None)?;
    let file_bytes = files.iter().map(|(_, text)| text.len()).sum();
    progress(format_args!(
        "publishing {} file(s) ({:.1} MB) and waiting for the first full sync",
        files.len(),
        megabytes(file_bytes)
    ));
    // With one file per object the agent may pick the files up over several polls: the sync that
    // reaches every frontend ends it, whatever it added itself.
    let whole = args.format != Format::Files;
    let first_sync = publisher.publish(&files, |l| {
        l.frontends == frontends as u64 && (!whole || l.added >= args.services as u64)
    })?;
    progress(format_args!(
        "first full sync: {:.0} ms (agent log: {} frontends, {} added, kernel maps took {} ms)",
        first_sync.wall_ms,
        first_sync.agent.frontends,
        first_sync.agent.added,
        first_sync.agent.took_ms
    ));
    let memory_after_sync = agent_memory(agent_pid)?;
    let latency_n = measure_phase(&lab, frontends, vip, server_ip, args.connects)?;

    let change_rounds = measure_changes(&publisher, args)?;
    let change_rounds_copy = change_rounds.clone();
    let mut by_wall = change_rounds.clone();
    by_wall.sort_by(|a, b| a.wall_ms.total_cmp(&b.wall_ms));
    let one_change = by_wall[by_wall.len() / 2];
    let sustained = if args.format == Format::Files {
        Some(measure_sustained(&publisher, args)?)
    } else {
        None
    };
    let memory_after_change = agent_memory(agent_pid)?;
    // The real Service still works with everything in place.
    expect_server(&lab, vip, "after the changes")?;

    Ok(DirRun {
        lab: name.to_owned(),
        bin_dir: bin_dir.display().to_string(),
        services: args.services,
        endpoints_per_service: args.endpoints,
        frontends,
        connects: args.connects,
        format: args.format.to_string(),
        file_bytes,
        cluster_ip: vip,
        server_ip,
        first_sync,
        one_change,
        change_rounds,
        memory_before,
        memory_after_sync,
        memory_after_change,
        cluster_ip_ratios: Ratios::of(&latency_1, &latency_n),
        latency_1,
        latency_n,
        change_latency_us: change_rounds_latency(&change_rounds_copy),
        sustained,
    })
}

fn change_rounds_latency(rounds: &[SyncTiming]) -> Vec<u64> {
    rounds.iter().map(|t| t.agent.latency_us).collect()
}

/// Writes one Service's EndpointSlice file after another at `--rate` for `--sustain-s`, each to
/// another Service, without waiting; then waits until the agent has synced past the last rename.
fn measure_sustained(
    publisher: &Publisher<'_>,
    args: &Args,
) -> anyhow::Result<kube_run::Sustained> {
    let count = whole((args.rate * args.sustain_s).round()).max(1);
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    progress(format_args!(
        "sustained: {count} changes at {} per second, each to another Service",
        args.rate
    ));
    let log_offset = fs::metadata(&publisher.log).map_or(0, |m| m.len());
    let start = Instant::now();
    for k in 0..count {
        checkpoint()?;
        let index = (args.changes * 7_919 + k * 104_729) % args.services;
        let files = synth::object_files(
            args.services,
            args.endpoints,
            Variant::Changed(index),
            Some(index),
        )
        .map_err(anyhow::Error::msg)?;
        let due = start + interval * u32::try_from(k).unwrap_or(u32::MAX);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        publisher.write_now(&files)?;
    }
    let sent_secs = start.elapsed().as_secs_f64();
    let last = Instant::now();
    let last_ms = now_ms();
    while publisher.syncz().unwrap_or(0) <= last_ms {
        checkpoint()?;
        ensure!(
            last.elapsed() < publisher.timeout,
            "the agent did not catch up with the stream within {:?}",
            publisher.timeout
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let lag = last.elapsed();
    let lines = synth::sync_lines(&publisher.log, log_offset);
    let updated: u64 = lines.iter().map(|l| l.updated).sum();
    if updated < count as u64 {
        progress(format_args!(
            "note: the stream's syncs updated {updated} frontends for {count} changes (some changes \
             flipped a Service back to where an earlier one had left it)"
        ));
    }
    Ok(kube_run::Sustained {
        rate_hz: args.rate,
        changes: count,
        sent_hz: count_f64(count) / sent_secs.max(1e-9),
        lag_ms: ms(lag),
        syncs: lines.len(),
        latency_us: lines.iter().map(|l| l.latency_us).collect(),
    })
}

/// Applies the one real Service (for the server pod) as a user would and checks that the client reaches
/// the server through it. Returns (ClusterIP, server pod IP).
fn real_service(lab: &mut Lab) -> anyhow::Result<(Ipv4Addr, Ipv4Addr)> {
    let server_ip = lab
        .state
        .pod(SERVER)
        .map(|p| p.ip)
        .context("the lab has no default/server pod")?;
    let manifest = lab.names.run_dir().join("svcscale-server.json");
    fs::write(&manifest, server_service_json()?)
        .with_context(|| format!("writing {}", manifest.display()))?;
    lab.apply(&manifest)
        .context("applying the server's Service")?;
    let vip: Ipv4Addr = lab
        .state
        .services
        .get(SERVER)
        .and_then(|s| s.spec.as_ref()?.cluster_ip.as_deref()?.parse().ok())
        .context("the server's Service got no ClusterIP")?;
    expect_server(lab, vip, "with one service")?;
    progress(format_args!(
        "Service {SERVER} has ClusterIP {vip}:80 -> {server_ip}:8080; {CLIENT} reaches it"
    ));
    Ok((vip, server_ip))
}

/// Fails unless a probe from the client to `vip:80` is answered by the server.
fn expect_server(lab: &Lab, vip: Ipv4Addr, when: &str) -> anyhow::Result<()> {
    let answer = lab.probe(CLIENT, &format!("{vip}:80"), false, Duration::from_secs(2))?;
    ensure!(
        answer.as_deref() == Ok(SERVER),
        "{when}, {CLIENT} -> ClusterIP {vip}:80 should reach {SERVER}, got {answer:?}"
    );
    Ok(())
}

/// Rewrites the file `args.changes` times, each time with one service's endpoints different from the
/// previous round (alternately changed and restored), and times each sync.
fn measure_changes(publisher: &Publisher<'_>, args: &Args) -> anyhow::Result<Vec<SyncTiming>> {
    let changed = args.services / 2;
    let frontends = args.services as u64 + 1;
    let mut rounds = Vec::new();
    for round in 0..args.changes {
        checkpoint()?;
        let (variant, what) = if round % 2 == 0 {
            (Variant::Changed(changed), "changed")
        } else {
            (Variant::Original, "restored")
        };
        let files = publication(args, variant, Some(changed))?;
        progress(format_args!(
            "change {}/{}: rewriting {} file(s) with the endpoints of {}/{} {what}",
            round + 1,
            args.changes,
            files.len(),
            synth::NAMESPACE,
            synth::service_name(changed),
        ));
        let timing = publisher.publish(&files, |l| l.frontends == frontends && l.updated >= 1)?;
        progress(format_args!(
            "one change applied: {:.0} ms (agent log: {} updated, {} unchanged, kernel maps took {} ms)",
            timing.wall_ms, timing.agent.updated, timing.agent.unchanged, timing.agent.took_ms
        ));
        rounds.push(timing);
    }
    Ok(rounds)
}

/// The files to publish for `variant`: the whole single file, or (per-object layout) every object's
/// file — only service `changed`'s files when it is given.
fn publication(
    args: &Args,
    variant: Variant,
    changed: Option<usize>,
) -> anyhow::Result<Vec<(String, String)>> {
    if args.format == Format::Files {
        return synth::object_files(args.services, args.endpoints, variant, changed)
            .map_err(anyhow::Error::msg);
    }
    let text = synth::manifest(args.services, args.endpoints, variant, args.format)
        .map_err(anyhow::Error::msg)?;
    Ok(vec![(args.format.file_name().to_owned(), text)])
}

/// The ClusterIP Service for the server pod: port 80 to the pod's named port `http`.
fn server_service_json() -> anyhow::Result<String> {
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": "server", "namespace": "default" },
        "spec": {
            "type": "ClusterIP",
            "selector": { "app": "server" },
            "ports": [{ "name": "http", "port": 80, "targetPort": "http", "protocol": "TCP" }],
        },
    });
    Ok(serde_json::to_string_pretty(&service)?)
}

/// Direct and ClusterIP latency from the client, `connects` connections each, made in `BLOCKS`
/// alternating blocks (direct, ClusterIP, direct, ...) so a burst of load elsewhere on the machine hits
/// both alike.
fn measure_phase(
    lab: &Lab,
    services: usize,
    vip: Ipv4Addr,
    server_ip: Ipv4Addr,
    connects: usize,
) -> anyhow::Result<Phase> {
    progress(format_args!(
        "{connects} connects each {CLIENT} -> {server_ip}:8080 (direct) and -> {vip}:80 (ClusterIP), \
         {services} service(s), in {BLOCKS} alternating blocks"
    ));
    let blocks = BLOCKS.min(connects);
    let (mut direct, mut cluster_ip) = (Vec::new(), Vec::new());
    for block in 0..blocks {
        checkpoint()?;
        // Spread the remainder over the first blocks.
        let count = connects / blocks + usize::from(block < connects % blocks);
        direct.push(lab.connect_bench(CLIENT, &format!("{server_ip}:8080"), count)?);
        cluster_ip.push(lab.connect_bench(CLIENT, &format!("{vip}:80"), count)?);
    }
    let (direct, cluster_ip) = (combine(&direct), combine(&cluster_ip));
    for (what, stats) in [("direct", &direct), ("ClusterIP", &cluster_ip)] {
        if stats.failures > 0 {
            progress(format_args!(
                "warning: {} of {} {what} connections failed",
                stats.failures, stats.count
            ));
        }
    }
    Ok(Phase {
        services,
        direct,
        cluster_ip,
    })
}

/// One figure from the blocks of a phase: counts and failures summed, the maximum of the maxima, the
/// median of the blocks' p50, p99 and mean.
fn combine(blocks: &[ConnStats]) -> ConnStats {
    let median = |f: fn(&ConnStats) -> u64| {
        let mut values: Vec<u64> = blocks.iter().map(f).collect();
        values.sort_unstable();
        values.get(values.len() / 2).copied().unwrap_or_default()
    };
    ConnStats {
        count: blocks.iter().map(|b| b.count).sum(),
        failures: blocks.iter().map(|b| b.failures).sum(),
        p50_us: median(|b| b.p50_us),
        p99_us: median(|b| b.p99_us),
        mean_us: median(|b| b.mean_us),
        max_us: blocks.iter().map(|b| b.max_us).max().unwrap_or_default(),
    }
}

/// Publishes the benchmark's file into the lab's cluster directory and times the agent's sync.
struct Publisher<'a> {
    lab: &'a Lab,
    node: String,
    log: PathBuf,
    dir: PathBuf,
    timeout: Duration,
}

impl<'a> Publisher<'a> {
    fn new(lab: &'a Lab, args: &Args) -> Self {
        let node = lab.state.nodes[0].name.clone();
        let dir = lab.cluster_dir();
        Self {
            lab,
            log: lab.names.node_dir(&node).join("agent.log"),
            node,
            dir,
            timeout: Duration::from_secs(args.sync_timeout_s),
        }
    }

    /// Writes `files` (hidden temporary file, then renamed into place) without waiting for the agent.
    fn write_now(&self, files: &[(String, String)]) -> anyhow::Result<()> {
        for (name, text) in files {
            let tmp = self.dir.join(format!(".{name}.tmp"));
            fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
            fs::rename(&tmp, self.dir.join(name))
                .with_context(|| format!("renaming {}", tmp.display()))?;
        }
        Ok(())
    }

    fn syncz(&self) -> Option<u64> {
        self.lab
            .agent_get(&self.node, "/syncz")
            .ok()
            .and_then(|body| body.trim().parse::<u64>().ok())
    }

    /// Writes `files` (each as a hidden temporary file first, then all renamed into place; timing starts
    /// at the first rename) and waits until the agent has synced them: `/syncz` past the last rename,
    /// and a `services synced` line accepted by `expected` in the agent log.
    fn publish(
        &self,
        files: &[(String, String)],
        expected: impl Fn(&SyncLine) -> bool,
    ) -> anyhow::Result<SyncTiming> {
        let log = &self.log;
        let file = self
            .dir
            .join(files.first().map_or("(none)", |(name, _)| name.as_str()));
        for (name, text) in files {
            let tmp = self.dir.join(format!(".{name}.tmp"));
            fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        }
        let log_offset = fs::metadata(log).map_or(0, |m| m.len());
        let syncz_before = self.syncz().unwrap_or(0);
        let renamed = Instant::now();
        let renamed_ms = now_ms();
        for (name, _) in files {
            let (tmp, target) = (self.dir.join(format!(".{name}.tmp")), self.dir.join(name));
            fs::rename(&tmp, &target)
                .with_context(|| format!("renaming to {}", target.display()))?;
        }
        // A sync counts once it began after the last rename (a poll in between may see only part).
        let all_renamed_ms = now_ms();

        let mut syncz_last = syncz_before;
        let mut slowest_syncz = Duration::ZERO;
        let mut logged_at: Option<Instant> = None;
        let (wall, syncz_stalled) = loop {
            checkpoint()?;
            let asked = Instant::now();
            let synced = self.syncz().unwrap_or(0);
            slowest_syncz = slowest_syncz.max(asked.elapsed());
            syncz_last = syncz_last.max(synced);
            if synced > all_renamed_ms {
                break (renamed.elapsed(), false);
            }
            // The agent stamps a sync with the time its poll began; a poll that began in the same
            // millisecond as the rename (or just before it) but listed the directory after it syncs
            // the file without ever moving /syncz past the rename. The log line shows it.
            match logged_at {
                None if last_sync_line(log, log_offset, &expected).is_some() => {
                    logged_at = Some(Instant::now());
                }
                Some(at) if at.elapsed() > SYNCZ_STALL => break (Duration::ZERO, true),
                _ => {}
            }
            if renamed.elapsed() > self.timeout {
                bail!(
                    "the agent of {} did not sync {} within {} s; last log lines:\n{}",
                    self.node,
                    file.display(),
                    self.timeout.as_secs(),
                    log_tail(log, 10)
                );
            }
            std::thread::sleep(SYNC_POLL);
        };
        let agent = last_sync_line(log, log_offset, &expected).with_context(|| {
            format!(
                "/syncz moved but the agent logged no matching `services synced` line; last log lines:\n{}",
                log_tail(log, 10)
            )
        })?;
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let log_ms = agent.at_ms.map(|at| signed(at) - signed(renamed_ms));
        let mut timing = SyncTiming {
            wall_ms: ms(wall),
            log_ms,
            agent,
            before_map_sync_ms: log_ms.map(|l| l - signed(agent.took_ms)),
            slowest_syncz_ms: ms(slowest_syncz),
            syncz_stalled,
            stalled_syncz_minus_rename_ms: None,
            stalled_syncz_moved: None,
        };
        if syncz_stalled {
            let gap = signed(syncz_last) - signed(renamed_ms);
            let moved = syncz_last != syncz_before;
            progress(format_args!(
                "note: /syncz never passed the rename (last /syncz - rename = {gap} ms, moved: {moved}); \
                 using the agent log's time"
            ));
            timing.wall_ms = log_ms.map_or(f64::NAN, |l| {
                f64::from(i32::try_from(l).unwrap_or(i32::MAX))
            });
            timing.stalled_syncz_minus_rename_ms = Some(gap);
            timing.stalled_syncz_moved = Some(moved);
        }
        Ok(timing)
    }
}

/// The last `services synced` line written to `log` after `offset` that `expected` accepts.
fn last_sync_line(
    log: &Path,
    offset: u64,
    expected: &impl Fn(&SyncLine) -> bool,
) -> Option<SyncLine> {
    let mut file = fs::File::open(log).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.lines()
        .filter_map(parse_sync_line)
        .filter(|l| expected(l))
        .last()
}

fn log_tail(log: &Path, lines: usize) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
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

fn print_table(r: &Report) {
    println!(
        "svcscale: {} Services x {} endpoints",
        r.services, r.endpoints_per_service
    );
    println!(
        "{:<34} {:>12} {:>14} {:>14} {:>12}",
        "source", "full sync ms", "change p50 ms", "change p99 ms", "RSS MiB"
    );
    if let Some(d) = &r.dir {
        println!(
            "{:<34} {:>12.0} {:>14.3} {:>14.3} {:>12}",
            format!("manifest directory ({})", d.format),
            d.first_sync.wall_ms,
            r.change_p50_ms,
            r.change_p99_ms,
            r.agent_rss_mib
                .map_or_else(|| "-".to_owned(), |m| format!("{m:.1}"))
        );
    }
    if let Some(k) = &r.kube {
        println!(
            "{:<34} {:>12.0} {:>14.3} {:>14.3} {:>12}",
            "Kubernetes API (stand-in server)",
            k.full_sync_ms,
            r.kube_change_p50_ms.unwrap_or(f64::NAN),
            r.kube_change_p99_ms.unwrap_or(f64::NAN),
            "-"
        );
    }
    println!(
        "  change: one EndpointSlice, from the agent hearing of it (inotify / watch event) to its last map write"
    );
    let sustained = |what: &str, s: &kube_run::Sustained| {
        println!(
            "  sustained {what}: {} changes at {:.0}/s (sent {:.0}/s) in {} syncs; caught up {:.1} ms \
             after the last; per-sync latency p50 {:.3} ms, p99 {:.3} ms",
            s.changes,
            s.rate_hz,
            s.sent_hz,
            s.syncs,
            s.lag_ms,
            us_to_ms(percentile(&s.latency_us, 0.5)),
            us_to_ms(percentile(&s.latency_us, 0.99))
        );
    };
    if let Some(s) = r.dir.as_ref().and_then(|d| d.sustained.as_ref()) {
        sustained("(directory)", s);
    }
    if let Some(k) = &r.kube {
        sustained("(kube)", &k.sustained);
        println!(
            "  kube: {} of {} Services read back from the kernel with their last endpoints",
            k.verified_services, k.services
        );
    }
    if let Some(kp) = &r.kube_proxy {
        print_kube_proxy(r, kp);
    }
    if let Some(d) = &r.dir {
        println!();
        print_dir(d);
    }
}

fn print_kube_proxy(r: &Report, kp: &kube_proxy::KubeProxySync) {
    {
        let limit = format!("> {} s", kp.limit_s);
        let opt = |v: Option<f64>| v.map_or_else(|| limit.clone(), |v| format!("{v:.0}"));
        println!();
        println!(
            "kube-proxy at the same scale (same machine, same run): iptables-restore full {} ms (cold {} ms, {} rules), \
             partial {} ms ({:.1} MB input); nft -f full {} ms ({} rules and elements), partial {} ms",
            opt(kp.iptables_full_ms),
            opt(kp.iptables_full_cold_ms),
            kp.iptables_rules,
            opt(kp.iptables_partial_ms),
            megabytes(kp.iptables_partial_bytes),
            opt(kp.nft_full_ms),
            kp.nft_rules,
            opt(kp.nft_partial_ms)
        );
        if let Some(partial) = kp.iptables_partial_ms {
            println!(
                "  one change: strait p99 {:.3} ms vs iptables partial restore {partial:.0} ms ({:.0}x)",
                r.change_p99_ms,
                partial / r.change_p99_ms.max(1e-3)
            );
        }
    }
}

fn print_dir(r: &DirRun) {
    println!(
        "directory run: {} Services x {} endpoints ({} frontends with the real one), published as {} ({:.1} MB); binaries from {}",
        r.services,
        r.endpoints_per_service,
        r.frontends,
        r.format,
        megabytes(r.file_bytes),
        r.bin_dir
    );
    println!();
    print_sync(r);
    println!();
    print_memory(r);
    println!();
    print_latency(r);
}

fn print_sync(r: &DirRun) {
    println!(
        "{:<40} {:>8} {:>8} {:>12} {:>14}   agent's sync line",
        "sync", "wall ms", "log ms", "before maps", "slowest /syncz"
    );
    let change_label = format!(
        "time to apply one change (median of {})",
        r.change_rounds.len()
    );
    for (what, t) in [
        ("time to first full sync", &r.first_sync),
        (change_label.as_str(), &r.one_change),
    ] {
        let opt = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        println!(
            "{what:<40} {:>8.0} {:>8} {:>12} {:>14.0}   took_ms={} added={} updated={} unchanged={} removed={}{}",
            t.wall_ms,
            opt(t.log_ms),
            opt(t.before_map_sync_ms),
            t.slowest_syncz_ms,
            t.agent.took_ms,
            t.agent.added,
            t.agent.updated,
            t.agent.unchanged,
            t.agent.removed,
            if t.syncz_stalled {
                " (/syncz stalled; log time used)"
            } else {
                ""
            }
        );
    }
    let rounds =
        |f: fn(&SyncTiming) -> String| r.change_rounds.iter().map(f).collect::<Vec<_>>().join(", ");
    println!(
        "  change rounds: wall ms {}; took_ms {}",
        rounds(|t| format!("{:.0}", t.wall_ms)),
        rounds(|t| t.agent.took_ms.to_string())
    );
    println!(
        "  wall: rename -> /syncz past the rename (10 ms polling); log: rename -> the agent's log line; before maps: \
         rename -> kernel-map sync start (poll wait <= 200 ms + read + parse + translate); took_ms: kernel-map sync"
    );
}

fn print_memory(r: &DirRun) {
    println!(
        "{:<30} {:>10} {:>10} {:>10} {:>14}",
        "agent memory", "VmRSS MiB", "VmHWM MiB", "RSS delta", "KiB/service"
    );
    for (what, m) in [
        ("before (1 service)", &r.memory_before),
        ("after first full sync", &r.memory_after_sync),
        ("after the change rounds", &r.memory_after_change),
    ] {
        let delta = m.rss_kib.saturating_sub(r.memory_before.rss_kib);
        println!(
            "{what:<30} {:>10.1} {:>10.1} {:>+10.1} {:>14.1}",
            mib(m.rss_kib),
            mib(m.hwm_kib),
            mib(delta),
            float(delta) / float(r.services as u64)
        );
    }
}

fn print_latency(r: &DirRun) {
    println!(
        "connection latency, {} sequential connects each from {CLIENT} (connect + read answer + close), µs; \
         median of {BLOCKS} alternating blocks",
        r.connects
    );
    println!(
        "{:<44} {:>7} {:>7} {:>7} {:>7} {:>5} {:>11} {:>11}",
        "target", "p50", "p99", "mean", "max", "fail", "p50 x 1svc", "p50 x dir"
    );
    let base = r.latency_1.cluster_ip.p50_us;
    for phase in [&r.latency_1, &r.latency_n] {
        let rows = [
            (
                format!("direct {}:8080, {} service(s)", r.server_ip, phase.services),
                &phase.direct,
                None,
            ),
            (
                format!(
                    "ClusterIP {}:80, {} service(s)",
                    r.cluster_ip, phase.services
                ),
                &phase.cluster_ip,
                Some(phase.direct.p50_us),
            ),
        ];
        for (what, s, direct) in rows {
            let x_base = if direct.is_some() {
                format!("{:.2}", ratio(s.p50_us, base))
            } else {
                "-".to_owned()
            };
            let x_direct =
                direct.map_or_else(|| "-".to_owned(), |d| format!("{:.2}", ratio(s.p50_us, d)));
            println!(
                "{what:<44} {:>7} {:>7} {:>7} {:>7} {:>5} {x_base:>11} {x_direct:>11}",
                s.p50_us, s.p99_us, s.mean_us, s.max_us, s.failures
            );
        }
    }
    println!(
        "  p50 x 1svc: ClusterIP p50 over ClusterIP p50 with 1 service; p50 x dir: over the direct p50 of the same phase"
    );
}
