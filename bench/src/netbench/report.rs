//! Turns a netbench [`RunReport`] into what people read: fixed-width tables for the terminal, the same
//! tables in Markdown for `bench/RESULTS.md`, the headline ratios of strait against each baseline, and
//! the report itself as pretty JSON. Nothing here measures; it only reads the results.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    fs::File,
    io::{self, BufWriter, Write as _},
    path::Path,
};

use super::{
    results::{Cell, Dataplane, Metric, Programming, Rate, RatioRecord, RunReport, Scenario},
    run::FULL_ROUNDS,
    stats::{RatioEstimate, order_statistic},
};
use table::Table;

/// Shown where a value is missing (test not run, cell absent, ratio undefined).
pub const MISSING: &str = "–";

/// The dataplanes strait is compared with, in table order.
pub const BASELINES: [Dataplane; 3] = [
    Dataplane::KubeProxyIptables,
    Dataplane::KubeProxyNftables,
    Dataplane::Direct,
];

/// The caption of the ratio table, saying which way is better and what the marks mean.
pub fn ratio_caption(report: &RunReport) -> &'static str {
    if report.cells.iter().any(|c| c.rounds.len() > 1) {
        "strait ÷ baseline: above 1 means strait has more. \
         ↑ rates: higher is better; ↓ p99 latency: lower is better.\n\
         Each ratio is the median of the per-round ratios (round r of strait ÷ round r of the \
         baseline,\nmeasured back to back); ≈ marks a ratio whose interval over the rounds \
         includes 1: within noise."
    } else {
        "strait ÷ baseline: above 1 means strait has more. \
         ↑ rates: higher is better; ↓ p99 latency: lower is better.\n\
         This run kept no rounds: each ratio divides the reported (median-round) figures, without \
         an interval."
    }
}

/// One row of the ratio table: strait against one baseline in one scenario at one service count, one
/// estimate per [`Metric::ALL`] (`None` where either side was not measured).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatioRow {
    pub scenario: Scenario,
    pub services: usize,
    pub baseline: Dataplane,
    pub ratios: [Option<RatioEstimate>; 7],
}

impl RatioRow {
    /// The estimate for `metric`.
    pub fn get(&self, metric: Metric) -> Option<RatioEstimate> {
        Metric::ALL
            .iter()
            .position(|m| *m == metric)
            .and_then(|i| self.ratios[i])
    }
}

/// strait ÷ `baseline` for `metric`: over paired rounds when both cells were measured side by side
/// (same service count, same number of rounds), else from the reported figures alone (no interval).
pub fn estimate(strait: &Cell, baseline: &Cell, metric: Metric) -> Option<RatioEstimate> {
    let paired = (strait.services == baseline.services)
        .then(|| {
            RatioEstimate::paired(&strait.round_values(metric), &baseline.round_values(metric))
        })
        .flatten();
    paired.or_else(|| {
        RatioEstimate::single(
            metric.value(&strait.measurement),
            metric.value(&baseline.measurement),
        )
    })
}

/// The headline ratios for every scenario that has cells × every service count × every baseline
/// ([`BASELINES`]); all `None` where strait's or the baseline's cell is missing.
pub fn ratios(report: &RunReport) -> Vec<RatioRow> {
    let mut rows = Vec::new();
    for scenario in Scenario::ALL {
        if !report.cells.iter().any(|c| c.scenario == scenario) {
            continue;
        }
        for services in service_counts(report, scenario) {
            let strait = report.cell(Dataplane::Strait, scenario, services);
            for baseline in BASELINES {
                let mut ratios = [None; 7];
                if let (Some(s), Some(b)) = (strait, report.cell(baseline, scenario, services)) {
                    for (slot, metric) in ratios.iter_mut().zip(Metric::ALL) {
                        *slot = estimate(s, b, metric);
                    }
                }
                rows.push(RatioRow {
                    scenario,
                    services,
                    baseline,
                    ratios,
                });
            }
        }
    }
    rows
}

/// Every known ratio as the JSON carries it, with its within-noise verdict.
pub fn ratio_records(report: &RunReport) -> Vec<RatioRecord> {
    ratios(report)
        .into_iter()
        .flat_map(|row| {
            Metric::ALL
                .into_iter()
                .zip(row.ratios)
                .filter_map(move |(metric, estimate)| {
                    estimate.map(|estimate| RatioRecord {
                        scenario: row.scenario,
                        services: row.services,
                        baseline: row.baseline,
                        metric,
                        estimate,
                        within_noise: estimate.within_noise(),
                    })
                })
        })
        .collect()
}

