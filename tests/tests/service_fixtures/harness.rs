//! The fixtures' harness: a loaded [`Node`] with services, the verdicts and addresses the cases use,
//! frame builders and checksum checks.

pub(crate) use std::{
    collections::{BTreeSet, HashMap},
    net::{Ipv4Addr, SocketAddrV4},
};

pub(crate) use aya::programs::{TestRun, TestRunOptions};

pub(crate) use strait_abi::{
    CtEntry, CtKey, Direction, Program, Reason,
    conntrack::{
        CT_DIR_FORWARD, CT_DIR_REPLY, CT_F_SNAT, CT_F_TO_UPLINK, CT_STATE_CLOSING,
        CT_STATE_ESTABLISHED, CT_STATE_NEW, CT_STATE_SYN_RECV, HAIRPIN_SNAT_ADDR, RST_WINDOW,
        SNAT_PORT_COUNT, SNAT_PORT_MIN, SNAT_REUSE_CLOSED_NS,
    },
    service::MAGLEV_TABLE_SIZE,
};

pub(crate) use strait_dataplane::{
    Dataplane, LoadOptions,
    conntrack::monotonic_ns,
    endpoints::Endpoint,
    maglev,
    services::{Backend, ExternalAccess, L4Proto, Prefix, ServiceEntry, ServiceKey},
};

pub(crate) use strait_tests::{
    frames::{
        self, DELIVERED_TO_DST, DELIVERED_TO_SRC, DST, FROM_ROUTER, GW_MAC_DST, Macs, POD_MAC_DST,
        SENT_BY_DST, SENT_BY_SRC, SRC, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN,
        TEST_RUN_IFINDEX, tcp_segment, tcp_segment_acking, udp_datagram,
    },
    require_root,
};

pub(crate) const TC_ACT_OK: u32 = 0;
pub(crate) const TC_ACT_SHOT: u32 = 2;
pub(crate) const TC_ACT_REDIRECT: u32 = 7;
pub(crate) const XDP_DROP: u32 = 1;
pub(crate) const XDP_PASS: u32 = 2;
pub(crate) const XDP_TX: u32 = 3;

/// The verdict and the reason (counted once) a run must produce.
pub(crate) type Outcome = (u32, Reason);

/// Translated towards a pod on this node (`bpf_redirect_peer`).
pub(crate) const NAT_TO_POD: Outcome = (TC_ACT_REDIRECT, Reason::ServiceNat);

/// Translated towards a backend elsewhere, with no uplink set: the node's stack.
pub(crate) const NAT_TO_STACK: Outcome = (TC_ACT_OK, Reason::ServiceNat);
pub(crate) const REVNAT_TO_POD: Outcome = (TC_ACT_REDIRECT, Reason::ReverseNat);
pub(crate) const REVNAT_TO_STACK: Outcome = (TC_ACT_OK, Reason::ReverseNat);

/// Reversed towards an external client through the uplink (`bpf_redirect_neigh`).
pub(crate) const REVNAT_TO_UPLINK: Outcome = (TC_ACT_REDIRECT, Reason::ReverseNat);
pub(crate) const TO_STACK: Outcome = (TC_ACT_OK, Reason::PassToStack);
pub(crate) const NO_BACKEND: Outcome = (TC_ACT_SHOT, Reason::DropNoBackend);
pub(crate) const OUT_OF_RANGE: Outcome = (TC_ACT_SHOT, Reason::DropSourceRange);
pub(crate) const MALFORMED: Outcome = (TC_ACT_SHOT, Reason::DropMalformedL4);

/// Refused with an answer built in place (TCP: RST; UDP: ICMP port unreachable).
pub(crate) const XDP_REFUSED: Outcome = (XDP_TX, Reason::DropNoBackend);
pub(crate) const XDP_NO_BACKEND: Outcome = (XDP_DROP, Reason::DropNoBackend);
pub(crate) const XDP_OUT_OF_RANGE: Outcome = (XDP_DROP, Reason::DropSourceRange);
pub(crate) const XDP_TO_TC: Outcome = (XDP_PASS, Reason::PassToTc);
pub(crate) const XDP_REDIRECT: u32 = 4;

/// A tracked flow translated and redirected to its pod by XDP.
pub(crate) const XDP_NAT_TO_POD: Outcome = (XDP_REDIRECT, Reason::ServiceNat);
pub(crate) const TCP: u8 = 6;
pub(crate) const UDP: u8 = 17;

/// Sequence number of every fixture segment.
pub(crate) const SEQ: u32 = 1000;

/// A ClusterIP.
pub(crate) const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// A ClusterIP whose only backend is pod SRC.
pub(crate) const HAIRPIN_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 11);

/// A ClusterIP without backends.
pub(crate) const EMPTY_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 12);

