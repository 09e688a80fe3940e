//! `netbench`: throughput, latency and connection rate through strait and through the standard stack,
//! side by side in one run. For every (service count, scenario, dataplane) cell it builds a fresh lab,
//! programs the same Services into it, starts the built-in server in the server pod and runs the
//! built-in load tests from the client (a pod, or the external namespace), then tears the lab down.
//!
//! Dataplanes: `strait` (the lab's agent and eBPF programs), `kube-proxy-iptables` and
//! `kube-proxy-nftables` (a bridge-CNI node with kube-proxy's rules for the same Services), `direct`
//! (the bridge node, client to the pod's address). Scenarios: pod-to-pod, pod-to-clusterip,
//! external-to-nodeport. Tests: tcp-stream, tcp-rr, tcp-crr, udp-rr.
//!
//! Needs root. Labs have run-unique names and are removed on success, error, panic and SIGINT/SIGTERM/
//! SIGHUP. `netbench serve` and `netbench client` are the two ends of the load generator, which the run
//! starts inside the lab's namespaces.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use clap::{Parser, Subcommand};
use nix::sys::signal::{SigSet, Signal};
use strait_bench::netbench::{
    bridge_lab::{self, BridgeLab},
    catalog::{Catalog, SERVER_PORT, TARGET_NODE_PORT, TARGET_PORT},
    charts, headlines,
    kube_iptables::{self, KubeProxyConfig},
    kube_nftables, load, memory, report,
    results::{
        Cell, Dataplane, Machine, Measurement, PacketCost, Programming, RunConfig, RunReport,
        Scenario, Test,
    },
    strait_stack::{StraitStack, signed_delta},
};
use strait_lab::process::{self as lab_process, Placement};

/// The target Service's ClusterIP in every dataplane.
const TARGET_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// Throughput, latency and connection rate: strait against kube-proxy (iptables and nftables modes)
/// and the direct path, in fresh labs on this machine (needs root).
///
/// A full run (the default) sweeps 1, 1,000 and 10,000 Services, three rounds of 2-second tests per
/// dataplane, and takes about 25 minutes on a 2-core machine; `--quick` sweeps 1 and 1,000 with one round
/// of 1-second tests in under 3 minutes.
/// Results go to the terminal (tables with ratios), to `<out>/netbench.json` and to PNG charts in
/// `<out>/`; `--markdown FILE` also writes them as a Markdown report (bench/RESULTS.md).
#[derive(Parser, Debug)]
#[command(name = "netbench", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Internal>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// A bounded subset for CI: 1 and 1,000 services, 1-second tests, a short packet-cost pass.
    #[arg(long)]
    quick: bool,
    /// Service counts to sweep (the target Service plus fillers), comma-separated.
    #[arg(long, value_delimiter = ',')]
    services: Option<Vec<usize>>,
    /// Endpoints of each filler Service (addresses where nothing answers; they only fill the rules).
    #[arg(long, default_value_t = 3)]
    endpoints: usize,
    /// Seconds each load test runs (default 2, or 1 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Rounds: every test runs this many times per dataplane, alternating between the dataplanes, and
    /// the median round is reported (default 3, or 1 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Dataplanes to compare, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_dataplane,
          default_value = "strait,kube-proxy-iptables,kube-proxy-nftables,direct")]
    dataplanes: Vec<Dataplane>,
    /// Scenarios, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_scenario,
          default_value = "pod-to-pod,pod-to-clusterip,external-to-nodeport")]
    scenarios: Vec<Scenario>,
    /// Load tests, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_test,
          default_value = "tcp-stream,tcp-rr,tcp-crr,udp-rr")]
    tests: Vec<Test>,
    /// Directory for netbench.json and the charts.
    #[arg(long, default_value = "target/netbench")]
    out: PathBuf,
    /// Also write the results as Markdown to this file (e.g. bench/RESULTS.md).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Skip the packet-level cost table (pktcost).
    #[arg(long)]
    no_pktcost: bool,
    /// Do not keep the CPUs awake while measuring. By default one SCHED_IDLE spinner per CPU stops an idle
    /// virtual CPU from halting: waking a halted vCPU takes ~100 µs on a VM, which would otherwise dominate
    /// every round trip of every dataplane alike. Spinners yield to any other task at once.
    #[arg(long)]
    no_spin: bool,
    /// Give up waiting for strait's agent to sync the Services after this many seconds.
    #[arg(long, default_value_t = 300)]
    sync_timeout_s: u64,
}

