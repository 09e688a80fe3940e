//! A netbench run: the plan (service counts × scenarios, every dataplane of a group measured side by
//! side), the labs of each group built together, the rounds of every test alternating between them in
//! the CPU condition the test calls for, and the cells and report that come out. Needs root. Labs have
//! run-unique names and are removed on success, error, panic and SIGINT/SIGTERM/SIGHUP.

use std::{
    fmt,
    io::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitStatus,
    sync::{
        Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use nix::sys::signal::{SigSet, Signal};
use strait_lab::LabError;

use super::{
    catalog::TargetPosition,
    host::{self, kib_to_mib},
    load,
    results::{Cell, Dataplane, Measurement, RunConfig, RunReport, Scenario, Test},
    spin::{self, Calibration, SpinPolicy, Spinners},
    wiring::{self, AnyLab, ServerGuard, ServiceSet, Wiring},
};
use crate::svcscale::MAX_SERVICES;

/// Rounds of a full run.
pub const FULL_ROUNDS: usize = 5;
/// Rounds of a quick run: fewer, so CI stays within its budget; the report says so.
pub const QUICK_ROUNDS: usize = 3;
/// Seconds per test in a full run.
pub const FULL_SECONDS: f64 = 2.0;
/// Seconds per test in a quick run.
pub const QUICK_SECONDS: f64 = 0.5;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error("netbench builds labs (namespaces, eBPF, iptables): run it as root")]
    NotRoot,
    #[error("{0}")]
    Invalid(String),
    #[error(
        "`{command}` is not installed (Debian package {package}; `cargo xtask bootstrap` installs it)"
    )]
    MissingTool {
        command: &'static str,
        package: &'static str,
    },
    #[error("{bin} is not in {}: run `cargo build --bins` first, or set STRAIT_BIN_DIR", dir.display())]
    MissingBinary { bin: &'static str, dir: PathBuf },
    #[error("{what}")]
    Lab {
        what: String,
        #[source]
        source: Box<LabError>,
    },
    #[error("{what}")]
    Dataplane {
        what: String,
        #[source]
        source: Box<strait_dataplane::DataplaneError>,
    },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{test} against {target} failed ({status}): {stderr}")]
    Client {
        test: &'static str,
        target: SocketAddr,
        status: ExitStatus,
        stderr: String,
    },
    #[error("parsing the client's answer {line:?}")]
    ClientAnswer {
        line: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the benchmark server exited ({0})")]
    ServerExited(ExitStatus),
    #[error("the benchmark server did not say it was ready (said {0:?})")]
    ServerNotReady(String),
    #[error("{test} returned {outcome}")]
    WrongOutcome {
        test: &'static str,
        outcome: &'static str,
    },
    #[error("pktcost: {0}")]
    Pktcost(String),
    #[error("interrupted")]
    Interrupted,
    #[error("{context}")]
    In {
        context: String,
        #[source]
        source: Box<RunError>,
    },
}

impl RunError {
    fn within(self, context: impl fmt::Display) -> RunError {
        RunError::In {
            context: context.to_string(),
            source: Box::new(self),
        }
    }
}

/// What to run; `None` fields take the full or quick default.
#[derive(Clone, Debug)]
pub struct Options {
    /// A bounded subset for CI: 1 and 1,000 services, [`QUICK_ROUNDS`] rounds of [`QUICK_SECONDS`].
    pub quick: bool,
    pub services: Option<Vec<usize>>,
    /// Endpoints of each filler Service.
    pub endpoints: usize,
    pub seconds: Option<f64>,
    pub rounds: Option<usize>,
    pub dataplanes: Vec<Dataplane>,
    pub scenarios: Vec<Scenario>,
    pub tests: Vec<Test>,
    pub target_position: TargetPosition,
    pub spin: SpinPolicy,
    pub pktcost: bool,
    pub sync_timeout: Duration,
}

/// Progress for the operator, on stderr (lost, not fatal, when stderr is closed).
pub fn progress(message: impl fmt::Display) {
    let _ = writeln!(std::io::stderr(), "netbench: {message}");
}

/// Set by the first SIGINT, SIGTERM or SIGHUP: the run stops at its next [`checkpoint`].
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The labs being measured, torn down at once by a second signal.
static CURRENT_LABS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn checkpoint() -> Result<(), RunError> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(RunError::Interrupted);
    }
    Ok(())
}

fn current_labs() -> MutexGuard<'static, Vec<String>> {
    CURRENT_LABS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Blocks the stop signals in every thread and waits for them in one: the first makes the run stop at
