//! ICMP errors about translated flows: the quoted packet is translated back to what the flow's sender
//! sent, the error goes to that sender, and every checksum (outer IPv4, ICMP, quoted IPv4, quoted UDP)
//! still verifies, recomputed here in full. Errors about no flow, or a pod's error about a flow it is
//! not the destination of, are not touched.

use crate::harness::*;

/// A router between the node and the client.
const ROUTER: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
const ICMP_NAT: Outcome = (TC_ACT_REDIRECT, Reason::IcmpErrorNat);
const ICMP_NAT_TO_STACK: Outcome = (TC_ACT_OK, Reason::IcmpErrorNat);

/// An ICMP error (type, code) from `from` to `to` quoting the IPv4 packet of `quoted` (a frame), cut to
/// `quote_len` bytes of it, with correct checksums; the frame arrives with `macs`.
fn icmp_error(
    macs: Macs,
    (from, to): (Ipv4Addr, Ipv4Addr),
    (icmp_type, code): (u8, u8),
    quoted: &[u8],
    quote_len: usize,
) -> Vec<u8> {
    let quote = &quoted[14..14 + quote_len.min(quoted.len() - 14)];
    let mut message = vec![icmp_type, code, 0, 0, 0, 0];
    // Fragmentation needed carries the next hop's MTU.
    message.extend_from_slice(&1400u16.to_be_bytes());
    message.extend_from_slice(quote);
    let sum = !ones_sum(&[&message]);
    message[2..4].copy_from_slice(&sum.to_be_bytes());
    let total = (20 + message.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&from.octets());
    ip.extend_from_slice(&to.octets());
    let sum = !ones_sum(&[&ip]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut frame = macs.dst.to_vec();
    frame.extend_from_slice(&macs.src);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&message);
    frame
}

/// The outer addresses of an ICMP error frame.
fn outer(frame: &[u8]) -> (Ipv4Addr, Ipv4Addr) {
    let addr = |at: usize| Ipv4Addr::new(frame[at], frame[at + 1], frame[at + 2], frame[at + 3]);
    (addr(26), addr(30))
}

/// The quoted packet of an ICMP error frame, as a frame of its own (the error's Ethernet header).
fn quoted(frame: &[u8]) -> Vec<u8> {
    let mut inner = frame[..14].to_vec();
    inner.extend_from_slice(&frame[42..]);
    inner
}

/// Checks the outer IPv4 and the ICMP checksums, and the quoted IPv4 header's.
fn assert_icmp_checksums(frame: &[u8], what: &str) {
    assert!(ip_checksum_ok(frame), "{what}: outer IPv4 checksum");
    assert_eq!(ones_sum(&[&frame[34..]]), 0xffff, "{what}: ICMP checksum");
    assert!(
        ip_checksum_ok(&quoted(frame)),
        "{what}: quoted IPv4 checksum"
    );
}

/// A NodePort flow (TCP or UDP) from CLIENT through the node to pod DST, opened and answered once:
/// (node, client, node port, SNAT source, backend).
fn node_port_flow(
    proto: L4Proto,
) -> (Node, SocketAddrV4, SocketAddrV4, SocketAddrV4, SocketAddrV4) {
    let client = sock(CLIENT, 50000);
    let node_port = sock(NODE_IP, 30080);
    let backend = sock(DST, 8080);
    let mut node = Node::with_node_ip(&[service(
        node_port,
        proto,
        &[backend],
        Some(cluster_policy()),
    )]);
    let first = match proto {
        L4Proto::Tcp => tcp(FROM_ROUTER, client, node_port, TCP_SYN),
        L4Proto::Udp => udp(FROM_ROUTER, client, node_port),
    };
    let snat = source(&node.run_from_uplink(&first, NAT_TO_POD));
    (node, client, node_port, snat, backend)
}

