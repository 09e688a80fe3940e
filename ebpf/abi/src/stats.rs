//! The STATS map: per-CPU packet and byte counters keyed by (program, reason, direction).
//!
//! The map is a per-CPU array; [`stats_index`] is the only place that turns a key into an index, so the
//! kernel and user space agree by construction. Every verdict and every drop has a [`Reason`]: a drop
//! without a reason is a bug.

/// The program that counted the packet.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Program {
    /// tcx ingress on the host side of a pod's veth: traffic leaving a pod.
    FromPod = 0,
    /// cgroup socket hooks: service translation at connect/sendmsg time.
    SockLb = 1,
    /// tcx ingress on the node's uplink: traffic from outside the node.
    FromUplink = 2,
    /// XDP on the node's uplink: the early drops and rejections.
    XdpUplink = 3,
    /// tcx ingress on the VXLAN device: packets decapsulated from other nodes.
    FromOverlay = 4,
    /// tcx egress on the VXLAN device: the node's own packets for remote pods, given their tunnel.
    ToOverlay = 5,
    /// The kernel DNS fast path inside `from_pod`: queries to this node's DNS listener.
    DnsFast = 6,
}

impl Program {
    /// Every program, for user space iteration.
    pub const ALL: [Program; 7] = [
        Program::FromPod,
        Program::SockLb,
        Program::FromUplink,
        Program::XdpUplink,
        Program::FromOverlay,
        Program::ToOverlay,
        Program::DnsFast,
    ];
    /// Stable label used in metrics.
    pub const fn label(self) -> &'static str {
        match self {
            Program::FromPod => "from-pod",
            Program::SockLb => "sock-lb",
            Program::FromUplink => "from-uplink",
            Program::XdpUplink => "xdp-uplink",
            Program::FromOverlay => "from-overlay",
            Program::ToOverlay => "to-overlay",
            Program::DnsFast => "dns-fast",
        }
    }
}

/// Traffic direction, seen from the pod.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Leaving a pod.
    Egress = 0,
    /// Entering a pod.
    Ingress = 1,
}

impl Direction {
    /// Every direction, for user space iteration.
    pub const ALL: [Direction; 2] = [Direction::Egress, Direction::Ingress];
    /// Stable label used in metrics.
    pub const fn label(self) -> &'static str {
        match self {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
        }
    }
}

