//! Packet fixtures for the per-packet service path through BPF_PROG_TEST_RUN on the real verified
//! programs (`from_pod`, `from_uplink`, `xdp_uplink`): services are written with `sync_services`, frames
//! are built with correct checksums, and each case checks the verdict, the output frame (checksums
//! recomputed in full here), the per-reason counter and the CT map.
//!
//! Under test-run every frame arrives on the namespace's loopback (ifindex 1), so both fixture pods are
//! registered behind it: either may send without tripping the anti-spoofing check.

use std::{
    collections::{BTreeSet, HashMap},
    net::{Ipv4Addr, SocketAddrV4},
};

use aya::programs::{TestRun, TestRunOptions};
use strait_abi::{
    CtEntry, CtKey, Direction, Program, Reason,
    conntrack::{
        CT_DIR_FORWARD, CT_DIR_REPLY, CT_F_SNAT, CT_F_TO_UPLINK, CT_STATE_CLOSING,
        CT_STATE_ESTABLISHED, CT_STATE_NEW, HAIRPIN_SNAT_ADDR, SNAT_PORT_COUNT, SNAT_PORT_MIN,
    },
    service::MAGLEV_TABLE_SIZE,
};
use strait_dataplane::{
    Dataplane, LoadOptions,
    conntrack::monotonic_ns,
    endpoints::Endpoint,
    maglev,
    services::{Backend, ExternalAccess, L4Proto, Prefix, ServiceEntry, ServiceKey},
};
use strait_tests::{
    frames::{
        self, DELIVERED_TO_DST, DELIVERED_TO_SRC, DST, FROM_ROUTER, GW_MAC_DST, Macs, POD_MAC_DST,
        SENT_BY_DST, SENT_BY_SRC, SRC, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN,
        TEST_RUN_IFINDEX, tcp_segment, udp_datagram,
    },
    require_root,
};

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

/// The verdict and the reason (counted once) a run must produce.
type Outcome = (u32, Reason);

/// Translated towards a pod on this node (`bpf_redirect_peer`).
const NAT_TO_POD: Outcome = (TC_ACT_REDIRECT, Reason::ServiceNat);
/// Translated towards a backend elsewhere, with no uplink set: the node's stack.
const NAT_TO_STACK: Outcome = (TC_ACT_OK, Reason::ServiceNat);
const REVNAT_TO_POD: Outcome = (TC_ACT_REDIRECT, Reason::ReverseNat);
const REVNAT_TO_STACK: Outcome = (TC_ACT_OK, Reason::ReverseNat);
/// Reversed towards an external client through the uplink (`bpf_redirect_neigh`).
const REVNAT_TO_UPLINK: Outcome = (TC_ACT_REDIRECT, Reason::ReverseNat);
const TO_STACK: Outcome = (TC_ACT_OK, Reason::PassToStack);
const NO_BACKEND: Outcome = (TC_ACT_SHOT, Reason::DropNoBackend);
const OUT_OF_RANGE: Outcome = (TC_ACT_SHOT, Reason::DropSourceRange);
const MALFORMED: Outcome = (TC_ACT_SHOT, Reason::DropMalformedL4);
/// Refused with an answer built in place (TCP: RST; UDP: ICMP port unreachable).
const XDP_REFUSED: Outcome = (XDP_TX, Reason::DropNoBackend);
const XDP_NO_BACKEND: Outcome = (XDP_DROP, Reason::DropNoBackend);
const XDP_OUT_OF_RANGE: Outcome = (XDP_DROP, Reason::DropSourceRange);
const XDP_TO_TC: Outcome = (XDP_PASS, Reason::PassToTc);
const XDP_REDIRECT: u32 = 4;
/// A tracked flow translated and redirected to its pod by XDP.
const XDP_NAT_TO_POD: Outcome = (XDP_REDIRECT, Reason::ServiceNat);

const TCP: u8 = 6;
const UDP: u8 = 17;
/// Sequence number of every fixture segment.
const SEQ: u32 = 1000;

