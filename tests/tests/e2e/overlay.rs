//! Pods on different nodes, through the VXLAN overlay and by direct routing, on three lab nodes with IP
//! forwarding off: every
//! pod reaches every other (TCP and UDP, both ways), a ClusterIP spreads over endpoints on every node,
//! 1 MB over TCP and full-size UDP datagrams cross nodes at the overlay's MTU, a NodePort on one node
//! serves endpoints on the others (SNAT to that node) and `Local` keeps the client's address, the
//! node's own processes reach remote pods, and a node removed from the cluster loses its routes on the
//! others (and gets them back) within a second.

use std::{
    collections::BTreeSet,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    path::Path,
    time::{Duration, Instant},
};

use strait_dataplane::netns;
use strait_lab::{
    cluster::Lab,
    state::{LabOptions, LabOverlay, PodRecord},
};
use strait_tests::LabGuard;

use crate::examples;

mod services;

use services::{node_ports_serve_endpoints_on_other_nodes, services_agree_across_nodes};

fn pod_key(pod: &PodRecord) -> String {
    format!("{}/{}", pod.namespace, pod.name)
}

/// The pods of the lab, in a stable order.
fn pods(lab: &Lab) -> Vec<PodRecord> {
    lab.state.pods.clone()
}

#[test]
fn pods_and_services_span_three_nodes_through_vxlan() {
    spans_three_nodes("ov", LabOverlay::Vxlan);
}

#[test]
fn pods_and_services_span_three_nodes_by_direct_routing() {
    spans_three_nodes("od", LabOverlay::Direct);
}

/// Every lab node is on the underlay's subnet, so `auto` reaches all of them directly: nothing is
/// tunnelled (checked with the forged packet).
#[test]
fn pods_and_services_span_three_nodes_in_auto_mode() {
    spans_three_nodes("oa", LabOverlay::Auto);
}

fn spans_three_nodes(prefix: &str, overlay: LabOverlay) {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new(prefix);
    let options = LabOptions {
        overlay,
        ..LabOptions::default()
    };
    let mut lab = Lab::up_with(&guard.name, 3, Some(&examples()), options).expect("lab up");
    let nodes: BTreeSet<&str> = lab.state.pods.iter().map(|p| p.node.as_str()).collect();
    assert_eq!(nodes.len(), 3, "the pods are spread over the three nodes");
    // Under auto a tunnel may carry a pod's packets, so pods get the tunnel's MTU.
    let pod_mtu = match overlay {
        LabOverlay::Vxlan | LabOverlay::Auto => 1450,
        LabOverlay::Direct => 1500,
    };
    forwarding_is_off_and_pods_get_the_mtu(&lab, pod_mtu);
    every_pod_reaches_every_other_pod(&lab);
    a_cluster_ip_spreads_over_every_node(&lab);
    bulk_tcp_and_full_size_udp_cross_nodes(&lab);
    node_ports_serve_endpoints_on_other_nodes(&mut lab);
    services_agree_across_nodes(&mut lab);
    a_forged_tunnel_packet_is_dropped(&lab, overlay);
    a_removed_node_loses_its_routes_and_gets_them_back(&lab);
}

/// `strait_packets_total` of the VXLAN device's ingress program on `node` for `reason`.
fn from_overlay(lab: &Lab, node: &str, reason: &str) -> u64 {
    crate::counter(lab, node, ("from-overlay", reason, "ingress"))
}

/// A host on the underlay that is no node sends a VXLAN packet to node 2 whose inner source is a pod
/// of node 1: node 2 drops it as not its sender's (`overlay_source`), and the pod never sees it (the
/// device listens in direct mode too, for nodes that tunnel).
fn a_forged_tunnel_packet_is_dropped(lab: &Lab, overlay: LabOverlay) {
    let (sender, receiver) = pods_apart(lab);
    let node = lab
        .state
        .nodes
        .iter()
        .find(|n| n.name == receiver.node)
        .unwrap()
        .clone();
    // Real tunnel traffic arrived under VXLAN; none with direct routing.
    let decapsulated = from_overlay(lab, &node.name, "overlay_decap");
    assert_eq!(
        decapsulated > 0,
        overlay == LabOverlay::Vxlan,
        "{decapsulated} decapsulated"
    );
    let before = from_overlay(lab, &node.name, "overlay_source");
    let inner = strait_tests::frames::udp_datagram(
        strait_tests::frames::Macs {
            src: [0x0e, 0x53, 1, 2, 3, 4],
            dst: strait_dataplane::netlink::vxlan::vtep_mac(node.ip),
        },
        std::net::SocketAddrV4::new(sender.ip, 40000),
        std::net::SocketAddrV4::new(receiver.ip, 9102),
        b"forged",
    );
    // VXLAN header: the I flag, VNI 1.
    let mut packet = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
    packet.extend_from_slice(&inner);
    let sink = netns::run_in(&netns::path(&receiver.netns), || {
        UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 9102))
    })
    .unwrap()
    .unwrap();
    sink.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let target = SocketAddr::from((node.ip, 8472));
    netns::run_in(&netns::path(&lab.names.external_netns()), move || {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        for _ in 0..3 {
            socket.send_to(&packet, target).unwrap();
        }
    })
    .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        sink.recv(&mut buf).is_err(),
        "the forged datagram reached the pod"
    );
    assert!(
        from_overlay(lab, &node.name, "overlay_source") >= before + 3,
        "counted as overlay_source"
    );
}

