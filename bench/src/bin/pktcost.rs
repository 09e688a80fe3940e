//! `pktcost`: the per-packet cost of each path through strait's eBPF programs, measured in the kernel with
//! BPF_PROG_TEST_RUN repeat (the kernel reports the mean time per run). Each path is also given as a ratio
//! to the cheapest path of the same program measured in the same run (a non-IPv4 frame handed to the
//! stack: one header load and one counter update), so the figure says what the path's work costs
//! beyond the test-run harness itself.

use std::{net::Ipv4Addr, time::Duration};

use anyhow::{Context as _, ensure};
use aya::programs::{TestRun, TestRunOptions};
use clap::Parser;
use serde_json::json;
use strait_dataplane::{Dataplane, LoadOptions};
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
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

struct Path {
    name: &'static str,
    frame: Vec<u8>,
    verdict: u32,
}

fn main() -> anyhow::Result<()> {
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
    let paths = [
        Path {
            name: "from-pod: non-IPv4 to stack (baseline)",
            frame: frames::arp(),
            verdict: 0,
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
    let baseline = results[0].1.as_secs_f64().max(f64::EPSILON);
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|(name, d)| json!({ "path": name, "ns_per_packet": d.as_nanos(), "ratio_to_baseline": d.as_secs_f64() / baseline }))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "repeat": args.repeat, "rounds": args.rounds, "paths": rows })
            )?
        );
    } else {
        println!("{:<42} {:>12} {:>12}", "path", "ns/packet", "x baseline");
        for (name, d) in &results {
            println!(
                "{name:<42} {:>12} {:>12.2}",
                d.as_nanos(),
                d.as_secs_f64() / baseline
            );
        }
        println!(
            "(median of {} rounds of {} runs each, BPF_PROG_TEST_RUN on this machine)",
            args.rounds, args.repeat
        );
    }
    Ok(())
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