/// A ClusterIP.
const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// A ClusterIP whose only backend is pod SRC.
const HAIRPIN_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 11);
/// A ClusterIP without backends.
const EMPTY_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 12);
/// The node's address (NodePorts, SNAT source).
const NODE_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 11);
/// A client outside the cluster.
const CLIENT: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 2);
/// A client outside the LoadBalancer's source ranges.
const STRANGER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
/// A LoadBalancer ingress IP.
const LB_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 100, 1);
const HAIRPIN_SRC: Ipv4Addr = Ipv4Addr::new(
    HAIRPIN_SNAT_ADDR[0],
    HAIRPIN_SNAT_ADDR[1],
    HAIRPIN_SNAT_ADDR[2],
    HAIRPIN_SNAT_ADDR[3],
);
/// A "far future" for the sweeper: past every timeout of every entry.
const FAR_FUTURE: u64 = u64::MAX;

fn sock(addr: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(addr, port)
}

/// Network-byte-order address as the maps hold it.
fn wire_addr(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

// --- services -------------------------------------------------------------------------------------

/// A frontend `vip` with `backends` (in slot order).
fn service(
    vip: SocketAddrV4,
    proto: L4Proto,
    backends: &[SocketAddrV4],
    external: Option<ExternalAccess>,
) -> ServiceEntry {
    ServiceEntry {
        key: ServiceKey {
            vip: *vip.ip(),
            port: vip.port(),
            proto,
        },
        backends: backends
            .iter()
            .map(|b| Backend {
                addr: *b.ip(),
                port: b.port(),
            })
            .collect(),
        affinity_timeout_s: None,
        external,
    }
}

/// External access with `externalTrafficPolicy: Cluster` (SNAT) and no source ranges.
fn cluster_policy() -> ExternalAccess {
    ExternalAccess::default()
}

// --- the node under test --------------------------------------------------------------------------

/// The program a fixture runs.
#[derive(Clone, Copy, Debug)]
enum Hook {
    FromPod,
    FromUplink,
    XdpUplink,
}

impl Hook {
    fn program(self) -> Program {
        match self {
            Hook::FromPod => Program::FromPod,
            Hook::FromUplink => Program::FromUplink,
            Hook::XdpUplink => Program::XdpUplink,
        }
    }

    fn direction(self) -> Direction {
        match self {
            Hook::FromPod => Direction::Egress,
            Hook::FromUplink | Hook::XdpUplink => Direction::Ingress,
        }
    }
}

/// A loaded dataplane with both fixture pods behind the test-run device and services programmed.
struct Node {
    dp: Dataplane,
    /// CLOCK_MONOTONIC once loaded: every CT entry of the test is stamped later.
    since: u64,
}

impl Node {
    fn new(services: &[ServiceEntry]) -> Self {
        require_root();
        let mut dp = Dataplane::load(&LoadOptions::default()).expect("loading the eBPF object");
        frames::register_pods(&mut dp);
        let dst = Endpoint {
            addr: DST,
            host_ifindex: TEST_RUN_IFINDEX,
            pod_mac: POD_MAC_DST,
            host_mac: GW_MAC_DST,
        };
        dp.upsert_endpoint(&dst)
            .expect("moving pod DST behind the test-run device");
        let mut table = dp.read_services().unwrap();
        dp.sync_services(&mut table, services).unwrap();
        Self {
            dp,
            since: monotonic_ns(),
        }
    }

    /// As `new`, with the node's address set and no uplink.
    fn with_node_ip(services: &[ServiceEntry]) -> Self {
        let mut node = Self::new(services);
        node.dp.set_node(NODE_IP, 0).unwrap();
        node
    }

    fn run_from_pod(&mut self, frame: &[u8], expect: Outcome) -> Vec<u8> {
        self.send(Hook::FromPod, frame, expect)
    }

    fn run_from_uplink(&mut self, frame: &[u8], expect: Outcome) -> Vec<u8> {
        self.send(Hook::FromUplink, frame, expect)
    }

    fn run_xdp(&mut self, frame: &[u8], expect: Outcome) -> Vec<u8> {
        self.send(Hook::XdpUplink, frame, expect)
    }

    /// Runs `frame` through `hook`, checks the verdict and that the reason's counter moved by one;
    /// returns the output frame.
    fn send(&mut self, hook: Hook, frame: &[u8], (verdict, reason): Outcome) -> Vec<u8> {
        let before = self.counter(hook, reason);
        let (got, out) = self.run_once(hook, frame);
        assert_eq!(got, verdict, "{hook:?} verdict ({reason:?} expected)");
        assert_eq!(
            self.counter(hook, reason),
            before + 1,
            "{hook:?} {reason:?} counter"
        );
        out
    }

    /// Runs `frame` through `hook` once; returns (verdict, output frame).
    fn run_once(&mut self, hook: Hook, frame: &[u8]) -> (u32, Vec<u8>) {
        let mut out = vec![0u8; frame.len() + 64];
        let mut options = TestRunOptions::new();
        options.data_in = Some(frame);
        options.data_out = Some(&mut out);
        let result = match hook {
            Hook::FromPod => self.dp.from_pod_program().unwrap().test_run(options),
            Hook::FromUplink => self.dp.from_uplink_program().unwrap().test_run(options),
            Hook::XdpUplink => self.dp.xdp_uplink_program().unwrap().test_run(options),
        }
        .expect("BPF_PROG_TEST_RUN");
        out.truncate(result.data_size_out as usize);
        (result.return_value, out)
    }

    fn counter(&self, hook: Hook, reason: Reason) -> u64 {
        let stats = self.dp.stats().unwrap();
        stats
            .iter()
            .find(|s| {
                s.program == hook.program() && s.reason == reason && s.direction == hook.direction()
            })
            .map(|s| s.packets)
            .unwrap()
    }

    fn ct(&mut self) -> HashMap<CtKey, CtEntry> {
        self.dp.conntrack_entries().unwrap().into_iter().collect()
    }

    fn states(&mut self, keys: [&CtKey; 2]) -> [u8; 2] {
        let table = self.ct();
        keys.map(|key| table[key].state)
    }

    /// Checks that the entry at `key` rewrites packets to `src` -> `dst` with `state` and `flags`, and
    /// was stamped during the test; returns its service id.
    fn assert_ct(
        &mut self,
        key: &CtKey,
        [src, dst]: [SocketAddrV4; 2],
        state: u8,
        flags: u8,
    ) -> u32 {
        let table = self.ct();
        let entry = table
            .get(key)
            .unwrap_or_else(|| panic!("no CT entry for {key:?} in {table:#?}"));
        let want = CtEntry {
            last_seen_ns: entry.last_seen_ns,
            new_saddr: wire_addr(*src.ip()),
            new_sport: src.port().to_be(),
            new_dport: dst.port().to_be(),
            new_daddr: wire_addr(*dst.ip()),
            state,
            flags,
            pad: 0,
            service_id: entry.service_id,
            pad2: 0,
        };
        assert_eq!(*entry, want, "CT entry for {key:?}");
        assert!(
            (self.since..=monotonic_ns()).contains(&entry.last_seen_ns),
            "CT entry for {key:?} stamped {} (test began {})",
            entry.last_seen_ns,
            self.since
        );
        assert_ne!(
            entry.service_id, 0,
            "CT entry for {key:?} names its service"
        );
        entry.service_id
    }
}

/// The CT key of packets `src` -> `dst` in direction `dir`.
fn ct_key(src: SocketAddrV4, dst: SocketAddrV4, proto: u8, dir: u8) -> CtKey {
    CtKey {
        saddr: wire_addr(*src.ip()),
        daddr: wire_addr(*dst.ip()),
        sport: src.port().to_be(),
        dport: dst.port().to_be(),
        proto,
        dir,
        pad: 0,
    }
}

// --- frames ---------------------------------------------------------------------------------------

/// A TCP segment without payload.
fn tcp(macs: Macs, src: SocketAddrV4, dst: SocketAddrV4, flags: u8) -> Vec<u8> {
    tcp_segment(macs, src, dst, flags, SEQ, b"")
}

/// A TCP data segment (ACK, PSH, 5 bytes).
fn data(macs: Macs, src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    tcp_segment(macs, src, dst, TCP_ACK | TCP_PSH, SEQ, b"hello")
}

/// A UDP datagram with a 5-byte payload.
fn udp(macs: Macs, src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    udp_datagram(macs, src, dst, b"query")
}

/// `frame` with its UDP checksum zeroed ("no checksum").
fn unsummed(mut frame: Vec<u8>) -> Vec<u8> {
    frame[40..42].copy_from_slice(&[0, 0]);
    frame
}

/// `frame` with IPv4 header bytes from `offset` replaced and the header checksum recomputed.
fn with_ip_bytes(mut frame: Vec<u8>, offset: usize, bytes: &[u8]) -> Vec<u8> {
    frame[14 + offset..14 + offset + bytes.len()].copy_from_slice(bytes);
    frame[24..26].copy_from_slice(&[0, 0]);
    let sum = !ones_sum(&[&frame[14..34]]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
    frame
}

/// `syn` with an IPv4 total length of 30 (10 bytes of its 20-byte TCP header), cut to that length.
fn short_tcp(syn: &[u8]) -> Vec<u8> {
    with_ip_bytes(syn.to_vec(), 2, &30u16.to_be_bytes())[..14 + 30].to_vec()
}

fn source(frame: &[u8]) -> SocketAddrV4 {
    sock(
        Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]),
        u16::from_be_bytes([frame[34], frame[35]]),
    )
}