/// The node's address (NodePorts, SNAT source).
pub(crate) const NODE_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 11);

/// A client outside the cluster.
pub(crate) const CLIENT: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 2);

/// A client outside the LoadBalancer's source ranges.
pub(crate) const STRANGER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

/// A LoadBalancer ingress IP.
pub(crate) const LB_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 100, 1);
pub(crate) const HAIRPIN_SRC: Ipv4Addr = Ipv4Addr::new(
    HAIRPIN_SNAT_ADDR[0],
    HAIRPIN_SNAT_ADDR[1],
    HAIRPIN_SNAT_ADDR[2],
    HAIRPIN_SNAT_ADDR[3],
);

/// A "far future" for the sweeper: past every timeout of every entry.
pub(crate) const FAR_FUTURE: u64 = u64::MAX;

pub(crate) fn sock(addr: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(addr, port)
}

/// Network-byte-order address as the maps hold it.
pub(crate) fn wire_addr(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

// --- services -------------------------------------------------------------------------------------

/// A frontend `vip` with `backends` (in slot order).
pub(crate) fn service(
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
        endpoints_elsewhere: false,
    }
}

/// External access with `externalTrafficPolicy: Cluster` (SNAT) and no source ranges.
pub(crate) fn cluster_policy() -> ExternalAccess {
    ExternalAccess::default()
}

// --- the node under test --------------------------------------------------------------------------

/// The program a fixture runs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Hook {
    FromPod,
    FromUplink,
    XdpUplink,
    FromOverlay,
    DnsFast,
}

impl Hook {
    pub(crate) fn program(self) -> Program {
        match self {
            Hook::FromPod => Program::FromPod,
            Hook::FromUplink => Program::FromUplink,
            Hook::XdpUplink => Program::XdpUplink,
            Hook::FromOverlay => Program::FromOverlay,
            Hook::DnsFast => Program::DnsFast,
        }
    }

    pub(crate) fn direction(self) -> Direction {
        match self {
            Hook::FromPod | Hook::DnsFast => Direction::Egress,
            Hook::FromUplink | Hook::XdpUplink | Hook::FromOverlay => Direction::Ingress,
        }
    }
}

/// A loaded dataplane with both fixture pods behind the test-run device and services programmed.
pub(crate) struct Node {
    pub(crate) dp: Dataplane,
    /// CLOCK_MONOTONIC once loaded: every CT entry of the test is stamped later.
    pub(crate) since: u64,
}

