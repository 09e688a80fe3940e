//! kubescale's output: one progress line per round, the terminal table, the JSON report, and the
//! "Kube source at scale" section of a results file (between its own markers, replaced in place).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;
use strait_bench::netbench::crossnode::run::load_average;
use strait_bench::netbench::host;
use strait_bench::netbench::sections::Markers;

use crate::cluster::Scale;
use crate::round::{Round, Settings};
use crate::{MAX_BYTES_PER_OBJECT, MAX_GROWTH, count_f64};

/// The section's markers in a results file.
const MARKERS: Markers = strait_bench::netbench::sections::KUBESCALE;
const BEGIN: &str = "<!-- kubescale:begin (written by `kubescale --markdown`) -->";

/// When and how loaded the machine was as the run began.
pub struct Start {
    instant: Instant,
    at: String,
    load: String,
}

impl Start {
    pub fn now() -> Self {
        Self {
            instant: Instant::now(),
            at: host::utc_now(),
            load: load_average(),
        }
    }
}

/// Everything a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scale: Scale,
    pub objects: usize,
    pub queue_capacity: usize,
    pub page_size: u32,
    pub relist_every_s: f64,
    pub segments: usize,
    pub changes_per_segment: usize,
    pub rate_hz: f64,
    pub quick: bool,
    pub started_at: String,
    pub duration_s: f64,
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub load_before: String,
    pub load_after: String,
    pub rounds: Vec<Round>,
}

impl Report {
    pub fn new(settings: &Settings, rounds: Vec<Round>, quick: bool, start: Start) -> Self {
        let machine = host::machine();
        Self {
            scale: settings.scale,
            objects: settings.scale.objects(),
            queue_capacity: settings.options.queue_capacity,
            page_size: settings.options.page_size,
            relist_every_s: settings.options.relist_every.as_secs_f64(),
            segments: settings.segments,
            changes_per_segment: settings.changes_per_segment,
            rate_hz: settings.rate_hz,
            quick,
            started_at: start.at,
            duration_s: start.instant.elapsed().as_secs_f64(),
            cpus: machine.cpus,
            cpu_model: machine.cpu_model,
            kernel: machine.kernel,
            load_before: start.load,
            load_after: load_average(),
            rounds,
        }
    }
}

fn mib(bytes: usize) -> f64 {
    count_f64(bytes) / (1024.0 * 1024.0)
}

/// One round in a line, for progress.
pub fn round_line(r: &Round) -> String {
    let stream: Vec<String> = r
        .stream
        .iter()
        .map(|s| format!("{:.1}", mib(s.memory.settled_heap)))
        .collect();
    format!(
        "ready in {:.2} s; heap peak {:.1} MiB, settled {:.1} MiB ({:.0} B/object); RSS {:.1} MiB (peak \
         {:.1}); after each stream segment {} MiB; relists: peak {:.1} MiB, settled {:.1} MiB; after \
         teardown {:+.2} MiB",
        r.ready_s,
        mib(r.first_sync.peak_heap),
        mib(r.first_sync.settled_heap),
        r.bytes_per_object(),
        mib(r.first_sync.resident.rss),
        mib(r.first_sync.resident.hwm),
        stream.join(", "),
        mib(r.relist.memory.peak_heap),
        mib(r.relist.memory.settled_heap),
        signed_mib(r.after_teardown_heap),
    )
}

fn scale_line(r: &Report) -> String {
    let s = &r.scale;
    format!(
        "{} Services ({} endpoints each) with as many EndpointSlices, {} Nodes, {} Pods, {} Namespaces, \
         {} NetworkPolicies: {} objects",
        s.services,
        s.endpoints_per_service,
        s.nodes,
        s.pods,
        s.namespaces,
        s.policies.min(s.namespaces),
        r.objects
    )
}

/// The median and the range of `values`.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let median = values.get(values.len() / 2).copied().unwrap_or(f64::NAN);
    let low = values.first().copied().unwrap_or(f64::NAN);
    let high = values.last().copied().unwrap_or(f64::NAN);
    (median, low, high)
}

/// One figure of the summary: its name, the digits it is shown with, its value in each round.
struct Row {
    name: &'static str,
    digits: usize,
    values: Vec<f64>,
}

impl Row {
    fn show(&self, value: f64) -> String {
        format!("{value:.*}", self.digits)
    }

