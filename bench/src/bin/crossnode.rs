//! `crossnode`: pod-to-pod throughput, latency and connection rate between two nodes, measured in one
//! run through strait's VXLAN overlay, strait's direct routing, the Flannel stack (two of the lab's
//! Flannel reference nodes: kernel `flannel.1` VXLAN, `cni0` bridges, IP forwarding) and the underlay
//! itself (node namespace to node namespace, no pods, no strait programs; and again between two strait
//! nodes, through their uplink programs), with netbench's load
//! generator (server and client threads of this process, each inside its namespace). Rounds are
//! interleaved (every stack once per round) so drifting machine load spreads over all of them; the
//! report gives each figure's median and range and the goals' ratios: strait VXLAN against Flannel,
//! strait direct against the underlay.
//!
//! Traffic stays inside the labs it builds (their own underlay namespace); every lab is torn down at
//! the end, also on failure and on SIGINT, SIGTERM or SIGHUP.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context as _, Result};
use clap::Parser;
use serde_json::json;
use strait_bench::netbench::{
    load::{self, Outcome, Server},
    results::Test,
};
use strait_dataplane::netns;
use strait_lab::{
    cluster::Lab,
    state::{LabOptions, LabOverlay},
};
use strait_tests::LabGuard;

/// Cross-node pod-to-pod figures: strait VXLAN and direct routing against Flannel and the underlay
/// (needs root).
#[derive(Parser, Debug)]
#[command(name = "crossnode", version)]
struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Rounds (every stack and test once per round); medians and ranges are over them.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Write the figures as JSON here too.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// One stack under test: where the server listens and where the client runs.
struct Stack {
    name: &'static str,
    client_netns: String,
    target: SocketAddr,
}

const PODS: &str = "apiVersion: v1
kind: Pod
metadata: {name: bench-a, namespace: default}
spec: {nodeName: NODE_A, containers: [{name: c, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: bench-b, namespace: default}
spec: {nodeName: NODE_B, containers: [{name: c, image: busybox}]}
";

/// Two pods pinned to nodes `a` and `b` of `lab`; returns (client pod netns, server pod netns, server ip).
fn two_pods(lab: &mut Lab, a: &str, b: &str) -> Result<(String, String, Ipv4Addr)> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("pods.yaml");
    std::fs::write(&file, PODS.replace("NODE_A", a).replace("NODE_B", b))?;
    lab.apply(&file)?;
    let pod = |name: &str| {
        lab.state
            .pod(&format!("default/{name}"))
            .cloned()
            .with_context(|| format!("pod {name} did not start"))
    };
    let (client, server) = (pod("bench-a")?, pod("bench-b")?);
    Ok((client.netns, server.netns, server.ip))
}

/// Starts netbench's load server inside `netns`, bound to `ip`'s port (any address of the namespace).
fn serve_in(netns_name: &str, ip: Ipv4Addr) -> Result<SocketAddr> {
    let server = netns::run_in(&netns::path(netns_name), || Server::bind(0))??;
    let port = server.port();
    std::thread::spawn(move || server.run());
    Ok(SocketAddr::from((ip, port)))
}

/// A lab of `nodes` strait nodes and `flannel` Flannel nodes, in `overlay` mode.
fn lab(guard: &LabGuard, nodes: usize, flannel: usize, overlay: LabOverlay) -> Result<Lab> {
    let options = LabOptions {
        overlay,
        flannel_nodes: flannel,
        ..LabOptions::default()
    };
    Ok(Lab::up_with(&guard.name, nodes, None, options)?)
}

fn node_name(lab: &Lab, index: usize) -> String {
    lab.state.nodes[index].name.clone()
}

fn measure(stack: &Stack, test: Test, seconds: f64) -> Result<Outcome> {
    let target = stack.target;
    let duration = Duration::from_secs_f64(seconds);
    let outcome = netns::run_in(Path::new(&netns::path(&stack.client_netns)), move || {
        load::run(test, target, duration)
    })??;
    Ok(outcome)
}

/// The headline number of an outcome: Gbit/s for a stream, transactions per second otherwise.
fn figure(outcome: &Outcome) -> f64 {
    match outcome {
        Outcome::Stream(stream) => stream.gbit_per_s,
        Outcome::Rate(rate) => rate.per_second,
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crossnode: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Removes `labs` and exits on SIGINT, SIGTERM or SIGHUP: the signals are blocked in every thread (call
/// this before any other thread starts) and waited for in one. The guards clean up otherwise.
fn remove_on_signal(labs: [String; 3]) -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    set.thread_block().context("blocking the stop signals")?;
    std::thread::spawn(move || {
        if let Ok(signal) = set.wait() {
            eprintln!("crossnode: {signal}: removing the labs");
            for lab in &labs {
                let _ = strait_lab::down(lab);
            }
            std::process::exit(130);
        }
    });
    Ok(())
}

fn run(args: &Args) -> Result<()> {
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "crossnode needs root (it builds labs of network namespaces)"
    );
    let vxlan_guard = LabGuard::new("cnv");
    let direct_guard = LabGuard::new("cnd");
    let flannel_guard = LabGuard::new("cnf");
    remove_on_signal([&vxlan_guard, &direct_guard, &flannel_guard].map(|g| g.name.clone()))?;
    eprintln!("crossnode: building the labs (strait VXLAN, strait direct, Flannel)");
    let mut vxlan = lab(&vxlan_guard, 2, 0, LabOverlay::Vxlan)?;
    let mut direct = lab(&direct_guard, 2, 0, LabOverlay::Direct)?;
    let mut flannel = lab(&flannel_guard, 1, 2, LabOverlay::Vxlan)?;
    let mut stacks = Vec::new();
    for (name, lab, a, b) in [
        ("strait-vxlan", &mut vxlan, 0, 1),
        ("strait-direct", &mut direct, 0, 1),
        ("flannel", &mut flannel, 1, 2),
    ] {
        let (na, nb) = (node_name(lab, a), node_name(lab, b));
        let (client_netns, server_netns, server_ip) = two_pods(lab, &na, &nb)?;
        stacks.push(Stack {
            name,
            client_netns,
            target: serve_in(&server_netns, server_ip)?,
        });
    }
    // The underlay: the Flannel lab's two Flannel nodes talk node address to node address (no eBPF
    // program on the way); and the same between two strait nodes, through the uplink programs the lab
    // runs in generic XDP mode, which shows what the lab's generic XDP costs every strait figure.
    for (name, lab, a, b) in [
        ("underlay", &flannel, 1, 2),
        ("underlay-strait-nodes", &direct, 0, 1),
    ] {
        let (node_a, node_b) = (lab.state.nodes[a].clone(), lab.state.nodes[b].clone());
        stacks.push(Stack {
            name,
            client_netns: node_a.netns.clone(),
            target: serve_in(&node_b.netns, node_b.ip)?,
        });
    }

    let mut figures: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); Test::ALL.len()]; stacks.len()];
    for round in 1..=args.rounds {
        eprintln!("crossnode: round {round} of {}", args.rounds);
        for (t, test) in Test::ALL.into_iter().enumerate() {
            for (s, stack) in stacks.iter().enumerate() {
                let outcome = measure(stack, test, args.seconds)
                    .with_context(|| format!("{} {}", stack.name, test.name()))?;
                figures[s][t].push(figure(&outcome));
            }
        }
    }
    report(args, &stacks, &mut figures)
}

