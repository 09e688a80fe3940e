//! What is refused, dropped or swept: frontends without backends (RST, ICMP), source ranges,
//! malformed packets, fragments, expired CT entries, and the checksum checks themselves.

use crate::harness::*;

#[test]
fn frontend_without_backends_is_refused() {
    let empty_cluster_ip = sock(EMPTY_VIP, 80);
    let empty_node_port = sock(NODE_IP, 30099);
    let mut node = Node::with_node_ip(&[
        service(empty_cluster_ip, L4Proto::Tcp, &[], None),
        service(empty_node_port, L4Proto::Tcp, &[], Some(cluster_policy())),
    ]);
    let pod = sock(SRC, 40000);
    let client = sock(CLIENT, 50000);

    // A pod's segment (a socket the hooks never saw) gets a RST back into the pod, from tc.
    let pod_syn = tcp(SENT_BY_SRC, pod, empty_cluster_ip, TCP_SYN);
    let out = node.run_from_pod(&pod_syn, (TC_ACT_REDIRECT, Reason::DropNoBackend));
    assert_rst(
        &out,
        &pod_syn,
        (0, SEQ + 1, TCP_RST | TCP_ACK),
        "tc RST to a pod",
    );
    // A pod's RST is not answered.
    node.run_from_pod(
        &tcp(SENT_BY_SRC, pod, empty_cluster_ip, TCP_RST),
        NO_BACKEND,
    );
    // From outside, tc answers too where no XDP program did (`--xdp-mode off`): a RST out of the
    // uplink; a RST is not answered.
    let syn = tcp(FROM_ROUTER, client, empty_node_port, TCP_SYN);
    let out = node.run_from_uplink(&syn, (TC_ACT_REDIRECT, Reason::DropNoBackend));
    assert_rst(
        &out,
        &syn,
        (0, SEQ + 1, TCP_RST | TCP_ACK),
        "tc RST from the uplink",
    );
    node.run_from_uplink(
        &tcp(FROM_ROUTER, client, empty_node_port, TCP_RST),
        NO_BACKEND,
    );
    assert!(node.ct().is_empty(), "a refused flow is not tracked");

    // XDP answers with a RST: (flags, payload) in -> (seq, ack, flags) out.
    let cases: [(u8, &[u8], u32, u32, u8); 3] = [
        (TCP_SYN, b"", 0, SEQ + 1, TCP_RST | TCP_ACK),
        (TCP_SYN, b"hello", 0, SEQ + 6, TCP_RST | TCP_ACK),
        (TCP_ACK, b"", 1, 0, TCP_RST),
    ];
    for (flags, payload, seq, ack, rst_flags) in cases {
        let segment = tcp_segment(FROM_ROUTER, client, empty_node_port, flags, SEQ, payload);
        let out = node.run_xdp(&segment, XDP_REFUSED);
        let what = format!(
            "RST for flags {flags:#04x}, {} payload bytes",
            payload.len()
        );
        assert_rst(&out, &segment, (seq, ack, rst_flags), &what);
    }
    node.run_xdp(
        &tcp(FROM_ROUTER, client, empty_node_port, TCP_RST),
        XDP_NO_BACKEND,
    );
}

/// A `Local` policy whose endpoints are all on other nodes: every hook drops without an answer (as
/// kube-proxy's DROP), where a frontend without any endpoint is refused.
#[test]
fn a_local_frontend_with_endpoints_only_elsewhere_drops_silently() {
    let node_port = sock(NODE_IP, 30097);
    let cluster_ip = sock(EMPTY_VIP, 80);
    let elsewhere = |mut entry: ServiceEntry| {
        entry.endpoints_elsewhere = true;
        entry
    };
    let local = ExternalAccess {
        local: true,
        ..cluster_policy()
    };
    let mut node = Node::with_node_ip(&[
        elsewhere(service(node_port, L4Proto::Tcp, &[], Some(local))),
        elsewhere(service(cluster_ip, L4Proto::Tcp, &[], None)),
    ]);
    let dropped = (TC_ACT_SHOT, Reason::DropNoLocalBackend);
    let syn = tcp(FROM_ROUTER, sock(CLIENT, 50000), node_port, TCP_SYN);
    node.run_xdp(&syn, (XDP_DROP, Reason::DropNoLocalBackend));
    node.run_from_uplink(&syn, dropped);
    node.run_from_pod(
        &tcp(SENT_BY_SRC, sock(SRC, 40000), cluster_ip, TCP_SYN),
        dropped,
    );
    assert!(node.ct().is_empty(), "nothing is tracked");
}