/// its next checkpoint (the lab guards clean up), a second removes the current labs and exits.
fn stop_on_signal() -> Result<(), RunError> {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    set.thread_block().map_err(|e| RunError::Io {
        what: "blocking signals".to_owned(),
        source: e.into(),
    })?;
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

/// Where `straitd`, `strait-cni` and `strait` are: STRAIT_BIN_DIR, else next to this binary. Sets
/// STRAIT_BIN_DIR for the lab library; call it before any other thread starts.
pub fn export_bin_dir() -> Result<PathBuf, RunError> {
    let dir = match std::env::var_os("STRAIT_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .ok_or_else(|| RunError::Invalid("cannot find this executable's directory".into()))?,
    };
    for bin in ["strait", "straitd", "strait-cni"] {
        if !dir.join(bin).exists() {
            return Err(RunError::MissingBinary { bin, dir });
        }
    }
    // SAFETY: set before any other thread of ours starts.
    unsafe { std::env::set_var("STRAIT_BIN_DIR", &dir) };
    Ok(dir)
}

/// The run's settings after defaults.
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub services: Vec<usize>,
    pub seconds: f64,
    pub rounds: usize,
    pub groups: Vec<Group>,
}

/// The dataplanes measured side by side for one scenario and service count: their labs are up at the
/// same time and the tests alternate between them, so a slow spell of the machine hits them all alike.
#[derive(Debug, PartialEq)]
pub struct Group {
    pub services: usize,
    pub scenario: Scenario,
    pub dataplanes: Vec<Dataplane>,
}

/// Checks `options` and fills in the defaults.
pub fn plan(options: &Options) -> Result<Plan, RunError> {
    let invalid = |message: String| Err(RunError::Invalid(message));
    let services = options.services.clone().unwrap_or_else(|| {
        if options.quick {
            vec![1, 1_000]
        } else {
            vec![1, 1_000, 10_000]
        }
    });
    if !services.iter().all(|n| (1..=MAX_SERVICES).contains(n)) {
        return invalid(format!("--services must be between 1 and {MAX_SERVICES}"));
    }
    if !(1..=100).contains(&options.endpoints) {
        return invalid("--endpoints must be between 1 and 100".into());
    }
    let seconds = options.seconds.unwrap_or(if options.quick {
        QUICK_SECONDS
    } else {
        FULL_SECONDS
    });
    if !(0.2..=120.0).contains(&seconds) {
        return invalid("--seconds must be between 0.2 and 120".into());
    }
    if options.tests.is_empty() {
        return invalid("--tests names no test".into());
    }
    let rounds = options.rounds.unwrap_or(if options.quick {
        QUICK_ROUNDS
    } else {
        FULL_ROUNDS
    });
    if !(1..=20).contains(&rounds) {
        return invalid("--rounds must be between 1 and 20".into());
    }
    let mut groups = Vec::new();
    for &n in &services {
        for &scenario in &options.scenarios {
            // The direct path programs no service, but is measured in every group: it is the yardstick
            // of the machine's state at that moment.
            groups.push(Group {
                services: n,
                scenario,
                dataplanes: options.dataplanes.clone(),
            });
        }
    }
    if groups.is_empty() || options.dataplanes.is_empty() {
        return invalid("nothing to run".into());
    }
    Ok(Plan {
        services,
        seconds,
        rounds,
        groups,
    })
}

