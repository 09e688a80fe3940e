//! NetworkPolicy on the real programs: the policy maps are written with `sync_policy`, and each case
//! sends frames between the two fixture pods (both on this node, so a packet meets the source's
//! egress judgement in `from_pod` and the destination's ingress judgement at delivery). Covered: the
//! lookup by peer identity, by port and by port range (prefixes), by named port (the agent's compiler
//! resolving it per destination pod and protocol), by peer address (`ipBlock`, with an
//! `except`), statefulness (replies, and established flows keeping their verdict when the policy
//! changes), audit mode, later fragments following their first, ICMP errors following their flow, and
//! the verdicts on the ring buffer's counters (the drop reason); verdicts the full ring buffer has no
//! room for, counted as lost.

use strait_dataplane::policy::{
    AllowKey, CidrKey, POLICY_EGRESS, POLICY_INGRESS, PolicyCidrAllow, PolicyRule, PolicySubject,
    PolicyTables, PortRange, SUBJECT_F_AUDIT, SUBJECT_F_EGRESS_ISOLATED,
    SUBJECT_F_INGRESS_ISOLATED,
};

use crate::harness::*;

const DELIVERED: Outcome = (TC_ACT_REDIRECT, Reason::DeliveredLocal);
const DENIED: Outcome = (TC_ACT_SHOT, Reason::DropPolicyDenied);

/// The identities the fixture pods carry.
const SRC_ID: u32 = 300;
const DST_ID: u32 = 301;
const OTHER_ID: u32 = 302;

/// Tables where both pods are known, DST is isolated for ingress, and `allow` are its allow entries.
fn dst_ingress(allow: &[(u32, u8, u16, u8)]) -> PolicyTables {
    let mut tables = PolicyTables::default();
    tables.ipcache.insert(SRC, SRC_ID);
    tables.ipcache.insert(DST, DST_ID);
    tables.subjects.insert(
        DST,
        PolicySubject {
            flags: SUBJECT_F_INGRESS_ISOLATED,
            identity: DST_ID,
        },
    );
    for (index, (peer, protocol, port, port_prefix)) in allow.iter().enumerate() {
        tables.allow.insert(
            AllowKey {
                subject: DST,
                direction: POLICY_INGRESS,
                protocol: *protocol,
                peer: *peer,
                port: *port,
                port_prefix: *port_prefix,
            },
            PolicyRule {
                policy: 1,
                rule: index as u32,
            },
        );
    }
    tables
}

fn syn(sport: u16, dport: u16) -> Vec<u8> {
    tcp_segment(
        SENT_BY_SRC,
        sock(SRC, sport),
        sock(DST, dport),
        TCP_SYN,
        SEQ,
        b"",
    )
}

fn syn_ack(sport: u16, dport: u16) -> Vec<u8> {
    tcp_segment(
        SENT_BY_DST,
        sock(DST, dport),
        sock(SRC, sport),
        TCP_SYN | TCP_ACK,
        SEQ,
        b"",
    )
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    udp_datagram(SENT_BY_SRC, sock(SRC, sport), sock(DST, dport), b"probe")
}

#[test]
fn the_peer_identity_and_the_port_decide_and_replies_pass() {
    let mut node = Node::new(&[]);
    node.dp
        .sync_policy(&dst_ingress(&[(SRC_ID, TCP, 80, 16)]))
        .unwrap();
    node.run_from_pod(&syn(40000, 80), DELIVERED);
    node.run_from_pod(&syn_ack(40000, 80), DELIVERED);
    // Another port, the same port over UDP: no rule.
    node.run_from_pod(&syn(40001, 81), DENIED);
    node.run_from_pod(&udp(40002, 80), DENIED);
    // A packet from DST that answers nothing is a new flow of DST's egress, which is not isolated.
    node.run_from_pod(&syn_ack(40003, 81), DELIVERED);
}