fn forwarding_is_off_and_pods_get_the_mtu(lab: &Lab, mtu: u32) {
    for node in &lab.state.nodes {
        let path = netns::path(&node.netns);
        let forwarding = netns::run_in(&path, || {
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        })
        .unwrap()
        .unwrap();
        assert_eq!(forwarding.trim(), "0", "{}: IP forwarding", node.name);
    }
    for pod in pods(lab) {
        let out = std::process::Command::new("ip")
            .args(["-n", &pod.netns, "-o", "link", "show", "eth0"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!(" mtu {mtu} ")),
            "{}: MTU {mtu} (VXLAN: the underlay's 1500 minus its 50): {text}",
            pod_key(&pod)
        );
    }
}

fn every_pod_reaches_every_other_pod(lab: &Lab) {
    let pods = pods(lab);
    for from in &pods {
        for to in pods.iter().filter(|p| p.name != from.name) {
            let target = format!("{}:8080", to.ip);
            let answer = lab
                .probe(&pod_key(from), &target, false, Duration::from_secs(2))
                .unwrap();
            assert_eq!(
                answer,
                Ok(pod_key(to)),
                "{} ({}) -> {} ({})",
                pod_key(from),
                from.node,
                pod_key(to),
                to.node
            );
        }
    }
    // UDP both ways between nodes: the server's DNS-style port from every other pod.
    let server = pods.iter().find(|p| p.name == "server").unwrap();
    for from in pods.iter().filter(|p| p.node != server.node) {
        let answer = lab
            .probe(
                &pod_key(from),
                &format!("{}:5353", server.ip),
                true,
                Duration::from_secs(2),
            )
            .unwrap();
        assert_eq!(answer, Ok(pod_key(server)), "UDP from {}", pod_key(from));
    }
    // The node's own processes reach remote pods from the node's overlay address.
    for node in &lab.state.nodes {
        for to in pods.iter().filter(|p| p.node != node.name) {
            let answer = lab
                .probe(
                    &format!("node/{}", node.name),
                    &format!("{}:8080", to.ip),
                    false,
                    Duration::from_secs(2),
                )
                .unwrap();
            assert_eq!(answer, Ok(pod_key(to)), "{} -> {}", node.name, pod_key(to));
        }
    }
}

fn a_cluster_ip_spreads_over_every_node(lab: &Lab) {
    let cluster_ip = lab.state.services["default/web"]
        .spec
        .as_ref()
        .unwrap()
        .cluster_ip
        .clone()
        .unwrap();
    let target = format!("{cluster_ip}:80");
    let answered: BTreeSet<String> = (0..30)
        .map(|_| {
            lab.probe("default/client", &target, false, Duration::from_secs(2))
                .unwrap()
                .unwrap()
        })
        .collect();
    assert_eq!(
        nodes_of(lab, &answered).len(),
        3,
        "endpoints on every node answer: {answered:?}"
    );

    // A socket outside the node's cgroup (this test's own, inside the client pod's namespace) is not
    // translated at connect: its packets take the per-packet path, and the replies of remote
    // endpoints come back through the tunnel to be reverse-translated on the client's node.
    let client = lab.state.pod("default/client").unwrap().clone();
    let vip: SocketAddr = target.parse().unwrap();
    let per_packet: BTreeSet<String> = (0..30)
        .map(|_| {
            netns::run_in(&netns::path(&client.netns), move || {
                let mut stream = TcpStream::connect_timeout(&vip, Duration::from_secs(2)).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                let mut text = String::new();
                let _ = stream.read_to_string(&mut text);
                text.lines().next().unwrap_or_default().to_owned()
            })
            .unwrap()
        })
        .collect();
    assert_eq!(
        nodes_of(lab, &per_packet).len(),
        3,
        "per-packet path, endpoints on every node: {per_packet:?}"
    );
}

