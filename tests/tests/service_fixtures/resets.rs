//! TCP resets of tracked flows: only a RST its sender could have sent (near the end of what that side
//! sent, or refusing a SYN by acknowledging it exactly) closes a flow; a blind one is dropped with a
//! counted reason and the flow, and its SNAT port, live on.

use crate::harness::*;

const RST_OUT_OF_WINDOW: Outcome = (TC_ACT_SHOT, Reason::DropRstOutOfWindow);

/// The backend's initial sequence number in these cases.
const BACKEND_ISN: u32 = 7_000_000;

/// A NodePort flow from CLIENT, established by a full handshake; (node, client, node port, SNAT
/// source, backend, forward key, reply key).
struct Established {
    node: Node,
    client: SocketAddrV4,
    node_port: SocketAddrV4,
    snat: SocketAddrV4,
    backend: SocketAddrV4,
    keys: [CtKey; 2],
}

fn established() -> Established {
    let client = sock(CLIENT, 50000);
    let node_port = sock(NODE_IP, 30080);
    let backend = sock(DST, 8080);
    let entry = service(node_port, L4Proto::Tcp, &[backend], Some(cluster_policy()));
    let mut node = Node::with_node_ip(&[entry]);
    let syn = tcp_segment_acking(FROM_ROUTER, client, node_port, TCP_SYN, (SEQ, 0), b"");
    let snat = source(&node.run_from_uplink(&syn, NAT_TO_POD));
    let syn_ack = tcp_segment_acking(
        SENT_BY_DST,
        backend,
        snat,
        TCP_SYN | TCP_ACK,
        (BACKEND_ISN, SEQ + 1),
        b"",
    );
    node.run_from_pod(&syn_ack, REVNAT_TO_STACK);
    // The client sends 100 bytes with its ACK.
    let ack = tcp_segment_acking(
        FROM_ROUTER,
        client,
        node_port,
        TCP_ACK | TCP_PSH,
        (SEQ + 1, BACKEND_ISN + 1),
        &[7; 100],
    );
    node.run_from_uplink(&ack, NAT_TO_POD);
    let keys = [
        ct_key(client, node_port, TCP, CT_DIR_FORWARD),
        ct_key(backend, snat, TCP, CT_DIR_REPLY),
    ];
    assert_eq!(node.states([&keys[0], &keys[1]]), [CT_STATE_ESTABLISHED; 2]);
    Established {
        node,
        client,
        node_port,
        snat,
        backend,
        keys,
    }
}

/// `table` with every timestamp zeroed: a dropped packet may still be the last one seen.
fn without_timestamps(mut table: HashMap<CtKey, CtEntry>) -> HashMap<CtKey, CtEntry> {
    for entry in table.values_mut() {
        entry.last_seen_ns = 0;
    }
    table
}

#[test]
fn a_blind_reset_from_outside_is_dropped_and_the_flow_lives_on() {
    let Established {
        mut node,
        client,
        node_port,
        keys: [forward, reply],
        ..
    } = established();
    let ct_before = without_timestamps(node.ct());
    // The client has sent up to SEQ + 101. Resets anywhere else but just below that are forged: far
    // ahead, half the sequence space away, just past the end, more than the window below.
    for seq in [
        SEQ + 101 + 5_000_000,
        (SEQ + 101).wrapping_add(1 << 31),
        SEQ + 102,
        (SEQ + 101).wrapping_sub(RST_WINDOW + 1),
    ] {
        let forged = tcp_segment_acking(FROM_ROUTER, client, node_port, TCP_RST, (seq, 0), b"");
        node.run_from_uplink(&forged, RST_OUT_OF_WINDOW);
    }
    let ct_after = without_timestamps(node.ct());
    assert_eq!(ct_after, ct_before, "blind resets change no entry");
    assert_eq!(node.states([&forward, &reply]), [CT_STATE_ESTABLISHED; 2]);

    // The client's own reset (its next sequence number) closes the flow.
    let real = tcp_segment_acking(FROM_ROUTER, client, node_port, TCP_RST, (SEQ + 101, 0), b"");
    node.run_from_uplink(&real, NAT_TO_POD);
    assert_eq!(node.states([&forward, &reply]), [CT_STATE_CLOSING; 2]);
}