#[test]
fn an_established_flow_keeps_its_verdict_and_a_new_one_gets_the_new_policy() {
    let mut node = Node::new(&[]);
    node.dp
        .sync_policy(&dst_ingress(&[(SRC_ID, TCP, 80, 16)]))
        .unwrap();
    node.run_from_pod(&syn(40000, 80), DELIVERED);
    // SRC is relabelled: its address now carries another identity, which no rule names.
    let mut relabelled = dst_ingress(&[(SRC_ID, TCP, 80, 16)]);
    relabelled.ipcache.insert(SRC, OTHER_ID);
    node.dp.sync_policy(&relabelled).unwrap();
    let data = tcp_segment(
        SENT_BY_SRC,
        sock(SRC, 40000),
        sock(DST, 80),
        TCP_ACK | TCP_PSH,
        SEQ + 1,
        b"more",
    );
    node.run_from_pod(&data, DELIVERED);
    node.run_from_pod(&syn(40001, 80), DENIED);
    // A new SYN on the established flow's tuple is a new connection: judged, and denied.
    node.run_from_pod(&syn(40000, 80), DENIED);
    // A rule for any peer lets the new flow in.
    let any = dst_ingress(&[(0, TCP, 80, 16)]);
    node.dp.sync_policy(&any).unwrap();
    node.run_from_pod(&syn(40001, 80), DELIVERED);
}

#[test]
fn a_port_range_is_matched_by_its_prefixes() {
    let mut node = Node::new(&[]);
    // 8000-8009: 8000/13 covers 8000-8007, 8008/15 covers 8008-8009.
    node.dp
        .sync_policy(&dst_ingress(&[
            (SRC_ID, TCP, 8000, 13),
            (SRC_ID, TCP, 8008, 15),
        ]))
        .unwrap();
    for (sport, dport, expect) in [
        (41000, 7999, DENIED),
        (41001, 8000, DELIVERED),
        (41002, 8005, DELIVERED),
        (41003, 8009, DELIVERED),
        (41004, 8010, DENIED),
    ] {
        node.run_from_pod(&syn(sport, dport), expect);
    }
}

#[test]
fn an_ip_block_allows_its_prefix_but_not_its_except() {
    let mut node = Node::new(&[]);
    let mut tables = dst_ingress(&[]);
    let block = |first, last| {
        let mut allow = PolicyCidrAllow {
            rule: PolicyRule { policy: 2, rule: 0 },
            count: 1,
            ..PolicyCidrAllow::default()
        };
        allow.ranges[0] = PortRange { first, last };
        allow
    };
    // 10.244.0.0/24 on ports 80-90, except 10.244.0.2/32 (SRC): nothing there.
    tables.cidr.insert(
        CidrKey {
            subject: DST,
            direction: POLICY_INGRESS,
            protocol: TCP,
            prefix: Ipv4Addr::new(10, 244, 0, 0),
            prefix_len: 24,
        },
        block(80, 90),
    );
    let except = CidrKey {
        subject: DST,
        direction: POLICY_INGRESS,
        protocol: TCP,
        prefix: SRC,
        prefix_len: 32,
    };
    tables.cidr.insert(
        except,
        PolicyCidrAllow {
            rule: PolicyRule { policy: 2, rule: 0 },
            ..PolicyCidrAllow::default()
        },
    );
    node.dp.sync_policy(&tables).unwrap();
    node.run_from_pod(&syn(42000, 80), DENIED);
    // Without the except, SRC is inside the block: its ports pass, others do not.
    tables.cidr.remove(&except);
    node.dp.sync_policy(&tables).unwrap();
    node.run_from_pod(&syn(42001, 85), DELIVERED);
    node.run_from_pod(&syn(42002, 91), DENIED);
}

#[test]
fn egress_isolation_judges_the_sender_and_audit_lets_a_deny_through() {
    let mut node = Node::new(&[]);
    let mut tables = PolicyTables::default();
    tables.ipcache.insert(SRC, SRC_ID);
    tables.ipcache.insert(DST, DST_ID);
    tables.subjects.insert(
        SRC,
        PolicySubject {
            flags: SUBJECT_F_EGRESS_ISOLATED,
            identity: SRC_ID,
        },
    );
    tables.allow.insert(
        AllowKey {
            subject: SRC,
            direction: POLICY_EGRESS,
            protocol: UDP,
            peer: DST_ID,
            port: 53,
            port_prefix: 16,
        },
        PolicyRule { policy: 3, rule: 0 },
    );
    node.dp.sync_policy(&tables).unwrap();
    node.run_from_pod(&udp(43000, 53), DELIVERED);
    node.run_from_pod(&udp(43001, 54), DENIED);
    let drops = node.counter(Hook::FromPod, Reason::DropPolicyDenied);
    tables.subjects.get_mut(&SRC).unwrap().flags |= SUBJECT_F_AUDIT;
    node.dp.sync_policy(&tables).unwrap();
    node.run_from_pod(&udp(43002, 54), DELIVERED);
    assert_eq!(
        node.counter(Hook::FromPod, Reason::DropPolicyDenied),
        drops,
        "audit mode drops nothing"
    );
}

