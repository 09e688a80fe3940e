//! Pod-to-pod traffic on one node is carried by strait's eBPF program alone: IP forwarding is off in the
//! node namespace, the counters account for the packets, and taking the program away breaks the path.

use std::time::Duration;

use strait_dataplane::{bpffs::DEFAULT_BPFFS, netns, sysctl};
use strait_tests::LabGuard;

use crate::{endpoints, packets, two_pod_lab, who_answers};

#[test]
fn pods_talk_tcp_and_udp_through_ebpf_with_forwarding_off() {
    let guard = LabGuard::new("dp");
    let lab = two_pod_lab(&guard.name);
    let node = lab.state.nodes[0].clone();
    let client = lab.state.pod("default/client").unwrap().clone();
    let server = lab.state.pod("default/server").unwrap().clone();

    let forwarding = netns::run_in(&netns::path(&node.netns), || {
        sysctl::read("net.ipv4.ip_forward")
    })
    .unwrap()
    .unwrap();
    assert_eq!(
        forwarding, "0",
        "the node must not forward: only eBPF may carry pod traffic"
    );

    let before = packets(&lab, &node.name, "delivered_local");
    for _ in 0..5 {
        assert_eq!(
            who_answers(&lab, "default/client", server.ip, 8080),
            "default/server"
        );
    }
    assert_eq!(
        who_answers(&lab, "default/server", client.ip, 8080),
        "default/client"
    );
    let udp = lab
        .probe(
            "default/client",
            &format!("{}:5353", server.ip),
            true,
            Duration::from_secs(2),
        )
        .unwrap();
    assert_eq!(udp.as_deref(), Ok("default/server"));
    let delivered = packets(&lab, &node.name, "delivered_local") - before;
    // Each TCP exchange is at least SYN, SYN-ACK, ACK, data, FIN each way; UDP is one datagram each way.
    assert!(
        delivered >= 6 * 6 + 2,
        "only {delivered} packets were delivered by from-pod"
    );

    // Take the program off the client's veth: with forwarding off, nothing else can carry the traffic.
    let client_veth = endpoints(&lab, &node.name)
        .into_iter()
        .find(|e| e["pod_name"] == "client")
        .and_then(|e| e["host_ifname"].as_str().map(str::to_owned))
        .unwrap();
    let pin = std::path::Path::new(DEFAULT_BPFFS)
        .join("strait")
        .join(&node.name)
        .join("links")
        .join(format!("from_pod-{client_veth}"));
    std::fs::remove_file(&pin).expect("removing the client's link pin detaches from-pod");
    // The kernel releases an unpinned link from a work queue, so allow it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let answer = lab
            .probe(
                "default/client",
                &format!("{}:8080", server.ip),
                false,
                Duration::from_millis(300),
            )
            .unwrap();
        if answer.is_err() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "traffic kept flowing without strait's program"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn host_and_unknown_destinations_go_to_the_node_stack() {
    let guard = LabGuard::new("dh");
    let lab = two_pod_lab(&guard.name);
    let node = lab.state.nodes[0].clone();
    let server = lab.state.pod("default/server").unwrap().clone();
    // The node reaches its pods through their routes, over TCP and UDP.
    assert_eq!(
        who_answers(&lab, &format!("node/{}", node.name), server.ip, 8080),
        "default/server"
    );
    let over_udp = lab
        .probe(
            &format!("node/{}", node.name),
            &format!("{}:5353", server.ip),
            true,
            Duration::from_secs(2),
        )
        .unwrap();
    assert_eq!(over_udp.as_deref(), Ok("default/server"));
    // A pod's packet for an address that is no pod goes to the node's stack (counted), which has no route.
    let before = packets(&lab, &node.name, "pass_to_stack");
    let unreachable = lab
        .probe(
            "default/client",
            "10.244.200.9:80",
            false,
            Duration::from_millis(300),
        )
        .unwrap();
    assert!(unreachable.is_err());
    assert!(packets(&lab, &node.name, "pass_to_stack") > before);
}