fn destination(frame: &[u8]) -> SocketAddrV4 {
    sock(
        Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]),
        u16::from_be_bytes([frame[36], frame[37]]),
    )
}

fn macs(frame: &[u8]) -> Macs {
    Macs {
        dst: frame[0..6].try_into().unwrap(),
        src: frame[6..12].try_into().unwrap(),
    }
}

/// One's-complement sum of big-endian 16-bit words (an odd tail padded with zero), folded to 16 bits.
fn ones_sum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for bytes in chunks {
        for word in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([word[0], *word.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Whether the IPv4 header checksum (options-less header at offset 14) verifies.
fn ip_checksum_ok(frame: &[u8]) -> bool {
    ones_sum(&[&frame[14..34]]) == 0xffff
}

/// Whether the TCP/UDP checksum verifies over the pseudo header and the segment the IPv4 total length
/// covers.
fn l4_checksum_ok(frame: &[u8]) -> bool {
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let segment = &frame[34..14 + total];
    let len = (segment.len() as u16).to_be_bytes();
    let pseudo = [0, frame[23], len[0], len[1]];
    ones_sum(&[&frame[26..34], &pseudo, segment]) == 0xffff
}

fn assert_checksums(frame: &[u8], what: &str) {
    assert!(ip_checksum_ok(frame), "{what}: IPv4 header checksum");
    assert!(l4_checksum_ok(frame), "{what}: L4 checksum");
}

fn assert_snat_port(port: u16, what: &str) {
    assert!(
        (SNAT_PORT_MIN..=SNAT_PORT_MIN + (SNAT_PORT_COUNT - 1)).contains(&port),
        "{what}: SNAT port {port} outside 61000..=65535"
    );
}

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

    // 2. The backend's reply comes back from the VIP and establishes both directions.
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
        [CT_STATE_ESTABLISHED; 2],
        "the first reply establishes both directions"
    );

    // 3. Later forward packets use the entry and open nothing; a FIN closes the forward side.
    let out = node.run_from_pod(&data(SENT_BY_SRC, client, vip), NAT_TO_POD);
    assert_checksums(&out, "tracked data segment");
    assert_eq!(out, data(DELIVERED_TO_DST, client, backend));
    assert_eq!(node.ct().len(), 2, "{:#?}", node.ct());
    assert_eq!(node.states([&forward, &reply]), [CT_STATE_ESTABLISHED; 2]);

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
    assert_eq!(node.states([&forward, &reply]), [CT_STATE_ESTABLISHED; 2]);
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
    assert_eq!(node.states([&forward, &reply]), [CT_STATE_ESTABLISHED; 2]);

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
    let syn = tcp(FROM_ROUTER, client, empty_node_port, TCP_SYN);
    node.run_from_uplink(&syn, NO_BACKEND);
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
fn malformed_tcp_is_dropped_and_fragments_are_not_translated() {
    let vip = sock(VIP, 80);
    let mut node = Node::new(&[service(vip, L4Proto::Tcp, &[sock(DST, 8080)], None)]);
    let syn = tcp(SENT_BY_SRC, sock(SRC, 40000), vip, TCP_SYN);

    node.run_from_pod(&short_tcp(&syn), MALFORMED);
    assert!(node.ct().is_empty(), "nothing malformed is tracked");

    // A first fragment (more-fragments set) and a later one: no transport header to translate by.
    for (what, flags_and_offset) in [("first fragment", 0x2000u16), ("later fragment", 0x0004)] {
        let fragment = with_ip_bytes(syn.clone(), 6, &flags_and_offset.to_be_bytes());
        let out = node.run_from_pod(&fragment, TO_STACK);
        assert_eq!(out, fragment, "{what}: not translated");
    }
    assert!(node.ct().is_empty(), "fragments are not tracked");
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