/// A ratio for a table: `1.23`, `≈1.02` when within noise, [`MISSING`] when unknown.
pub fn ratio_text(estimate: Option<RatioEstimate>) -> String {
    match estimate {
        None => MISSING.to_owned(),
        Some(e) if e.within_noise() == Some(true) => format!("≈{:.2}", e.ratio),
        Some(e) => format!("{:.2}", e.ratio),
    }
}

/// A ratio's interval for a table: `0.95–1.10`, [`MISSING`] without one.
pub fn interval_text(estimate: Option<RatioEstimate>) -> String {
    estimate.and_then(|e| e.interval).map_or_else(
        || MISSING.to_owned(),
        |i| format!("{:.2}–{:.2}", i.low, i.high),
    )
}

/// The service counts of a scenario's sweep, ascending: those configured plus those of its
/// non-`direct` cells (`direct` programs no services, so its count says nothing).
pub fn service_counts(report: &RunReport, scenario: Scenario) -> Vec<usize> {
    let mut counts: BTreeSet<usize> = report.config.services.iter().copied().collect();
    counts.extend(
        report
            .cells
            .iter()
            .filter(|c| c.scenario == scenario && c.dataplane != Dataplane::Direct)
            .map(|c| c.services),
    );
    counts.into_iter().collect()
}

/// A short label for a service count: `1`, `500`, `1k`, `10k`, `1500`.
pub fn services_label(services: usize) -> String {
    if services >= 1000 && services.is_multiple_of(1000) {
        format!("{}k", services / 1000)
    } else {
        services.to_string()
    }
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| MISSING.to_owned(), |v| format!("{v:.decimals$}"))
}

fn latency_pair(rate: Option<Rate>) -> String {
    rate.map_or_else(
        || MISSING.to_owned(),
        |r| format!("{:.1}/{:.1}", r.latency.p50_us, r.latency.p99_us),
    )
}

fn mib(kib: Option<u64>) -> String {
    #[allow(clippy::cast_precision_loss)]
    opt(kib.map(|k| k as f64 / 1024.0), 1)
}

/// The cells of one scenario in table order: by dataplane ([`Dataplane::ALL`] order), then services.
fn scenario_cells(report: &RunReport, scenario: Scenario) -> Vec<&Cell> {
    let mut cells: Vec<&Cell> = report
        .cells
        .iter()
        .filter(|c| c.scenario == scenario)
        .collect();
    cells.sort_by_key(|c| (c.dataplane, c.services));
    cells
}

fn load_table(report: &RunReport, scenario: Scenario) -> Option<Table> {
    let cells = scenario_cells(report, scenario);
    if cells.is_empty() {
        return None;
    }
    let mut table = Table::new(
        &[
            "dataplane",
            "services",
            "stream Gbit/s",
            "rr tps",
            "rr p50/p99 µs",
            "crr conn/s",
            "crr p50/p99 µs",
            "udp tps",
            "udp p50/p99 µs",
            "errors",
        ],
        &[false, true, true, true, true, true, true, true, true, true],
    );
    for cell in cells {
        let m = &cell.measurement;
        let rates = [m.tcp_rr, m.tcp_crr, m.udp_rr];
        let errors = if rates.iter().any(Option::is_some) {
            rates
                .iter()
                .flatten()
                .map(|r| r.errors)
                .sum::<u64>()
                .to_string()
        } else {
            MISSING.to_owned()
        };
        table.push(vec![
            cell.dataplane.name().to_owned(),
            cell.services.to_string(),
            opt(m.tcp_stream.map(|s| s.gbit_per_s), 2),
            opt(m.tcp_rr.map(|r| r.per_second), 0),
            latency_pair(m.tcp_rr),
            opt(m.tcp_crr.map(|r| r.per_second), 0),
            latency_pair(m.tcp_crr),
            opt(m.udp_rr.map(|r| r.per_second), 0),
            latency_pair(m.udp_rr),
            errors,
        ]);
    }
    Some(table)
}