/// The nodes the pods `keys` (`NS/NAME`) run on.
fn nodes_of<'a>(lab: &'a Lab, keys: &BTreeSet<String>) -> BTreeSet<&'a str> {
    keys.iter()
        .map(|key| lab.state.pod(key).unwrap().node.as_str())
        .collect()
}

/// Two pods on different nodes: (sender, receiver).
fn pods_apart(lab: &Lab) -> (PodRecord, PodRecord) {
    let pods = pods(lab);
    let sender = pods.iter().find(|p| p.name == "client").unwrap().clone();
    let receiver = pods.iter().find(|p| p.node != sender.node).unwrap().clone();
    (sender, receiver)
}

fn bulk_tcp_and_full_size_udp_cross_nodes(lab: &Lab) {
    let (sender, receiver) = pods_apart(lab);
    let to = netns::path(&receiver.netns);
    let from = netns::path(&sender.netns);
    // 1 MB over TCP: full-size segments at the overlay's MTU, every byte counted on the far side.
    let listener = netns::run_in(&to, || TcpListener::bind((Ipv4Addr::UNSPECIFIED, 9100)))
        .unwrap()
        .unwrap();
    let counter = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut total = 0usize;
        let mut buf = vec![0u8; 65536];
        loop {
            match stream.read(&mut buf).unwrap() {
                0 => break total,
                n => total += n,
            }
        }
    });
    let target = SocketAddr::from((receiver.ip, 9100));
    netns::run_in(&from, move || {
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2)).unwrap();
        stream.write_all(&vec![7u8; 1_000_000]).unwrap();
    })
    .unwrap();
    assert_eq!(counter.join().unwrap(), 1_000_000, "1 MB across nodes");

    // 1,400-byte UDP datagrams both ways (echoed).
    let echo = netns::run_in(&to, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 9101)))
        .unwrap()
        .unwrap();
    echo.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let echoer = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let (n, peer) = echo.recv_from(&mut buf).unwrap();
        echo.send_to(&buf[..n], peer).unwrap();
        n
    });
    let target = SocketAddr::from((receiver.ip, 9101));
    let back = netns::run_in(&from, move || {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        socket.send_to(&[9u8; 1400], target).unwrap();
        let mut buf = [0u8; 2048];
        socket.recv(&mut buf).unwrap()
    })
    .unwrap();
    assert_eq!((echoer.join().unwrap(), back), (1400, 1400));
}

/// Probes `target` from `from` until `answers` says yes; returns how long that took (`None` past 3 s).
fn until(lab: &Lab, from: &str, target: &str, answers: bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let ok = lab
            .probe(from, target, false, Duration::from_millis(200))
            .unwrap()
            .is_ok();
        if ok == answers {
            return Some(started.elapsed());
        }
    }
    None
}

fn a_removed_node_loses_its_routes_and_gets_them_back(lab: &Lab) {
    let (sender, receiver) = pods_apart(lab);
    let file = lab
        .cluster_dir()
        .join(format!("node_{}.json", receiver.node));
    let saved = std::fs::read(&file).unwrap();
    let target = format!("{}:8080", receiver.ip);
    let from = pod_key(&sender);
    remove_file(&file);
    let gone =
        until(lab, &from, &target, false).expect("the removed node's pods become unreachable");
    std::fs::write(&file, &saved).unwrap();
    let back = until(lab, &from, &target, true).expect("the node's pods are reachable again");
    eprintln!("node removed: unreachable after {gone:?}; added back: reachable after {back:?}");
    assert!(
        gone < Duration::from_secs(1) && back < Duration::from_secs(1),
        "routes follow the Node within a second: gone after {gone:?}, back after {back:?}"
    );
}

fn remove_file(path: &Path) {
    std::fs::remove_file(path).unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
}

/// The prefixes node `name`'s agent has in REMOTE_V1: (prefix, length, node address).
fn remote_prefixes(name: &str) -> Vec<(Ipv4Addr, u8, Ipv4Addr)> {
    let pins = Path::new(strait_dataplane::bpffs::DEFAULT_BPFFS)
        .join("strait")
        .join(name);
    strait_dataplane::overlay::pinned_remote_prefixes(&pins).unwrap()
}