#[test]
fn udp_to_a_frontend_without_backends_gets_port_unreachable() {
    let empty_node_port = sock(NODE_IP, 30098);
    let empty_cluster_ip = sock(EMPTY_VIP, 53);
    let mut node = Node::with_node_ip(&[
        service(empty_node_port, L4Proto::Udp, &[], Some(cluster_policy())),
        service(empty_cluster_ip, L4Proto::Udp, &[], None),
    ]);
    // From outside: XDP answers.
    let query = udp(FROM_ROUTER, sock(CLIENT, 50000), empty_node_port);
    let out = node.run_xdp(&query, XDP_REFUSED);
    assert_port_unreachable(&out, &query, (NODE_IP, CLIENT));
    // From outside without XDP: tc answers the same, out of the uplink.
    let out = node.run_from_uplink(&query, (TC_ACT_REDIRECT, Reason::DropNoBackend));
    assert_port_unreachable(&out, &query, (NODE_IP, CLIENT));
    // From a pod socket the hooks never saw: tc answers, back into the pod.
    let query = udp(SENT_BY_SRC, sock(SRC, 40000), empty_cluster_ip);
    let out = node.run_from_pod(&query, (TC_ACT_REDIRECT, Reason::DropNoBackend));
    assert_port_unreachable(&out, &query, (EMPTY_VIP, SRC));
}

/// Checks that `out` is the ICMP port unreachable refusing `query`, from `from` to `to`.
fn assert_port_unreachable(out: &[u8], query: &[u8], (from, to): (Ipv4Addr, Ipv4Addr)) {
    assert_eq!(
        out.len(),
        14 + 20 + 8 + 28,
        "Ethernet, IPv4, ICMP, quoted header"
    );
    let asked = macs(query);
    let back = Macs {
        src: asked.dst,
        dst: asked.src,
    };
    assert_eq!(macs(out), back, "MACs swapped");
    assert_eq!(out[12..14], [0x08, 0x00], "EtherType");
    assert_eq!(out[14], 0x45, "IPv4 without options");
    assert_eq!(out[16..18], 56u16.to_be_bytes(), "IPv4 total length");
    assert_eq!(out[23], 1, "protocol ICMP");
    assert_eq!(out[26..30], from.octets(), "from the address asked");
    assert_eq!(out[30..34], to.octets(), "to the client");
    assert!(ip_checksum_ok(out), "IPv4 header checksum");
    assert_eq!(out[34..36], [3, 3], "destination unreachable, port");
    assert_eq!(ones_sum(&[&out[34..]]), 0xffff, "ICMP checksum");
    assert_eq!(
        out[42..],
        query[14..42],
        "quotes the datagram's IPv4 header and 8 bytes"
    );
}

/// Checks that `out` is the 54-byte RST refusing `segment`, with `(seq, ack, flags)`.
fn assert_rst(out: &[u8], segment: &[u8], (seq, ack, flags): (u32, u32, u8), what: &str) {
    assert_eq!(out.len(), 54, "{what}: Ethernet + IPv4 + TCP, nothing else");
    let asked = macs(segment);
    let back = Macs {
        src: asked.dst,
        dst: asked.src,
    };
    assert_eq!(macs(out), back, "{what}: MACs swapped");
    assert_eq!(out[12..14], [0x08, 0x00], "{what}: EtherType");
    assert_eq!(out[14], 0x45, "{what}: IPv4 without options");
    assert_eq!(
        out[16..18],
        40u16.to_be_bytes(),
        "{what}: IPv4 total length"
    );
    assert_eq!(out[23], TCP, "{what}: protocol");
    assert_eq!(
        source(out),
        destination(segment),
        "{what}: from where it went"
    );
    assert_eq!(
        destination(out),
        source(segment),
        "{what}: to where it came from"
    );
    let word = |at: usize| u32::from_be_bytes(out[at..at + 4].try_into().unwrap());
    assert_eq!(word(38), seq, "{what}: sequence number");
    assert_eq!(word(42), ack, "{what}: acknowledgment number");
    assert_eq!(out[46], 0x50, "{what}: TCP header of 20 bytes");
    assert_eq!(out[47], flags, "{what}: flags");
    assert_checksums(out, what);
}

