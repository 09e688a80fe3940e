//! The NetworkPolicy maps: who a packet's peer is, whether a local pod is isolated, which traffic its
//! policies allow, which flows were already judged, and the verdicts reported to user space.
//!
//! - IPCACHE_V1 (hash): a pod address of the whole cluster → the pod's identity, a number standing for
//!   its (namespace, labels). Each node numbers identities on its own; a missing address is
//!   [`IDENTITY_WORLD`].
//! - POLICY_SUBJECT_V1 (hash): a local pod's address → [`PolicySubject`]: isolated per direction, audit
//!   mode. A local pod without an entry is isolated in neither direction.
//! - POLICY_V1 (LPM trie): (subject, peer identity, direction, protocol, port prefix) → the rule that
//!   allows it. Peer identity 0 is any peer; a port range is stored as the prefixes that cover it; the
//!   fixed fields are always matched in full ([`POLICY_KEY_FIXED_BITS`]), the port by its prefix.
//! - POLICY_CIDR_V1 (LPM trie): (subject, direction, protocol, peer address prefix) → the ports the
//!   `ipBlock` rules covering that prefix allow. `except`s and overlapping blocks are split by user
//!   space into prefixes whose longest match carries the union of the ports of every rule covering it.
//! - POLICY_CT_V1 (LRU hash): a flow (after service translation, as first seen) → which of its
//!   judgements this node made and passed ([`POLICY_CT_EGRESS`], [`POLICY_CT_INGRESS`]). A packet of a
//!   judged flow, or a reply to one, is not judged again: established connections keep their verdict
//!   when policies change. A TCP SYN (without ACK) always opens a new flow and is judged; a UDP or
//!   ICMP flow idle for [`POLICY_CT_IDLE_S`] is judged again.
//! - POLICY_FRAG_V1 (LRU hash): a fragmented datagram (`FragKey`, as it arrived) → the judgements its
//!   first fragment passed; later fragments carry no ports and follow their first, or are dropped.
//! - POLICY_EVENTS_V1 (ring buffer): one [`PolicyVerdict`] per judgement (the first packet of a flow in
//!   each direction this node judges).
//! - POLICY_EVENTS_LOST_V1 (per-CPU array, one `u64`): judgements the ring buffer had no room for.

/// Anything outside the cluster (no pod owns the address).
pub const IDENTITY_WORLD: u32 = 1;
/// The node itself.
pub const IDENTITY_HOST: u32 = 2;
/// The first identity given to pods; those below are reserved.
pub const FIRST_POD_IDENTITY: u32 = 256;
/// In a POLICY_V1 key: any peer.
pub const IDENTITY_ANY: u32 = 0;

/// Direction codes in keys and verdicts (those of [`crate::Direction`]).
pub const POLICY_EGRESS: u8 = 0;
pub const POLICY_INGRESS: u8 = 1;

/// Key of IPCACHE_V1 and POLICY_SUBJECT_V1: an IPv4 address, network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PolicyAddr {
    pub addr: u32,
}

/// Value of IPCACHE_V1.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdentityValue {
    pub identity: u32,
}

/// [`PolicySubject::flags`]: some policy selects the pod for ingress.
pub const SUBJECT_F_INGRESS_ISOLATED: u32 = 1;
/// [`PolicySubject::flags`]: some policy selects the pod for egress.
pub const SUBJECT_F_EGRESS_ISOLATED: u32 = 2;
/// [`PolicySubject::flags`]: audit mode: a would-be drop passes and is reported as `audit`.
pub const SUBJECT_F_AUDIT: u32 = 4;

/// Value of POLICY_SUBJECT_V1.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicySubject {
    pub flags: u32,
    /// The pod's own identity (reported in verdicts).
    pub identity: u32,
}

/// Data of a POLICY_V1 key (wrapped in an LPM key with its prefix length).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PolicyKey {
    /// The local pod the rule protects (network byte order).
    pub subject: u32,
    /// The peer's identity, [`IDENTITY_ANY`] for any peer (big-endian, so it sorts as a prefix).
    pub peer: [u8; 4],
    /// [`POLICY_EGRESS`] or [`POLICY_INGRESS`].
    pub direction: u8,
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP).
    pub protocol: u8,
    /// The destination port (network byte order), matched by the key's prefix beyond the fixed bits.
    pub port: [u8; 2],
}

/// Bits of a POLICY_V1 key always matched in full: subject, peer, direction, protocol.
pub const POLICY_KEY_FIXED_BITS: u32 = 80;

/// Value of POLICY_V1 and the rule part of a verdict: which policy rule allowed the traffic.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyRule {
    /// The policy's number in this node's table (user space names it); 0: none.
    pub policy: u32,
    /// The rule's index in the policy's ingress or egress list.
    pub rule: u32,
}

/// Data of a POLICY_CIDR_V1 key (wrapped in an LPM key with its prefix length).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PolicyCidrKey {
    pub subject: u32,
    pub direction: u8,
    pub protocol: u8,
    pub pad: [u8; 2],
    /// The peer's address (network byte order), matched by the key's prefix beyond the fixed bits.
    pub addr: u32,
}

/// Bits of a POLICY_CIDR_V1 key always matched in full: subject, direction, protocol, padding.
pub const POLICY_CIDR_KEY_FIXED_BITS: u32 = 64;

/// How many port ranges one POLICY_CIDR_V1 value holds.
pub const POLICY_CIDR_RANGES: usize = 8;

