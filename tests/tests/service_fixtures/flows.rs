//! Translated flows: DNAT, reverse NAT, CT states, SNAT, hairpin, Maglev and the XDP fast path.

use crate::harness::*;

// --- cases ----------------------------------------------------------------------------------------

#[test]
fn cluster_ip_flow_from_a_pod_is_translated_tracked_and_reversed() {
    let client = sock(SRC, 40000);
    let vip = sock(VIP, 80);
    let backend = sock(DST, 8080);
    let mut node = Node::new(&[service(vip, L4Proto::Tcp, &[backend], None)]);

    // 1. The first packet is DNATed to the only backend and opens both entries.
    let out = node.run_from_pod(&tcp(SENT_BY_SRC, client, vip, TCP_SYN), NAT_TO_POD);
    assert_checksums(&out, "DNATed SYN");
    assert_eq!(
        out,
        tcp(DELIVERED_TO_DST, client, backend, TCP_SYN),
        "SYN to the VIP becomes SYN to the backend, delivered to its pod"
    );
    assert_eq!(node.ct().len(), 2, "{:#?}", node.ct());
    let forward = ct_key(client, vip, TCP, CT_DIR_FORWARD);
    let reply = ct_key(backend, client, TCP, CT_DIR_REPLY);
    let forward_id = node.assert_ct(&forward, [client, backend], CT_STATE_NEW, 0);
    let reply_id = node.assert_ct(&reply, [vip, client], CT_STATE_NEW, 0);
    assert_eq!(forward_id, reply_id, "both directions name one service");

    // 2. The backend's reply comes back from the VIP; the handshake is half done in both directions.
    let syn_ack = tcp(SENT_BY_DST, backend, client, TCP_SYN | TCP_ACK);
    let out = node.run_from_pod(&syn_ack, REVNAT_TO_POD);
    assert_checksums(&out, "reversed SYN-ACK");
    assert_eq!(
        out,
        tcp(DELIVERED_TO_SRC, vip, client, TCP_SYN | TCP_ACK),
        "the reply appears to come from the VIP"
    );
    assert_eq!(
        node.states([&forward, &reply]),
        [CT_STATE_SYN_RECV; 2],
        "the first reply moves both directions to SYN_RECV, not yet established"
    );

    // 3. The opener's ACK establishes both directions; later forward packets use the entry and open
    // nothing; a FIN closes the forward side.
    let out = node.run_from_pod(&data(SENT_BY_SRC, client, vip), NAT_TO_POD);
    assert_checksums(&out, "tracked data segment");
    assert_eq!(out, data(DELIVERED_TO_DST, client, backend));
    assert_eq!(node.ct().len(), 2, "{:#?}", node.ct());
    assert_eq!(
        node.states([&forward, &reply]),
        [CT_STATE_ESTABLISHED; 2],
        "the opener's ACK establishes both directions"
    );

    let fin = TCP_FIN | TCP_ACK;
    let out = node.run_from_pod(&tcp(SENT_BY_SRC, client, vip, fin), NAT_TO_POD);
    assert_checksums(&out, "tracked FIN");
    assert_eq!(out, tcp(DELIVERED_TO_DST, client, backend, fin));
    assert_eq!(node.ct().len(), 2, "{:#?}", node.ct());
    assert_eq!(
        node.states([&forward, &reply]),
        [CT_STATE_CLOSING, CT_STATE_ESTABLISHED],
        "a FIN closes the direction that sent it"
    );

    // 4. A RST closes both directions, also the one that sent no FIN (here it comes from the side whose
    //    entry is already closing).
    let rst = TCP_RST | TCP_ACK;
    let out = node.run_from_pod(&tcp(SENT_BY_SRC, client, vip, rst), NAT_TO_POD);
    assert_eq!(out, tcp(DELIVERED_TO_DST, client, backend, rst));
    assert_eq!(
        node.states([&forward, &reply]),
        [CT_STATE_CLOSING; 2],
        "a RST closes the flow in both directions"
    );
}

