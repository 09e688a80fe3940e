//! Packet fixtures for `from_pod` through BPF_PROG_TEST_RUN: each case builds a frame, sets up the
//! ENDPOINT map, runs the real verified program in the kernel and checks the verdict, the output frame and
//! the per-reason counter.

use std::net::Ipv4Addr;

use aya::programs::{TestRun, TestRunOptions};
use strait_abi::{Direction, Program, Reason};
use strait_dataplane::{Dataplane, LoadOptions, endpoints::Endpoint};
use strait_tests::{
    frames::{
        self, DST, GW_MAC_DST, POD_MAC_DST, SRC, arp, ipv6_router_advertisement, tcp, udp,
        with_ip_byte,
    },
    require_root,
};

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;

fn loaded() -> Dataplane {
    require_root();
    let mut dataplane = Dataplane::load(&LoadOptions::default()).expect("loading the eBPF object");
    frames::register_pods(&mut dataplane);
    dataplane
}

fn counter(dataplane: &Dataplane, reason: Reason) -> u64 {
    dataplane
        .stats()
        .unwrap()
        .into_iter()
        .find(|s| {
            s.program == Program::FromPod && s.reason == reason && s.direction == Direction::Egress
        })
        .map(|s| s.packets)
        .unwrap()
}

/// Runs `frame` through from_pod once; returns (verdict, output frame).
fn run(dataplane: &mut Dataplane, frame: &[u8]) -> (u32, Vec<u8>) {
    let mut out = vec![0u8; frame.len() + 64];
    let program = dataplane.from_pod_program().unwrap();
    let mut options = TestRunOptions::new();
    options.data_in = Some(frame);
    options.data_out = Some(&mut out);
    let result = program.test_run(options).expect("BPF_PROG_TEST_RUN");
    out.truncate(result.data_size_out as usize);
    (result.return_value, out)
}

struct Case {
    description: &'static str,
    frame: Vec<u8>,
    verdict: u32,
    reason: Reason,
}

/// Every frame from_pod is run on, with what must happen to it.
fn from_pod_cases() -> Vec<Case> {
    vec![
        Case {
            description: "TCP to a local pod is redirected",
            frame: tcp(SRC, DST),
            verdict: TC_ACT_REDIRECT,
            reason: Reason::DeliveredLocal,
        },
        Case {
            description: "UDP to a local pod is redirected",
            frame: udp(SRC, DST),
            verdict: TC_ACT_REDIRECT,
            reason: Reason::DeliveredLocal,
        },
        Case {
            description: "unknown destination goes to the stack",
            frame: tcp(SRC, Ipv4Addr::new(192, 0, 2, 1)),
            verdict: TC_ACT_OK,
            reason: Reason::PassToStack,
        },
        Case {
            description: "ARP from a pod is dropped (its neighbours are permanent entries)",
            frame: arp(),
            verdict: TC_ACT_SHOT,
            reason: Reason::DropNonIpv4,
        },
        Case {
            description: "an IPv6 router advertisement from a pod is dropped",
            frame: ipv6_router_advertisement(),
            verdict: TC_ACT_SHOT,
            reason: Reason::DropNonIpv4,
        },
        Case {
            description: "unregistered source is a spoof",
            frame: tcp(Ipv4Addr::new(10, 244, 0, 99), DST),
            verdict: TC_ACT_SHOT,
            reason: Reason::DropSpoofedSource,
        },
        Case {
            description: "source of another pod's interface is a spoof",
            frame: tcp(DST, SRC),
            verdict: TC_ACT_SHOT,
            reason: Reason::DropSpoofedSource,
        },
        Case {
            description: "IPv4 total length beyond the frame",
            frame: with_ip_byte(tcp(SRC, DST), 2, 0x40),
            verdict: TC_ACT_SHOT,
            reason: Reason::DropTruncatedIpv4,
        },
        Case {
            description: "IP version 6 in an IPv4 EtherType",
            frame: with_ip_byte(tcp(SRC, DST), 0, 0x65),
            verdict: TC_ACT_SHOT,
            reason: Reason::DropMalformedIpv4,
        },
        Case {
            description: "IPv4 header length under 20 bytes",
            frame: with_ip_byte(tcp(SRC, DST), 0, 0x44),
            verdict: TC_ACT_SHOT,
            reason: Reason::DropMalformedIpv4,
        },
    ]
}