    /// `median [low–high]`.
    fn cell(&self) -> String {
        let (median, low, high) = spread(self.values.clone());
        format!(
            "{} [{}–{}]",
            self.show(median),
            self.show(low),
            self.show(high)
        )
    }

    fn median(&self) -> f64 {
        spread(self.values.clone()).0
    }
}

/// MiB with a sign.
fn signed_mib(bytes: isize) -> f64 {
    let magnitude = mib(bytes.unsigned_abs());
    if bytes < 0 { -magnitude } else { magnitude }
}

/// The summary's figures.
fn rows(r: &Report) -> Vec<Row> {
    let each = |f: &dyn Fn(&Round) -> f64| r.rounds.iter().map(f).collect::<Vec<_>>();
    let row = |name, digits, values| Row {
        name,
        digits,
        values,
    };
    let worst = |x: &Round, f: &dyn Fn(&crate::round::Segment) -> f64| {
        x.stream.iter().map(f).fold(0.0, f64::max)
    };
    let last = |x: &Round| x.stream.last().map(|s| s.memory);
    vec![
        row("time to ready (s)", 2, each(&|x| x.ready_s)),
        row(
            "heap at its peak during the first sync (MiB)",
            0,
            each(&|x| mib(x.first_sync.peak_heap)),
        ),
        row(
            "heap settled after the first sync (MiB)",
            1,
            each(&|x| mib(x.first_sync.settled_heap)),
        ),
        row(
            "heap per object, settled (bytes)",
            0,
            each(&Round::bytes_per_object),
        ),
        row(
            "the store's encoded objects (MiB)",
            1,
            each(&|x| mib(x.store_bytes)),
        ),
        row(
            "RSS after the first sync (MiB)",
            0,
            each(&|x| mib(x.first_sync.resident.rss)),
        ),
        row(
            "RSS at its peak, VmHWM (MiB)",
            0,
            each(&|x| mib(x.first_sync.resident.hwm)),
        ),
        row(
            "keys of unfinished lists tracked at once, at most",
            0,
            each(&|x| count_f64(x.max_listing)),
        ),
        row(
            "most messages queued at once",
            0,
            each(&|x| count_f64(x.max_queued)),
        ),
        row(
            "stream: changes sent per second",
            0,
            each(&|x| {
                x.stream.iter().map(|s| s.sent_hz).sum::<f64>() / count_f64(x.stream.len().max(1))
            }),
        ),
        row(
            "stream: every change in the store after the last send, worst segment (ms)",
            1,
            each(&|x| worst(x, &|s| s.caught_up_ms)),
        ),
        row(
            "stream: heap at its peak, worst segment (MiB)",
            1,
            each(&|x| worst(x, &|s| mib(s.memory.peak_heap))),
        ),
        row(
            "heap settled after the stream (MiB)",
            1,
            each(&|x| last(x).map_or(0.0, |m| mib(m.settled_heap))),
        ),
        row(
            "RSS after the stream (MiB)",
            0,
            each(&|x| last(x).map_or(0.0, |m| mib(m.resident.rss))),
        ),
        row(
            "relists: heap at its peak (MiB)",
            0,
            each(&|x| mib(x.relist.memory.peak_heap)),
        ),
        row(
            "heap settled after the relists (MiB)",
            1,
            each(&|x| mib(x.relist.memory.settled_heap)),
        ),
        row(
            "RSS after the relists (MiB)",
            0,
            each(&|x| mib(x.relist.memory.resident.rss)),
        ),
        row(
            "heap left once the source was dropped (MiB)",
            2,
            each(&|x| signed_mib(x.after_teardown_heap)),
        ),
    ]
}

/// The terminal table.
pub fn table(r: &Report) -> String {
    let mut out = format!(
        "kubescale: {}; queue {} messages, pages of {}, relist every {:.0} s; {} x {} changes at {:.0}/s\n",
        scale_line(r),
        r.queue_capacity,
        r.page_size,
        r.relist_every_s,
        r.segments,
        r.changes_per_segment,
        r.rate_hz
    );
    let _ = writeln!(out, "{:<74} {:>26}", "figure", "median [range over rounds]");
    for row in rows(r) {
        let _ = writeln!(out, "{:<74} {:>26}", row.name, row.cell());
    }
    out
}