/// The IPv4 packet of `frame` split after `split` payload bytes into two fragments with id `id`.
fn fragments_of(frame: &[u8], split: usize, id: u16) -> [Vec<u8>; 2] {
    let payload = &frame[34..];
    let piece = |bytes: &[u8], flags_and_offset: u16| {
        let mut out = frame[..34].to_vec();
        out.extend_from_slice(bytes);
        out[16..18].copy_from_slice(&((20 + bytes.len()) as u16).to_be_bytes());
        out[18..20].copy_from_slice(&id.to_be_bytes());
        out[20..22].copy_from_slice(&flags_and_offset.to_be_bytes());
        out[24..26].copy_from_slice(&[0, 0]);
        let sum = ip_header_sum(&out[14..34]);
        out[24..26].copy_from_slice(&sum.to_be_bytes());
        out
    };
    [
        piece(&payload[..split], 0x2000),
        piece(&payload[split..], (split / 8) as u16),
    ]
}

fn ip_header_sum(header: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in header.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn later_fragments_follow_their_first() {
    let mut node = Node::new(&[]);
    node.dp
        .sync_policy(&dst_ingress(&[(SRC_ID, UDP, 5353, 16)]))
        .unwrap();
    let payload = [7u8; 40];
    let allowed = udp_datagram(SENT_BY_SRC, sock(SRC, 44000), sock(DST, 5353), &payload);
    let [first, later] = fragments_of(&allowed, 24, 0x1111);
    node.run_from_pod(&first, DELIVERED);
    node.run_from_pod(&later, DELIVERED);
    let denied = udp_datagram(SENT_BY_SRC, sock(SRC, 44001), sock(DST, 5354), &payload);
    let [first, later] = fragments_of(&denied, 24, 0x2222);
    node.run_from_pod(&first, DENIED);
    node.run_from_pod(&later, DENIED);
    // A later fragment whose first never came carries no ports to judge: dropped.
    let [_, orphan] = fragments_of(&allowed, 24, 0x3333);
    node.run_from_pod(&orphan, DENIED);
}

/// An ICMP port unreachable from SRC to DST quoting `quoted` (a frame DST sent).
fn port_unreachable(quoted: &[u8]) -> Vec<u8> {
    let mut message = vec![3, 3, 0, 0, 0, 0, 0, 0];
    message.extend_from_slice(&quoted[14..14 + 28]);
    let sum = ip_header_sum(&message);
    message[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
    ip[2..4].copy_from_slice(&((20 + message.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&SRC.octets());
    ip.extend_from_slice(&DST.octets());
    let sum = ip_header_sum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut frame = SENT_BY_SRC.dst.to_vec();
    frame.extend_from_slice(&SENT_BY_SRC.src);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&message);
    frame
}

#[test]
fn an_icmp_error_passes_only_for_a_flow_that_was_judged() {
    let mut node = Node::new(&[]);
    // DST is isolated for ingress with no rule at all.
    node.dp.sync_policy(&dst_ingress(&[])).unwrap();
    // DST (egress not isolated) sends a datagram to SRC: a judged flow, so SRC's port unreachable
    // about it reaches DST.
    let datagram = udp_datagram(SENT_BY_DST, sock(DST, 45000), sock(SRC, 9999), b"hello");
    node.run_from_pod(&datagram, DELIVERED);
    node.run_from_pod(&port_unreachable(&datagram), DELIVERED);
    // An error about a flow that never was cannot carry anything into DST.
    let forged = udp_datagram(SENT_BY_DST, sock(DST, 45001), sock(SRC, 9999), b"never");
    node.run_from_pod(&port_unreachable(&forged), DENIED);
}

/// The agent's own tables for a policy naming its ports: `serve` is TCP 8080 on DST but TCP 9090 on
/// another pod the policy also selects, and `dns` is UDP 5353 on DST. Built by the agent's compiler
/// from Pods, a Namespace and a NetworkPolicy (the real API types), so the fixture checks the named
/// port as resolved per destination pod and protocol, down to the kernel's lookup.
fn named_port_tables() -> PolicyTables {
    use strait_control::policy::{PolicySettings, PolicyState};
    use strait_k8s::{Change, Object, ObjectStore};

    let pod =
        |name: &str, node: &str, ip: std::net::Ipv4Addr, app: &str, ports: serde_json::Value| {
            let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip.to_string()},
        }))
        .unwrap();
            Object::from(pod)
        };
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "default",
                           "labels": {"kubernetes.io/metadata.name": "default"}}}))
        .unwrap();
    let policy: k8s_openapi::api::networking::v1::NetworkPolicy =
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "server-named-ports", "namespace": "default"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "server"}},
                "ingress": [{
                    "from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                    "ports": [{"port": "serve"}, {"port": "dns", "protocol": "UDP"},
                              {"port": "serve", "protocol": "UDP"}],
                }],
            },
        }))
        .unwrap();
    let mut store = ObjectStore::new();
    for object in [
        Object::from(namespace),
        pod(
            "client",
            "fixture-node",
            SRC,
            "client",
            serde_json::json!([]),
        ),
        pod(
            "server",
            "fixture-node",
            DST,
            "server",
            serde_json::json!([{"name": "serve", "containerPort": 8080},
                               {"name": "dns", "containerPort": 5353, "protocol": "UDP"}]),
        ),
        pod(
            "server-elsewhere",
            "other-node",
            std::net::Ipv4Addr::new(10, 244, 9, 9),
            "server",
            serde_json::json!([{"name": "serve", "containerPort": 9090}]),
        ),
        Object::from(policy),
    ] {
        store.apply(Change::Upsert(object));
    }
    let built = PolicyState::new(PolicySettings {
        node: "fixture-node".to_owned(),
        audit: false,
    })
    .build(&store);
    assert!(built.invalid.is_empty(), "{:?}", built.invalid);
    built.tables
}

