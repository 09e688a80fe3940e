//! The run's plan, cells and outcomes, without labs.

use super::*;
use crate::netbench::results::{Latency, Metric, Rate, Stream};

fn options() -> Options {
    Options {
        quick: false,
        services: None,
        endpoints: 3,
        seconds: None,
        rounds: None,
        dataplanes: Dataplane::ALL.to_vec(),
        scenarios: Scenario::ALL.to_vec(),
        tests: Test::ALL.to_vec(),
        target_position: TargetPosition::Middle,
        spin: SpinPolicy::Auto,
        pktcost: true,
        sync_timeout: Duration::from_mins(5),
    }
}

#[test]
fn defaults_are_five_rounds_and_quick_says_fewer() {
    let full = plan(&options()).unwrap();
    assert_eq!(full.rounds, 5);
    assert_eq!(full.services, [1, 1_000, 10_000]);
    assert_eq!(full.groups.len(), 9);
    assert!(full.groups.iter().all(|g| g.dataplanes.len() == 4));
    let quick = plan(&Options {
        quick: true,
        ..options()
    })
    .unwrap();
    assert_eq!(
        (quick.rounds, quick.seconds, quick.services),
        (QUICK_ROUNDS, QUICK_SECONDS, vec![1, 1_000])
    );
    let explicit = plan(&Options {
        quick: true,
        rounds: Some(7),
        ..options()
    })
    .unwrap();
    assert_eq!(explicit.rounds, 7);
}

#[test]
fn bad_options_are_refused() {
    for bad in [
        Options {
            services: Some(vec![0]),
            ..options()
        },
        Options {
            rounds: Some(0),
            ..options()
        },
        Options {
            seconds: Some(0.1),
            ..options()
        },
        Options {
            tests: Vec::new(),
            ..options()
        },
        Options {
            dataplanes: Vec::new(),
            ..options()
        },
    ] {
        assert!(matches!(plan(&bad), Err(RunError::Invalid(_))), "{bad:?}");
    }
}

fn rate(per_second: f64, p99_us: f64) -> Rate {
    Rate {
        per_second,
        latency: Latency {
            p99_us,
            ..Latency::default()
        },
        ..Rate::default()
    }
}

#[test]
fn a_cell_reports_the_median_round_and_keeps_every_round() {
    let rounds: Vec<Measurement> = [(300.0, 9.0), (100.0, 7.0), (200.0, 1.0)]
        .into_iter()
        .map(|(per_second, p99)| Measurement {
            tcp_crr: Some(rate(per_second, p99)),
            tcp_stream: Some(Stream {
                gbit_per_s: per_second / 100.0,
                ..Stream::default()
            }),
            ..Measurement::default()
        })
        .collect();
    let group = Group {
        services: 1000,
        scenario: Scenario::PodToClusterIp,
        dataplanes: vec![Dataplane::Strait],
    };
    let cell = cell_of(Dataplane::Strait, &group, &rounds, None);
    // The median round by connections/s, with that round's own p99.
    let crr = cell.measurement.tcp_crr.unwrap();
    assert_eq!((crr.per_second, crr.latency.p99_us), (200.0, 1.0));
    assert_eq!(cell.measurement.tcp_rr, None);
    assert_eq!(cell.rounds, rounds);
    let spread = cell.spread[&Metric::CrrP99Us];
    assert_eq!((spread.min, spread.max), (1.0, 9.0));
    let stream = cell.spread[&Metric::StreamGbitPerS];
    assert_eq!((stream.min, stream.max), (1.0, 3.0));
    assert!(!cell.spread.contains_key(&Metric::RrPerSecond));
}

#[test]
fn outcomes_go_to_their_test_and_a_mismatch_is_an_error() {
    let mut m = Measurement::default();
    record(&mut m, Test::UdpRr, load::Outcome::Rate(rate(5.0, 1.0))).unwrap();
    assert_eq!(m.udp_rr.map(|r| r.per_second), Some(5.0));
    let wrong = record(&mut m, Test::TcpStream, load::Outcome::Rate(rate(5.0, 1.0)));
    assert!(matches!(wrong, Err(RunError::WrongOutcome { .. })));
}

#[test]
fn run_ids_are_short_base36() {
    assert_eq!(base36(0), "0");
    assert_eq!(base36(35), "z");
    assert_eq!(base36(36), "10");
}
