//! The report's tables, ratios and JSON against a sample run.

use super::*;
use crate::netbench::{
    catalog::TargetPosition,
    results::{Latency, Machine, Measurement, PacketCost, RunConfig, Stream, Test},
    spin::Condition,
};

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

/// Each round's level relative to the median round: the machine's good and bad spells, which hit
/// every dataplane of a round alike.
const ROUND_LEVELS: [f64; 5] = [0.9, 1.0, 1.1, 0.95, 1.05];

/// A cell measured at `scale` in five rounds at [`ROUND_LEVELS`] (the median round is `scale` itself).
fn cell(
    dataplane: Dataplane,
    scenario: Scenario,
    services: usize,
    scale: f64,
    wall_ms: f64,
) -> Cell {
    let rounds: Vec<Measurement> = ROUND_LEVELS
        .iter()
        .map(|level| measurement(scale * level))
        .collect();
    Cell {
        dataplane,
        scenario,
        services,
        measurement: measurement(scale),
        spread: Cell::spread_of(&rounds),
        rounds,
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

/// Two scenarios at 1 and 1000 services, five rounds each: strait twice as good as iptables in every
/// round, nftables measured only in pod-to-clusterip at 1 service, direct in both scenarios but once
/// (services 0, as runs that measured it once saved it).
pub(crate) fn sample_report() -> RunReport {
    use Dataplane::{Direct, KubeProxyIptables, KubeProxyNftables, Strait};
    use Scenario::{ExternalToNodePort, PodToClusterIp};
    let mut cells = Vec::new();
    for scenario in [PodToClusterIp, ExternalToNodePort] {
        for services in [1, 1000] {
            #[allow(clippy::cast_precision_loss)]
            let wall = services as f64;
            cells.push(cell(Strait, scenario, services, 2.0, wall));
            cells.push(cell(KubeProxyIptables, scenario, services, 1.0, 3.0 * wall));
        }
        cells.push(cell(Direct, scenario, 0, 4.0, 0.0));
    }
    cells.push(cell(KubeProxyNftables, PodToClusterIp, 1, 1.6, 2.0));
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
            rounds: ROUND_LEVELS.len(),
            target_position: TargetPosition::Middle,
            conditions: [
                (Test::TcpRr, Condition::Spinners),
                (Test::TcpCrr, Condition::Idle),
            ]
            .into(),
            calibration: None,
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
        ratios: Vec::new(),
    }
}

fn row(rows: &[RatioRow], scenario: Scenario, services: usize, baseline: Dataplane) -> RatioRow {
    *rows
        .iter()
        .find(|r| r.scenario == scenario && r.services == services && r.baseline == baseline)
        .unwrap_or_else(|| panic!("no row {scenario:?} {services} {baseline:?}"))
}

fn close(a: Option<RatioEstimate>, b: f64) -> bool {
    a.is_some_and(|a| (a.ratio - b).abs() < 1e-9)
}

#[test]
fn ratio_arithmetic_and_direction() {
    use Metric::{
        CrrP99Us, CrrPerSecond, RrP99Us, RrPerSecond, StreamGbitPerS, UdpP99Us, UdpPerSecond,
    };
    let report = sample_report();
    let rows = ratios(&report);
    let r = row(
        &rows,
        Scenario::PodToClusterIp,
        1000,
        Dataplane::KubeProxyIptables,
    );
    // strait 2000 conn/s against 1000: 2.00; p99 100 µs against 200 µs: 0.50; in every round.
    assert!(close(r.get(CrrPerSecond), 2.0), "{r:?}");
    assert!(close(r.get(CrrP99Us), 0.5), "{r:?}");
    assert!(close(r.get(StreamGbitPerS), 2.0), "{r:?}");
    assert!(close(r.get(RrPerSecond), 2.0), "{r:?}");
    assert!(close(r.get(RrP99Us), 0.5), "{r:?}");
    assert!(close(r.get(UdpPerSecond), 2.0), "{r:?}");
    assert!(close(r.get(UdpP99Us), 0.5), "{r:?}");
    let crr = r.get(CrrPerSecond).unwrap();
    assert_eq!(crr.rounds, 5);
    assert_eq!(crr.within_noise(), Some(false));
    // direct (services 0) matches every count: strait has half its rates, twice its latency; it was
    // not measured beside this count, so there is no interval.
    let d = row(&rows, Scenario::ExternalToNodePort, 1000, Dataplane::Direct);
    assert!(close(d.get(CrrPerSecond), 0.5), "{d:?}");
    assert!(close(d.get(CrrP99Us), 2.0), "{d:?}");
    assert_eq!(d.get(CrrPerSecond).unwrap().interval, None);
    let n = row(
        &rows,
        Scenario::PodToClusterIp,
        1,
        Dataplane::KubeProxyNftables,
    );
    assert!(close(n.get(CrrPerSecond), 1.25), "{n:?}");
    // nftables was not measured at 1000 services or in the other scenario.
    for (scenario, services) in [
        (Scenario::PodToClusterIp, 1000),
        (Scenario::ExternalToNodePort, 1),
    ] {
        let missing = row(&rows, scenario, services, Dataplane::KubeProxyNftables);
        assert_eq!(missing.ratios, [None; 7]);
    }
    // pod-to-pod has no cells, so no rows; 2 scenarios × 2 counts × 3 baselines.
    assert!(rows.iter().all(|r| r.scenario != Scenario::PodToPod));
    assert_eq!(rows.len(), 12);
}

#[test]
fn ratio_of_missing_test_or_zero_baseline_is_none() {
    let strait = cell(Dataplane::Strait, Scenario::PodToPod, 1, 2.0, 1.0);
    let mut baseline = cell(
        Dataplane::KubeProxyIptables,
        Scenario::PodToPod,
        1,
        1.0,
        1.0,
    );
    for m in std::iter::once(&mut baseline.measurement).chain(&mut baseline.rounds) {
        m.tcp_stream = None;
        m.tcp_crr.as_mut().unwrap().per_second = 0.0;
    }
    assert_eq!(estimate(&strait, &baseline, Metric::StreamGbitPerS), None);
    assert_eq!(estimate(&strait, &baseline, Metric::CrrPerSecond), None);
    assert!(close(estimate(&strait, &baseline, Metric::CrrP99Us), 0.5));
}

/// A report where strait and iptables trade places from round to round: every ratio within noise.
fn noisy_report() -> RunReport {
    let mut report = sample_report();
    report.cells.retain(|c| {
        c.scenario == Scenario::PodToClusterIp
            && c.services == 1
            && matches!(
                c.dataplane,
                Dataplane::Strait | Dataplane::KubeProxyIptables
            )
    });
    // iptables' rounds at 1.0 each; strait's at 0.9, 1.0, 1.1, 0.95, 1.05 of it.
    for cell in &mut report.cells {
        let strait = cell.dataplane == Dataplane::Strait;
        cell.rounds = ROUND_LEVELS
            .iter()
            .map(|&level| measurement(if strait { level } else { 1.0 }))
            .collect();
        cell.measurement = measurement(1.0);
        cell.spread = Cell::spread_of(&cell.rounds);
    }
    report.config.services = vec![1];
    report
}

#[test]
fn ratios_whose_interval_holds_one_are_marked_within_noise_everywhere() {
    let mut report = noisy_report();
    let rows = ratios(&report);
    let r = row(
        &rows,
        Scenario::PodToClusterIp,
        1,
        Dataplane::KubeProxyIptables,
    );
    let crr = r.get(Metric::CrrPerSecond).unwrap();
    assert!(close(Some(crr), 1.0), "{crr:?}");
    let interval = crr.interval.unwrap();
    assert!((interval.low - 0.9).abs() < 1e-9 && (interval.high - 1.1).abs() < 1e-9);
    assert_eq!(crr.within_noise(), Some(true));
    // Tables: the ratio carries ≈, its interval is shown, the caption explains both.
    let text = terminal_table(&report);
    let ratio_row = text
        .lines()
        .find(|l| l.starts_with("pod-to-clusterip") && l.contains("kube-proxy-iptables"))
        .unwrap();
    assert_eq!(
        ratio_row.split_whitespace().skip(3).collect::<Vec<_>>(),
        ["≈1.00"; 7],
        "{text}"
    );
    let interval_row = text
        .lines()
        .filter(|l| l.starts_with("pod-to-clusterip") && l.contains("kube-proxy-iptables"))
        .nth(1)
        .unwrap();
    assert_eq!(
        interval_row.split_whitespace().nth(3),
        Some("0.90–1.10"),
        "{text}"
    );
    assert!(text.contains("within noise"));
    assert!(text.contains("probability 93.8 %"), "{text}");
    let md = markdown(&report, &[]);
    assert!(
        md.contains("| pod-to-clusterip | 1 | kube-proxy-iptables | ≈1.00 |"),
        "{md}"
    );
    // JSON: one record per known ratio, each with its verdict.
    report.ratios = ratio_records(&report);
    assert_eq!(report.ratios.len(), 7);
    assert!(report.ratios.iter().all(|r| r.within_noise == Some(true)));
    let json = serde_json::to_value(&report.ratios[0]).unwrap();
    assert_eq!(json["within_noise"], serde_json::json!(true));
    assert_eq!(json["metric"], "stream-gbit-per-s");
    assert_eq!(json["rounds"], 5);
    assert!((json["interval"]["low"].as_f64().unwrap() - 0.9).abs() < 1e-9);
    // The clear case is not marked.
    let clear = ratio_records(&sample_report());
    assert!(
        clear
            .iter()
            .filter(|r| r.baseline == Dataplane::KubeProxyIptables)
            .all(|r| r.within_noise == Some(false))
    );
    // Direct, measured once, has a ratio but no verdict.
    assert!(
        clear
            .iter()
            .filter(|r| r.baseline == Dataplane::Direct)
            .all(|r| r.within_noise.is_none())
    );
}

#[test]
fn spreads_are_shown_against_the_median_round() {
    let report = sample_report();
    let strait = report
        .cell(Dataplane::Strait, Scenario::PodToClusterIp, 1000)
        .unwrap();
    assert_eq!(spread_text(strait, Metric::RrPerSecond), "-10/+10%");
    // p99 is 1/level: 1/1.1 and 1/0.9 of the median.
    assert_eq!(spread_text(strait, Metric::RrP99Us), "-9/+11%");
    // A round a hair below the median shows as +0, not -0.
    let mut flat = strait.clone();
    flat.spread.insert(
        Metric::RrPerSecond,
        crate::netbench::stats::Range {
            min: 39_990.0,
            max: 40_000.0,
        },
    );
    assert_eq!(spread_text(&flat, Metric::RrPerSecond), "+0/+0%");
    let text = terminal_table(&report);
    assert!(text.contains("== pod-to-clusterip: spread over the rounds"));
    let spread_row = text
        .lines()
        .filter(|l| l.starts_with("strait ") && l.split_whitespace().nth(1) == Some("1000"))
        .nth(1)
        .unwrap();
    assert_eq!(
        spread_row.split_whitespace().take(5).collect::<Vec<_>>(),
        ["strait", "1000", "5", "-10/+10%", "-10/+10%"]
    );
}

#[test]
fn the_report_says_how_it_was_measured() {
    let mut report = sample_report();
    let text = terminal_table(&report);
    assert!(text.contains("5 rounds, 5 s per test"), "{text}");
    assert!(text.contains("target Service: middle of the filler Services"));
    assert!(text.contains("CPUs per test: tcp-rr spinners, tcp-crr idle CPUs"));
    assert!(!text.contains("calibration:"));
    report.config.calibration = Some(crate::netbench::spin::Calibration {
        dataplane: Dataplane::Direct,
        idle_p50_us: 130.0,
        spinners_p50_us: 25.0,
    });
    let text = terminal_table(&report);
    assert!(
        text.contains(
            "calibration: on direct, tcp-rr p50 130.0 µs with idle CPUs and 25.0 µs with spinners: \
             round trips with spinners"
        ),
        "{text}"
    );
    report.config.rounds = 3;
    let text = terminal_table(&report);
    assert!(
        text.contains("3 rounds (fewer than a full run's 5"),
        "{text}"
    );
    assert!(text.contains("less sure than 95 %"), "{text}");
    let md = markdown(&report, &[]);
    assert!(md.contains("- Target Service: middle"));
    assert!(md.contains(
        "- CPUs per test: tcp-rr spinners, tcp-crr idle CPUs (calibration on direct, tcp-rr p50 130.0 µs"
    ));
    assert!(md.contains("- Rounds: 3 rounds"));
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
    // Its interval: every round's ratio is the same.
    assert!(text.contains("2.00–2.00"), "{text}");
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
fn runs_saved_before_rounds_were_kept_still_render() {
    let mut report = sample_report();
    for cell in &mut report.cells {
        cell.rounds.clear();
        cell.spread.clear();
    }
    report.config.rounds = 0;
    let text = terminal_table(&report);
    assert!(text.contains("rounds not recorded"));
    assert!(!text.contains("spread over the rounds"));
    assert!(!text.contains("== ratio intervals =="));
    let rows = ratios(&report);
    let r = row(
        &rows,
        Scenario::PodToClusterIp,
        1000,
        Dataplane::KubeProxyIptables,
    );
    assert!(close(r.get(Metric::CrrPerSecond), 2.0));
    assert_eq!(r.get(Metric::CrrPerSecond).unwrap().within_noise(), None);
    // The JSON of such a run has none of the new fields and still parses.
    let old = r#"{"machine":{"cpu_model":"x","cpus":2,"memory_gib":1.0,"kernel":"k",
        "iptables_version":"i","nft_version":"n"},
        "config":{"quick":false,"test_seconds":2.0,"services":[1],"endpoints_per_service":3,
        "started_at":"t","duration_s":1.0},"cells":[],"packet_costs":[]}"#;
    let parsed: RunReport = serde_json::from_str(old).unwrap();
    assert_eq!(parsed.config.target_position, TargetPosition::First);
    assert_eq!(parsed.config.rounds, 0);
    assert!(parsed.config.conditions.is_empty());
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
        "#### Spread over the rounds: pod-to-clusterip",
        "### Ratios",
        "### Ratio intervals",
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
    assert!(md.contains("| pod-to-clusterip | 1000 | kube-proxy-iptables | 2.00 | 2.00 | 0.50 |"));
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
    let mut report = sample_report();
    // Rounds whose figures print exactly (serde_json may read a 17-digit float back one ulp off).
    for cell in &mut report.cells {
        cell.rounds = vec![cell.measurement; 2];
        cell.spread = Cell::spread_of(&cell.rounds);
    }
    report.ratios = ratio_records(&report);
    assert!(!report.ratios.is_empty());
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