#[test]
fn source_ranges_drop_strangers_at_xdp_and_tc() {
    let lb = sock(LB_IP, 80);
    let backend = sock(DST, 8080);
    let ranges = Some(ExternalAccess {
        local: false,
        source_ranges: vec![Prefix {
            addr: Ipv4Addr::new(172, 30, 0, 0),
            len: 24,
        }],
    });
    let mut node = Node::with_node_ip(&[service(lb, L4Proto::Tcp, &[backend], ranges)]);

    let inside = tcp(FROM_ROUTER, sock(CLIENT, 50000), lb, TCP_SYN);
    let out = node.run_xdp(&inside, XDP_TO_TC);
    assert_eq!(out, inside, "XDP passes an allowed client on unchanged");
    let outside = tcp(FROM_ROUTER, sock(STRANGER, 50000), lb, TCP_SYN);
    node.run_xdp(&outside, XDP_OUT_OF_RANGE);

    // tc enforces the ranges too (for frames XDP did not decide on).
    node.run_from_uplink(&outside, OUT_OF_RANGE);
    assert!(node.ct().is_empty(), "a refused flow is not tracked");
    let out = node.run_from_uplink(&inside, NAT_TO_POD);
    assert_eq!(destination(&out), backend);
}

#[test]
fn malformed_tcp_is_dropped_and_only_a_first_fragment_opens_a_flow() {
    let vip = sock(VIP, 80);
    let mut node = Node::new(&[service(vip, L4Proto::Tcp, &[sock(DST, 8080)], None)]);
    let syn = tcp(SENT_BY_SRC, sock(SRC, 40000), vip, TCP_SYN);

    node.run_from_pod(&short_tcp(&syn), MALFORMED);
    assert!(node.ct().is_empty(), "nothing malformed is tracked");

    // A later fragment has no transport header: nothing to open a flow by.
    let later = with_ip_bytes(syn.clone(), 6, &0x0004u16.to_be_bytes());
    let out = node.run_from_pod(&later, TO_STACK);
    assert_eq!(out, later, "later fragment: not translated");
    assert!(node.ct().is_empty(), "a later fragment opens no flow");
    // A first fragment carries the ports: it is translated like a whole packet.
    let first = with_ip_bytes(syn, 6, &0x2000u16.to_be_bytes());
    let out = node.run_from_pod(&first, NAT_TO_POD);
    assert_eq!(destination(&out), sock(DST, 8080));
    assert_eq!(node.ct().len(), 2, "the first fragment opened the flow");
}

#[test]
fn short_tcp_in_a_padded_frame_is_dropped() {
    // The short packet of the case above in a frame padded to Ethernet's 60-byte minimum, as a NIC may
    // hand it over (tc runs before the IP layer trims the padding): the IPv4 total length, not the
    // frame, bounds the TCP header.
    let vip = sock(VIP, 80);
    let mut node = Node::new(&[service(vip, L4Proto::Tcp, &[sock(DST, 8080)], None)]);
    let mut padded = short_tcp(&tcp(SENT_BY_SRC, sock(SRC, 40000), vip, TCP_SYN));
    padded.resize(60, 0);
    node.run_from_pod(&padded, MALFORMED);
    assert!(node.ct().is_empty(), "nothing malformed is tracked");
}