#[test]
fn a_named_port_is_the_destination_pods_own_port_of_that_protocol() {
    let mut node = Node::new(&[]);
    node.dp.sync_policy(&named_port_tables()).unwrap();
    // `serve` on DST is TCP 8080; another pod's `serve` (9090) is not DST's.
    node.run_from_pod(&syn(46000, 8080), DELIVERED);
    node.run_from_pod(&syn(46001, 9090), DENIED);
    // `dns` is UDP 5353 on DST: over UDP allowed, over TCP no rule.
    node.run_from_pod(&udp(46002, 5353), DELIVERED);
    node.run_from_pod(&syn(46003, 5353), DENIED);
    // `serve` over UDP names no port of DST: nothing allowed by it.
    node.run_from_pod(&udp(46004, 8080), DENIED);
}

/// Judgements sent through the verdict ring buffer with no reader: more than its 1 MiB holds.
const FLOOD: usize = 30_000;

#[test]
fn verdicts_the_ring_buffer_has_no_room_for_are_counted_as_lost() {
    let mut node = Node::new(&[]);
    node.dp.sync_policy(&dst_ingress(&[])).unwrap();
    let lost = node.dp.policy_lost_reader().unwrap();
    assert_eq!(lost.read().unwrap(), 0);
    // A denied datagram is judged anew each time (denied flows are not remembered): one ingress
    // verdict each.
    let datagram = udp(47000, 53);
    for _ in 0..FLOOD {
        let (verdict, _) = node.run_once(Hook::FromPod, &datagram);
        assert_eq!(verdict, TC_ACT_SHOT);
    }
    let mut events = node.dp.policy_events().unwrap();
    let mut read = Vec::new();
    events.drain(&mut read);
    let lost_count = lost.read().unwrap();
    assert!(
        !read.is_empty() && lost_count > 0,
        "read {}, lost {lost_count}",
        read.len()
    );
    // The first datagram is also judged for SRC's egress (not isolated: allowed, then remembered).
    assert_eq!(
        read.len() as u64 + lost_count,
        FLOOD as u64 + 1,
        "every verdict is either in the buffer or counted lost"
    );
    // With room again, a verdict is queued and nothing more is lost.
    node.run_from_pod(&datagram, DENIED);
    read.clear();
    assert_eq!(events.drain(&mut read), 1);
    assert_eq!(lost.read().unwrap(), lost_count);
}
