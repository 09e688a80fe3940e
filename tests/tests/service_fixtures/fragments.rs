//! Fragmented datagrams of translated flows: the first fragment (which carries the UDP header) is
//! translated and leaves its ports behind, the later fragments get the same address rewrite, and the
//! reassembled datagram's checksum verifies for the translated addresses. A later fragment whose first
//! was never seen is left alone.

use crate::harness::*;

/// The IPv4 packet of `frame` split after `split` bytes of its payload (a multiple of 8) into two
/// fragments with identification `id`, each with a correct header checksum.
fn fragments_of(frame: &[u8], split: usize, id: u16) -> [Vec<u8>; 2] {
    assert_eq!(split % 8, 0);
    let payload = &frame[34..];
    let piece = |bytes: &[u8], flags_and_offset: u16| {
        let mut out = frame[..34].to_vec();
        out.extend_from_slice(bytes);
        let total = (20 + bytes.len()) as u16;
        let out = with_ip_bytes(out, 2, &total.to_be_bytes());
        let out = with_ip_bytes(out, 4, &id.to_be_bytes());
        with_ip_bytes(out, 6, &flags_and_offset.to_be_bytes())
    };
    [
        piece(&payload[..split], 0x2000),
        piece(&payload[split..], (split / 8) as u16),
    ]
}

/// The UDP datagram of two fragments put back together, as a frame with the first one's headers.
fn reassembled(first: &[u8], later: &[u8]) -> Vec<u8> {
    let mut frame = first.to_vec();
    frame.extend_from_slice(&later[34..]);
    let total = (frame.len() - 14) as u16;
    let frame = with_ip_bytes(frame, 2, &total.to_be_bytes());
    with_ip_bytes(frame, 6, &0u16.to_be_bytes())
}

/// A 40-byte payload, so the datagram splits into 24 + 24 bytes.
const PAYLOAD: [u8; 40] = *b"a datagram too big for the path's MTU...";

#[test]
fn fragments_of_a_node_port_datagram_are_translated_alike_both_ways() {
    let client = sock(CLIENT, 50000);
    let node_port = sock(NODE_IP, 30053);
    let backend = sock(DST, 5353);
    let entry = service(node_port, L4Proto::Udp, &[backend], Some(cluster_policy()));
    let mut node = Node::with_node_ip(&[entry]);

    let query = udp_datagram(FROM_ROUTER, client, node_port, &PAYLOAD);
    let [first, later] = fragments_of(&query, 24, 0x1234);
    let first_out = node.run_from_uplink(&first, NAT_TO_POD);
    let snat = source(&first_out);
    assert_eq!(*snat.ip(), NODE_IP);
    assert_eq!(destination(&first_out), backend);
    let later_out = node.run_from_uplink(&later, NAT_TO_POD);
    assert!(ip_checksum_ok(&first_out) && ip_checksum_ok(&later_out));
    assert_eq!(
        &later_out[26..34],
        &first_out[26..34],
        "same addresses as the first fragment"
    );
    assert_eq!(
        &later_out[34..],
        &later[34..],
        "the later fragment's payload is untouched"
    );
    assert_eq!(macs(&later_out), DELIVERED_TO_DST);
    let datagram = reassembled(&first_out, &later_out);
    assert!(
        l4_checksum_ok(&datagram),
        "the reassembled datagram's UDP checksum verifies for the translated addresses"
    );
    assert_eq!(&datagram[42..], &PAYLOAD);

    // The backend's answer, fragmented by its own stack, goes back to the client from the node port.
    let answer = udp_datagram(SENT_BY_DST, backend, snat, &PAYLOAD);
    let [first, later] = fragments_of(&answer, 16, 0x4321);
    let first_out = node.run_from_pod(&first, REVNAT_TO_STACK);
    let later_out = node.run_from_pod(&later, REVNAT_TO_STACK);
    assert_eq!(
        (source(&first_out), destination(&first_out)),
        (node_port, client)
    );
    assert_eq!(&later_out[26..34], &first_out[26..34]);
    assert!(ip_checksum_ok(&later_out));
    assert!(l4_checksum_ok(&reassembled(&first_out, &later_out)));
}

#[test]
fn a_later_fragment_without_its_first_is_left_alone() {
    let node_port = sock(NODE_IP, 30053);
    let entry = service(
        node_port,
        L4Proto::Udp,
        &[sock(DST, 5353)],
        Some(cluster_policy()),
    );
    let mut node = Node::with_node_ip(&[entry]);
    let query = udp_datagram(FROM_ROUTER, sock(CLIENT, 50000), node_port, &PAYLOAD);
    let [_, later] = fragments_of(&query, 24, 0x7777);
    let out = node.run_from_uplink(&later, TO_STACK);
    assert_eq!(
        out, later,
        "not translated: no first fragment gave its ports"
    );
    assert!(node.ct().is_empty(), "a later fragment opens no flow");
}