/// `n` in base 36 (run-unique lab names stay short).
pub fn base36(mut n: u32) -> String {
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

/// Whether the run needs `command` (only the kube-proxy dataplanes do).
fn needs(options: &Options, command: &str) -> bool {
    match command {
        "iptables-restore" => options.dataplanes.contains(&Dataplane::KubeProxyIptables),
        "nft" => options.dataplanes.contains(&Dataplane::KubeProxyNftables),
        _ => true,
    }
}

fn names<T>(items: &[T], name: impl Fn(&T) -> String) -> String {
    items.iter().map(name).collect::<Vec<_>>().join(", ")
}

/// Runs the whole matrix and returns its report (not yet published).
pub fn run(options: &Options) -> Result<RunReport, RunError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(RunError::NotRoot);
    }
    let plan = plan(options)?;
    let bin_dir = export_bin_dir()?;
    for (command, package) in [("iptables-restore", "iptables"), ("nft", "nftables")] {
        if which::which(command).is_err() && needs(options, command) {
            return Err(RunError::MissingTool { command, package });
        }
    }
    stop_on_signal()?;
    let started = Instant::now();
    let run_id = base36(std::process::id());
    progress(format_args!(
        "{} groups ({} services, target Service {}); {} round(s) of {} s per test; tests: {}; binaries from {}",
        plan.groups.len(),
        names(&plan.services, ToString::to_string),
        options.target_position.name(),
        plan.rounds,
        plan.seconds,
        names(&options.tests, |t| format!(
            "{} ({})",
            t.name(),
            if options.spin.needs_calibration(&[*t]) {
                "idle CPUs or spinners, as calibrated"
            } else {
                options.spin.condition(*t, None).name()
            }
        )),
        bin_dir.display()
    ));
    let mut report = RunReport {
        machine: host::machine(),
        config: RunConfig {
            quick: options.quick,
            test_seconds: plan.seconds,
            rounds: plan.rounds,
            target_position: options.target_position,
            services: plan.services.clone(),
            endpoints_per_service: options.endpoints,
            started_at: host::utc_now(),
            ..RunConfig::default()
        },
        ..RunReport::default()
    };
    let mut next_lab = 0;
    let mut calibration = None;
    for (index, group) in plan.groups.iter().enumerate() {
        checkpoint()?;
        progress(format_args!(
            "[{}/{}] {} with {} service(s): {}",
            index + 1,
            plan.groups.len(),
            group.scenario.name(),
            group.services,
            names(&group.dataplanes, |d| d.name().to_owned())
        ));
        let cells = run_group(
            group,
            &run_id,
            &mut next_lab,
            options,
            &plan,
            &mut calibration,
        )
        .map_err(|e| {
            e.within(format_args!(
                "{} with {} service(s)",
                group.scenario.name(),
                group.services
            ))
        })?;
        report.cells.extend(cells);
    }
    current_labs().clear();
    report.config.conditions = options
        .tests
        .iter()
        .map(|&t| (t, options.spin.condition(t, calibration.as_ref())))
        .collect();
    report.config.calibration = calibration;
    if options.pktcost {
        checkpoint()?;
        report.packet_costs = host::packet_costs(&bin_dir, options.quick)?;
    }
    report.config.duration_s = started.elapsed().as_secs_f64().round();
    progress(format_args!(
        "all cells measured in {:.0} s",
        report.config.duration_s
    ));
    Ok(report)
}

/// One dataplane's lab, ready to measure, and its rounds so far.
struct Prepared {
    dataplane: Dataplane,
    wiring: Wiring,
    server: ServerGuard,
    lab: AnyLab,
    rounds: Vec<Measurement>,
}

/// Builds the group's labs (one per dataplane), calibrates the CPU condition of the round-trip tests
/// when the run has not yet, runs the rounds of every test alternating between the labs (spinning or
/// not as the test's condition says), then removes them.
fn run_group(
    group: &Group,
    run_id: &str,
    next_lab: &mut usize,
    options: &Options,
    plan: &Plan,
    calibration: &mut Option<Calibration>,
) -> Result<Vec<Cell>, RunError> {
    let set = ServiceSet {
        services: group.services,
        endpoints: options.endpoints,
        position: options.target_position,
        sync_timeout: options.sync_timeout,
    };
    let mut prepared = Vec::new();
    for &dataplane in &group.dataplanes {
        checkpoint()?;
        let name = format!("nb{run_id}c{next_lab}");
        *next_lab += 1;
        current_labs().push(name.clone());
        let (lab, wiring) = wiring::build(&name, dataplane, group.scenario, set)
            .map_err(|e| e.within(format_args!("building lab {name} for {}", dataplane.name())))?;
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
        wiring::tune_client(&wiring.client)?;
        let server = ServerGuard::start(&wiring.server, lab.name())?;
        prepared.push(Prepared {
            dataplane,
            wiring,
            server,
            lab,
            rounds: Vec::new(),
        });
    }
    if calibration.is_none() && options.spin.needs_calibration(&options.tests) {
        *calibration = Some(calibrate(&prepared)?);
    }
    for round in 1..=plan.rounds {
        for one in &mut prepared {
            one.rounds.push(Measurement::default());
        }
        for &test in &options.tests {
            let condition = options.spin.condition(test, calibration.as_ref());
            let _spinners = Spinners::for_condition(condition);
            for one in &mut prepared {
                checkpoint()?;
                one.server.ensure_alive()?;
                let outcome = wiring::run_client(&one.wiring, one.lab.name(), test, plan.seconds)
                    .map_err(|e| {
                    e.within(format_args!("{} (round {round})", one.dataplane.name()))
                })?;
                progress(format_args!(
                    "  round {round}/{} {:<10} {:<20} {}",
                    plan.rounds,
                    test.name(),
                    one.dataplane.name(),
                    describe(&outcome)
                ));
                let measurement = one.rounds.last_mut().expect("pushed above");
                record(measurement, test, outcome)?;
            }
        }
    }
    let cells = prepared
        .iter()
        .map(|one| cell_of(one.dataplane, group, &one.rounds, one.wiring.programming))
        .collect();
    drop(prepared);
    current_labs().clear();
    Ok(cells)
}