/// Why a packet got its verdict. Codes below [`Reason::FIRST_DROP`] are forwarding verdicts, the rest drops.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Delivered to a pod on this node with `bpf_redirect_peer`.
    DeliveredLocal = 0,
    /// IPv4 with a destination that is not a local pod: handed to the node's stack unchanged.
    PassToStack = 1,
    /// Not IPv4 (ARP, IPv6, ...) from outside the node: handed to the node's stack unchanged.
    PassNonIpv4 = 2,
    /// A socket's service address was translated to a backend.
    ServiceTranslated = 3,
    /// A packet to a service address was translated to its backend (per-packet path; new or tracked flow),
    /// and sent to a local pod or, with `bpf_redirect_neigh`, out of the uplink.
    ServiceNat = 4,
    /// A reply from a backend was translated back to the service address (per-packet path).
    ReverseNat = 5,
    /// An ICMP error (destination unreachable, fragmentation needed, time exceeded) about a packet of a
    /// translated flow, translated like the flow (outer and quoted headers) and sent to the flow's side
    /// that sent the quoted packet.
    IcmpErrorNat = 6,
    /// Passed on by XDP to the tc program (not handled on the fast path).
    PassToTc = 7,
    /// Sent to a pod on another node: into the VXLAN tunnel (inner MACs set for the remote VTEP), or
    /// straight to the remote node's address (direct routing).
    OverlayEncap = 8,
    /// Arrived through the VXLAN tunnel from another node and delivered (to a local pod, through the
    /// per-packet service path, or to the node's stack).
    OverlayDecap = 9,
    /// A pod's first packet to an address outside the cluster, sent out of the uplink from the node's
    /// address (masquerade; the flow is tracked, so its replies are reversed to the pod as `reverse_nat`).
    Masquerade = 10,
    /// DNS fast path: the query was answered in the kernel and sent back into the pod.
    DnsAnswered = 11,
    /// DNS fast path: a query it could answer, for a name it does not hold (passed to the server).
    DnsNotHeld = 12,
    /// DNS fast path: a query it does not answer exactly (another type or class, EDNS options,
    /// several questions, a long or compressed name, a malformed message; passed to the server).
    DnsNotHandled = 13,
    /// Frame shorter than an Ethernet header.
    DropTruncatedEthernet = 16,
    /// Frame ends inside the IPv4 header.
    DropTruncatedIpv4 = 17,
    /// IPv4 header with a wrong version, a header length under 20 bytes, or a total length that does not fit.
    DropMalformedIpv4 = 18,
    /// Source address does not belong to the pod whose interface sent the packet; on the uplink, a source
    /// address that exists only inside the node (a local pod's, the hairpin source, the node's own).
    DropSpoofedSource = 19,
    /// Rewriting the frame for delivery failed.
    DropRewriteFailed = 20,
    /// A service with no backends: the connection is refused at once.
    DropNoBackend = 21,
    /// The client is outside the frontend's `loadBalancerSourceRanges`.
    DropSourceRange = 22,
    /// TCP or UDP header cut short (checked against the IP packet's length, not the frame's).
    DropMalformedL4 = 23,
    /// No free SNAT port for the flow (or rewriting it failed).
    DropNatFailed = 24,
    /// Not IPv4 (IPv6, ARP, ...) from a pod: pods get IPv4 only, and their neighbours are permanent
    /// entries, so nothing else is needed; passing IPv6 on would let a pod send router advertisements to
    /// the node (the CVE-2020-10749 class) or reach node services on `[::]`.
    DropNonIpv4 = 25,
    /// A TCP RST of a tracked flow whose sequence number is not one its sender could have sent (see
    /// `conntrack::rst_plausible`): a blind or stale reset, dropped before it can close the flow and
    /// free its SNAT port.
    DropRstOutOfWindow = 26,
    /// Arrived through the VXLAN tunnel with an inner source that the sending node does not own (not in
    /// its pod CIDR, not its own address), from a tunnel endpoint that is no known node, or on another
    /// VNI.
    DropOverlaySource = 27,
    /// Bound for the VXLAN tunnel but longer than it carries (the VXLAN device's MTU), with Don't
    /// Fragment set: answered with ICMP fragmentation needed naming the tunnel's MTU, sent back to the
    /// sender, as a router (and Flannel's kernel `flannel.1`) answers.
    DropTooBigForTunnel = 28,
    /// A frontend whose traffic policy is `Local` and whose Service's endpoints are all on other nodes:
    /// dropped without an answer, as kube-proxy does, so a client (or a load balancer steering by the
    /// health check) waits or retries elsewhere rather than being refused.
    DropNoLocalBackend = 29,
    /// NetworkPolicy: the pod is isolated in this direction and no rule allows the flow (or the packet
    /// is a later fragment or an ICMP error with no judged flow behind it).
    DropPolicyDenied = 30,
}