#[test]
fn udp_checksums_survive_dnat_and_a_zero_checksum_stays_zero() {
    let vip = sock(VIP, 53);
    let backend = sock(DST, 5353);
    let mut node = Node::new(&[service(vip, L4Proto::Udp, &[backend], None)]);

    let client = sock(SRC, 40001);
    let out = node.run_from_pod(&udp(SENT_BY_SRC, client, vip), NAT_TO_POD);
    assert_checksums(&out, "DNATed UDP");
    assert_eq!(out, udp(DELIVERED_TO_DST, client, backend));

    let out = node.run_from_pod(&udp(SENT_BY_DST, backend, client), REVNAT_TO_POD);
    assert_checksums(&out, "reversed UDP");
    assert_eq!(out, udp(DELIVERED_TO_SRC, vip, client));
    let forward = ct_key(client, vip, UDP, CT_DIR_FORWARD);
    let reply = ct_key(backend, client, UDP, CT_DIR_REPLY);
    assert_eq!(
        node.states([&forward, &reply]),
        [CT_STATE_ESTABLISHED; 2],
        "an answer establishes a UDP flow"
    );

    let client = sock(SRC, 40002);
    let query = unsummed(udp(SENT_BY_SRC, client, vip));
    let out = node.run_from_pod(&query, NAT_TO_POD);
    assert!(ip_checksum_ok(&out), "IPv4 header checksum after DNAT");
    assert_eq!(
        out,
        unsummed(udp(DELIVERED_TO_DST, client, backend)),
        "a zero UDP checksum (none) stays zero"
    );
}

#[test]
fn hairpin_flow_gets_the_hairpin_source_and_is_reversed() {
    let client = sock(SRC, 40000);
    let vip = sock(HAIRPIN_VIP, 80);
    let backend = sock(SRC, 8080);
    let mut node = Node::new(&[service(vip, L4Proto::Tcp, &[backend], None)]);

    let out = node.run_from_pod(&tcp(SENT_BY_SRC, client, vip, TCP_SYN), NAT_TO_POD);
    let snat = source(&out);
    assert_eq!(
        *snat.ip(),
        HAIRPIN_SRC,
        "a pod reaching itself gets the hairpin source"
    );
    assert_snat_port(snat.port(), "hairpin");
    assert_checksums(&out, "hairpin SYN");
    assert_eq!(out, tcp(DELIVERED_TO_SRC, snat, backend, TCP_SYN));

    assert_eq!(node.ct().len(), 2, "{:#?}", node.ct());
    let forward = ct_key(client, vip, TCP, CT_DIR_FORWARD);
    let reply = ct_key(backend, snat, TCP, CT_DIR_REPLY);
    node.assert_ct(&forward, [snat, backend], CT_STATE_NEW, CT_F_SNAT);
    node.assert_ct(&reply, [vip, client], CT_STATE_NEW, CT_F_SNAT);

    let syn_ack = tcp(SENT_BY_SRC, backend, snat, TCP_SYN | TCP_ACK);
    let out = node.run_from_pod(&syn_ack, REVNAT_TO_POD);
    assert_checksums(&out, "reversed hairpin SYN-ACK");
    assert_eq!(
        out,
        tcp(DELIVERED_TO_SRC, vip, client, TCP_SYN | TCP_ACK),
        "the pod sees its own reply come from the VIP"
    );
    assert_eq!(node.states([&forward, &reply]), [CT_STATE_SYN_RECV; 2]);
}

