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

use super::results::{Cell, Dataplane, Measurement, Programming, Rate, RunReport, Scenario};

/// Shown where a value is missing (test not run, cell absent, ratio undefined).
pub const MISSING: &str = "–";

/// The dataplanes strait is compared with, in table order.
pub const BASELINES: [Dataplane; 3] = [
    Dataplane::KubeProxyIptables,
    Dataplane::KubeProxyNftables,
    Dataplane::Direct,
];

/// strait's figure divided by a baseline's, per headline metric. A ratio above 1 means strait has
/// more of the quantity: better for the rates (stream, rr, crr, udp), worse for the p99 latencies.
/// `None` where either side was not measured or the baseline's figure is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ratios {
    pub stream_gbit_per_s: Option<f64>,
    pub rr_per_second: Option<f64>,
    pub rr_p99: Option<f64>,
    pub crr_per_second: Option<f64>,
    pub crr_p99: Option<f64>,
    pub udp_per_second: Option<f64>,
    pub udp_p99: Option<f64>,
}

impl Ratios {
    /// The ratios of `strait`'s measurement to `baseline`'s.
    pub fn between(strait: &Measurement, baseline: &Measurement) -> Self {
        let stream = |m: &Measurement| m.tcp_stream.map(|s| s.gbit_per_s);
        let rate =
            |m: &Measurement, pick: fn(&Measurement) -> Option<Rate>| pick(m).map(|r| r.per_second);
        let p99 = |m: &Measurement, pick: fn(&Measurement) -> Option<Rate>| {
            pick(m).map(|r| r.latency.p99_us)
        };
        let rr = |m: &Measurement| m.tcp_rr;
        let crr = |m: &Measurement| m.tcp_crr;
        let udp = |m: &Measurement| m.udp_rr;
        Self {
            stream_gbit_per_s: ratio(stream(strait), stream(baseline)),
            rr_per_second: ratio(rate(strait, rr), rate(baseline, rr)),
            rr_p99: ratio(p99(strait, rr), p99(baseline, rr)),
            crr_per_second: ratio(rate(strait, crr), rate(baseline, crr)),
            crr_p99: ratio(p99(strait, crr), p99(baseline, crr)),
            udp_per_second: ratio(rate(strait, udp), rate(baseline, udp)),
            udp_p99: ratio(p99(strait, udp), p99(baseline, udp)),
        }
    }

    /// The ratios in table column order (see [`RATIO_HEADERS`]).
    pub fn columns(&self) -> [Option<f64>; 7] {
        [
            self.stream_gbit_per_s,
            self.rr_per_second,
            self.rr_p99,
            self.crr_per_second,
            self.crr_p99,
            self.udp_per_second,
            self.udp_p99,
        ]
    }
}

/// Column headers of the ratio columns: ↑ higher is better (rates), ↓ lower is better (latency).
pub const RATIO_HEADERS: [&str; 7] = [
    "stream ↑",
    "rr tps ↑",
    "rr p99 ↓",
    "crr/s ↑",
    "crr p99 ↓",
    "udp tps ↑",
    "udp p99 ↓",
];

/// The caption of the ratio table, saying which way is better.
pub const RATIO_CAPTION: &str = "strait ÷ baseline: above 1 means strait has more. \
    ↑ rates: higher is better; ↓ p99 latency: lower is better.";

/// One row of the ratio table: strait against one baseline in one scenario at one service count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatioRow {
    pub scenario: Scenario,
    pub services: usize,
    pub baseline: Dataplane,
    pub ratios: Ratios,
}

/// `a / b`, or `None` if either is missing or `b` is not a positive, finite number.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && b.is_finite() && a.is_finite() => Some(a / b),
        _ => None,
    }
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
                let ratios = match (strait, report.cell(baseline, scenario, services)) {
                    (Some(s), Some(b)) => Ratios::between(&s.measurement, &b.measurement),
                    _ => Ratios::default(),
                };
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