#[test]
fn fragmentation_needed_for_a_reply_reaches_the_backend_translated() {
    let (mut node, client, node_port, snat, backend) = node_port_flow(L4Proto::Tcp);
    // The backend's reply left the node as node port -> client; a router on the way cannot pass it.
    let reply = tcp(SENT_BY_DST, backend, snat, TCP_SYN | TCP_ACK);
    let sent = node.run_from_pod(&reply, REVNAT_TO_STACK);
    assert_eq!((source(&sent), destination(&sent)), (node_port, client));
    let error = icmp_error(FROM_ROUTER, (ROUTER, NODE_IP), (3, 4), &sent, 28);

    let out = node.run_from_uplink(&error, ICMP_NAT);
    assert_icmp_checksums(&out, "fragmentation needed");
    assert_eq!(
        outer(&out),
        (ROUTER, DST),
        "from the router, to the backend pod"
    );
    let inner = quoted(&out);
    assert_eq!(
        (source(&inner), destination(&inner)),
        (backend, snat),
        "the quoted packet is the backend's own, as it sent it"
    );
    assert_eq!(
        (&out[34..36], &out[38..42]),
        (&error[34..36], &error[38..42]),
        "type, code and MTU kept"
    );
    assert_eq!(
        macs(&out),
        DELIVERED_TO_DST,
        "delivered into the backend's pod"
    );
}

#[test]
fn a_clients_port_unreachable_reaches_the_backend_from_the_node() {
    let (mut node, client, node_port, snat, backend) = node_port_flow(L4Proto::Udp);
    let reply = udp(SENT_BY_DST, backend, snat);
    let sent = node.run_from_pod(&reply, REVNAT_TO_STACK);
    // The client's host answers from the client's own address, quoting the whole datagram.
    let error = icmp_error(FROM_ROUTER, (CLIENT, NODE_IP), (3, 3), &sent, 20 + 8 + 5);

    let out = node.run_from_uplink(&error, ICMP_NAT);
    assert_icmp_checksums(&out, "port unreachable");
    assert_eq!(
        outer(&out),
        (NODE_IP, DST),
        "the destination answered itself: the error comes from the address the backend sent to"
    );
    let inner = quoted(&out);
    assert_eq!((source(&inner), destination(&inner)), (backend, snat));
    assert!(
        l4_checksum_ok(&inner),
        "the quoted UDP checksum matches the quoted datagram"
    );
    assert_eq!(
        &out[42..],
        &reply[14..],
        "the quote is exactly what the backend sent ({client} -> {node_port} translated back)"
    );
}

#[test]
fn a_backends_port_unreachable_reaches_the_client_from_the_node_port() {
    let (mut node, client, node_port, snat, backend) = node_port_flow(L4Proto::Udp);
    // The datagram reached the backend as snat -> backend; its port is closed.
    let delivered = udp(DELIVERED_TO_DST, snat, backend);
    let error = icmp_error(SENT_BY_DST, (DST, NODE_IP), (3, 3), &delivered, 20 + 8 + 5);

    let out = node.run_from_pod(&error, ICMP_NAT_TO_STACK);
    assert_icmp_checksums(&out, "backend's port unreachable");
    assert_eq!(
        outer(&out),
        (NODE_IP, CLIENT),
        "from the node port's address to the client"
    );
    let inner = quoted(&out);
    assert_eq!((source(&inner), destination(&inner)), (client, node_port));
    assert!(
        l4_checksum_ok(&inner),
        "the quoted UDP checksum matches the quoted datagram"
    );
}

#[test]
fn errors_about_no_flow_or_someone_elses_flow_are_left_alone() {
    let (mut node, client, node_port, snat, backend) = node_port_flow(L4Proto::Udp);
    node.run_from_pod(&udp(SENT_BY_DST, backend, snat), REVNAT_TO_STACK);
    // About a flow nobody tracks.
    let stranger = udp(FROM_ROUTER, sock(NODE_IP, 40000), sock(STRANGER, 53));
    let error = icmp_error(FROM_ROUTER, (ROUTER, NODE_IP), (3, 4), &stranger, 28);
    let out = node.run_from_uplink(&error, TO_STACK);
    assert_eq!(out, error);
    // The backend pod (part of the flow) quoting the reply as it left for the client: it was not that
    // packet's destination, so it cannot report on it.
    let to_client = udp(SENT_BY_DST, node_port, client);
    let forged = icmp_error(SENT_BY_DST, (DST, NODE_IP), (3, 4), &to_client, 28);
    let out = node.run_from_pod(&forged, TO_STACK);
    assert_eq!(
        out, forged,
        "a pod cannot steer errors into flows it does not receive"
    );
}