/// The load generator's two ends, started by the run inside lab namespaces.
#[derive(Subcommand, Debug)]
enum Internal {
    /// Serve the load tests on a TCP and a UDP port (until killed).
    #[command(hide = true)]
    Serve {
        #[arg(long, default_value_t = SERVER_PORT)]
        port: u16,
    },
    /// Re-render the tables, charts and Markdown of a saved run (netbench.json) without measuring.
    Report {
        /// The run's JSON (`<out>/netbench.json`).
        #[arg(long)]
        from: PathBuf,
        /// Directory for the charts.
        #[arg(long, default_value = "target/netbench")]
        out: PathBuf,
        /// Also write the Markdown report to this file.
        #[arg(long)]
        markdown: Option<PathBuf>,
    },
    /// Run one load test and print its outcome as one JSON line.
    #[command(hide = true)]
    Client {
        #[arg(long, value_parser = parse_test)]
        test: Test,
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        seconds: f64,
    },
}

fn parse_dataplane(s: &str) -> Result<Dataplane, String> {
    Dataplane::ALL
        .into_iter()
        .find(|d| d.name() == s)
        .ok_or_else(|| {
            format!(
                "unknown dataplane {s:?} (expected {})",
                names(Dataplane::ALL.map(Dataplane::name))
            )
        })
}

fn parse_scenario(s: &str) -> Result<Scenario, String> {
    Scenario::ALL
        .into_iter()
        .find(|d| d.name() == s)
        .ok_or_else(|| {
            format!(
                "unknown scenario {s:?} (expected {})",
                names(Scenario::ALL.map(Scenario::name))
            )
        })
}

fn parse_test(s: &str) -> Result<Test, String> {
    Test::ALL
        .into_iter()
        .find(|d| d.name() == s)
        .ok_or_else(|| {
            format!(
                "unknown test {s:?} (expected {})",
                names(Test::ALL.map(Test::name))
            )
        })
}

fn names<const N: usize>(all: [&str; N]) -> String {
    all.join(", ")
}

fn progress(message: impl std::fmt::Display) {
    eprintln!("netbench: {message}");
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Internal::Serve { port }) => serve(port),
        Some(Internal::Client {
            test,
            target,
            seconds,
        }) => {
            let outcome = load::run(test, target, Duration::from_secs_f64(seconds))
                .with_context(|| format!("{} to {target}", test.name()))?;
            println!("{}", load::outcome_json(&outcome));
            Ok(())
        }
        Some(Internal::Report {
            from,
            out,
            markdown,
        }) => {
            let text =
                fs::read_to_string(&from).with_context(|| format!("reading {}", from.display()))?;
            let report: RunReport = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a netbench run", from.display()))?;
            publish(&report, &out, markdown.as_deref())
        }
        None => run_matrix(&cli.run),
    }
}

/// Prints the tables and writes the JSON, the charts and (optionally) the Markdown report.
fn publish(report: &RunReport, out: &Path, markdown: Option<&Path>) -> anyhow::Result<()> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    println!("{}", report::terminal_table(report));
    let json = out.join("netbench.json");
    report::write_json(report, &json).with_context(|| format!("writing {}", json.display()))?;
    let charts = charts::write_charts(report, out)?;
    progress(format_args!(
        "wrote {} and {} chart(s) in {}",
        json.display(),
        charts.len(),
        out.display()
    ));
    if let Some(markdown) = markdown {
        let base = markdown.parent().unwrap_or(Path::new("."));
        let links: Vec<(String, String)> = charts
            .iter()
            .map(|(title, path)| (title.clone(), relative(path, base)))
            .collect();
        fs::write(markdown, headlines::results_document(report, &links))
            .with_context(|| format!("writing {}", markdown.display()))?;
        progress(format_args!("wrote {}", markdown.display()));
    }
    Ok(())
}