/// The ratio table (`intervals` false) or the table of their intervals (`intervals` true).
fn ratio_table(report: &RunReport, intervals: bool) -> Option<Table> {
    let rows = ratios(report);
    if rows.is_empty()
        || (intervals
            && !rows
                .iter()
                .flat_map(|r| r.ratios)
                .flatten()
                .any(|e| e.interval.is_some()))
    {
        return None;
    }
    let mut headers = vec!["scenario", "services", "baseline"];
    headers.extend(Metric::ALL.map(Metric::header));
    let mut right = vec![false, true, false];
    right.extend([true; 7]);
    let mut table = Table::new(&headers, &right);
    for row in rows {
        let mut cells = vec![
            row.scenario.name().to_owned(),
            row.services.to_string(),
            row.baseline.name().to_owned(),
        ];
        if intervals {
            cells.extend(row.ratios.map(interval_text));
        } else {
            cells.extend(row.ratios.map(ratio_text));
        }
        table.push(cells);
    }
    Some(table)
}

/// What the interval table's heading says about its coverage.
fn interval_caption(report: &RunReport) -> String {
    let rounds = report.config.rounds;
    let Some((k, coverage)) = order_statistic(rounds) else {
        return "No interval with fewer than 2 rounds.".to_owned();
    };
    let which = if k == 1 {
        "the lowest to the highest per-round ratio".to_owned()
    } else {
        format!("the {k}th lowest to the {k}th highest per-round ratio")
    };
    format!(
        "Interval of each ratio: {which} (a distribution-free interval for the median).\n\
         With {rounds} rounds it holds the true median ratio with probability {:.1} %{}.",
        coverage * 100.0,
        if coverage < 0.95 {
            " (less sure than 95 %: fewer rounds than a full run)"
        } else {
            ""
        }
    )
}

/// The spread of each cell's headline figures over its rounds, as `-min/+max %` of the reported value.
fn spread_table(report: &RunReport, scenario: Scenario) -> Option<Table> {
    let cells: Vec<&Cell> = scenario_cells(report, scenario)
        .into_iter()
        .filter(|c| c.rounds.len() > 1)
        .collect();
    if cells.is_empty() {
        return None;
    }
    let mut headers = vec!["dataplane", "services", "rounds"];
    headers.extend(Metric::ALL.map(|m| m.header().trim_end_matches([' ', '↑', '↓'])));
    let mut right = vec![false, true, true];
    right.extend([true; 7]);
    let mut table = Table::new(&headers, &right);
    for cell in cells {
        let mut row = vec![
            cell.dataplane.name().to_owned(),
            cell.services.to_string(),
            cell.rounds.len().to_string(),
        ];
        row.extend(Metric::ALL.map(|metric| spread_text(cell, metric)));
        table.push(row);
    }
    Some(table)
}

/// `-6/+4%`: the lowest and highest round of `metric` relative to the cell's reported value.
pub fn spread_text(cell: &Cell, metric: Metric) -> String {
    cell.spread
        .get(&metric)
        .zip(metric.value(&cell.measurement))
        .and_then(|(range, center)| range.relative_percent(center))
        .map_or_else(
            || MISSING.to_owned(),
            // Whole percents, through an integer so that -0.3 % shows as +0, not -0.
            |(down, up)| format!("{:+}/{:+}%", down.round() as i64, up.round() as i64),
        )
}

/// What programming cost each (dataplane, services), sorted by dataplane then services. Programming
/// does not depend on the scenario, so each pair is taken once, from the first scenario (in
/// [`Scenario::ALL`] order) that recorded it.
pub fn programming_entries(report: &RunReport) -> Vec<(Dataplane, usize, Programming)> {
    let mut seen = BTreeSet::new();
    let mut entries = Vec::new();
    for scenario in Scenario::ALL {
        for cell in scenario_cells(report, scenario) {
            if let Some(p) = cell.programming
                && seen.insert((cell.dataplane, cell.services))
            {
                entries.push((cell.dataplane, cell.services, p));
            }
        }
    }
    entries.sort_by_key(|(dp, services, _)| (*dp, *services));
    entries
}