fn report(args: &Args, stacks: &[Stack], figures: &mut [Vec<Vec<f64>>]) -> Result<()> {
    let units = ["Gbit/s", "tps", "conn/s", "tps"];
    println!(
        "cross-node pod to pod, median of {} round(s) of {} s (range in brackets)\n",
        args.rounds, args.seconds
    );
    println!("| stack | tcp-stream Gbit/s | tcp-rr tps | tcp-crr conn/s | udp-rr tps |");
    println!("|---|---|---|---|---|");
    let mut medians = vec![[0.0f64; 4]; stacks.len()];
    let mut json_rows = Vec::new();
    for (s, stack) in stacks.iter().enumerate() {
        let mut cells = Vec::new();
        for t in 0..Test::ALL.len() {
            let values = &mut figures[s][t];
            let m = median(values);
            medians[s][t] = m;
            let (lo, hi) = (values[0], values[values.len() - 1]);
            cells.push(format!("{m:.2} [{lo:.2}–{hi:.2}]"));
        }
        println!("| {} | {} |", stack.name, cells.join(" | "));
        json_rows.push(json!({
            "stack": stack.name,
            "medians": medians[s],
            "units": units,
            "rounds": figures[s],
        }));
    }
    let ratio = |a: usize, b: usize, t: usize| medians[a][t] / medians[b][t];
    println!("\nratios (goal in brackets):");
    for (t, test) in Test::ALL.into_iter().enumerate() {
        println!(
            "  {:<10} strait-vxlan / flannel {:.2} [>= 1.0]   strait-direct / underlay {:.2} [>= 0.95]   \
             strait-direct / underlay between strait nodes {:.2}",
            test.name(),
            ratio(0, 2, t),
            ratio(1, 3, t),
            ratio(1, 4, t)
        );
    }
    if let Some(path) = &args.json {
        let value = json!({ "seconds": args.seconds, "rounds": args.rounds, "stacks": json_rows });
        std::fs::write(path, serde_json::to_string_pretty(&value)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