/// A table both renderers share, so the terminal and Markdown show the same content.
struct Table {
    headers: Vec<String>,
    /// Per column: right-aligned (numbers) or left-aligned (names).
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[&str], right: &[bool]) -> Self {
        debug_assert_eq!(headers.len(), right.len());
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            right: right.to_vec(),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.headers.len());
        self.rows.push(row);
    }

    fn widths(&self) -> Vec<usize> {
        (0..self.headers.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([self.headers[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    fn line(cells: &[String], widths: &[usize], right: &[bool]) -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .zip(right)
            .map(|((cell, &w), &r)| {
                if r {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_owned()
    }

    fn terminal(&self, out: &mut String) {
        let widths = self.widths();
        out.push_str(&Self::line(&self.headers, &widths, &self.right));
        out.push('\n');
        let total = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&Self::line(row, &widths, &self.right));
            out.push('\n');
        }
    }

    fn markdown(&self, out: &mut String) {
        let escape = |s: &String| s.replace('|', "\\|");
        out.push_str("| ");
        out.push_str(
            &self
                .headers
                .iter()
                .map(escape)
                .collect::<Vec<_>>()
                .join(" | "),
        );
        out.push_str(" |\n|");
        for &r in &self.right {
            out.push_str(if r { " ---: |" } else { " :--- |" });
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str("| ");
            out.push_str(&row.iter().map(escape).collect::<Vec<_>>().join(" | "));
            out.push_str(" |\n");
        }
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

fn ratio_table(report: &RunReport) -> Option<Table> {
    let rows = ratios(report);
    if rows.is_empty() {
        return None;
    }
    let mut headers = vec!["scenario", "services", "baseline"];
    headers.extend(RATIO_HEADERS);
    let mut right = vec![false, true, false];
    right.extend([true; 7]);
    let mut table = Table::new(&headers, &right);
    for row in rows {
        let mut cells = vec![
            row.scenario.name().to_owned(),
            row.services.to_string(),
            row.baseline.name().to_owned(),
        ];
        cells.extend(row.ratios.columns().into_iter().map(|r| opt(r, 2)));
        table.push(cells);
    }
    Some(table)
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

fn config_line(report: &RunReport) -> String {
    let c = &report.config;
    format!(
        "config: {} run, {} s per test, services [{}], {} endpoints/service, started {}, took {:.0} s",
        if c.quick { "quick" } else { "full" },
        c.test_seconds,
        services_list(report),
        c.endpoints_per_service,
        c.started_at,
        c.duration_s
    )
}

/// The whole report as fixed-width text for a terminal: the machine and configuration, one load-test
/// table per scenario, the ratio table, the programming table and (when present) the per-packet
/// costs.
pub fn terminal_table(report: &RunReport) -> String {
    let mut out = String::new();
    out.push_str(&machine_line(report));
    out.push('\n');
    out.push_str(&config_line(report));
    out.push('\n');
    for scenario in Scenario::ALL {
        if let Some(table) = load_table(report, scenario) {
            let _ = write!(out, "\n== {}: load tests ==\n", scenario.name());
            table.terminal(&mut out);
        }
    }
    if let Some(table) = ratio_table(report) {
        let _ = write!(out, "\n== ratios ==\n{RATIO_CAPTION}\n");
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
        "- Run: {}\n- Seconds per load test: {}\n- Service counts: {}\n- Endpoints per service: {}\n\
         - Started: {}\n- Duration: {:.0} s\n",
        if c.quick { "quick" } else { "full" },
        c.test_seconds,
        services_list(report),
        c.endpoints_per_service,
        c.started_at,
        c.duration_s
    );
    for scenario in Scenario::ALL {
        if let Some(table) = load_table(report, scenario) {
            let _ = write!(out, "\n### Load tests: {}\n\n", scenario.name());
            table.markdown(&mut out);
        }
    }
    if let Some(table) = ratio_table(report) {
        let _ = write!(out, "\n### Ratios\n\n{RATIO_CAPTION}\n\n");
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::netbench::results::{Latency, Machine, PacketCost, RunConfig, Stream};

    fn rate(per_second: f64, p50_us: f64, p99_us: f64) -> Rate {
        Rate {
            completed: 1000,
            errors: 0,
            seconds: 1.0,
            per_second,
            latency: Latency {
                p50_us,
                p99_us,
                mean_us: p50_us,
            },
        }
    }

    fn measurement(scale: f64) -> Measurement {
        Measurement {
            tcp_stream: Some(Stream {
                bytes: 1,
                seconds: 1.0,
                gbit_per_s: 10.0 * scale,
            }),
            tcp_rr: Some(rate(20_000.0 * scale, 40.0 / scale, 80.0 / scale)),
            tcp_crr: Some(rate(1000.0 * scale, 100.0 / scale, 200.0 / scale)),
            udp_rr: Some(rate(25_000.0 * scale, 30.0 / scale, 60.0 / scale)),
        }
    }

    fn cell(
        dataplane: Dataplane,
        scenario: Scenario,
        services: usize,
        measurement: Measurement,
        wall_ms: f64,
    ) -> Cell {
        Cell {
            dataplane,
            scenario,
            services,
            measurement,
            programming: (dataplane != Dataplane::Direct).then_some(Programming {
                wall_ms,
                kernel_kib: -12,
                agent_rss_kib: (dataplane == Dataplane::Strait).then_some(30 * 1024),
                bpf_map_kib: (dataplane == Dataplane::Strait).then_some(64 * 1024),
                #[allow(clippy::cast_sign_loss)]
                objects: services as u64 * 3,
            }),
        }
    }

    /// Two scenarios at 1 and 1000 services: strait twice as good as iptables everywhere, nftables
    /// measured only in pod-to-clusterip at 1 service, direct in both scenarios.
    pub(crate) fn sample_report() -> RunReport {
        use Dataplane::{Direct, KubeProxyIptables, KubeProxyNftables, Strait};
        use Scenario::{ExternalToNodePort, PodToClusterIp};
        let mut cells = Vec::new();
        for scenario in [PodToClusterIp, ExternalToNodePort] {
            for services in [1, 1000] {
                #[allow(clippy::cast_precision_loss)]
                let wall = services as f64;
                cells.push(cell(Strait, scenario, services, measurement(2.0), wall));
                cells.push(cell(
                    KubeProxyIptables,
                    scenario,
                    services,
                    measurement(1.0),
                    3.0 * wall,
                ));
            }
            cells.push(cell(Direct, scenario, 0, measurement(4.0), 0.0));
        }
        cells.push(cell(
            KubeProxyNftables,
            PodToClusterIp,
            1,
            measurement(1.6),
            2.0,
        ));
        RunReport {
            machine: Machine {
                cpu_model: "Test CPU 9000".to_owned(),
                cpus: 8,
                memory_gib: 31.3,
                kernel: "6.12.0-test".to_owned(),
                iptables_version: "1.8.11".to_owned(),
                nft_version: "1.1.1".to_owned(),
            },
            config: RunConfig {
                quick: true,
                test_seconds: 5.0,
                services: vec![1, 1000],
                endpoints_per_service: 1,
                started_at: "2025-01-01T00:00:00Z".to_owned(),
                duration_s: 321.0,
            },
            cells,
            packet_costs: vec![PacketCost {
                path: "tc ingress clusterip".to_owned(),
                ns_per_packet: 42.5,
            }],
        }
    }

    fn row(rows: &[RatioRow], scenario: Scenario, services: usize, baseline: Dataplane) -> Ratios {
        rows.iter()
            .find(|r| r.scenario == scenario && r.services == services && r.baseline == baseline)
            .unwrap_or_else(|| panic!("no row {scenario:?} {services} {baseline:?}"))
            .ratios
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn ratio_arithmetic_and_direction() {
        let report = sample_report();
        let rows = ratios(&report);
        let r = row(
            &rows,
            Scenario::PodToClusterIp,
            1000,
            Dataplane::KubeProxyIptables,
        );
        // strait 2000 conn/s against 1000: 2.00; p99 100 µs against 200 µs: 0.50.
        assert!(close(r.crr_per_second, 2.0), "{r:?}");
        assert!(close(r.crr_p99, 0.5), "{r:?}");
        assert!(close(r.stream_gbit_per_s, 2.0), "{r:?}");
        assert!(close(r.rr_per_second, 2.0), "{r:?}");
        assert!(close(r.rr_p99, 0.5), "{r:?}");
        assert!(close(r.udp_per_second, 2.0), "{r:?}");
        assert!(close(r.udp_p99, 0.5), "{r:?}");
        // direct (services 0) matches every count: strait has half its rates, twice its latency.
        let d = row(&rows, Scenario::ExternalToNodePort, 1000, Dataplane::Direct);
        assert!(close(d.crr_per_second, 0.5), "{d:?}");
        assert!(close(d.crr_p99, 2.0), "{d:?}");
        let n = row(
            &rows,
            Scenario::PodToClusterIp,
            1,
            Dataplane::KubeProxyNftables,
        );
        assert!(close(n.crr_per_second, 1.25), "{n:?}");
        // nftables was not measured at 1000 services or in the other scenario.
        assert_eq!(
            row(
                &rows,
                Scenario::PodToClusterIp,
                1000,
                Dataplane::KubeProxyNftables
            ),
            Ratios::default()
        );
        assert_eq!(
            row(
                &rows,
                Scenario::ExternalToNodePort,
                1,
                Dataplane::KubeProxyNftables
            ),
            Ratios::default()
        );
        // pod-to-pod has no cells, so no rows; 2 scenarios × 2 counts × 3 baselines.
        assert!(rows.iter().all(|r| r.scenario != Scenario::PodToPod));
        assert_eq!(rows.len(), 12);
    }

    #[test]
    fn ratio_of_missing_test_or_zero_baseline_is_none() {
        let strait = measurement(2.0);
        let mut baseline = measurement(1.0);
        baseline.tcp_stream = None;
        baseline.tcp_crr.as_mut().unwrap().per_second = 0.0;
        let r = Ratios::between(&strait, &baseline);
        assert_eq!(r.stream_gbit_per_s, None);
        assert_eq!(r.crr_per_second, None);
        assert!(close(r.crr_p99, 0.5));
    }

    #[test]
    fn terminal_table_has_every_dataplane_and_number() {
        let report = sample_report();
        let text = terminal_table(&report);
        for dataplane in Dataplane::ALL {
            assert!(
                text.contains(dataplane.name()),
                "{} missing:\n{text}",
                dataplane.name()
            );
        }
        for line in text.lines() {
            assert!(line.chars().count() <= 140, "line too long: {line}");
        }
        // strait at 1000 services in pod-to-clusterip: 20 Gbit/s, rr 40000/s 20/40 µs, crr 2000/s
        // 50/100 µs, udp 50000/s 15/30 µs.
        let strait_row = text
            .lines()
            .find(|l| l.starts_with("strait ") && l.split_whitespace().nth(1) == Some("1000"))
            .unwrap_or_else(|| panic!("no strait 1000 row:\n{text}"));
        let fields: Vec<&str> = strait_row.split_whitespace().collect();
        assert_eq!(
            fields,
            [
                "strait",
                "1000",
                "20.00",
                "40000",
                "20.0/40.0",
                "2000",
                "50.0/100.0",
                "50000",
                "15.0/30.0",
                "0"
            ]
        );
        let iptables_row = text
            .lines()
            .find(|l| l.starts_with("kube-proxy-iptables ") && l.contains(" 1000 "))
            .unwrap();
        assert!(iptables_row.contains("10.00") && iptables_row.contains("100.0/200.0"));
        // The ratio table: crr 2.00 and crr p99 0.50 against iptables; nftables at 1000 missing.
        let ratio_row = text
            .lines()
            .find(|l| {
                l.starts_with("pod-to-clusterip")
                    && l.contains(" 1000 ")
                    && l.contains("kube-proxy-iptables")
            })
            .unwrap();
        assert_eq!(
            ratio_row.split_whitespace().skip(3).collect::<Vec<_>>(),
            ["2.00", "2.00", "0.50", "2.00", "0.50", "2.00", "0.50"]
        );
        let missing_row = text
            .lines()
            .find(|l| {
                l.starts_with("pod-to-clusterip")
                    && l.contains(" 1000 ")
                    && l.contains("kube-proxy-nftables")
            })
            .unwrap();
        assert_eq!(
            missing_row.split_whitespace().skip(3).collect::<Vec<_>>(),
            [MISSING; 7]
        );
        assert!(text.contains("higher is better") && text.contains("lower is better"));
        // Programming, packet costs, machine and configuration.
        let programming = text
            .lines()
            .find(|l| l.starts_with("strait ") && l.split_whitespace().count() == 7)
            .unwrap();
        assert_eq!(
            programming.split_whitespace().collect::<Vec<_>>(),
            ["strait", "1", "1.0", "-12", "30.0", "64.0", "3"]
        );
        assert!(text.contains("tc ingress clusterip") && text.contains("42.5"));
        assert!(text.contains("Test CPU 9000 (8 CPUs)") && text.contains("6.12.0-test"));
        assert!(text.contains("services [1, 1000]"));
    }

    #[test]
    fn markdown_has_sections_tables_and_images() {
        let report = sample_report();
        let charts = vec![(
            "TCP connections per second".to_owned(),
            "netbench/crr-pod-to-clusterip.png".to_owned(),
        )];
        let md = markdown(&report, &charts);
        assert!(md.starts_with("## Results\n"), "{md}");
        for heading in [
            "### Machine",
            "### Configuration",
            "### Load tests: pod-to-clusterip",
            "### Load tests: external-to-nodeport",
            "### Ratios",
            "### Programming the services",
            "### Per-packet cost",
            "### Charts",
        ] {
            assert!(md.contains(heading), "{heading} missing:\n{md}");
        }
        assert!(!md.contains("### Load tests: pod-to-pod"));
        assert!(md.contains(
            "| dataplane | services | stream Gbit/s | rr tps | rr p50/p99 µs | crr conn/s |"
        ));
        assert!(md.contains("| strait | 1000 | 20.00 | 40000 | 20.0/40.0 | 2000 | 50.0/100.0 |"));
        assert!(
            md.contains("| pod-to-clusterip | 1000 | kube-proxy-iptables | 2.00 | 2.00 | 0.50 |")
        );
        assert!(md.contains(&format!(
            "| pod-to-clusterip | 1000 | kube-proxy-nftables | {MISSING} |"
        )));
        assert!(md.contains("![TCP connections per second](netbench/crr-pod-to-clusterip.png)"));
        assert!(md.contains("- CPU: Test CPU 9000 (8 CPUs)\n"));
        assert!(md.contains("- Service counts: 1, 1000"));
        // Every table row has as many cells as its header.
        for line in md
            .lines()
            .filter(|l| l.starts_with("| dataplane | services | stream"))
        {
            assert_eq!(line.matches(" | ").count(), 9);
        }
    }

    #[test]
    fn json_round_trips() {
        let report = sample_report();
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("netbench.json");
        write_json(&report, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\n  \"machine\": {"), "not pretty:\n{text}");
        let back: RunReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn services_labels() {
        assert_eq!(services_label(1), "1");
        assert_eq!(services_label(1000), "1k");
        assert_eq!(services_label(10_000), "10k");
        assert_eq!(services_label(1500), "1500");
    }
}
