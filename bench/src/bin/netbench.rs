//! `netbench`: throughput, latency and connection rate through strait and through the standard stack,
//! side by side in one run. This binary is the command line; the run itself is
//! `strait_bench::netbench::run` and its output `strait_bench::netbench::publish`.
//!
//! Dataplanes: `strait` (the lab's agent and eBPF programs), `kube-proxy-iptables` and
//! `kube-proxy-nftables` (a bridge-CNI node with kube-proxy's rules for the same Services), `direct`
//! (the bridge node, client to the pod's address). Scenarios: pod-to-pod, pod-to-clusterip,
//! external-to-nodeport. Tests: tcp-stream, tcp-rr, tcp-crr, udp-rr. `netbench serve` and
//! `netbench client` are the two ends of the load generator, which the run starts inside the lab's
//! namespaces. `netbench cross-node` measures between two nodes instead (strait against Flannel and
//! the underlay; `strait_bench::netbench::crossnode`); `netbench policy` between two strait nodes with
//! 0, 100 and 1,000 NetworkPolicies (`strait_bench::netbench::policy`); `netbench dns` cluster DNS
//! from a pod against knot and unbound (`strait_bench::netbench::dns`).

use std::{fs, net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use strait_bench::{
    netbench::{
        catalog::{SERVER_PORT, TargetPosition},
        crossnode, dns, load, policy,
        publish::publish,
        results::{Dataplane, RunReport, Scenario, Test},
        run::{self, Options},
        spin::SpinPolicy,
    },
    stdout,
};

/// Throughput, latency and connection rate: strait against kube-proxy (iptables and nftables modes)
/// and the direct path, in fresh labs on this machine (needs root).
///
/// A full run (the default) sweeps 1, 1,000 and 10,000 Services, five rounds of 2-second tests per
/// dataplane, and takes about 35 minutes on a 2-core machine; `--quick` sweeps 1 and 1,000 with three
/// rounds of half-second tests in about 3.5 minutes (and says that its intervals are less sure). Each
/// cell is the median round with its spread; each ratio the median of the per-round ratios with its
/// interval, marked ≈ when the interval includes 1 (within noise). Results go to the terminal, to
/// `<out>/netbench.json` and to PNG charts in `<out>/`; `--markdown FILE` also writes them as a
/// Markdown report (bench/RESULTS.md).
#[derive(Parser, Debug)]
#[command(name = "netbench", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Internal>,
    #[command(flatten)]
    run: RunArgs,
}

/// Where the target Service stands among the fillers.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Position {
    /// Before every filler: iptables' best case.
    First,
    /// After half of the fillers: where an average Service sits in kube-proxy's KUBE-SERVICES.
    Middle,
    /// After every filler: iptables' worst case.
    Last,
}