/// `netbench serve`: binds, says `ready` on stdout, serves until killed.
fn serve(port: u16) -> anyhow::Result<()> {
    let server = load::Server::bind(port).with_context(|| format!("binding port {port}"))?;
    println!("ready {}", server.port());
    server.run().context("serving")?;
    Ok(())
}

/// Set by the first SIGINT, SIGTERM or SIGHUP: the run stops at its next [`checkpoint`].
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The labs being measured, torn down at once by a second signal.
static CURRENT_LABS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn checkpoint() -> anyhow::Result<()> {
    ensure!(!INTERRUPTED.load(Ordering::SeqCst), "interrupted");
    Ok(())
}

/// Blocks the stop signals in every thread and waits for them in one: the first makes the run stop at
/// its next checkpoint (the lab guards clean up), a second removes the current lab and exits.
fn stop_on_signal() -> anyhow::Result<()> {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    set.thread_block().context("blocking signals")?;
    std::thread::spawn(move || {
        while let Ok(signal) = set.wait() {
            if !INTERRUPTED.swap(true, Ordering::SeqCst) {
                progress(format_args!(
                    "{signal}: stopping after the current test (again to stop now)"
                ));
                continue;
            }
            for lab in current_labs().iter() {
                progress(format_args!("{signal}: removing lab {lab} now"));
                let _ = strait_lab::down(lab);
            }
            std::process::exit(130);
        }
    });
    Ok(())
}

/// Where `straitd`, `strait-cni` and `strait` are: STRAIT_BIN_DIR, else next to this binary.
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

/// The run's settings after defaults.
struct Plan {
    services: Vec<usize>,
    seconds: f64,
    rounds: usize,
    groups: Vec<Group>,
}

/// The dataplanes measured side by side for one scenario and service count: their labs are up at the
/// same time and the tests alternate between them, so a slow spell of the machine hits them all alike.
struct Group {
    services: usize,
    scenario: Scenario,
    dataplanes: Vec<Dataplane>,
}

fn plan(args: &RunArgs) -> anyhow::Result<Plan> {
    let services = args.services.clone().unwrap_or_else(|| {
        if args.quick {
            vec![1, 1_000]
        } else {
            vec![1, 1_000, 10_000]
        }
    });
    ensure!(
        services
            .iter()
            .all(|n| (1..=strait_bench::svcscale::MAX_SERVICES).contains(n)),
        "--services must be between 1 and {}",
        strait_bench::svcscale::MAX_SERVICES
    );
    ensure!(
        (1..=100).contains(&args.endpoints),
        "--endpoints must be between 1 and 100"
    );
    let seconds = args.seconds.unwrap_or(if args.quick { 1.0 } else { 2.0 });
    ensure!(
        (0.2..=120.0).contains(&seconds),
        "--seconds must be between 0.2 and 120"
    );
    ensure!(!args.tests.is_empty(), "--tests names no test");
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 });
    ensure!(
        (1..=20).contains(&rounds),
        "--rounds must be between 1 and 20"
    );
    let mut groups = Vec::new();
    for &n in &services {
        for &scenario in &args.scenarios {
            // The direct path programs no service, but is measured in every group: it is the yardstick
            // of the machine's state at that moment.
            groups.push(Group {
                services: n,
                scenario,
                dataplanes: args.dataplanes.clone(),
            });
        }
    }
    ensure!(
        !groups.is_empty() && !args.dataplanes.is_empty(),
        "nothing to run"
    );
    Ok(Plan {
        services,
        seconds,
        rounds,
        groups,
    })
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