/// An inclusive port range, host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// Value of POLICY_CIDR_V1: the ports allowed to or from the addresses whose longest match this is.
/// No range (`count` 0) allows nothing: an `except` carved out of a block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyCidrAllow {
    /// One rule that allows traffic here (reported in verdicts).
    pub rule: PolicyRule,
    /// Ranges in use.
    pub count: u32,
    pub ranges: [PortRange; POLICY_CIDR_RANGES],
}

/// Key of POLICY_CT_V1: a flow as first judged (after service translation).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PolicyCtKey {
    pub saddr: u32,
    pub daddr: u32,
    /// Ports (network byte order); 0 for protocols without them.
    pub sport: u16,
    pub dport: u16,
    pub protocol: u8,
    pub pad: [u8; 3],
}

/// [`PolicyCtValue::flags`]: the source's egress was judged on this node and passed.
pub const POLICY_CT_EGRESS: u32 = 1;
/// [`PolicyCtValue::flags`]: the destination's ingress was judged on this node and passed.
pub const POLICY_CT_INGRESS: u32 = 2;

/// Value of POLICY_CT_V1.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyCtValue {
    pub flags: u32,
    /// When the flow was last seen, in whole seconds of `bpf_ktime_get_ns` (refreshed at most once a
    /// second). A flow without TCP idle longer than [`POLICY_CT_IDLE_S`] is judged afresh.
    pub seen_s: u32,
}

/// Seconds a judged flow of a protocol without connections (UDP, ICMP) stays established while idle
/// (Cilium's non-TCP lifetime). A TCP flow stays until a new SYN on its tuple, which is judged afresh.
pub const POLICY_CT_IDLE_S: u32 = 60;

/// A verdict: allowed (by a rule, or because the pod is not isolated).
pub const VERDICT_ALLOWED: u8 = 1;
/// A verdict: denied (the pod is isolated and no rule allows it).
pub const VERDICT_DENIED: u8 = 2;
/// A verdict: would have been denied, allowed in audit mode.
pub const VERDICT_AUDIT: u8 = 3;

/// [`PolicyVerdict::by`]: the pod is not isolated in this direction.
pub const BY_NOT_ISOLATED: u8 = 0;
/// [`PolicyVerdict::by`]: a rule ([`PolicyVerdict::rule`]).
pub const BY_RULE: u8 = 1;
/// [`PolicyVerdict::by`]: the default deny of the policies isolating the pod.
pub const BY_DEFAULT_DENY: u8 = 2;

/// One judgement, on POLICY_EVENTS_V1.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyVerdict {
    /// `bpf_ktime_get_ns` when judged.
    pub time_ns: u64,
    pub flow: PolicyCtKey,
    /// The identity of the local pod judged, and of its peer.
    pub subject_identity: u32,
    pub peer_identity: u32,
    /// The rule that allowed it (when [`PolicyVerdict::by`] is [`BY_RULE`]).
    pub rule: PolicyRule,
    /// [`POLICY_EGRESS`] (the source's egress) or [`POLICY_INGRESS`] (the destination's ingress).
    pub direction: u8,
    /// [`VERDICT_ALLOWED`], [`VERDICT_DENIED`] or [`VERDICT_AUDIT`].
    pub verdict: u8,
    /// [`BY_NOT_ISOLATED`], [`BY_RULE`] or [`BY_DEFAULT_DENY`].
    pub by: u8,
    pub pad: u8,
    pub pad2: u32,
}

const _: () = assert!(core::mem::size_of::<PolicyAddr>() == 4);
const _: () = assert!(core::mem::size_of::<IdentityValue>() == 4);
const _: () = assert!(core::mem::size_of::<PolicySubject>() == 8);
const _: () = assert!(core::mem::size_of::<PolicyKey>() == 12);
const _: () = assert!(core::mem::size_of::<PolicyRule>() == 8);
const _: () = assert!(core::mem::size_of::<PolicyCidrKey>() == 12);
const _: () = assert!(core::mem::size_of::<PolicyCidrAllow>() == 12 + 4 * POLICY_CIDR_RANGES);
const _: () = assert!(core::mem::size_of::<PolicyCtKey>() == 16);
const _: () = assert!(core::mem::size_of::<PolicyCtValue>() == 8);
const _: () = assert!(core::mem::size_of::<PolicyVerdict>() == 48);

#[cfg(feature = "user")]
mod pod {
    use super::{
        IdentityValue, PolicyAddr, PolicyCidrAllow, PolicyCidrKey, PolicyCtKey, PolicyCtValue,
        PolicyKey, PolicyRule, PolicySubject, PolicyVerdict, PortRange,
    };
    // SAFETY (all): plain-old-data, `#[repr(C)]`, no implicit padding (checked by the size assertions).
    unsafe impl aya::Pod for PolicyAddr {}
    unsafe impl aya::Pod for IdentityValue {}
    unsafe impl aya::Pod for PolicySubject {}
    unsafe impl aya::Pod for PolicyKey {}
    unsafe impl aya::Pod for PolicyRule {}
    unsafe impl aya::Pod for PolicyCidrKey {}
    unsafe impl aya::Pod for PortRange {}
    unsafe impl aya::Pod for PolicyCidrAllow {}
    unsafe impl aya::Pod for PolicyCtKey {}
    unsafe impl aya::Pod for PolicyCtValue {}
    unsafe impl aya::Pod for PolicyVerdict {}
}