fn programming_table(report: &RunReport) -> Option<Table> {
    let entries = programming_entries(report);
    if entries.is_empty() {
        return None;
    }
    let mut table = Table::new(
        &[
            "dataplane",
            "services",
            "wall ms",
            "kernel KiB Δ",
            "agent RSS MiB",
            "BPF map MiB",
            "objects",
        ],
        &[false, true, true, true, true, true, true],
    );
    for (dataplane, services, p) in entries {
        table.push(vec![
            dataplane.name().to_owned(),
            services.to_string(),
            format!("{:.1}", p.wall_ms),
            format!("{:+}", p.kernel_kib),
            mib(p.agent_rss_kib),
            mib(p.bpf_map_kib),
            p.objects.to_string(),
        ]);
    }
    Some(table)
}

fn packet_cost_table(report: &RunReport) -> Option<Table> {
    if report.packet_costs.is_empty() {
        return None;
    }
    let mut table = Table::new(&["path", "ns/packet"], &[false, true]);
    for cost in &report.packet_costs {
        table.push(vec![
            cost.path.clone(),
            format!("{:.1}", cost.ns_per_packet),
        ]);
    }
    Some(table)
}

fn machine_line(report: &RunReport) -> String {
    let m = &report.machine;
    format!(
        "machine: {} ({} CPUs), {:.1} GiB, kernel {}, iptables {}, nft {}",
        m.cpu_model, m.cpus, m.memory_gib, m.kernel, m.iptables_version, m.nft_version
    )
}