/// `strait lab node add|remove`: a node joining is in every other node's map by the time the lab says
/// the agents have synced, its pods are reachable; a node leaving takes its pods and its prefixes with it.
#[test]
fn nodes_join_and_leave_a_running_lab() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("nj");
    let mut lab = Lab::up(&guard.name, 2, Some(&examples().join("pods.yaml"))).expect("lab up");
    let first = lab.state.nodes[0].name.clone();
    assert_eq!(
        remote_prefixes(&first).len(),
        2,
        "node 2's CIDR and address"
    );

    let started = Instant::now();
    let joined = lab.add_node(false).unwrap();
    eprintln!(
        "node {joined} joined and every agent synced in {:?}",
        started.elapsed()
    );
    let node = lab.state.node(&joined).unwrap().clone();
    let (network, len) = node.pod_cidr.split_once('/').unwrap();
    let expected = [
        (network.parse().unwrap(), len.parse().unwrap(), node.ip),
        (node.ip, 32, node.ip),
    ];
    for other in ["node-1", "node-2"].map(|n| format!("{}-{n}", guard.name)) {
        let prefixes = remote_prefixes(&other);
        assert!(
            expected.iter().all(|p| prefixes.contains(p)),
            "{other} reaches {joined}: {prefixes:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pinned.yaml");
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: pinned, namespace: default}}\nspec:\n  nodeName: {joined}\n  containers: [{{name: c, image: busybox, ports: [{{containerPort: 8080}}]}}]\n"
    );
    std::fs::write(&file, manifest).unwrap();
    lab.apply(&file).unwrap();
    let pinned = lab.state.pod("default/pinned").unwrap().clone();
    assert_eq!(pinned.node, joined);
    let answer = lab
        .probe(
            "default/client",
            &format!("{}:8080", pinned.ip),
            false,
            Duration::from_secs(2),
        )
        .unwrap();
    assert_eq!(answer, Ok("default/pinned".to_owned()));

    lab.remove_node(&joined).unwrap();
    assert!(
        lab.state.pod("default/pinned").is_none(),
        "its pods went with it"
    );
    for other in ["node-1", "node-2"].map(|n| format!("{}-{n}", guard.name)) {
        let prefixes = remote_prefixes(&other);
        assert!(
            expected.iter().all(|p| !prefixes.contains(p)),
            "{other} no longer routes to {joined}: {prefixes:?}"
        );
    }
    // The same index joins again at once: the removed node's underlay port was deleted with it, not
    // left for the kernel to reap after its namespace.
    let again = lab.add_node(false).unwrap();
    assert_eq!(again, joined, "the freed index is reused");
    let back = lab.state.node(&again).unwrap().ip;
    assert!(
        remote_prefixes(&first).contains(&(back, 32, back)),
        "{first} reaches {again} again"
    );
    // Its pods are reachable at once: the node came back at the MAC its neighbours remember.
    lab.apply(&file).unwrap();
    let pinned = lab.state.pod("default/pinned").unwrap().clone();
    let answer = lab
        .probe(
            "default/client",
            &format!("{}:8080", pinned.ip),
            false,
            Duration::from_secs(2),
        )
        .unwrap();
    assert_eq!(answer, Ok("default/pinned".to_owned()), "on {again} again");
}

/// Restarting the agents of both ends keeps an established cross-node connection: the VXLAN device,
/// its program links and REMOTE_V1 are adopted, not rebuilt, and nothing is torn down meanwhile.
#[test]
fn restarting_both_agents_keeps_a_cross_node_connection() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("or");
    let mut lab = Lab::up(&guard.name, 2, Some(&examples().join("pods.yaml"))).expect("lab up");
    let (sender, receiver) = pods_apart(&lab);
    let listener = netns::run_in(&netns::path(&receiver.netns), || {
        TcpListener::bind((Ipv4Addr::UNSPECIFIED, 9103))
    })
    .unwrap()
    .unwrap();
    let echo = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => stream.write_all(&buf[..n]).unwrap(),
            }
        }
    });
    let target = SocketAddr::from((receiver.ip, 9103));
    let mut stream = netns::run_in(&netns::path(&sender.netns), move || {
        TcpStream::connect_timeout(&target, Duration::from_secs(2))
    })
    .unwrap()
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut roundtrip = |message: &[u8]| {
        stream.write_all(message).unwrap();
        let mut buf = vec![0u8; message.len()];
        stream.read_exact(&mut buf).unwrap();
        buf
    };
    assert_eq!(roundtrip(b"before"), b"before");
    let nodes: Vec<String> = lab.state.nodes.iter().map(|n| n.name.clone()).collect();
    for node in &nodes {
        lab.restart_agent(node).unwrap();
        assert_eq!(roundtrip(b"during"), b"during", "after restarting {node}");
    }
    assert_eq!(roundtrip(b"after"), b"after");
    drop(stream);
    echo.join().unwrap();
    // The restarted agents still route to each other (new connections too).
    let answer = lab
        .probe(
            &pod_key(&sender),
            &format!("{}:8080", receiver.ip),
            false,
            Duration::from_secs(2),
        )
        .unwrap();
    assert_eq!(answer, Ok(pod_key(&receiver)));
}
