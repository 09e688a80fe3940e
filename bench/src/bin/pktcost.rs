//! `pktcost`: the per-packet cost of each path through strait's eBPF programs, measured in the kernel with
//! BPF_PROG_TEST_RUN repeat (the kernel reports the mean time per run). Each path is also given as a ratio
//! to the cheapest path of the same program measured in the same run (a non-IPv4 frame, which a pod may
//! not send, dropped: one header load and one counter update), so the figure says what the path's work costs
//! beyond the test-run harness itself.
//!
//! Paths that rewrite the packet (the per-packet service path) cannot use repeat: every run after the
//! first would see its own output. They are timed one run per call (the kernel still times the run
//! itself) and reported as the median over `--single-runs` calls, against the same baseline measured the
//! same way; they are measured with one service and again with `--services` services in the maps, to show
//! the cost does not grow with the number of services. The kernel DNS fast path's answer (`dns_fast`,
//! a query for a Service's A record built into its reply) is one of them, with as many names in its map
//! as there are services.

use std::{
    fmt::Write as _,
    net::{Ipv4Addr, SocketAddrV4},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context as _, ensure};
use aya::programs::{TestRun, TestRunOptions};
use clap::Parser;
use serde_json::json;
use strait_bench::stdout;
use strait_dataplane::{
    Dataplane, LoadOptions,
    dns_fast::HotRecord,
    services::{Backend, ExternalAccess, L4Proto, ServiceEntry, ServiceKey},
};
use strait_tests::frames::{self, DST, SRC};

/// Per-packet cost of strait's eBPF program paths (needs root).
#[derive(Parser, Debug)]
#[command(name = "pktcost", version)]
struct Args {
    /// Runs per measurement (the kernel averages over them).
    #[arg(long, default_value_t = 1_000_000)]
    repeat: u32,
    /// Measurements per path; the median is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Calls per measurement of a rewriting path (one run each); the median is reported.
    #[arg(long, default_value_t = 20_000)]
    single_runs: usize,
    /// Services in the maps for the second measurement of the service paths.
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

struct Path {
    name: &'static str,
    frame: Vec<u8>,
    verdict: u32,
}

/// Runs; a reader that closed stdout ends the output quietly (exit status 0), any other error is
/// reported on stderr (exit status 1).
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if stdout::is_closed_stdout(error.as_ref()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:?}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        nix::unistd::geteuid().is_root(),
        "pktcost loads eBPF programs: run it as root"
    );
    ensure!(
        args.repeat > 0 && args.rounds > 0,
        "--repeat and --rounds must be positive"
    );
    let mut dataplane =
        Dataplane::load(&LoadOptions::default()).context("loading the eBPF object")?;
    frames::register_pods(&mut dataplane);
    // The XDP fast path checks the frame against the pod link's MTU before redirecting, so DST's link
    // must exist here: the test-run device stands in for it (redirects only return their verdict).
    dataplane
        .upsert_endpoint(&strait_dataplane::endpoints::Endpoint {
            addr: DST,
            host_ifindex: frames::TEST_RUN_IFINDEX,
            pod_mac: frames::POD_MAC_DST,
            host_mac: frames::GW_MAC_DST,
        })
        .context("registering DST behind the test-run device")?;
    let paths = [
        Path {
            name: "from-pod: non-IPv4 dropped (baseline)",
            frame: frames::arp(),
            verdict: 2,
        },
        Path {
            name: "from-pod: TCP delivered to local pod",
            frame: frames::tcp(SRC, DST),
            verdict: 7,
        },
        Path {
            name: "from-pod: UDP delivered to local pod",
            frame: frames::udp(SRC, DST),
            verdict: 7,
        },
        Path {
            name: "from-pod: IPv4 to stack (not a pod)",
            frame: frames::tcp(SRC, Ipv4Addr::new(192, 0, 2, 1)),
            verdict: 0,
        },
        Path {
            name: "from-pod: spoofed source dropped",
            frame: frames::tcp(Ipv4Addr::new(10, 9, 9, 9), DST),
            verdict: 2,
        },
    ];
    let mut results = Vec::new();
    for path in &paths {
        let mut samples = Vec::new();
        for _ in 0..args.rounds {
            samples.push(measure(&mut dataplane, path, args.repeat)?);
        }
        samples.sort();
        results.push((path.name, samples[samples.len() / 2]));
    }
    let service_results = service_paths(&mut dataplane, &args)?;
    report(&args, &results, &service_results)
}

type Results<'a> = [(&'a str, Duration)];

