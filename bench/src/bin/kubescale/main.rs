//! `kubescale`: the agent's Kubernetes source at scale. A stand-in API server (in a child process, paged
//! lists, open watches) serves a large cluster — by default 10,000 Services with their EndpointSlices,
//! 100 Nodes, 100,000 Pods, 100 Namespaces and NetworkPolicies — and this process runs the agent's real
//! [`KubeSource`](strait_control::model::KubeSource) in policy mode (every Pod of the cluster) feeding
//! a real `ObjectStore`, and reports, per round: the time until the source is ready with every object
//! in the store, the heap at its peak and once settled (a counting allocator: bytes live, not pages),
//! bytes per object, the process's RSS; then a sustained stream of changes in segments with the heap
//! settled after each, and every kind's periodic relist with its peak.
//!
//! Timings are reported, never asserted. Asserted: every object reached the store at the revision the
//! server holds; the queue never held more than its capacity; the relists found nothing the watches
//! missed; and memory is bounded — settled heap per object under [`MAX_BYTES_PER_OBJECT`], and the heap
//! settled after the stream and after the relists at most [`MAX_GROWTH`] times what it was after the
//! first sync (a leak in the queue or a list buffer fails the run).
//!
//! `kubescale [--quick] [--rounds N] [--json] [--markdown bench/RESULTS.md]`; `--quick` (1,000
//! Services, 10,000 Pods, one round) is the CI smoke run. Needs no root.

use std::time::Duration;

use anyhow::ensure;
use clap::Parser;
use strait_control::model::kube_source::KubeSourceOptions;

mod agent;
mod cluster;
mod heap;
mod report;
mod round;
mod serve;

use cluster::Scale;
use round::{Round, Settings};

#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

/// Settled heap per object after the first sync may not exceed this (the store keeps each object
/// encoded, about 0.3 to 0.7 KiB, plus its key and map node).
pub const MAX_BYTES_PER_OBJECT: f64 = 2048.0;
/// The heap settled after the stream, and after the relists, may be at most this many times the heap
/// settled after the first sync.
pub const MAX_GROWTH: f64 = 1.5;

/// The agent's Kubernetes source at scale, against a stand-in API server.
#[derive(Parser, Debug)]
#[command(name = "kubescale", version)]
struct Args {
    /// CI smoke run: 1,000 Services, 20 Nodes, 10,000 Pods, 20 Namespaces, 3 x 500 changes, one round.
    #[arg(long)]
    quick: bool,
    /// Rounds (each with a fresh server and source) [default: 3; quick: 1].
    #[arg(long)]
    rounds: Option<usize>,
    /// Services, each with one EndpointSlice [default: 10,000; quick: 1,000].
    #[arg(long)]
    services: Option<usize>,
    /// Endpoints per EndpointSlice.
    #[arg(long, default_value_t = 5)]
    endpoints: usize,
    /// Nodes [default: 100; quick: 20].
    #[arg(long)]
    nodes: Option<usize>,
    /// Pods, spread over the Nodes and Namespaces [default: 100,000; quick: 10,000].
    #[arg(long)]
    pods: Option<usize>,
    /// Namespaces [default: 100; quick: 20].
    #[arg(long)]
    namespaces: Option<usize>,
    /// NetworkPolicies, one per Namespace up to this many [default: all Namespaces].
    #[arg(long)]
    policies: Option<usize>,
    /// Segments of the stream of changes (the heap is read after each).
    #[arg(long, default_value_t = 3)]
    segments: usize,
    /// Changes per segment [default: 5,000; quick: 500].
    #[arg(long)]
    changes: Option<usize>,
    /// Changes per second in the stream [default: 2,000; quick: 1,000].
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds between a kind's relists, counted from the end of its previous list: long enough that
    /// no relist comes before the stream is over [default: 60; quick: 15; at least the stream's
    /// planned length plus 8].
    #[arg(long)]
    relist_s: Option<f64>,
    /// The source's queue capacity (messages).
    #[arg(long, default_value_t = KubeSourceOptions::default().queue_capacity)]
    queue: usize,
    /// Give up waiting for any one step after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Write (or replace) the "Kube source at scale" section of this Markdown file.
    #[arg(long)]
    markdown: Option<std::path::PathBuf>,
    /// Internal: be the stand-in API server process.
    #[arg(long, hide = true)]
    serve: bool,
}