impl Reason {
    /// First code that means "dropped".
    pub const FIRST_DROP: u32 = 16;
    /// Number of reason slots reserved per (program, direction).
    pub const SLOTS: u32 = 32;
    /// Every reason, for user space iteration.
    pub const ALL: [Reason; 29] = [
        Reason::DeliveredLocal,
        Reason::PassToStack,
        Reason::PassNonIpv4,
        Reason::ServiceTranslated,
        Reason::ServiceNat,
        Reason::ReverseNat,
        Reason::IcmpErrorNat,
        Reason::PassToTc,
        Reason::OverlayEncap,
        Reason::OverlayDecap,
        Reason::Masquerade,
        Reason::DnsAnswered,
        Reason::DnsNotHeld,
        Reason::DnsNotHandled,
        Reason::DropTruncatedEthernet,
        Reason::DropTruncatedIpv4,
        Reason::DropMalformedIpv4,
        Reason::DropSpoofedSource,
        Reason::DropRewriteFailed,
        Reason::DropNoBackend,
        Reason::DropSourceRange,
        Reason::DropMalformedL4,
        Reason::DropNatFailed,
        Reason::DropNonIpv4,
        Reason::DropRstOutOfWindow,
        Reason::DropOverlaySource,
        Reason::DropTooBigForTunnel,
        Reason::DropNoLocalBackend,
        Reason::DropPolicyDenied,
    ];

    /// Whether this reason means the packet was dropped.
    pub const fn is_drop(self) -> bool {
        self as u32 >= Self::FIRST_DROP
    }

    /// Stable label used in metrics and logs.
    pub const fn label(self) -> &'static str {
        match self {
            Reason::DeliveredLocal => "delivered_local",
            Reason::PassToStack => "pass_to_stack",
            Reason::PassNonIpv4 => "pass_non_ipv4",
            Reason::ServiceTranslated => "service_translated",
            Reason::ServiceNat => "service_nat",
            Reason::ReverseNat => "reverse_nat",
            Reason::IcmpErrorNat => "icmp_error_nat",
            Reason::PassToTc => "pass_to_tc",
            Reason::OverlayEncap => "overlay_encap",
            Reason::OverlayDecap => "overlay_decap",
            Reason::Masquerade => "masquerade",
            Reason::DnsAnswered => "dns_answered",
            Reason::DnsNotHeld => "dns_not_held",
            Reason::DnsNotHandled => "dns_not_handled",
            Reason::DropTruncatedEthernet => "truncated_ethernet",
            Reason::DropTruncatedIpv4 => "truncated_ipv4",
            Reason::DropMalformedIpv4 => "malformed_ipv4",
            Reason::DropSpoofedSource => "spoofed_source",
            Reason::DropRewriteFailed => "rewrite_failed",
            Reason::DropNoBackend => "no_backend",
            Reason::DropSourceRange => "source_range",
            Reason::DropMalformedL4 => "malformed_l4",
            Reason::DropNatFailed => "nat_failed",
            Reason::DropNonIpv4 => "non_ipv4",
            Reason::DropRstOutOfWindow => "rst_out_of_window",
            Reason::DropOverlaySource => "overlay_source",
            Reason::DropTooBigForTunnel => "too_big_for_tunnel",
            Reason::DropNoLocalBackend => "no_local_backend",
            Reason::DropPolicyDenied => "policy_denied",
        }
    }
}

/// Number of program slots reserved in the STATS map.
pub const STATS_PROGRAM_SLOTS: u32 = 8;
/// Number of entries of the STATS map.
pub const STATS_ENTRIES: u32 = STATS_PROGRAM_SLOTS * Reason::SLOTS * 2;

/// Index of the STATS entry for (program, reason, direction).
#[inline]
pub const fn stats_index(program: Program, reason: Reason, direction: Direction) -> u32 {
    ((program as u32 * Reason::SLOTS) + reason as u32) * 2 + direction as u32
}

/// One per-CPU counter cell of the STATS map (host byte order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsValue {
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted (skb length, including the Ethernet header).
    pub bytes: u64,
}

const _: () = assert!(core::mem::size_of::<StatsValue>() == 16);
const _: () = assert!(
    stats_index(
        Program::FromPod,
        Reason::DropRewriteFailed,
        Direction::Ingress
    ) < STATS_ENTRIES
);

#[cfg(feature = "user")]
// SAFETY: plain-old-data, `#[repr(C)]`, two u64 fields, no padding.
unsafe impl aya::Pod for StatsValue {}
