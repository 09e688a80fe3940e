//! Flow expiry: a flow lives as long as either direction is used, and closes only once both sides
//! have. A one-way UDP stream and a half-closed TCP flow keep their translation in the programs and
//! survive the agent's sweeper.

use crate::harness::*;

const SECOND: u64 = 1_000_000_000;

/// Makes `key`'s entry look last used at `seen_ns` (only its timestamp changes).
fn age(node: &mut Node, key: &CtKey, seen_ns: u64) {
    let mut entry = node.ct()[key];
    entry.last_seen_ns = seen_ns;
    node.dp.insert_conntrack(key, &entry).unwrap();
}

#[test]
fn a_udp_stream_silent_one_way_keeps_its_flow() {
    let vip = sock(VIP, 514);
    let backend = sock(DST, 5514);
    let mut node = Node::new(&[service(vip, L4Proto::Udp, &[backend], None)]);
    let client = sock(SRC, 40100);
    node.run_from_pod(&udp(SENT_BY_SRC, client, vip), NAT_TO_POD);
    node.run_from_pod(&udp(SENT_BY_DST, backend, client), REVNAT_TO_POD);
    let reply = ct_key(backend, client, UDP, CT_DIR_REPLY);

    // The backend has not answered for 200 s (past UDP's 120 s); the client sends all the time.
    let now = monotonic_ns();
    age(&mut node, &reply, now - 200 * SECOND);
    node.run_from_pod(&udp(SENT_BY_SRC, client, vip), NAT_TO_POD);
    let report = node.dp.sweep_conntrack(monotonic_ns()).unwrap();
    assert_eq!(report.expired, 0, "{report:?}");
    assert_eq!(node.ct().len(), 2, "both entries stay: {:#?}", node.ct());
    // A late answer is still translated back.
    let out = node.run_from_pod(&udp(SENT_BY_DST, backend, client), REVNAT_TO_POD);
    assert_eq!(out, udp(DELIVERED_TO_SRC, vip, client));

    // Once both directions have been quiet for the timeout, the flow goes, both entries at once.
    let later = monotonic_ns() + 121 * SECOND;
    let report = node.dp.sweep_conntrack(later).unwrap();
    assert_eq!(report.expired, 2, "{report:?}");
    assert!(node.ct().is_empty(), "{:#?}", node.ct());
}

#[test]
fn a_half_closed_tcp_flow_lives_while_its_open_side_sends() {
    let client = sock(SRC, 40200);
    let vip = sock(VIP, 80);
    let backend = sock(DST, 8080);
    let mut node = Node::new(&[service(vip, L4Proto::Tcp, &[backend], None)]);
    node.run_from_pod(&tcp(SENT_BY_SRC, client, vip, TCP_SYN), NAT_TO_POD);
    node.run_from_pod(
        &tcp(SENT_BY_DST, backend, client, TCP_SYN | TCP_ACK),
        REVNAT_TO_POD,
    );
    node.run_from_pod(&data(SENT_BY_SRC, client, vip), NAT_TO_POD);
    // The client half-closes and then only listens.
    node.run_from_pod(
        &tcp(SENT_BY_SRC, client, vip, TCP_FIN | TCP_ACK),
        NAT_TO_POD,
    );
    let forward = ct_key(client, vip, TCP, CT_DIR_FORWARD);
    let reply = ct_key(backend, client, TCP, CT_DIR_REPLY);
    assert_eq!(
        node.states([&forward, &reply]),
        [CT_STATE_CLOSING, CT_STATE_ESTABLISHED]
    );

    // 30 s later (past the 10 s closing timeout) the server is still sending.
    age(&mut node, &forward, monotonic_ns() - 30 * SECOND);
    let out = node.run_from_pod(&data(SENT_BY_DST, backend, client), REVNAT_TO_POD);
    assert_eq!(out, data(DELIVERED_TO_SRC, vip, client));
    let report = node.dp.sweep_conntrack(monotonic_ns()).unwrap();
    assert_eq!(report.expired, 0, "{report:?}");
    // The client's ACKs of that data still reach the backend.
    let out = node.run_from_pod(&data(SENT_BY_SRC, client, vip), NAT_TO_POD);
    assert_eq!(out, data(DELIVERED_TO_DST, client, backend));

    // Once the server closes too, the closing timeout applies to the flow.
    node.run_from_pod(
        &tcp(SENT_BY_DST, backend, client, TCP_FIN | TCP_ACK),
        REVNAT_TO_POD,
    );
    assert_eq!(node.states([&forward, &reply]), [CT_STATE_CLOSING; 2]);
    let report = node
        .dp
        .sweep_conntrack(monotonic_ns() + 11 * SECOND)
        .unwrap();
    assert_eq!(report.expired, 2, "{report:?}");
}