impl Args {
    fn scale(&self) -> Scale {
        let pick = |value: Option<usize>, full, quick| {
            value.unwrap_or(if self.quick { quick } else { full })
        };
        let namespaces = pick(self.namespaces, 100, 20).max(1);
        Scale {
            services: pick(self.services, 10_000, 1_000),
            endpoints_per_service: self.endpoints,
            nodes: pick(self.nodes, 100, 20).max(1),
            pods: pick(self.pods, 100_000, 10_000),
            namespaces,
            policies: self.policies.unwrap_or(namespaces),
        }
    }

    fn settings(&self) -> anyhow::Result<Settings> {
        let changes = self.changes.unwrap_or(if self.quick { 500 } else { 5_000 });
        let rate = self
            .rate
            .unwrap_or(if self.quick { 1_000.0 } else { 2_000.0 });
        ensure!(
            rate > 0.0 && changes > 0 && self.segments > 0,
            "nothing to stream"
        );
        let stream_s = count_f64(self.segments * changes) / rate;
        let relist_s = self
            .relist_s
            .unwrap_or_else(|| (if self.quick { 15.0 } else { 60.0_f64 }).max(stream_s + 8.0));
        ensure!(relist_s > 0.0, "--relist-s must be positive");
        Ok(Settings {
            scale: self.scale(),
            options: KubeSourceOptions {
                relist_every: Duration::from_secs_f64(relist_s),
                queue_capacity: self.queue,
                ..KubeSourceOptions::default()
            },
            segments: self.segments,
            changes_per_segment: changes,
            rate_hz: rate,
            timeout: Duration::from_secs(self.timeout_s),
        })
    }
}

/// A count as a float, for rates and ratios.
#[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
pub fn count_f64(count: usize) -> f64 {
    count as f64
}

fn progress(message: impl std::fmt::Display) {
    eprintln!("kubescale: {message}");
}

/// Fails unless `round` kept within the bounds.
fn check_bounds(round: &Round, capacity: usize) -> anyhow::Result<()> {
    let settled = count_f64(round.first_sync.settled_heap);
    ensure!(
        round.bytes_per_object() <= MAX_BYTES_PER_OBJECT,
        "{:.0} heap bytes per object after the first sync (bound {MAX_BYTES_PER_OBJECT})",
        round.bytes_per_object()
    );
    for (what, heap) in round
        .stream
        .iter()
        .map(|s| ("the stream", s.memory.settled_heap))
        .chain([("the relists", round.relist.memory.settled_heap)])
    {
        ensure!(
            count_f64(heap) <= MAX_GROWTH * settled,
            "the heap settled at {heap} bytes after {what}, more than {MAX_GROWTH} x the {settled} \
             after the first sync"
        );
    }
    ensure!(
        round.max_queued <= capacity,
        "{} messages queued (capacity {capacity})",
        round.max_queued
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.serve {
        return serve::serve(&args.scale());
    }
    let settings = args.settings()?;
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let start = report::Start::now();
    let mut results = Vec::new();
    for n in 1..=rounds {
        progress(format_args!(
            "round {n} of {rounds}: {} objects",
            settings.scale.objects()
        ));
        let round = round::run(&settings)?;
        progress(report::round_line(&round));
        check_bounds(&round, settings.options.queue_capacity)?;
        results.push(round);
    }
    let report = report::Report::new(&settings, results, args.quick, start);
    if let Some(path) = &args.markdown {
        report::write_markdown(&report, path)?;
        progress(format_args!("wrote {}", path.display()));
    }
    if args.json {
        strait_bench::stdout::print(serde_json::to_string_pretty(&report)?)?;
    } else {
        strait_bench::stdout::print(report::table(&report))?;
    }
    Ok(())
}