/// Short tcp-rr probes on the direct path (else the group's first dataplane) with idle CPUs and with
/// spinners, to choose the round-trip tests' condition.
fn calibrate(prepared: &[Prepared]) -> Result<Calibration, RunError> {
    let Some(one) = prepared
        .iter()
        .find(|p| p.dataplane == Dataplane::Direct)
        .or_else(|| prepared.first())
    else {
        return Err(RunError::Invalid("nothing to calibrate on".into()));
    };
    let result = spin::calibrate(one.dataplane, |condition| {
        checkpoint()?;
        let _spinners = Spinners::for_condition(condition);
        match wiring::run_client(
            &one.wiring,
            one.lab.name(),
            Test::TcpRr,
            spin::CALIBRATION_SECONDS,
        )? {
            load::Outcome::Rate(rate) => Ok(rate.latency.p50_us),
            load::Outcome::Stream(_) => Err(RunError::WrongOutcome {
                test: Test::TcpRr.name(),
                outcome: "a stream",
            }),
        }
    })
    .map_err(|e| e.within("calibrating the CPU condition"))?;
    let chosen = result.round_trip_condition();
    progress(format_args!(
        "  calibration on {}: tcp-rr p50 {:.1} µs with idle CPUs, {:.1} µs with spinners: \
         round trips run with {}",
        one.dataplane.name(),
        result.idle_p50_us,
        result.spinners_p50_us,
        chosen.name()
    ));
    Ok(result)
}

/// Puts `outcome` of `test` into `measurement`.
fn record(
    measurement: &mut Measurement,
    test: Test,
    outcome: load::Outcome,
) -> Result<(), RunError> {
    match (test, outcome) {
        (Test::TcpStream, load::Outcome::Stream(s)) => measurement.tcp_stream = Some(s),
        (Test::TcpRr, load::Outcome::Rate(r)) => measurement.tcp_rr = Some(r),
        (Test::TcpCrr, load::Outcome::Rate(r)) => measurement.tcp_crr = Some(r),
        (Test::UdpRr, load::Outcome::Rate(r)) => measurement.udp_rr = Some(r),
        (test, outcome) => {
            return Err(RunError::WrongOutcome {
                test: test.name(),
                outcome: match outcome {
                    load::Outcome::Stream(_) => "a stream",
                    load::Outcome::Rate(_) => "a rate",
                },
            });
        }
    }
    Ok(())
}

/// A dataplane's cell: every round, their spread, and for each test the round with the median
/// headline figure (its latencies too, so a reported p50/p99 is one real round's; the upper middle
/// round for an even count).
pub fn cell_of(
    dataplane: Dataplane,
    group: &Group,
    rounds: &[Measurement],
    programming: Option<super::results::Programming>,
) -> Cell {
    fn median_round<T: Copy>(
        rounds: &[Measurement],
        pick: fn(&Measurement) -> Option<T>,
        figure: fn(&T) -> f64,
    ) -> Option<T> {
        let mut values: Vec<T> = rounds.iter().filter_map(pick).collect();
        values.sort_by(|a, b| figure(a).total_cmp(&figure(b)));
        values.get(values.len() / 2).copied()
    }
    let measurement = Measurement {
        tcp_stream: median_round(rounds, |m| m.tcp_stream, |s| s.gbit_per_s),
        tcp_rr: median_round(rounds, |m| m.tcp_rr, |r| r.per_second),
        tcp_crr: median_round(rounds, |m| m.tcp_crr, |r| r.per_second),
        udp_rr: median_round(rounds, |m| m.udp_rr, |r| r.per_second),
    };
    Cell {
        dataplane,
        scenario: group.scenario,
        services: group.services,
        measurement,
        spread: Cell::spread_of(rounds),
        rounds: rounds.to_vec(),
        programming,
    }
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

#[cfg(test)]
mod tests;