/// Prints both tables (or JSON), each path also as a ratio to its table's baseline (the first row).
fn report(
    args: &Args,
    results: &Results<'_>,
    service_results: &[(String, Duration)],
) -> anyhow::Result<()> {
    let baseline = results[0].1.as_secs_f64().max(f64::EPSILON);
    let single_baseline = service_results[0].1.as_secs_f64().max(f64::EPSILON);
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|(name, d)| json!({ "path": name, "ns_per_packet": d.as_nanos(), "ratio_to_baseline": d.as_secs_f64() / baseline }))
            .collect();
        let service_rows: Vec<_> = service_results
            .iter()
            .map(|(name, d)| json!({ "path": name, "ns_per_packet": d.as_nanos(), "ratio_to_baseline": d.as_secs_f64() / single_baseline }))
            .collect();
        stdout::print(serde_json::to_string_pretty(&json!({
            "repeat": args.repeat,
            "rounds": args.rounds,
            "paths": rows,
            "single_runs": args.single_runs,
            "service_paths": service_rows,
        }))?)?;
        return Ok(());
    }
    let mut text = format!("{:<42} {:>12} {:>12}\n", "path", "ns/packet", "x baseline");
    for (name, d) in results {
        let _ = writeln!(
            text,
            "{name:<42} {:>12} {:>12.2}",
            d.as_nanos(),
            d.as_secs_f64() / baseline
        );
    }
    let _ = writeln!(
        text,
        "(median of {} rounds of {} runs each, BPF_PROG_TEST_RUN on this machine)\n",
        args.rounds, args.repeat
    );
    let _ = writeln!(
        text,
        "{:<58} {:>12} {:>12}",
        "service path", "ns/packet", "x baseline"
    );
    for (name, d) in service_results {
        let _ = writeln!(
            text,
            "{name:<66} {:>12} {:>12.2}",
            d.as_nanos(),
            d.as_secs_f64() / single_baseline
        );
    }
    let _ = write!(
        text,
        "(median of {} single-run calls each; the baseline is the non-IPv4 path timed the same way)",
        args.single_runs
    );
    stdout::print(text)?;
    Ok(())
}

/// The per-packet service paths (tracked flows), with one service and with `--services` services.
fn service_paths(
    dataplane: &mut Dataplane,
    args: &Args,
) -> anyhow::Result<Vec<(String, Duration)>> {
    let vip = Ipv4Addr::new(10, 96, 0, 1);
    let node_ip = Ipv4Addr::new(172, 30, 0, 11);
    let client = Ipv4Addr::new(172, 30, 0, 2);
    dataplane.set_node(node_ip, frames::TEST_RUN_IFINDEX)?;
    let paths = [
        (
            Hook::FromPod,
            "from-pod: non-IPv4 dropped (baseline)",
            frames::arp(),
            2,
        ),
        (
            Hook::FromPod,
            "from-pod: ClusterIP, tracked flow (DNAT)",
            frames::tcp(SRC, vip),
            7,
        ),
        (
            Hook::FromUplink,
            "from-uplink: NodePort, tracked flow (DNAT+SNAT)",
            frames::tcp(client, node_ip),
            7,
        ),
        (
            Hook::XdpUplink,
            "xdp-uplink: NodePort, tracked flow (XDP fast path)",
            frames::tcp(client, node_ip),
            4,
        ),
        (
            Hook::DnsFast,
            "dns-fast: A query answered in the kernel",
            dns_query(node_ip),
            7,
        ),
    ];
    dataplane.set_dns_fast(Some(SocketAddrV4::new(node_ip, 53)), true)?;
    let mut results = Vec::new();
    for services in [1, args.services.max(1)] {
        let mut table = dataplane.read_services()?;
        dataplane.sync_services(&mut table, &service_entries(vip, node_ip, services))?;
        dataplane.sync_dns_records(&hot_names(vip, services))?;
        for (hook, name, frame, verdict) in &paths {
            if services > 1 && *verdict == 0 {
                continue;
            }
            // The first run opens the flow (the XDP path relies on the tc path before it having opened
            // its flow); the measured runs hit its CT entry.
            single_run(dataplane, *hook, frame)?;
            let mut samples = Vec::with_capacity(args.single_runs);
            for _ in 0..args.single_runs.max(1) {
                let (duration, got) = single_run(dataplane, *hook, frame)?;
                ensure!(
                    got == *verdict,
                    "{name}: verdict {got} instead of {verdict}"
                );
                samples.push(duration);
            }
            samples.sort();
            let label = if services > 1 {
                format!("{name} [{services} services]")
            } else {
                (*name).to_owned()
            };
            results.push((label, samples[samples.len() / 2]));
        }
    }
    Ok(results)
}

/// Which program a service path runs through.
#[derive(Clone, Copy)]
enum Hook {
    FromPod,
    FromUplink,
    XdpUplink,
    DnsFast,
}