#[test]
fn from_pod_fixture_table() {
    let mut dataplane = loaded();
    for case in from_pod_cases() {
        let before = counter(&dataplane, case.reason);
        let (verdict, out) = run(&mut dataplane, &case.frame);
        assert_eq!(verdict, case.verdict, "{}: verdict", case.description);
        assert_eq!(
            counter(&dataplane, case.reason),
            before + 1,
            "{}: {:?} counter",
            case.description,
            case.reason
        );
        match case.reason {
            Reason::DeliveredLocal => {
                assert_eq!(
                    out[..6],
                    POD_MAC_DST,
                    "{}: destination MAC is the pod's",
                    case.description
                );
                assert_eq!(
                    out[6..12],
                    GW_MAC_DST,
                    "{}: source MAC is the pod's gateway",
                    case.description
                );
                assert_eq!(
                    out[12..],
                    case.frame[12..],
                    "{}: nothing past the MACs changes",
                    case.description
                );
            }
            Reason::PassToStack | Reason::PassNonIpv4 => {
                assert_eq!(out, case.frame, "{}: unchanged", case.description);
            }
            _ => {}
        }
    }
}

#[test]
fn kernel_refuses_test_run_frames_with_truncated_headers() {
    // Frames shorter than an Ethernet header, or IPv4 frames ending inside the IP header, never reach the
    // program under test-run: the kernel rejects them first. Those branches are exercised with real frames
    // on a real veth in the e2e suite (`truncated_frames_from_a_pod_are_dropped_and_counted`). This test
    // pins the kernel behaviour so the split of coverage stays honest.
    let mut dataplane = loaded();
    let program = dataplane.from_pod_program().unwrap();
    for frame in [vec![0u8; 10], tcp(SRC, DST)[..14 + 12].to_vec()] {
        let mut options = TestRunOptions::new();
        options.data_in = Some(&frame);
        assert!(
            program.test_run(options).is_err(),
            "{} byte frame",
            frame.len()
        );
    }
}

#[test]
fn repeated_runs_count_every_packet() {
    let mut dataplane = loaded();
    let frame = tcp(SRC, DST);
    let before = counter(&dataplane, Reason::DeliveredLocal);
    let program = dataplane.from_pod_program().unwrap();
    let mut out = vec![0u8; frame.len() + 64];
    let mut options = TestRunOptions::new();
    options.data_in = Some(&frame);
    options.data_out = Some(&mut out);
    options.repeat = 1000;
    let result = program.test_run(options).unwrap();
    assert_eq!(result.return_value, TC_ACT_REDIRECT);
    assert_eq!(counter(&dataplane, Reason::DeliveredLocal), before + 1000);
}

#[test]
fn endpoint_map_full_is_a_named_error() {
    require_root();
    let mut dataplane = Dataplane::load(&LoadOptions {
        pin_dir: None,
        endpoint_capacity: 2,
        ..LoadOptions::default()
    })
    .unwrap();
    let endpoint = |last| Endpoint {
        addr: Ipv4Addr::new(10, 0, 0, last),
        host_ifindex: 5,
        pod_mac: [2; 6],
        host_mac: [3; 6],
    };
    assert!(dataplane.upsert_endpoint(&endpoint(1)).unwrap());
    assert!(
        !dataplane.upsert_endpoint(&endpoint(1)).unwrap(),
        "unchanged entry is not rewritten"
    );
    dataplane.upsert_endpoint(&endpoint(2)).unwrap();
    let error = dataplane.upsert_endpoint(&endpoint(3)).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("ENDPOINT_V1 is full (2 entries)"),
        "{error}"
    );
    assert_eq!(dataplane.endpoints().unwrap().len(), 2, "nothing was lost");
}