impl Node {
    pub(crate) fn new(services: &[ServiceEntry]) -> Self {
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
    pub(crate) fn with_node_ip(services: &[ServiceEntry]) -> Self {
        let mut node = Self::new(services);
        node.dp.set_node(NODE_IP, 0).unwrap();
        node
    }

    pub(crate) fn run_from_pod(&mut self, frame: &[u8], expect: Outcome) -> Vec<u8> {
        self.send(Hook::FromPod, frame, expect)
    }

    pub(crate) fn run_from_uplink(&mut self, frame: &[u8], expect: Outcome) -> Vec<u8> {
        self.send(Hook::FromUplink, frame, expect)
    }

    pub(crate) fn run_xdp(&mut self, frame: &[u8], expect: Outcome) -> Vec<u8> {
        self.send(Hook::XdpUplink, frame, expect)
    }

    /// Runs `frame` through `hook`, checks the verdict and that the reason's counter moved by one;
    /// returns the output frame.
    pub(crate) fn send(&mut self, hook: Hook, frame: &[u8], (verdict, reason): Outcome) -> Vec<u8> {
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
    pub(crate) fn run_once(&mut self, hook: Hook, frame: &[u8]) -> (u32, Vec<u8>) {
        // Room for what the programs add: tunnel and error headers, or a DNS reply's answers.
        let slack = if matches!(hook, Hook::DnsFast) {
            512
        } else {
            64
        };
        let mut out = vec![0u8; frame.len() + slack];
        let mut options = TestRunOptions::new();
        options.data_in = Some(frame);
        options.data_out = Some(&mut out);
        let result = match hook {
            Hook::FromPod => self.dp.from_pod_program().unwrap().test_run(options),
            Hook::FromUplink => self.dp.from_uplink_program().unwrap().test_run(options),
            Hook::XdpUplink => self.dp.xdp_uplink_program().unwrap().test_run(options),
            Hook::FromOverlay => self.dp.from_overlay_program().unwrap().test_run(options),
            Hook::DnsFast => self.dp.dns_fast_program().unwrap().test_run(options),
        }
        .expect("BPF_PROG_TEST_RUN");
        out.truncate(result.data_size_out as usize);
        (result.return_value, out)
    }

    pub(crate) fn counter(&self, hook: Hook, reason: Reason) -> u64 {
        let stats = self.dp.stats().unwrap();
        stats
            .iter()
            .find(|s| {
                s.program == hook.program() && s.reason == reason && s.direction == hook.direction()
            })
            .map(|s| s.packets)
            .unwrap()
    }

    pub(crate) fn ct(&mut self) -> HashMap<CtKey, CtEntry> {
        self.dp.conntrack_entries().unwrap().into_iter().collect()
    }

    pub(crate) fn states(&mut self, keys: [&CtKey; 2]) -> [u8; 2] {
        let table = self.ct();
        keys.map(|key| table[key].state)
    }

    /// Checks that the entry at `key` rewrites packets to `src` -> `dst` with `state` and `flags`, and
    /// was stamped during the test; returns its service id.
    pub(crate) fn assert_ct(
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
            // Sequence tracking has cases of its own (`sequence`).
            seq_seen: entry.seq_seen,
            pad: 0,
            service_id: entry.service_id,
            seq_end: entry.seq_end,
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
pub(crate) fn ct_key(src: SocketAddrV4, dst: SocketAddrV4, proto: u8, dir: u8) -> CtKey {
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
pub(crate) fn tcp(macs: Macs, src: SocketAddrV4, dst: SocketAddrV4, flags: u8) -> Vec<u8> {
    tcp_segment(macs, src, dst, flags, SEQ, b"")
}

/// A TCP data segment (ACK, PSH, 5 bytes).
pub(crate) fn data(macs: Macs, src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    tcp_segment(macs, src, dst, TCP_ACK | TCP_PSH, SEQ, b"hello")
}

/// A UDP datagram with a 5-byte payload.
pub(crate) fn udp(macs: Macs, src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    udp_datagram(macs, src, dst, b"query")
}

/// `frame` with its UDP checksum zeroed ("no checksum").
pub(crate) fn unsummed(mut frame: Vec<u8>) -> Vec<u8> {
    frame[40..42].copy_from_slice(&[0, 0]);
    frame
}

/// `frame` with IPv4 header bytes from `offset` replaced and the header checksum recomputed.
pub(crate) fn with_ip_bytes(mut frame: Vec<u8>, offset: usize, bytes: &[u8]) -> Vec<u8> {
    frame[14 + offset..14 + offset + bytes.len()].copy_from_slice(bytes);
    frame[24..26].copy_from_slice(&[0, 0]);
    let sum = !ones_sum(&[&frame[14..34]]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
    frame
}

/// `syn` with an IPv4 total length of 30 (10 bytes of its 20-byte TCP header), cut to that length.
pub(crate) fn short_tcp(syn: &[u8]) -> Vec<u8> {
    with_ip_bytes(syn.to_vec(), 2, &30u16.to_be_bytes())[..14 + 30].to_vec()
}

pub(crate) fn source(frame: &[u8]) -> SocketAddrV4 {
    sock(
        Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]),
        u16::from_be_bytes([frame[34], frame[35]]),
    )
}

pub(crate) fn destination(frame: &[u8]) -> SocketAddrV4 {
    sock(
        Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]),
        u16::from_be_bytes([frame[36], frame[37]]),
    )
}

pub(crate) fn macs(frame: &[u8]) -> Macs {
    Macs {
        dst: frame[0..6].try_into().unwrap(),
        src: frame[6..12].try_into().unwrap(),
    }
}

/// One's-complement sum of big-endian 16-bit words (an odd tail padded with zero), folded to 16 bits.
pub(crate) fn ones_sum(chunks: &[&[u8]]) -> u16 {
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
pub(crate) fn ip_checksum_ok(frame: &[u8]) -> bool {
    ones_sum(&[&frame[14..34]]) == 0xffff
}

/// Whether the TCP/UDP checksum verifies over the pseudo header and the segment the IPv4 total length
/// covers.
pub(crate) fn l4_checksum_ok(frame: &[u8]) -> bool {
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let segment = &frame[34..14 + total];
    let len = (segment.len() as u16).to_be_bytes();
    let pseudo = [0, frame[23], len[0], len[1]];
    ones_sum(&[&frame[26..34], &pseudo, segment]) == 0xffff
}

pub(crate) fn assert_checksums(frame: &[u8], what: &str) {
    assert!(ip_checksum_ok(frame), "{what}: IPv4 header checksum");
    assert!(l4_checksum_ok(frame), "{what}: L4 checksum");
}

pub(crate) fn assert_snat_port(port: u16, what: &str) {
    assert!(
        (SNAT_PORT_MIN..=SNAT_PORT_MIN + (SNAT_PORT_COUNT - 1)).contains(&port),
        "{what}: SNAT port {port} outside 61000..=65535"
    );
}