/// Fills the whole SNAT range towards `backend` with NodePort flows in the given states (forward, reply),
/// both last used at `last_seen_ns`, one old client per port; returns each port's forward key by port.
fn fill_snat_range(
    node: &mut Node,
    node_port: SocketAddrV4,
    backend: SocketAddrV4,
    last_seen_ns: u64,
    [forward_state, reply_state]: [u8; 2],
) -> HashMap<u16, CtKey> {
    let mut forwards = HashMap::new();
    for i in 0..SNAT_PORT_COUNT {
        let port = SNAT_PORT_MIN + i;
        let old = sock(
            Ipv4Addr::new(172, 31, (i / 256) as u8, (i % 256) as u8),
            40000,
        );
        let snat = sock(NODE_IP, port);
        let entry = |new_src: SocketAddrV4, new_dst: SocketAddrV4, state: u8| CtEntry {
            last_seen_ns,
            new_saddr: wire_addr(*new_src.ip()),
            new_sport: new_src.port().to_be(),
            new_dport: new_dst.port().to_be(),
            new_daddr: wire_addr(*new_dst.ip()),
            state,
            flags: CT_F_SNAT,
            ..CtEntry::default()
        };
        let forward = ct_key(old, node_port, TCP, CT_DIR_FORWARD);
        let reply = ct_key(backend, snat, TCP, CT_DIR_REPLY);
        node.dp
            .insert_conntrack(&forward, &entry(snat, backend, forward_state))
            .unwrap();
        node.dp
            .insert_conntrack(&reply, &entry(node_port, old, reply_state))
            .unwrap();
        forwards.insert(port, forward);
    }
    forwards
}

/// A NodePort service with one backend on a node with a node IP: (node, node port, backend).
fn node_port_node() -> (Node, SocketAddrV4, SocketAddrV4) {
    let node_port = sock(NODE_IP, 30080);
    let backend = sock(DST, 8080);
    let entry = service(node_port, L4Proto::Tcp, &[backend], Some(cluster_policy()));
    (Node::with_node_ip(&[entry]), node_port, backend)
}

/// Sends a new client's SYN to `node_port` and expects it to be dropped for want of a SNAT port, with
/// no flow disturbed.
fn assert_no_snat_port_for_a_new_flow(node: &mut Node, node_port: SocketAddrV4, why: &str) {
    let syn = tcp(FROM_ROUTER, sock(CLIENT, 50000), node_port, TCP_SYN);
    node.run_from_uplink(&syn, (TC_ACT_SHOT, Reason::DropNatFailed));
    assert_eq!(
        node.ct().len(),
        2 * usize::from(SNAT_PORT_COUNT),
        "{why}: no flow was disturbed"
    );
}

#[test]
fn a_snat_port_held_by_a_flow_that_just_closed_is_not_reused() {
    let (mut node, node_port, backend) = node_port_node();
    // Seen "now" even once the range is filled, however long filling takes.
    let now = monotonic_ns() + 5_000_000_000;
    fill_snat_range(&mut node, node_port, backend, now, [CT_STATE_CLOSING; 2]);
    assert_no_snat_port_for_a_new_flow(&mut node, node_port, "just closed");
}

#[test]
fn a_half_closed_flow_keeps_its_snat_port_however_quiet() {
    let (mut node, node_port, backend) = node_port_node();
    let two_seconds_ago = monotonic_ns() - 2_000_000_000;
    for states in [
        [CT_STATE_CLOSING, CT_STATE_ESTABLISHED],
        [CT_STATE_ESTABLISHED, CT_STATE_CLOSING],
    ] {
        fill_snat_range(&mut node, node_port, backend, two_seconds_ago, states);
        assert_no_snat_port_for_a_new_flow(&mut node, node_port, &format!("{states:?}"));
    }
}

#[test]
fn a_syn_reusing_a_closed_flows_tuple_reopens_both_entries_and_keeps_its_snat_port() {
    let (mut node, node_port, backend) = node_port_node();
    let quiet = monotonic_ns() - 2 * SNAT_REUSE_CLOSED_NS;
    let forwards = fill_snat_range(&mut node, node_port, backend, quiet, [CT_STATE_CLOSING; 2]);

    // The client behind port SNAT_PORT_MIN + 1 connects again from the same port (tcp_tw_reuse).
    let port = SNAT_PORT_MIN + 1;
    let old = sock(Ipv4Addr::new(172, 31, 0, 1), 40000);
    let out = node.run_from_uplink(&tcp(FROM_ROUTER, old, node_port, TCP_SYN), NAT_TO_POD);
    assert_eq!(
        source(&out),
        sock(NODE_IP, port),
        "the flow keeps its SNAT port"
    );
    let reply = ct_key(backend, sock(NODE_IP, port), TCP, CT_DIR_REPLY);
    assert_eq!(
        node.states([&forwards[&port], &reply]),
        [CT_STATE_NEW; 2],
        "both directions are open again, so the port cannot be taken over as closed and quiet"
    );
}