/// What keeps the CPUs awake during the tests.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Spin {
    /// Idle CPUs for tcp-crr and tcp-stream (spinners delay new threads by up to a scheduler tick
    /// and do not help the stream); for tcp-rr and udp-rr, SCHED_IDLE spinners only when short
    /// probes at the start show that they cut the direct path's round trip (a host whose vCPUs halt
    /// between turns).
    Auto,
    /// Spinners for every test.
    On,
    /// No spinners.
    Off,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// A bounded subset for CI: 1 and 1,000 services, 3 rounds of 0.5-second tests, a short
    /// packet-cost pass.
    #[arg(long)]
    quick: bool,
    /// Service counts to sweep (the target Service plus fillers), comma-separated.
    #[arg(long, value_delimiter = ',')]
    services: Option<Vec<usize>>,
    /// Endpoints of each filler Service (addresses where nothing answers; they only fill the rules).
    #[arg(long, default_value_t = 3)]
    endpoints: usize,
    /// Seconds each load test runs (default 2, or 0.5 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Rounds: every test runs this many times per dataplane, alternating between the dataplanes;
    /// each cell reports its median round and the spread (default 5, or 3 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Where the target Service stands among the fillers. Only kube-proxy's iptables mode walks
    /// its rules in order; nftables and strait look the Service up by hash.
    #[arg(long, value_enum, default_value = "middle")]
    target_position: Position,
    /// Which tests run with SCHED_IDLE spinners keeping the vCPUs from halting.
    #[arg(long, value_enum, default_value = "auto")]
    spin: Spin,
    /// Same as --spin off.
    #[arg(long, conflicts_with = "spin")]
    no_spin: bool,
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
    /// Between two nodes: strait VXLAN and direct routing against the Flannel stack (VXLAN and
    /// host-gw, kube-proxy's iptables rules) and the underlay, pod-to-pod, pod-to-clusterip and
    /// external-to-nodeport with the endpoint on the other node; and how long a joining node takes to
    /// become reachable. Writes bench/RESULTS.md's cross-node section with --markdown.
    CrossNode(CrossNodeArgs),
    /// NetworkPolicy at scale: TCP RR and CRR between pods on two nodes with 0, 100 and 1,000
    /// NetworkPolicies in the cluster, strait (VXLAN) against kube-router's iptables + ipset rules on
    /// Flannel nodes (one lab per stack and count, rounds interleaved), and the time a policy change
    /// takes to be enforced with the most in force. Writes bench/RESULTS.md's policy section with
    /// --markdown.
    Policy(PolicyArgs),
    /// Cluster DNS from a pod: queries per second (dnsperf at saturation) and p50/p99 latency (one
    /// query in flight) for strait's kernel fast path, strait's server with the fast path off, and
    /// knot and unbound serving the same records from the node's namespace, rounds interleaved; the
    /// issue's goals as ratios. Writes bench/RESULTS.md's DNS section with --markdown.
    Dns(DnsArgs),
    /// Ask a DNS server A questions, one in flight, and print the latency percentiles as JSON.
    #[command(hide = true)]
    DnsLatency {
        #[arg(long)]
        server: SocketAddr,
        /// A file of names, one per line, asked in turn.
        #[arg(long)]
        names: PathBuf,
        #[arg(long)]
        seconds: f64,
    },
    /// Ask a DNS server A questions from one thread per CPU, 64 outstanding on each, in batches;
    /// print the answers per second as JSON.
    #[command(hide = true)]
    DnsLoad {
        #[arg(long)]
        server: SocketAddr,
        /// A file of names, one per line, asked in turn.
        #[arg(long)]
        names: PathBuf,
        #[arg(long)]
        seconds: f64,
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

/// `netbench cross-node`.
#[derive(clap::Args, Debug)]
struct CrossNodeArgs {
    /// Rounds: every stack runs every test once per round, the stacks one after another (default 5,
    /// or 2 with --quick); the joins are measured as many times.
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds each load test runs (default 2, or 0.2 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Two rounds of short tests: does every stack work (for CI; the figures are not worth quoting).
    #[arg(long)]
    quick: bool,
    /// Skip the node-join measurement.
    #[arg(long)]
    no_join: bool,
    /// The strait agents' XDP mode on the lab's veth uplinks: auto (strait's default, which on a veth
    /// runs no XDP program: tc alone), generic (every XDP check, at the cost of a copy of each GRO/GSO
    /// aggregate) or off.
    #[arg(long, value_enum, default_value = "auto")]
    xdp_mode: strait_lab::state::LabXdp,
    /// Write the run (every round) as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the cross-node section into this Markdown file (e.g. bench/RESULTS.md), keeping the rest.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Do not measure: re-render a saved run (its --json file).
    #[arg(long, conflicts_with_all = ["rounds", "seconds", "quick", "no_join", "xdp_mode", "json"])]
    from: Option<PathBuf>,
}

/// `netbench policy`.
#[derive(clap::Args, Debug)]
struct PolicyArgs {
    /// Rounds: every test runs once per round in every lab, the labs one after another (default 5,
    /// or 2 with --quick); the policy change is timed as many times.
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds each load test runs (default 2, or 0.2 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Two rounds of short tests: does it work (for CI; the figures are not worth quoting).
    #[arg(long)]
    quick: bool,
    /// Policy counts, comma-separated (one lab each).
    #[arg(long, value_delimiter = ',')]
    counts: Option<Vec<usize>>,
    /// Skip timing the enforcement of a policy change.
    #[arg(long)]
    no_enforce: bool,
    /// Stacks, comma-separated: strait, and kube-router (the baseline: kube-router's iptables rules
    /// and ipsets on Flannel nodes; measured only when `ipset` is installed).
    #[arg(long, value_delimiter = ',', value_parser = parse_policy_stack,
          default_value = "strait,kube-router")]
    stacks: Vec<policy::summary::PolicyStack>,
    /// The strait agents' XDP mode on the lab's veth uplinks (see cross-node).
    #[arg(long, value_enum, default_value = "auto")]
    xdp_mode: strait_lab::state::LabXdp,
    /// Write the run (every round) as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the policy section into this Markdown file (e.g. bench/RESULTS.md), keeping the rest.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Do not measure: re-render a saved run (its --json file).
    #[arg(long, conflicts_with_all = ["rounds", "seconds", "quick", "counts", "no_enforce", "stacks", "xdp_mode", "json"])]
    from: Option<PathBuf>,
}

/// `netbench dns`.
#[derive(clap::Args, Debug)]
struct DnsArgs {
    /// Rounds: every target runs dnsperf and the latency client once per round, the targets one
    /// after another (default 5, or 2 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds of each dnsperf run and each latency run (default 3, or 0.5 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Two rounds of short tests: does every target answer (for CI; the figures are not worth
    /// quoting).
    #[arg(long)]
    quick: bool,
    /// ClusterIP Services whose names are asked in turn (default 100).
    #[arg(long)]
    names: Option<usize>,
    /// Write the run (every round) as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the DNS section into this Markdown file (e.g. bench/RESULTS.md), keeping the rest.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Do not measure: re-render a saved run (its --json file).
    #[arg(long, conflicts_with_all = ["rounds", "seconds", "quick", "names", "json"])]
    from: Option<PathBuf>,
}

fn parse_named<T: Copy, const N: usize>(
    what: &str,
    all: [T; N],
    name: fn(T) -> &'static str,
    s: &str,
) -> Result<T, String> {
    all.into_iter().find(|d| name(*d) == s).ok_or_else(|| {
        format!(
            "unknown {what} {s:?} (expected {})",
            all.map(name).join(", ")
        )
    })
}

fn parse_dataplane(s: &str) -> Result<Dataplane, String> {
    parse_named("dataplane", Dataplane::ALL, Dataplane::name, s)
}

fn parse_scenario(s: &str) -> Result<Scenario, String> {
    parse_named("scenario", Scenario::ALL, Scenario::name, s)
}

fn parse_policy_stack(s: &str) -> Result<policy::summary::PolicyStack, String> {
    parse_named(
        "stack",
        policy::summary::PolicyStack::ALL,
        policy::summary::PolicyStack::name,
        s,
    )
}

fn parse_test(s: &str) -> Result<Test, String> {
    parse_named("test", Test::ALL, Test::name, s)
}

/// Runs; a reader that closed stdout ends the output quietly (exit status 0), any other error is
/// reported on stderr (exit status 1).
fn main() -> ExitCode {
    match dispatch(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if stdout::is_closed_stdout(error.as_ref()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:?}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Internal::Serve { port }) => serve(port),
        Some(Internal::Client {
            test,
            target,
            seconds,
        }) => {
            let outcome = load::run(test, target, Duration::from_secs_f64(seconds))
                .with_context(|| format!("{} to {target}", test.name()))?;
            stdout::print(load::outcome_json(&outcome))?;
            Ok(())
        }
        Some(Internal::CrossNode(args)) => cross_node(&args),
        Some(Internal::Policy(args)) => policy_sweep(&args),
        Some(Internal::Dns(args)) => dns_run(&args),
        Some(Internal::DnsLatency {
            server,
            names,
            seconds,
        }) => {
            let names = read_names(&names)?;
            let latency =
                dns::client::measure_latency(server, &names, Duration::from_secs_f64(seconds))
                    .with_context(|| format!("asking {server}"))?;
            stdout::print(serde_json::to_string(&latency)?)?;
            Ok(())
        }
        Some(Internal::DnsLoad {
            server,
            names,
            seconds,
        }) => {
            let names = read_names(&names)?;
            let threads = dns::client::dnsperf_threads();
            let load = dns::batch_client::measure(
                server,
                &names,
                Duration::from_secs_f64(seconds),
                threads,
            )
            .with_context(|| format!("asking {server}"))?;
            stdout::print(serde_json::to_string(&load)?)?;
            Ok(())
        }
        Some(Internal::Report {
            from,
            out,
            markdown,
        }) => {
            let text =
                fs::read_to_string(&from).with_context(|| format!("reading {}", from.display()))?;
            let mut report: RunReport = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a netbench run", from.display()))?;
            publish(&mut report, &out, markdown.as_deref())?;
            Ok(())
        }
        None => {
            let args = cli.run;
            let mut report = run::run(&options(&args))?;
            publish(&mut report, &args.out, args.markdown.as_deref())?;
            Ok(())
        }
    }
}