#[test]
fn a_reset_answering_a_stray_segment_counts_within_the_window() {
    let Established {
        mut node,
        snat,
        backend,
        keys: [forward, reply],
        ..
    } = established();
    // The backend has sent only its SYN (up to BACKEND_ISN + 1); a RST a little below (answering a
    // segment that acknowledged older data) is plausible.
    let rst = tcp_segment_acking(
        SENT_BY_DST,
        backend,
        snat,
        TCP_RST | TCP_ACK,
        (BACKEND_ISN - 1_000, SEQ + 101),
        b"",
    );
    node.run_from_pod(&rst, REVNAT_TO_STACK);
    assert_eq!(node.states([&forward, &reply]), [CT_STATE_CLOSING; 2]);
}

#[test]
fn a_backend_may_refuse_a_syn_only_by_acknowledging_it() {
    let client = sock(CLIENT, 50001);
    let node_port = sock(NODE_IP, 30080);
    let backend = sock(DST, 8080);
    let entry = service(node_port, L4Proto::Tcp, &[backend], Some(cluster_policy()));
    let mut node = Node::with_node_ip(&[entry]);
    let syn = tcp_segment_acking(FROM_ROUTER, client, node_port, TCP_SYN, (SEQ, 0), b"");
    let snat = source(&node.run_from_uplink(&syn, NAT_TO_POD));
    let forward = ct_key(client, node_port, TCP, CT_DIR_FORWARD);
    let reply = ct_key(backend, snat, TCP, CT_DIR_REPLY);

    // The backend side has sent nothing: a RST must acknowledge the SYN exactly.
    let refusal = |ack, flags| tcp_segment_acking(SENT_BY_DST, backend, snat, flags, (0, ack), b"");
    node.run_from_pod(&refusal(SEQ + 2, TCP_RST | TCP_ACK), RST_OUT_OF_WINDOW);
    node.run_from_pod(&refusal(SEQ + 1, TCP_RST), RST_OUT_OF_WINDOW);
    assert_eq!(node.states([&forward, &reply]), [CT_STATE_NEW; 2]);
    node.run_from_pod(&refusal(SEQ + 1, TCP_RST | TCP_ACK), REVNAT_TO_STACK);
    assert_eq!(node.states([&forward, &reply]), [CT_STATE_CLOSING; 2]);
}

#[test]
fn conntrack_follows_the_end_of_what_each_side_sent() {
    let Established {
        mut node,
        client,
        node_port,
        snat,
        backend,
        keys: [forward, reply],
    } = established();
    let ends = |node: &mut Node| {
        let table = node.ct();
        [&forward, &reply].map(|key| (table[key].seq_seen, table[key].seq_end))
    };
    assert_eq!(ends(&mut node), [(1, SEQ + 101), (1, BACKEND_ISN + 1)]);
    // A retransmission of older data does not move the end back; a FIN counts one.
    let old = tcp_segment_acking(
        FROM_ROUTER,
        client,
        node_port,
        TCP_ACK,
        (SEQ + 1, 0),
        &[1; 10],
    );
    node.run_from_uplink(&old, NAT_TO_POD);
    let fin = TCP_FIN | TCP_ACK;
    let fin = tcp_segment_acking(
        SENT_BY_DST,
        backend,
        snat,
        fin,
        (BACKEND_ISN + 1, 0),
        &[2; 20],
    );
    node.run_from_pod(&fin, REVNAT_TO_STACK);
    assert_eq!(ends(&mut node), [(1, SEQ + 101), (1, BACKEND_ISN + 22)]);
}