#[test]
fn a_snat_port_of_a_flow_closed_from_both_sides_and_quiet_goes_to_a_new_flow() {
    let (mut node, node_port, backend) = node_port_node();
    let quiet = monotonic_ns() - 2 * SNAT_REUSE_CLOSED_NS;
    let forwards = fill_snat_range(&mut node, node_port, backend, quiet, [CT_STATE_CLOSING; 2]);

    let client = sock(CLIENT, 50000);
    let out = node.run_from_uplink(&tcp(FROM_ROUTER, client, node_port, TCP_SYN), NAT_TO_POD);
    let snat = source(&out);
    assert_snat_port(snat.port(), "taken over");
    let table = node.ct();
    let old_forward = forwards[&snat.port()];
    assert!(
        !table.contains_key(&old_forward),
        "the old flow's forward entry goes with its port"
    );
    assert_eq!(
        table.len(),
        2 * usize::from(SNAT_PORT_COUNT),
        "the old reply entry is overwritten, its forward entry removed, the new forward entry added"
    );
    let reply = ct_key(backend, snat, TCP, CT_DIR_REPLY);
    node.assert_ct(
        &reply,
        [node_port, client],
        CT_STATE_NEW,
        CT_F_SNAT | CT_F_TO_UPLINK,
    );
}

#[test]
fn a_sweep_racing_a_snat_takeover_spares_the_new_flow() {
    let (mut node, node_port, backend) = node_port_node();
    // Closed 20 s ago: past the 10 s closing timeout, so every entry is expired.
    let expired = monotonic_ns() - 20_000_000_000;
    fill_snat_range(
        &mut node,
        node_port,
        backend,
        expired,
        [CT_STATE_CLOSING; 2],
    );
    // The sweeper reads the table; before it deletes anything, a new flow takes a port over.
    let snapshot = node.dp.conntrack_entries().unwrap();
    let client = sock(CLIENT, 50000);
    let out = node.run_from_uplink(&tcp(FROM_ROUTER, client, node_port, TCP_SYN), NAT_TO_POD);
    let snat = source(&out);
    let report = node
        .dp
        .sweep_conntrack_from(&snapshot, monotonic_ns())
        .unwrap();
    let forward = ct_key(client, node_port, TCP, CT_DIR_FORWARD);
    let reply = ct_key(backend, snat, TCP, CT_DIR_REPLY);
    let table = node.ct();
    assert_eq!(table.len(), 2, "only the new flow is left: {report:?}");
    assert_eq!(
        node.states([&forward, &reply]),
        [CT_STATE_NEW; 2],
        "the new flow keeps both entries, although its reply key was expired in the snapshot"
    );
    let others = 2 * usize::from(SNAT_PORT_COUNT - 1);
    assert_eq!((report.expired, report.live), (others, 2));
}