fn run_matrix(args: &RunArgs) -> anyhow::Result<()> {
    ensure!(
        nix::unistd::geteuid().is_root(),
        "netbench builds labs (namespaces, eBPF, iptables): run it as root"
    );
    let plan = plan(args)?;
    let bin_dir = export_bin_dir()?;
    for (command, package) in [("iptables-restore", "iptables"), ("nft", "nftables")] {
        ensure!(
            which::which(command).is_ok() || !needs(args, command),
            "`{command}` is not installed (Debian package {package}; `cargo xtask bootstrap` installs it)"
        );
    }
    stop_on_signal()?;
    let _spinners = (!args.no_spin).then(Spinners::start);
    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let started = Instant::now();
    let run_id = base36(std::process::id());
    progress(format_args!(
        "{} groups ({} services; {} round(s) of {} s per test; tests: {}); binaries from {}",
        plan.groups.len(),
        plan.services
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("/"),
        plan.rounds,
        plan.seconds,
        args.tests
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", "),
        bin_dir.display()
    ));
    let mut report = RunReport {
        machine: machine(),
        config: RunConfig {
            quick: args.quick,
            test_seconds: plan.seconds,
            services: plan.services.clone(),
            endpoints_per_service: args.endpoints,
            started_at: utc_now(),
            duration_s: 0.0,
        },
        cells: Vec::new(),
        packet_costs: Vec::new(),
    };
    let mut next_lab = 0;
    for (index, group) in plan.groups.iter().enumerate() {
        checkpoint()?;
        progress(format_args!(
            "[{}/{}] {} with {} service(s): {}",
            index + 1,
            plan.groups.len(),
            group.scenario.name(),
            group.services,
            group
                .dataplanes
                .iter()
                .map(|d| d.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let cells = run_group(group, &run_id, &mut next_lab, args, &plan).with_context(|| {
            format!(
                "{} with {} service(s)",
                group.scenario.name(),
                group.services
            )
        })?;
        report.cells.extend(cells);
    }
    current_labs().clear();
    if !args.no_pktcost {
        checkpoint()?;
        report.packet_costs = packet_costs(&bin_dir, args.quick)?;
    }
    report.config.duration_s = started.elapsed().as_secs_f64().round();

    progress(format_args!(
        "all cells measured in {:.0} s",
        report.config.duration_s
    ));
    publish(&report, &args.out, args.markdown.as_deref())
}

/// One busy thread per CPU at SCHED_IDLE priority (they run only when nothing else wants the CPU), so
/// no virtual CPU halts between packets; stopped when dropped.
struct Spinners {
    stop: std::sync::Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Spinners {
    fn start() -> Self {
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let threads = (0..cpus)
            .map(|cpu| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    // SAFETY: plain system calls on this thread with valid, initialised arguments.
                    unsafe {
                        let param = libc::sched_param { sched_priority: 0 };
                        libc::sched_setscheduler(0, libc::SCHED_IDLE, &raw const param);
                        let mut set: libc::cpu_set_t = std::mem::zeroed();
                        libc::CPU_SET(cpu, &mut set);
                        libc::sched_setaffinity(
                            0,
                            std::mem::size_of::<libc::cpu_set_t>(),
                            &raw const set,
                        );
                    }
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        progress(format_args!(
            "keeping {cpus} CPU(s) awake with SCHED_IDLE spinners (--no-spin to turn off)"
        ));
        Self { stop, threads }
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Whether the run needs `command` (only the kube-proxy dataplanes do).
fn needs(args: &RunArgs, command: &str) -> bool {
    match command {
        "iptables-restore" => args.dataplanes.contains(&Dataplane::KubeProxyIptables),
        "nft" => args.dataplanes.contains(&Dataplane::KubeProxyNftables),
        _ => true,
    }
}

/// `path` relative to `base` when it is under it, else as given.
fn relative(path: &Path, base: &Path) -> String {
    let absolute = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (path_abs, base_abs) = (absolute(path), absolute(base));
    path_abs
        .strip_prefix(&base_abs)
        .map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
}

/// What one cell needs from its lab: where the client and server run and what the client connects to.
struct Wiring {
    client: Placement,
    server: Placement,
    target: SocketAddr,
    programming: Option<Programming>,
}

/// A lab of either kind, removed when dropped.
enum AnyLab {
    Strait(StraitStack),
    Bridge(BridgeLab),
}

impl AnyLab {
    fn name(&self) -> &str {
        match self {
            Self::Strait(stack) => stack.name(),
            Self::Bridge(lab) => lab.name(),
        }
    }
}

/// One dataplane's lab, ready to measure.
struct Prepared {
    dataplane: Dataplane,
    wiring: Wiring,
    server: ServerGuard,
    lab: AnyLab,
    samples: Vec<(Test, load::Outcome)>,
}

/// Builds the group's labs (one per dataplane), runs `rounds` rounds of every test alternating between
/// them, then removes them; each cell reports its median round.
fn run_group(
    group: &Group,
    run_id: &str,
    next_lab: &mut usize,
    args: &RunArgs,
    plan: &Plan,
) -> anyhow::Result<Vec<Cell>> {
    let mut prepared = Vec::new();
    for &dataplane in &group.dataplanes {
        checkpoint()?;
        let name = format!("nb{run_id}c{next_lab}");
        *next_lab += 1;
        current_labs().push(name.clone());
        let (lab, wiring) = build(&name, dataplane, group.scenario, group.services, args)
            .with_context(|| format!("building lab {name} for {}", dataplane.name()))?;
        progress(format_args!(
            "  {:<20} lab {name}{}",
            dataplane.name(),
            wiring.programming.map_or_else(String::new, |p| format!(
                ": programmed {} object(s) in {:.1} ms (kernel memory {:+} KiB{})",
                p.objects,
                p.wall_ms,
                p.kernel_kib,
                p.agent_rss_kib
                    .map(|kib| format!(", agent RSS {:.1} MiB", kib_to_mib(kib)))
                    .unwrap_or_default()
            ))
        ));
        tune_client(&wiring.client)?;
        let server = ServerGuard::start(&wiring.server, lab.name())?;
        prepared.push(Prepared {
            dataplane,
            wiring,
            server,
            lab,
            samples: Vec::new(),
        });
    }
    for round in 1..=plan.rounds {
        for &test in &args.tests {
            for one in &mut prepared {
                checkpoint()?;
                one.server.ensure_alive()?;
                let outcome = run_client(&one.wiring, one.lab.name(), test, plan.seconds)
                    .with_context(|| format!("{} (round {round})", one.dataplane.name()))?;
                progress(format_args!(
                    "  round {round}/{} {:<10} {:<20} {}",
                    plan.rounds,
                    test.name(),
                    one.dataplane.name(),
                    describe(&outcome)
                ));
                one.samples.push((test, outcome));
            }
        }
    }
    let cells = prepared
        .iter()
        .map(|one| cell_of(one, group, &args.tests))
        .collect::<anyhow::Result<Vec<_>>>()?;
    drop(prepared);
    current_labs().clear();
    Ok(cells)
}

/// The labs up now, removed at once by a second stop signal.
fn current_labs() -> std::sync::MutexGuard<'static, Vec<String>> {
    CURRENT_LABS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The headline figure of an outcome, by which rounds are ranked.
fn figure(outcome: &load::Outcome) -> f64 {
    match outcome {
        load::Outcome::Stream(s) => s.gbit_per_s,
        load::Outcome::Rate(r) => r.per_second,
    }
}

/// A dataplane's cell: for each test, the round with the median headline figure (its latencies too,
/// so a reported p50/p99 is one real run's).
fn cell_of(one: &Prepared, group: &Group, tests: &[Test]) -> anyhow::Result<Cell> {
    let mut measurement = Measurement::default();
    for &test in tests {
        let mut rounds: Vec<load::Outcome> = one
            .samples
            .iter()
            .filter(|(t, _)| *t == test)
            .map(|(_, o)| *o)
            .collect();
        rounds.sort_by(|a, b| figure(a).total_cmp(&figure(b)));
        let Some(median) = rounds.get(rounds.len() / 2).copied() else {
            continue;
        };
        match (test, median) {
            (Test::TcpStream, load::Outcome::Stream(s)) => measurement.tcp_stream = Some(s),
            (Test::TcpRr, load::Outcome::Rate(r)) => measurement.tcp_rr = Some(r),
            (Test::TcpCrr, load::Outcome::Rate(r)) => measurement.tcp_crr = Some(r),
            (Test::UdpRr, load::Outcome::Rate(r)) => measurement.udp_rr = Some(r),
            (test, other) => bail!("{} returned {other:?}", test.name()),
        }
    }
    Ok(Cell {
        dataplane: one.dataplane,
        scenario: group.scenario,
        services: group.services,
        measurement,
        programming: one.wiring.programming,
    })
}

fn describe(outcome: &load::Outcome) -> String {
    match outcome {
        load::Outcome::Stream(s) => format!("{:.2} Gbit/s", s.gbit_per_s),
        load::Outcome::Rate(r) => format!(
            "{:.0}/s  p50 {:.1} µs  p99 {:.1} µs  ({} errors)",
            r.per_second, r.latency.p50_us, r.latency.p99_us, r.errors
        ),
    }
}

/// Builds the cell's lab and programs its Services.
fn build(
    lab_name: &str,
    dataplane: Dataplane,
    scenario: Scenario,
    services: usize,
    args: &RunArgs,
) -> anyhow::Result<(AnyLab, Wiring)> {
    let fillers = services - 1;
    if dataplane == Dataplane::Strait {
        let stack = StraitStack::up(lab_name)?;
        let server_ip = stack.pod_ip("server")?;
        let catalog = Catalog::new(TARGET_VIP, &[server_ip], fillers, args.endpoints);
        let programming = stack.program(&catalog, Duration::from_secs(args.sync_timeout_s))?;
        let target = match scenario {
            Scenario::PodToPod => SocketAddr::from((server_ip, SERVER_PORT)),
            Scenario::PodToClusterIp => SocketAddr::from((TARGET_VIP, TARGET_PORT)),
            Scenario::ExternalToNodePort => SocketAddr::from((stack.node_ip(), TARGET_NODE_PORT)),
        };
        let client = match scenario {
            Scenario::ExternalToNodePort => stack.placement("external")?,
            _ => stack.placement("netbench/client")?,
        };
        let wiring = Wiring {
            client,
            server: stack.placement("netbench/server")?,
            target,
            programming: Some(programming),
        };
        return Ok((AnyLab::Strait(stack), wiring));
    }
    let lab = BridgeLab::up(lab_name)?;
    let node_ip = strait_lab::network::node_ip(1);
    let catalog = Catalog::new(
        TARGET_VIP,
        &[bridge_lab::SERVER_IP],
        fillers,
        args.endpoints,
    );
    let config = KubeProxyConfig::default();
    let programming = match dataplane {
        Dataplane::KubeProxyIptables => {
            let rules = kube_iptables::iptables_restore(&catalog.frontends(), &config);
            Some(load_rules(rules.rules, || lab.load_iptables(&rules.text))?)
        }
        Dataplane::KubeProxyNftables => {
            let rules = kube_nftables::nft_ruleset(&catalog.frontends(), &config);
            Some(load_rules(rules.rules, || lab.load_nftables(&rules.text))?)
        }
        _ => None,
    };
    let server = SocketAddr::from((bridge_lab::SERVER_IP, SERVER_PORT));
    let target = match (dataplane, scenario) {
        (Dataplane::Direct, _) | (_, Scenario::PodToPod) => server,
        (_, Scenario::PodToClusterIp) => SocketAddr::from((TARGET_VIP, TARGET_PORT)),
        (_, Scenario::ExternalToNodePort) => SocketAddr::from((node_ip, TARGET_NODE_PORT)),
    };
    let client = match scenario {
        Scenario::ExternalToNodePort => lab.external(),
        _ => lab.client(),
    };
    let wiring = Wiring {
        client,
        server: lab.server(),
        target,
        programming,
    };
    Ok((AnyLab::Bridge(lab), wiring))
}

/// Times a rules load and the kernel memory it took.
fn load_rules(
    objects: usize,
    load: impl FnOnce() -> Result<bridge_lab::Loaded, strait_lab::LabError>,
) -> anyhow::Result<Programming> {
    let before = memory::kernel_kib();
    let loaded = load()?;
    let after = memory::kernel_kib();
    Ok(Programming {
        wall_ms: loaded.took.as_secs_f64() * 1000.0,
        kernel_kib: signed_delta(before, after),
        agent_rss_kib: None,
        bpf_map_kib: None,
        objects: objects as u64,
    })
}

/// The same client-side settings for every dataplane: the whole port range, and reuse of TIME_WAIT
/// ports, so a connection-rate test measures the path rather than the client's ephemeral ports.
fn tune_client(client: &Placement) -> anyhow::Result<()> {
    strait_dataplane::netns::run_in(&client.netns, || {
        strait_dataplane::sysctl::write("net.ipv4.ip_local_port_range", "1024 65535")?;
        strait_dataplane::sysctl::write("net.ipv4.tcp_tw_reuse", "1")
    })??;
    Ok(())
}

/// The benchmark server in the server pod, killed when dropped.
struct ServerGuard {
    child: Child,
}

impl ServerGuard {
    fn start(placement: &Placement, lab: &str) -> anyhow::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .args(["serve", "--port", &SERVER_PORT.to_string()])
            .env("STRAIT_LAB", lab)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = lab_process::spawn_in(placement, &mut command, false)?;
        let stdout = child.stdout.take().context("the server has no stdout")?;
        let mut guard = Self { child };
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .context("reading the server's ready line")?;
        if !line.starts_with("ready") {
            guard.ensure_alive()?;
            bail!("the server did not say it was ready (said {line:?})");
        }
        Ok(guard)
    }

    fn ensure_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the benchmark server exited ({status})");
        }
        Ok(())
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one load test in the client's namespace (and cgroup) and parses its JSON line.
fn run_client(
    wiring: &Wiring,
    lab: &str,
    test: Test,
    seconds: f64,
) -> anyhow::Result<load::Outcome> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["client", "--test", test.name(), "--target"])
        .arg(wiring.target.to_string())
        .arg("--seconds")
        .arg(seconds.to_string())
        .env("STRAIT_LAB", lab)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = lab_process::spawn_in(&wiring.client, &mut command, false)?;
    let output = child.wait_with_output().context("waiting for the client")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "{} against {} failed ({}): {}",
            test.name(),
            wiring.target,
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    for note in String::from_utf8_lossy(&output.stderr).lines() {
        eprintln!("netbench:     {note}");
    }
    let line = stdout.lines().last().unwrap_or_default();
    load::parse_outcome(line).with_context(|| format!("parsing the client's answer {line:?}"))
}

/// The packet-level table: `pktcost --json`, run from the same directory.
fn packet_costs(bin_dir: &Path, quick: bool) -> anyhow::Result<Vec<PacketCost>> {
    let pktcost = std::env::current_exe()?
        .parent()
        .map(|d| d.join("pktcost"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| bin_dir.join("pktcost"));
    ensure!(
        pktcost.exists(),
        "pktcost is not next to netbench: build it (`cargo build -p strait-bench --bins`) or pass --no-pktcost"
    );
    let mut command = Command::new(&pktcost);
    command.arg("--json");
    if quick {
        command.args([
            "--repeat",
            "100000",
            "--rounds",
            "3",
            "--single-runs",
            "5000",
            "--services",
            "1000",
        ]);
    }
    progress(format_args!(
        "measuring packet-level costs ({})",
        pktcost.display()
    ));
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", pktcost.display()))?;
    ensure!(
        output.status.success(),
        "pktcost failed ({})",
        output.status
    );
    let value: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("parsing pktcost's JSON")?;
    let mut costs = Vec::new();
    for (key, prefix) in [("paths", ""), ("service_paths", "single call: ")] {
        for row in value[key].as_array().into_iter().flatten() {
            if let (Some(path), Some(ns)) = (row["path"].as_str(), row["ns_per_packet"].as_f64()) {
                costs.push(PacketCost {
                    path: format!("{prefix}{path}"),
                    ns_per_packet: ns,
                });
            }
        }
    }
    Ok(costs)
}

/// KiB as MiB, for display.
#[expect(
    clippy::cast_precision_loss,
    reason = "memory sizes for display, far below 2^52"
)]
fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_owned()
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program).args(args).output().ok().map_or_else(
        || "not installed".to_owned(),
        |o| first_line(&String::from_utf8_lossy(&o.stdout)),
    )
}

fn machine() -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let memory_kib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| strait_bench::svcscale::status_kib(&m, "MemTotal"))
        .unwrap_or_default();
    Machine {
        cpu_model,
        cpus: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        memory_gib: (kib_to_mib(memory_kib) / 1024.0 * 10.0).round() / 10.0,
        kernel: first_line(&fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default()),
        iptables_version: command_output("iptables", &["--version"]),
        nft_version: command_output("nft", &["--version"]),
    }
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .map(|o| first_line(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_default()
}