fn services_list(report: &RunReport) -> String {
    report
        .config
        .services
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `5 rounds`, with a warning below a full run's count.
fn rounds_text(rounds: usize) -> String {
    match rounds {
        0 => "rounds not recorded".to_owned(),
        1 => "1 round (no spread, no interval)".to_owned(),
        n if n < FULL_ROUNDS => {
            format!("{n} rounds (fewer than a full run's {FULL_ROUNDS}: less sure intervals)")
        }
        n => format!("{n} rounds"),
    }
}

fn config_line(report: &RunReport) -> String {
    let c = &report.config;
    format!(
        "config: {} run, {}, {} s per test\n\
         services [{}], {} endpoints/service, started {}, took {:.0} s",
        if c.quick { "quick" } else { "full" },
        rounds_text(c.rounds),
        c.test_seconds,
        services_list(report),
        c.endpoints_per_service,
        c.started_at,
        c.duration_s
    )
}

/// Where the target Service stood, and what that means for each dataplane.
pub fn position_text(report: &RunReport) -> String {
    format!(
        "{} of the filler Services (iptables walks KUBE-SERVICES in that order; nftables and strait \
         look it up by hash)",
        report.config.target_position.name()
    )
}

/// The CPU condition of each test, `tcp-rr spinners, tcp-crr idle CPUs, …`.
pub fn conditions_text(report: &RunReport) -> String {
    if report.config.conditions.is_empty() {
        return "not recorded".to_owned();
    }
    report
        .config
        .conditions
        .iter()
        .map(|(test, condition)| format!("{} {}", test.name(), condition.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the calibration that chose the round trips' condition measured, when the run had one.
pub fn calibration_text(report: &RunReport) -> Option<String> {
    report.config.calibration.map(|c| {
        format!(
            "on {}, tcp-rr p50 {:.1} µs with idle CPUs and {:.1} µs with spinners: round trips with {}",
            c.dataplane.name(),
            c.idle_p50_us,
            c.spinners_p50_us,
            c.round_trip_condition().name()
        )
    })
}

/// The whole report as fixed-width text for a terminal: the machine and configuration, per scenario
/// the load tests and their spread over the rounds, the ratios and their intervals, the programming
/// table and (when present) the per-packet costs.
pub fn terminal_table(report: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", machine_line(report));
    let _ = writeln!(out, "{}", config_line(report));
    let _ = writeln!(out, "target Service: {}", position_text(report));
    let _ = writeln!(out, "CPUs per test: {}", conditions_text(report));
    if let Some(calibration) = calibration_text(report) {
        let _ = writeln!(out, "calibration: {calibration}");
    }
    for scenario in Scenario::ALL {
        if let Some(table) = load_table(report, scenario) {
            let _ = write!(
                out,
                "\n== {}: load tests (median round) ==\n",
                scenario.name()
            );
            table.terminal(&mut out);
        }
        if let Some(table) = spread_table(report, scenario) {
            let _ = write!(
                out,
                "\n== {}: spread over the rounds (lowest/highest round vs the median) ==\n",
                scenario.name()
            );
            table.terminal(&mut out);
        }
    }
    if let Some(table) = ratio_table(report, false) {
        let _ = write!(out, "\n== ratios ==\n{}\n", ratio_caption(report));
        table.terminal(&mut out);
    }
    if let Some(table) = ratio_table(report, true) {
        let _ = write!(
            out,
            "\n== ratio intervals ==\n{}\n",
            interval_caption(report)
        );
        table.terminal(&mut out);
    }
    if let Some(table) = programming_table(report) {
        out.push_str("\n== programming the services ==\n");
        table.terminal(&mut out);
    }
    if let Some(table) = packet_cost_table(report) {
        out.push_str("\n== per-packet cost (BPF_PROG_TEST_RUN) ==\n");
        table.terminal(&mut out);
    }
    out
}

/// The report as Markdown for `bench/RESULTS.md`: `## Results`, then `###` sections for the machine,
/// the configuration, each table and the charts (`(title, relative PNG path)`, embedded as images).
/// The caller adds the narrative around it.
pub fn markdown(report: &RunReport, charts: &[(String, String)]) -> String {
    let m = &report.machine;
    let c = &report.config;
    let mut out = String::from("## Results\n\n### Machine\n\n");
    let _ = write!(
        out,
        "- CPU: {} ({} CPUs)\n- Memory: {:.1} GiB\n- Kernel: {}\n- iptables: {}\n- nft: {}\n",
        m.cpu_model, m.cpus, m.memory_gib, m.kernel, m.iptables_version, m.nft_version
    );
    out.push_str("\n### Configuration\n\n");
    let _ = write!(
        out,
        "- Run: {}\n- Rounds: {}\n- Seconds per load test: {}\n- Service counts: {}\n\
         - Endpoints per service: {}\n- Target Service: {}\n- CPUs per test: {}{}\n\
         - Started: {}\n- Duration: {:.0} s\n",
        if c.quick { "quick" } else { "full" },
        if c.rounds == 0 {
            "not recorded".to_owned()
        } else {
            rounds_text(c.rounds)
        },
        c.test_seconds,
        services_list(report),
        c.endpoints_per_service,
        position_text(report),
        conditions_text(report),
        calibration_text(report)
            .map(|text| format!(" (calibration {text})"))
            .unwrap_or_default(),
        c.started_at,
        c.duration_s
    );
    for scenario in Scenario::ALL {
        if let Some(table) = load_table(report, scenario) {
            let _ = write!(
                out,
                "\n### Load tests: {} (median round)\n\n",
                scenario.name()
            );
            table.markdown(&mut out);
        }
        if let Some(table) = spread_table(report, scenario) {
            let _ = write!(
                out,
                "\n#### Spread over the rounds: {}\n\nLowest and highest round against the median.\n\n",
                scenario.name()
            );
            table.markdown(&mut out);
        }
    }
    if let Some(table) = ratio_table(report, false) {
        let _ = write!(out, "\n### Ratios\n\n{}\n\n", ratio_caption(report));
        table.markdown(&mut out);
    }
    if let Some(table) = ratio_table(report, true) {
        let _ = write!(
            out,
            "\n### Ratio intervals\n\n{}\n\n",
            interval_caption(report)
        );
        table.markdown(&mut out);
    }
    if let Some(table) = programming_table(report) {
        out.push_str("\n### Programming the services\n\n");
        table.markdown(&mut out);
    }
    if let Some(table) = packet_cost_table(report) {
        out.push_str("\n### Per-packet cost\n\n");
        table.markdown(&mut out);
    }
    if !charts.is_empty() {
        out.push_str("\n### Charts\n\n");
        for (title, path) in charts {
            let _ = write!(out, "![{title}]({path})\n\n");
        }
    }
    out
}

/// Writes the report to `path` as pretty JSON (with a trailing newline).
pub fn write_json(report: &RunReport, path: &Path) -> io::Result<()> {
    let mut writer = BufWriter::new(File::create(path)?);
    serde_json::to_writer_pretty(&mut writer, report).map_err(io::Error::other)?;
    writer.write_all(b"\n")?;
    writer.flush()
}

mod table;
#[cfg(test)]
pub(crate) mod tests;