#[test]
fn sweep_deletes_expired_entries_by_their_state_timeout() {
    let tcp_vip = sock(VIP, 80);
    let udp_vip = sock(VIP, 53);
    let mut node = Node::new(&[
        service(tcp_vip, L4Proto::Tcp, &[sock(DST, 8080)], None),
        service(udp_vip, L4Proto::Udp, &[sock(DST, 5353)], None),
    ]);
    node.run_from_pod(
        &tcp(SENT_BY_SRC, sock(SRC, 40000), tcp_vip, TCP_SYN),
        NAT_TO_POD,
    );
    node.run_from_pod(&udp(SENT_BY_SRC, sock(SRC, 40001), udp_vip), NAT_TO_POD);
    assert_eq!(node.ct().len(), 4);

    let report = node.dp.sweep_conntrack(monotonic_ns()).unwrap();
    assert_eq!(
        (report.expired, report.live),
        (0, 4),
        "nothing expired yet: {report:?}"
    );

    // 45 s on: past UDP's 30 s without an answer, within TCP's 60 s for an opening connection.
    let report = node
        .dp
        .sweep_conntrack(monotonic_ns() + 45_000_000_000)
        .unwrap();
    assert_eq!((report.expired, report.live), (2, 2), "{report:?}");
    let left = node.ct();
    assert!(
        left.keys().all(|k| k.proto == TCP),
        "the UDP flow went: {left:#?}"
    );

    let report = node.dp.sweep_conntrack(FAR_FUTURE).unwrap();
    assert_eq!((report.expired, report.live), (2, 0), "{report:?}");
    assert!(node.ct().is_empty());
}

#[test]
fn checksum_helpers_catch_a_flipped_bit() {
    // The checks above are only as good as these helpers: a valid frame passes, one flipped bit fails.
    let frame = data(SENT_BY_SRC, sock(SRC, 40000), sock(VIP, 80));
    assert!(ip_checksum_ok(&frame) && l4_checksum_ok(&frame));
    let mut flipped = frame.clone();
    flipped[20] ^= 0x01;
    assert!(!ip_checksum_ok(&flipped), "IPv4 header bit");
    let mut flipped = frame;
    flipped[56] ^= 0x01;
    assert!(!l4_checksum_ok(&flipped), "payload bit");
}

/// An on-link host forging a source that exists only inside the node (a local pod, the node itself, the
/// hairpin source) is dropped by both uplink programs, before any CT lookup: it cannot pose as a
/// backend's reply to a tracked flow.
#[test]
fn forged_node_local_sources_from_the_uplink_are_dropped() {
    let node_port = sock(NODE_IP, 30080);
    let backend = sock(DST, 8080);
    let entry = service(node_port, L4Proto::Tcp, &[backend], Some(cluster_policy()));
    let mut node = Node::with_node_ip(&[entry]);
    // A tracked NodePort flow, SNATed to the node.
    let client = sock(CLIENT, 50000);
    let out = node.run_from_uplink(&tcp(FROM_ROUTER, client, node_port, TCP_SYN), NAT_TO_POD);
    let snat = source(&out);
    let flows = node.ct();

    let spoofed = (TC_ACT_SHOT, Reason::DropSpoofedSource);
    let xdp_spoofed = (XDP_DROP, Reason::DropSpoofedSource);
    for (forged, what) in [
        (backend, "the backend pod's address (a forged reply)"),
        (sock(SRC, 8080), "another local pod's address"),
        (sock(NODE_IP, 22), "the node's own address"),
        (sock(HAIRPIN_SRC, 8080), "the hairpin source"),
    ] {
        let reply = tcp(FROM_ROUTER, forged, snat, TCP_SYN | TCP_ACK);
        node.run_from_uplink(&reply, spoofed);
        node.run_xdp(&reply, xdp_spoofed);
        let to_node_port = udp(FROM_ROUTER, forged, node_port);
        node.run_from_uplink(&to_node_port, spoofed);
        node.run_xdp(&to_node_port, xdp_spoofed);
        assert_eq!(node.ct(), flows, "{what}: no flow opened or changed");
    }
    // The real client still gets through.
    node.run_from_uplink(&data(FROM_ROUTER, client, node_port), NAT_TO_POD);
}