fn options(args: &RunArgs) -> Options {
    Options {
        quick: args.quick,
        services: args.services.clone(),
        endpoints: args.endpoints,
        seconds: args.seconds,
        rounds: args.rounds,
        dataplanes: args.dataplanes.clone(),
        scenarios: args.scenarios.clone(),
        tests: args.tests.clone(),
        target_position: match args.target_position {
            Position::First => TargetPosition::First,
            Position::Middle => TargetPosition::Middle,
            Position::Last => TargetPosition::Last,
        },
        spin: match (args.no_spin, args.spin) {
            (true, _) | (false, Spin::Off) => SpinPolicy::Never,
            (false, Spin::On) => SpinPolicy::Always,
            (false, Spin::Auto) => SpinPolicy::Auto,
        },
        pktcost: !args.no_pktcost,
        sync_timeout: Duration::from_secs(args.sync_timeout_s),
    }
}

/// `netbench cross-node`: measures (or re-reads) and publishes.
fn cross_node(args: &CrossNodeArgs) -> anyhow::Result<()> {
    let report = if let Some(path) = &args.from {
        crossnode::run::load(path)?
    } else {
        let command = command_line();
        crossnode::run::run(&crossnode::run::Options {
            quick: args.quick,
            rounds: args.rounds,
            seconds: args.seconds,
            join: !args.no_join,
            xdp: args.xdp_mode,
            command,
        })?
    };
    crossnode::run::publish(&report, args.json.as_deref(), args.markdown.as_deref())?;
    if let Some(error) = &report.join_error {
        anyhow::bail!("the join measurement failed (the figures are published): {error}");
    }
    Ok(())
}