/// What the figures say, in words (from the medians).
fn reading(r: &Report, rows: &[Row]) -> String {
    let value = |name: &str| {
        rows.iter()
            .find(|row| row.name == name)
            .map_or(f64::NAN, Row::median)
    };
    let settled = value("heap settled after the first sync (MiB)");
    let peak = value("heap at its peak during the first sync (MiB)");
    format!(
        "Reading the medians: settled, the heap is {settled:.0} MiB for {} objects ({:.0} bytes each; the \
         store's encoded objects are {:.0} MiB of it), and the stream leaves it where it was ({:.0} MiB \
         after). Lists are streamed: each listed object goes to the store as its page arrives and the source \
         tracks only keys (up to {:.0} at once), so the first sync peaks at {peak:.0} MiB ({:.1}× the \
         settled heap) and each periodic relist at {:.0} MiB; RSS after the stream is {:.0} MiB.\n\n",
        r.objects,
        value("heap per object, settled (bytes)"),
        value("the store's encoded objects (MiB)"),
        value("heap settled after the stream (MiB)"),
        value("keys of unfinished lists tracked at once, at most"),
        peak / settled,
        value("relists: heap at its peak (MiB)"),
        value("RSS after the stream (MiB)"),
    )
}

/// The Markdown section.
pub fn markdown(r: &Report) -> String {
    let mut out = format!("{BEGIN}\n## Kube source at scale\n\n");
    let _ = write!(
        out,
        "Generated by `kubescale{} --markdown bench/RESULTS.md` ({} build) on {} ({} cores, {}, Linux {}) \
         in {:.0} s{}. Load average (1, 5, 15 min) before the run: {}; after: {}.\n\n",
        if r.quick {
            " --quick".to_owned()
        } else {
            format!(" --rounds {}", r.rounds.len())
        },
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        r.started_at,
        r.cpus,
        r.cpu_model,
        r.kernel,
        r.duration_s,
        if r.quick {
            ", a quick run (a smoke test, not figures to quote)"
        } else {
            ""
        },
        r.load_before,
        r.load_after,
    );
    let _ = write!(
        out,
        "The agent's Kubernetes source (`KubeSource` in policy mode: every Pod of the cluster) against \
         the stand-in API server (`strait_tests::stand_in_api`, paged lists, in a child process so the \
         figures are the agent side's alone): {}. The source feeds a real `ObjectStore` on a thread of \
         its own as the agent's sync loop does (no data path). Heap: bytes live by a counting \
         allocator, above what was live before the source started; RSS: `VmRSS`/`VmHWM` of the process. \
         Settled: read 0.5 s after the queue and the lists were empty. The stream: {} segments of {} \
         changes at {:.0}/s (six in ten a Pod's labels, one a Pod deleted and created again, two an \
         EndpointSlice, one a Service). Then every kind's periodic relist (every {:.0} s ±10 %). Queue \
         capacity {} messages, pages of {}. Each cell: the median of {} round(s) [lowest–highest].\n\n",
        scale_line(r),
        r.segments,
        r.changes_per_segment,
        r.rate_hz,
        r.relist_every_s,
        r.queue_capacity,
        r.page_size,
        r.rounds.len()
    );
    let rows = rows(r);
    out.push_str("| figure | median [range] |\n|---|---:|\n");
    for row in &rows {
        let _ = writeln!(out, "| {} | {} |", row.name, row.cell());
    }
    out.push('\n');
    out.push_str(&reading(r, &rows));
    let _ = write!(
        out,
        "Checked in every round (the run fails otherwise): every object reached the store at the revision \
         the server holds; the queue never held more than its capacity; the relists found nothing the \
         watches had missed (0 store events); settled heap per object at most {MAX_BYTES_PER_OBJECT:.0} \
         bytes; the heap settled after each stream segment and after the relists at most {MAX_GROWTH}× \
         the heap settled after the first sync. Timings are not checked.\n\n<!-- kubescale:end -->"
    );
    out
}

/// Writes the section into `path`, replacing an earlier one.
pub fn write_markdown(r: &Report, path: &Path) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(path).ok();
    let document = MARKERS.splice(old.as_deref(), &markdown(r));
    std::fs::write(path, document).with_context(|| format!("writing {}", path.display()))
}