#[test]
fn node_port_from_the_uplink_is_snated_to_the_node_and_reversed() {
    let client = sock(CLIENT, 50000);
    let node_port = sock(NODE_IP, 30080);
    let backend = sock(DST, 8080);
    let entry = service(node_port, L4Proto::Tcp, &[backend], Some(cluster_policy()));
    let mut node = Node::with_node_ip(&[entry]);

    let syn = tcp(FROM_ROUTER, client, node_port, TCP_SYN);
    let out = node.run_from_uplink(&syn, NAT_TO_POD);
    let snat = source(&out);
    assert_eq!(
        *snat.ip(),
        NODE_IP,
        "externalTrafficPolicy Cluster: SNAT to the node"
    );
    assert_snat_port(snat.port(), "NodePort");
    assert_checksums(&out, "SNATed NodePort SYN");
    assert_eq!(out, tcp(DELIVERED_TO_DST, snat, backend, TCP_SYN));

    assert_eq!(node.ct().len(), 2, "{:#?}", node.ct());
    let forward = ct_key(client, node_port, TCP, CT_DIR_FORWARD);
    let reply = ct_key(backend, snat, TCP, CT_DIR_REPLY);
    node.assert_ct(&forward, [snat, backend], CT_STATE_NEW, CT_F_SNAT);
    let reply_flags = CT_F_SNAT | CT_F_TO_UPLINK;
    node.assert_ct(&reply, [node_port, client], CT_STATE_NEW, reply_flags);

    // The reply leaves for the client; without an uplink it goes to the node's stack.
    let syn_ack = tcp(SENT_BY_DST, backend, snat, TCP_SYN | TCP_ACK);
    let out = node.run_from_pod(&syn_ack, REVNAT_TO_STACK);
    assert_checksums(&out, "reversed NodePort SYN-ACK");
    assert_eq!(
        out,
        tcp(SENT_BY_DST, node_port, client, TCP_SYN | TCP_ACK),
        "the reply comes from the NodePort, to the original client"
    );
    // A client that never acknowledges leaves a half-open flow with the handshake's short timeout
    // (its SNAT port comes back within a minute), not an established one holding it for hours.
    assert_eq!(node.states([&forward, &reply]), [CT_STATE_SYN_RECV; 2]);
    let ack = data(FROM_ROUTER, client, node_port);
    let out = node.run_from_uplink(&ack, NAT_TO_POD);
    assert_eq!(out, data(DELIVERED_TO_DST, snat, backend));
    assert_eq!(
        node.states([&forward, &reply]),
        [CT_STATE_ESTABLISHED; 2],
        "the client's ACK establishes the flow"
    );

    // With an uplink, it is redirected there (bpf_redirect_neigh).
    node.dp.set_node(NODE_IP, TEST_RUN_IFINDEX).unwrap();
    let out = node.run_from_pod(&data(SENT_BY_DST, backend, snat), REVNAT_TO_UPLINK);
    assert_checksums(&out, "reversed NodePort data");
    assert_eq!(out, data(SENT_BY_DST, node_port, client));
}

#[test]
fn local_node_port_keeps_the_client_source() {
    let client = sock(CLIENT, 50001);
    let node_port = sock(NODE_IP, 30081);
    let backend = sock(DST, 8080);
    let local = Some(ExternalAccess {
        local: true,
        source_ranges: Vec::new(),
    });
    let mut node = Node::with_node_ip(&[service(node_port, L4Proto::Tcp, &[backend], local)]);

    let out = node.run_from_uplink(&tcp(FROM_ROUTER, client, node_port, TCP_SYN), NAT_TO_POD);
    assert_checksums(&out, "DNATed local NodePort SYN");
    assert_eq!(
        out,
        tcp(DELIVERED_TO_DST, client, backend, TCP_SYN),
        "externalTrafficPolicy Local: the client's source is kept"
    );
    assert_eq!(node.ct().len(), 2, "{:#?}", node.ct());
    let forward = ct_key(client, node_port, TCP, CT_DIR_FORWARD);
    let reply = ct_key(backend, client, TCP, CT_DIR_REPLY);
    node.assert_ct(&forward, [client, backend], CT_STATE_NEW, 0);
    node.assert_ct(&reply, [node_port, client], CT_STATE_NEW, CT_F_TO_UPLINK);

    let syn_ack = tcp(SENT_BY_DST, backend, client, TCP_SYN | TCP_ACK);
    let out = node.run_from_pod(&syn_ack, REVNAT_TO_STACK);
    assert_checksums(&out, "reversed local NodePort SYN-ACK");
    assert_eq!(out, tcp(SENT_BY_DST, node_port, client, TCP_SYN | TCP_ACK));
}

/// The data path's Maglev hash (shared through the ABI) of a flow's first-packet tuple.
fn flow_hash(src: SocketAddrV4, dst: SocketAddrV4, proto: u8) -> u32 {
    strait_abi::service::flow_hash(
        wire_addr(*src.ip()),
        wire_addr(*dst.ip()),
        src.port().to_be(),
        dst.port().to_be(),
        proto,
    )
}

