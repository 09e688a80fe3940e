//! A DNS run as text: the section `bench/RESULTS.md` carries between [`BEGIN`] and [`END`] (the
//! figures per target, the goals, how it was measured), printed to the terminal too.

use std::fmt::Write as _;

use super::{
    client::{DNSPERF_CLIENTS, DNSPERF_OUTSTANDING},
    summary::{DnsReport, Figure, GOALS, Target},
};
use crate::netbench::{
    crossnode::{render::verdict_mark, summary::Spread},
    sections::Markers,
};

/// Opens the DNS section of a results file.
pub const BEGIN: &str = "<!-- dns:begin (written by `netbench dns --markdown`) -->";
/// Closes it.
pub const END: &str = "<!-- dns:end -->";
/// The section's markers.
pub const MARKERS: Markers = Markers {
    begin_prefix: "<!-- dns:begin",
    end: END,
};

fn spread_text(s: Option<Spread>, decimals: usize) -> String {
    s.map_or_else(
        || "–".to_owned(),
        |s| {
            format!(
                "{:.d$} [{:.d$}–{:.d$}]",
                s.median,
                s.min,
                s.max,
                d = decimals
            )
        },
    )
}

/// The figures: one row per target.
fn figures_table(out: &mut String, report: &DnsReport) {
    let _ = writeln!(
        out,
        "| answered by | threads | queries/s (dnsperf) | queries/s (batching client) | p50 µs | p99 µs | server CPU µs/query | lost (dnsperf, latency) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for target in Target::ALL {
        let Some(cell) = report.cell(target) else {
            continue;
        };
        let lost: (u64, u64) = cell.rounds.iter().fold((0, 0), |(a, b), r| {
            (a + r.throughput.lost, b + r.latency.lost)
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {}, {} |",
            target.name(),
            cell.threads
                .map_or_else(|| "kernel".to_owned(), |t| t.to_string()),
            spread_text(cell.spread(Figure::QueriesPerSecond), 0),
            spread_text(cell.spread(Figure::BatchQueriesPerSecond), 0),
            spread_text(cell.spread(Figure::P50), 1),
            spread_text(cell.spread(Figure::P99), 1),
            cpu_text(report, cell),
            lost.0,
            lost.1
        );
    }
}

/// A server's CPU per query (median and range over the rounds); for the fast path, its test-run
/// cost per answer.
fn cpu_text(report: &DnsReport, cell: &super::summary::DnsCell) -> String {
    if cell.target == Target::StraitFast {
        return report
            .kernel_cost
            .iter()
            .find(|c| c.path.contains("dns-fast"))
            .map_or_else(
                || "–".to_owned(),
                |c| format!("{:.2} (test-run)", c.ns_per_packet / 1000.0),
            );
    }
    let values: Vec<f64> = cell
        .rounds
        .iter()
        .filter_map(|r| r.cpu_us_per_query)
        .collect();
    spread_text(crate::netbench::crossnode::summary::spread(&values), 2)
}

/// The goals: one row each, the ratio of the medians, the rounds' range and the verdict.
fn goals_table(out: &mut String, report: &DnsReport) {
    let _ = writeln!(
        out,
        "| goal | ratio (medians) | per round | at least | verdict |\n|---|---:|---:|---:|---|"
    );
    for goal in &GOALS {
        match report.ratio(goal) {
            Some(ratio) => {
                let verdict = ratio.verdict(goal.at_least);
                let _ = writeln!(
                    out,
                    "| {} | {:.2} | {:.2}–{:.2} | {:.1} | {} {} |",
                    goal.text,
                    ratio.of_medians,
                    ratio.per_round.min,
                    ratio.per_round.max,
                    goal.at_least,
                    verdict_mark(verdict),
                    verdict.text()
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "| {} | not measured | | {:.1} | |",
                    goal.text, goal.at_least
                );
            }
        }
    }
}

/// What the kernel answered in the fast path's rounds, as a share of what dnsperf completed.
fn kernel_share(report: &DnsReport) -> Option<String> {
    let cell = report.cell(Target::StraitFast)?;
    let answered: u64 = cell.rounds.iter().filter_map(|r| r.kernel_answered).sum();
    let asked: u64 = cell
        .rounds
        .iter()
        .map(|r| r.throughput.completed + r.latency.answered + r.batch.map_or(0, |b| b.answered))
        .sum();
    (asked > 0).then(|| {
        format!(
            "The kernel answered {answered} of the {asked} questions the fast path's rounds got \
             answered ({}.{}%, its `dns_answered` counter).",
            answered * 100 / asked,
            answered * 1000 / asked % 10
        )
    })
}

/// The fast path's test-run cost per answer beside its baseline.
fn kernel_cost_text(report: &DnsReport) -> Option<String> {
    let answer = report
        .kernel_cost
        .iter()
        .find(|c| c.path.contains("dns-fast"))?;
    let baseline = report
        .kernel_cost
        .iter()
        .find(|c| c.path.contains("(baseline)"));
    Some(format!(
        "`dns_fast` builds one answer in {:.0} ns (`pktcost`, BPF_PROG_TEST_RUN{}).",
        answer.ns_per_packet,
        baseline.map_or_else(String::new, |b| format!(
            "; {:.1}× its baseline, a packet dropped at once, {:.0} ns",
            answer.ns_per_packet / b.ns_per_packet,
            b.ns_per_packet
        ))
    ))
}

/// Notes under the tables: what the kernel answered, its cost, what was not measured.
fn notes(out: &mut String, report: &DnsReport) {
    for line in kernel_share(report)
        .into_iter()
        .chain(kernel_cost_text(report))
        .chain(report.notes.iter().cloned())
    {
        let _ = writeln!(out, "\n{line}");
    }
}

/// The section, markers included.
pub fn section(report: &DnsReport) -> String {
    let mut out = format!("{BEGIN}\n## Cluster DNS\n\n");
    out.push_str(&crate::run_header!(report));
    let _ = writeln!(
        out,
        "A pod asks A questions for {} ClusterIP Services' names in turn, {} round(s), the targets one after \
         another in each round (the order turned by one each round). Queries/s: `dnsperf` for {} s from the pod, \
         {} thread(s), {DNSPERF_CLIENTS} clients with {DNSPERF_OUTSTANDING} queries outstanding (saturation); and, as a second client that spends less \
         CPU per query, netbench's batching client for {} s (one thread per CPU, {} queries outstanding on each, \
         `sendmmsg`/`recvmmsg` in batches of up to 32). p50/p99: \
         netbench's own client for {} s, one query in flight at a time, every answer timed. The strait fast path \
         and the strait server are two one-node labs (`--no-dns-fast-path` in the second), asked at the kube-dns \
         Service 10.96.0.10:53; knot and unbound run in the second lab's node namespace, each with its own default \
         number of threads (knot: one UDP worker per CPU; unbound: one; strait's server: one per two CPUs), serving \
         the same records (a zone file; `local-data`), asked at the node's address. Every target's answer was checked with `dig` from the pod first. Server CPU: the server \
         process's user and system time (every thread) during the dnsperf run over the queries it completed \
         (strait's server: the whole agent); the fast path answers in the asking pod's own system call, so its \
         figure is `pktcost`'s test-run time of `dns_fast` answering one query. Each cell: the median round \
         [lowest–highest].\n",
        report.names,
        report.rounds,
        report.test_seconds,
        report.dnsperf_threads.max(1),
        report.test_seconds,
        super::batch_client::WINDOW,
        report.test_seconds
    );
    figures_table(&mut out, report);
    out.push('\n');
    goals_table(&mut out, report);
    notes(&mut out, report);
    let _ = write!(out, "\n{END}");
    out
}

/// What the terminal shows: the two tables.
pub fn terminal(report: &DnsReport) -> String {
    let mut out = String::from("Cluster DNS from a pod\n\n");
    figures_table(&mut out, report);
    out.push('\n');
    goals_table(&mut out, report);
    notes(&mut out, report);
    out
}