/// The command line as run, for the reports.
fn command_line() -> String {
    std::iter::once("netbench".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `netbench policy`: measures (or re-reads) and publishes.
fn policy_sweep(args: &PolicyArgs) -> anyhow::Result<()> {
    let report = if let Some(path) = &args.from {
        policy::run::load(path)?
    } else {
        policy::run::run(&policy::run::Options {
            quick: args.quick,
            rounds: args.rounds,
            seconds: args.seconds,
            counts: args.counts.clone(),
            enforce: !args.no_enforce,
            stacks: args.stacks.clone(),
            xdp: args.xdp_mode,
            command: command_line(),
        })?
    };
    policy::run::publish(&report, args.json.as_deref(), args.markdown.as_deref())?;
    if let Some(error) = &report.enforce_error {
        anyhow::bail!("the enforcement measurement failed (the figures are published): {error}");
    }
    Ok(())
}

/// The names of a file, one per line.
fn read_names(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.lines().map(str::to_owned).collect())
}

/// `netbench dns`: measures (or re-reads) and publishes.
fn dns_run(args: &DnsArgs) -> anyhow::Result<()> {
    let report = if let Some(path) = &args.from {
        dns::run::load(path)?
    } else {
        dns::run::run(&dns::run::Options {
            quick: args.quick,
            rounds: args.rounds,
            seconds: args.seconds,
            names: args.names,
            command: command_line(),
        })?
    };
    dns::run::publish(&report, args.json.as_deref(), args.markdown.as_deref())?;
    Ok(())
}

/// `netbench serve`: binds, says `ready` on stdout, serves until killed.
fn serve(port: u16) -> anyhow::Result<()> {
    let server = load::Server::bind(port).with_context(|| format!("binding port {port}"))?;
    stdout::print(format_args!("ready {}", server.port()))?;
    server.run().context("serving")?;
    Ok(())
}