#[test]
fn maglev_maps_a_flow_to_the_same_backend_and_spreads_flows() {
    let node_port = sock(NODE_IP, 30090);
    let backends = [4, 5].map(|last| sock(Ipv4Addr::new(10, 244, 0, last), 8080));
    let backends = [sock(DST, 8080), backends[0], backends[1]];
    let entry = service(node_port, L4Proto::Tcp, &backends, Some(cluster_policy()));
    let table = maglev::table(&entry.backends);
    assert_eq!(table.len(), MAGLEV_TABLE_SIZE);
    let mut node = Node::with_node_ip(std::slice::from_ref(&entry));
    // DST is a pod on this node; the others are elsewhere (without an uplink: the node's stack).
    let outcome = |backend: SocketAddrV4| {
        if *backend.ip() == DST {
            NAT_TO_POD
        } else {
            NAT_TO_STACK
        }
    };

    let mut chosen = BTreeSet::new();
    for port in 50000..50032 {
        let client = sock(CLIENT, port);
        let bucket = flow_hash(client, node_port, TCP) as usize % MAGLEV_TABLE_SIZE;
        let expected = backends[table[bucket] as usize];
        let syn = tcp(FROM_ROUTER, client, node_port, TCP_SYN);
        for round in 0..3 {
            let out = node.run_from_uplink(&syn, outcome(expected));
            assert_eq!(
                destination(&out),
                expected,
                "client port {port}, round {round}: the Maglev table's backend"
            );
            let report = node.dp.sweep_conntrack(FAR_FUTURE).unwrap();
            assert_eq!((report.expired, report.live), (2, 0), "{report:?}");
        }
        chosen.insert(expected);
    }
    assert!(chosen.len() > 1, "32 flows all went to {chosen:?}");
}

#[test]
fn tracked_flows_to_local_pods_take_the_xdp_fast_path() {
    let client = sock(CLIENT, 50100);
    let node_port = sock(NODE_IP, 30090);
    let udp_port = sock(NODE_IP, 30091);
    let remote_port = sock(NODE_IP, 30092);
    let backend = sock(DST, 8080);
    let remote = sock(Ipv4Addr::new(10, 244, 9, 9), 8080);
    let mut node = Node::with_node_ip(&[
        service(node_port, L4Proto::Tcp, &[backend], Some(cluster_policy())),
        service(udp_port, L4Proto::Udp, &[backend], Some(cluster_policy())),
        service(remote_port, L4Proto::Tcp, &[remote], Some(cluster_policy())),
    ]);

    // The first packet is tc's: XDP finds no flow and passes it on; tc opens it.
    let syn = tcp(FROM_ROUTER, client, node_port, TCP_SYN);
    node.run_xdp(&syn, XDP_TO_TC);
    let opened = node.run_from_uplink(&syn, NAT_TO_POD);
    let snat = source(&opened);
    // Later packets are rewritten by XDP exactly as tc would, and redirected to the pod's veth.
    let segment = data(FROM_ROUTER, client, node_port);
    let out = node.run_xdp(&segment, XDP_NAT_TO_POD);
    assert_checksums(&out, "XDP-translated data segment");
    assert_eq!(out, data(DELIVERED_TO_DST, snat, backend));
    assert_eq!(node.ct().len(), 2, "XDP opens nothing new");

    // UDP, with a checksum and without one.
    let datagram = udp(FROM_ROUTER, client, udp_port);
    let opened = node.run_from_uplink(&datagram, NAT_TO_POD);
    let udp_snat = source(&opened);
    let out = node.run_xdp(&datagram, XDP_NAT_TO_POD);
    assert_checksums(&out, "XDP-translated datagram");
    assert_eq!(out, udp(DELIVERED_TO_DST, udp_snat, backend));
    let out = node.run_xdp(&unsummed(datagram), XDP_NAT_TO_POD);
    assert_eq!(out, unsummed(udp(DELIVERED_TO_DST, udp_snat, backend)));

    // A flow whose backend is not on this node stays with tc.
    let syn = tcp(FROM_ROUTER, client, remote_port, TCP_SYN);
    node.run_from_uplink(&syn, NAT_TO_STACK);
    node.run_xdp(&data(FROM_ROUTER, client, remote_port), XDP_TO_TC);
}