/// The measured name (`web.default.svc.cluster.local` -> `vip`) and filler names up to `count` in the
/// DNS fast path's map, as the agent writes them (lowercase wire format).
fn hot_names(vip: Ipv4Addr, count: usize) -> Vec<HotRecord> {
    let name = |service: &str| {
        let mut wire = Vec::new();
        for label in [service, "default", "svc", "cluster", "local"] {
            wire.push(label.len() as u8);
            wire.extend_from_slice(label.as_bytes());
        }
        wire.push(0);
        wire
    };
    let mut records = vec![HotRecord {
        wire_name: name("web"),
        ttl: 30,
        addrs: vec![vip],
    }];
    records.extend((1..count).map(|i| HotRecord {
        wire_name: name(&format!("filler-{i}")),
        ttl: 30,
        addrs: vec![Ipv4Addr::from(0x0a60_0000 + i as u32)],
    }));
    records
}

/// A pod's UDP query for `web.default.svc.cluster.local` A (recursion desired, no EDNS, as glibc sends
/// it) to the node's DNS listener `node_ip`:53.
fn dns_query(node_ip: Ipv4Addr) -> Vec<u8> {
    let mut dns = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["web", "default", "svc", "cluster", "local"] {
        dns.push(label.len() as u8);
        dns.extend_from_slice(label.as_bytes());
    }
    dns.extend_from_slice(&[0, 0, 1, 0, 1]);
    frames::udp_datagram(
        frames::SENT_BY_SRC,
        SocketAddrV4::new(SRC, 40_000),
        SocketAddrV4::new(node_ip, 53),
        &dns,
    )
}

/// One run of `frame`: (the kernel's time for it, verdict).
fn single_run(
    dataplane: &mut Dataplane,
    hook: Hook,
    frame: &[u8],
) -> anyhow::Result<(Duration, u32)> {
    // Room for what a path adds: a DNS reply's answers.
    let mut out = vec![0u8; frame.len() + 512];
    let mut options = TestRunOptions::new();
    options.data_in = Some(frame);
    options.data_out = Some(&mut out);
    let result = match hook {
        Hook::FromPod => dataplane.from_pod_program()?.test_run(options),
        Hook::FromUplink => dataplane.from_uplink_program()?.test_run(options),
        Hook::XdpUplink => dataplane.xdp_uplink_program()?.test_run(options),
        Hook::DnsFast => dataplane.dns_fast_program()?.test_run(options),
    }
    .context("BPF_PROG_TEST_RUN")?;
    Ok((result.duration, result.return_value))
}

/// The measured ClusterIP (`vip`:8080) and NodePort (`node_ip`:8080) frontends, both to the fixture pod
/// DST:8080, plus filler ClusterIP services up to `count` frontends in all.
fn service_entries(vip: Ipv4Addr, node_ip: Ipv4Addr, count: usize) -> Vec<ServiceEntry> {
    let backend = Backend {
        addr: DST,
        port: 8080,
    };
    let frontend = |addr: Ipv4Addr, external: Option<ExternalAccess>| ServiceEntry {
        key: ServiceKey {
            vip: addr,
            port: 8080,
            proto: L4Proto::Tcp,
        },
        backends: vec![backend],
        affinity_timeout_s: None,
        external,
        endpoints_elsewhere: false,
    };
    let mut entries = vec![
        frontend(vip, None),
        frontend(node_ip, Some(ExternalAccess::default())),
    ];
    for i in 2..count {
        let [_, _, hi, lo] = u32::try_from(i).unwrap_or(u32::MAX).to_be_bytes();
        entries.push(ServiceEntry {
            key: ServiceKey {
                vip: Ipv4Addr::new(10, 97, hi, lo),
                port: 80,
                proto: L4Proto::Tcp,
            },
            backends: vec![Backend {
                addr: Ipv4Addr::new(10, 244, 9, lo),
                port: 8080,
            }],
            affinity_timeout_s: None,
            external: None,
            endpoints_elsewhere: false,
        });
    }
    entries
}

fn measure(dataplane: &mut Dataplane, path: &Path, repeat: u32) -> anyhow::Result<Duration> {
    let program = dataplane.from_pod_program()?;
    let mut out = vec![0u8; path.frame.len() + 64];
    let mut options = TestRunOptions::new();
    options.data_in = Some(&path.frame);
    options.data_out = Some(&mut out);
    options.repeat = repeat;
    let result = program.test_run(options).context("BPF_PROG_TEST_RUN")?;
    ensure!(
        result.return_value == path.verdict,
        "{}: verdict {} instead of {}",
        path.name,
        result.return_value,
        path.verdict
    );
    Ok(result.duration)
}
