//! NetworkPolicy enforcement (see `strait_abi::policy` for the maps). A flow is judged once per
//! direction this node is responsible for: the source pod's egress in `from_pod`, after service
//! translation, and the destination pod's ingress at delivery. Each judgement that passes is recorded
//! in POLICY_CT_V1 under the flow as judged (after translation); later packets of the flow, and
//! replies to it, pass on that record, so established connections keep their verdict when policies
//! change. A reply is recognised by the flow as it arrived here ([`Seen::arrived`]), before any reverse
//! translation: that is the judged flow reversed.
//!
//! Judging: a pod no policy isolates in the direction is allowed. Otherwise the peer's identity
//! (IPCACHE_V1; anything else is the world) is looked up in POLICY_V1 with the exact identity, then any
//! peer, the port matched by its longest prefix; then the peer's address in POLICY_CIDR_V1 (`ipBlock`).
//! No match is a deny, unless the pod is in audit mode. Every judgement goes to POLICY_EVENTS_V1, or,
//! when user space lags and the buffer is full, is counted in POLICY_EVENTS_LOST_V1.
//!
//! Later fragments carry no ports: they follow their first fragment's judgements (POLICY_FRAG_V1).
//! ICMP errors follow the flow they quote: one about a service-translated flow was matched to it by
//! `icmp_nat`; any other passes only when the flow it quotes was judged here. A pod's traffic to its
//! own node is not judged, as the node's traffic to its pods never is (it does not pass here).
//!
//! Every key and value the judgement builds lives in a per-CPU scratch slot (POLICY_SCRATCH), not on
//! the stack: `from_pod`'s stack is nearly full, and the judgement is a BPF-to-BPF call whose frame
//! adds to its caller's.

#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "keys and values are passed by reference so the helpers read them from the scratch slot, not from a stack copy"
)]

use aya_ebpf::{
    bindings::__sk_buff,
    helpers::bpf_ktime_get_ns,
    macros::map,
    maps::{PerCpuArray, lpm_trie::Key},
    programs::TcContext,
};
use strait_abi::{
    Reason,
    fragment::FragKey,
    policy::{
        BY_DEFAULT_DENY, BY_NOT_ISOLATED, BY_RULE, IDENTITY_ANY, IDENTITY_WORLD,
        POLICY_CIDR_KEY_FIXED_BITS, POLICY_CT_EGRESS, POLICY_CT_IDLE_S, POLICY_CT_INGRESS,
        POLICY_EGRESS, POLICY_INGRESS, POLICY_KEY_FIXED_BITS, PolicyAddr, PolicyCidrKey,
        PolicyCtKey, PolicyCtValue, PolicyKey, PolicyRule, PolicySubject, PolicyVerdict,
        SUBJECT_F_AUDIT, SUBJECT_F_EGRESS_ISOLATED, SUBJECT_F_INGRESS_ISOLATED, VERDICT_ALLOWED,
        VERDICT_AUDIT, VERDICT_DENIED,
    },
};

use crate::{
    icmp_nat::PROTO_ICMP,
    maps::{
        IPCACHE_V1, POLICY_CIDR_V1, POLICY_CT_V1, POLICY_EVENTS_LOST_V1, POLICY_EVENTS_V1,
        POLICY_FRAG_V1, POLICY_SUBJECT_V1, POLICY_V1,
    },
    node_local,
    parse::{ETH_LEN, Ipv4, PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_SYN, bytes_at, l4_offset},
};

/// ICMP echo request and reply: their identifier stands in for both ports, so a reply is the
/// request's flow reversed.
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;

/// [`Scratch::piece`]: a whole datagram, a first fragment, a later fragment.
const WHOLE: u8 = 0;
const FIRST: u8 = 1;
const LATER: u8 = 2;

/// The judgement's working memory, one per CPU (a program runs to its end on its CPU).
#[repr(C)]
pub struct Scratch {
    /// The packet as it arrived at the program, before any translation.
    arrived: PolicyCtKey,
    /// The packet as it is at the judgement (after translation).
    flow: PolicyCtKey,
    /// A flow looked up reversed.
    reversed: PolicyCtKey,
    /// A flow an ICMP error quotes.
    quoted: PolicyCtKey,
    allow_key: Key<PolicyKey>,
    cidr_key: Key<PolicyCidrKey>,
    frag_key: FragKey,
    ct_value: PolicyCtValue,
    /// The verdict being made; its `direction` is the judgement's.
    verdict: PolicyVerdict,
    /// The local pod judged, its isolation entry, and its peer.
    subject_addr: PolicyAddr,
    subject: PolicySubject,
    peer: PolicyAddr,
    /// Now, in whole seconds of `bpf_ktime_get_ns`.
    now_s: u32,
    id: u16,
    piece: u8,
    /// The packet is a TCP SYN without ACK: a new connection, always judged.
    syn: u8,
    /// The arriving packet is an ICMP error.
    icmp_error: u8,
    /// An ICMP error `icmp_nat` matched to a service-translated flow.
    related: u8,
    pad: [u8; 2],
}

#[map(name = "POLICY_SCRATCH")]
static POLICY_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn scratch() -> Option<*mut Scratch> {
    POLICY_SCRATCH.get_ptr_mut(0)
}

/// Proof that this CPU's scratch slot holds the packet as it arrived at the program.
pub struct Seen(());

impl Seen {
    /// Records the packet in `ctx` as it is now (call before translating it).
    #[inline(always)]
    pub fn now(ctx: &TcContext, ip: &Ipv4) -> Self {
        if let Some(slot) = scratch() {
            // SAFETY: the slot is this CPU's; plain stores into map memory.
            unsafe {
                (*slot).icmp_error = u8::from(flow_of(ctx, ip, &raw mut (*slot).arrived));
                (*slot).id = ip.id;
                (*slot).piece = if ip.later_fragment {
                    LATER
                } else if ip.more_fragments {
                    FIRST
                } else {
                    WHOLE
                };
                (*slot).related = 0;
            }
        }
        Self(())
    }

    /// Marks the packet as an ICMP error `icmp_nat` matched to a translated flow: it follows the flow.
    #[inline(always)]
    #[expect(
        clippy::unused_self,
        reason = "taking the proof keeps the mark to a packet whose arrival was recorded"
    )]
    pub fn related(&self) {
        if let Some(slot) = scratch() {
            // SAFETY: the slot is this CPU's.
            unsafe { (*slot).related = 1 };
        }
    }
}

/// Writes the flow of the packet `ip` heads into `out` (ports 0 where there are none); whether it is
/// an ICMP error.
#[inline(always)]
fn flow_of(ctx: &TcContext, ip: &Ipv4, out: *mut PolicyCtKey) -> bool {
    let (mut sport, mut dport, mut icmp_error) = (0, 0, false);
    if !ip.later_fragment
        && let Some(l4) = bytes_at(ctx, l4_offset(ip), 8)
    {
        // SAFETY: `bytes_at` checked the 8 bytes are in bounds.
        let head: [u8; 8] = unsafe { core::ptr::read_unaligned(l4.cast()) };
        if ip.proto == PROTO_TCP || ip.proto == PROTO_UDP {
            sport = u16::from_ne_bytes([head[0], head[1]]);
            dport = u16::from_ne_bytes([head[2], head[3]]);
        } else if ip.proto == PROTO_ICMP {
            if head[0] == ICMP_ECHO_REQUEST || head[0] == ICMP_ECHO_REPLY {
                sport = u16::from_ne_bytes([head[4], head[5]]);
                dport = sport;
            } else {
                icmp_error = true;
            }
        }
    }
    // SAFETY: `out` points into this CPU's scratch slot.
    unsafe {
        *out = PolicyCtKey {
            saddr: ip.src,
            daddr: ip.dst,
            sport,
            dport,
            protocol: ip.proto,
            pad: [0; 3],
        };
    }
    icmp_error
}

#[inline(always)]
fn reverse_into(flow: &PolicyCtKey, out: &mut PolicyCtKey) {
    out.saddr = flow.daddr;
    out.daddr = flow.saddr;
    out.sport = flow.dport;
    out.dport = flow.sport;
    out.protocol = flow.protocol;
}

/// Judges the egress of the local pod that sent the packet in `ctx` (already translated).
#[inline(always)]
pub fn egress(ctx: &TcContext, seen: &Seen) -> Result<(), Reason> {
    judge_here(ctx, seen, POLICY_EGRESS)
}

/// Judges the ingress of the local pod the packet in `ctx` is about to be delivered to.
#[inline(always)]
pub fn ingress(ctx: &TcContext, seen: &Seen) -> Result<(), Reason> {
    judge_here(ctx, seen, POLICY_INGRESS)
}

#[inline(always)]
fn judge_here(ctx: &TcContext, _seen: &Seen, direction: u8) -> Result<(), Reason> {
    if judge_packet(ctx.skb.skb, direction) == 0 {
        Ok(())
    } else {
        Err(Reason::DropPolicyDenied)
    }
}

/// Judges the packet in `skb` in `direction`: 0 passes, 1 denies. Not inlined: one copy serves every
/// delivery path, which keeps the programs small for the verifier; its frame adds to `from_pod`'s,
/// so everything it builds lives in the scratch slot.
#[inline(never)]
fn judge_packet(skb: *mut __sk_buff, direction: u8) -> u32 {
    let ctx = TcContext::new(skb);
    let Some(slot) = scratch() else {
        return 1;
    };
    // SAFETY: the slot is this CPU's; `Seen` (held by every caller) proves it holds this packet's
    // arrival.
    let s = unsafe { &mut *slot };
    if s.related != 0 {
        return 0;
    }
    let Some(icmp_error) = current_flow(&ctx, s) else {
        return 1;
    };
    // The judgement's state lives in the slot, not in registers spilled to the stack.
    s.verdict.direction = direction;
    set_parties(s);
    let passed = if s.piece == LATER {
        later_fragment(s)
    } else if icmp_error || s.icmp_error != 0 {
        quoted_flow_judged(&ctx, s)
    } else {
        judge(s)
    };
    u32::from(!passed)
}

/// Writes the packet's flow as it is now (after any translation) into the slot; whether it is an
/// ICMP error. Reads field by field: nothing on the stack.
#[inline(always)]
fn current_flow(ctx: &TcContext, s: &mut Scratch) -> Option<bool> {
    let ip = bytes_at(ctx, ETH_LEN, 20)?;
    // SAFETY: `bytes_at` checked the 20 bytes are in bounds.
    let (header_len, fragment, protocol) = unsafe {
        s.flow.saddr = core::ptr::read_unaligned(ip.add(12).cast::<u32>());
        s.flow.daddr = core::ptr::read_unaligned(ip.add(16).cast::<u32>());
        (
            usize::from(*ip & 0x0f) * 4,
            u16::from_be_bytes([*ip.add(6), *ip.add(7)]) & 0x1fff,
            *ip.add(9),
        )
    };
    // The padding stays as the zeroed slot has it: nothing writes it (a byte-wise clear would be a
    // call, and its spills would cost the caller's stack).
    s.flow.protocol = protocol;
    s.flow.sport = 0;
    s.flow.dport = 0;
    s.syn = 0;
    if fragment != 0 {
        return Some(false);
    }
    let Some(l4) = bytes_at(ctx, ETH_LEN + (header_len & 0x3c), 8) else {
        return Some(false);
    };
    // SAFETY: `bytes_at` checked the 8 bytes are in bounds.
    unsafe {
        if protocol == PROTO_TCP || protocol == PROTO_UDP {
            s.flow.sport = core::ptr::read_unaligned(l4.cast::<u16>());
            s.flow.dport = core::ptr::read_unaligned(l4.add(2).cast::<u16>());
        }
        if protocol == PROTO_TCP
            && let Some(flags) = bytes_at(ctx, ETH_LEN + (header_len & 0x3c) + 13, 1)
        {
            s.syn = u8::from(*flags & (TCP_SYN | TCP_ACK) == TCP_SYN);
        } else if protocol == PROTO_ICMP {
            if *l4 != ICMP_ECHO_REQUEST && *l4 != ICMP_ECHO_REPLY {
                return Some(true);
            }
            s.flow.sport = core::ptr::read_unaligned(l4.add(4).cast::<u16>());
            s.flow.dport = s.flow.sport;
        }
    }
    Some(false)
}

/// Flags of POLICY_CT: the judgement of `direction`, and the other one.
#[inline(always)]
const fn ct_flags(direction: u8) -> (u32, u32) {
    if direction == POLICY_EGRESS {
        (POLICY_CT_EGRESS, POLICY_CT_INGRESS)
    } else {
        (POLICY_CT_INGRESS, POLICY_CT_EGRESS)
    }
}

/// Fills in the local pod judged in the slot's direction, its isolation entry and its peer: for
/// egress the sender as it arrived (masquerading may have rewritten the source since) and the
/// destination; for ingress the destination and the source.
#[inline(always)]
fn set_parties(s: &mut Scratch) {
    if s.verdict.direction == POLICY_EGRESS {
        s.subject_addr.addr = s.arrived.saddr;
        s.peer.addr = s.flow.daddr;
    } else {
        s.subject_addr.addr = s.flow.daddr;
        s.peer.addr = s.flow.saddr;
    }
    // SAFETY: the value is copied out at once.
    s.subject = unsafe { POLICY_SUBJECT_V1.get(&s.subject_addr) }
        .copied()
        .unwrap_or_default();
}

#[inline(always)]
fn isolated(subject: &PolicySubject, direction: u8) -> bool {
    let bit = if direction == POLICY_EGRESS {
        SUBJECT_F_EGRESS_ISOLATED
    } else {
        SUBJECT_F_INGRESS_ISOLATED
    };
    subject.flags & bit != 0
}

/// A local pod's isolation entry (none: isolated in neither direction).
#[inline(always)]
fn subject_of(addr: u32) -> PolicySubject {
    // SAFETY: the value is copied out at once.
    unsafe { POLICY_SUBJECT_V1.get(PolicyAddr { addr }) }
        .copied()
        .unwrap_or_default()
}

/// Whether the local pod `addr` is isolated for ingress.
#[inline(always)]
pub fn ingress_isolated(addr: u32) -> bool {
    isolated(&subject_of(addr), POLICY_INGRESS)
}

/// Whether nothing is to be judged: the subject is not isolated in the slot's direction, or the
/// peer is its own node or itself.
#[inline(always)]
fn unjudged(s: &Scratch) -> bool {
    !isolated(&s.subject, s.verdict.direction) || own_node(s.subject_addr.addr, s.peer.addr)
}

/// A later fragment passes when its first fragment passed the same judgement here, or when there is
/// nothing to judge.
#[inline(always)]
fn later_fragment(s: &mut Scratch) -> bool {
    if unjudged(s) {
        return true;
    }
    let (mine, _) = ct_flags(s.verdict.direction);
    set_frag_key(s);
    // SAFETY: the value is copied out at once.
    unsafe { POLICY_FRAG_V1.get(&s.frag_key) }.is_some_and(|judged| judged.flags & mine != 0)
}

#[inline(always)]
fn set_frag_key(s: &mut Scratch) {
    s.frag_key = FragKey {
        saddr: s.arrived.saddr,
        daddr: s.arrived.daddr,
        id: s.id,
        proto: s.arrived.protocol,
        pad: 0,
    };
}

/// An ICMP error passes when the flow it quotes (option-less headers) was judged here, either way.
#[inline(always)]
fn quoted_flow_judged(ctx: &TcContext, s: &mut Scratch) -> bool {
    if unjudged(s) {
        return true;
    }
    // Outer IPv4 (20 bytes) + ICMP header (8) + quoted IPv4 (20) + quoted ports (4).
    let Some(quote) = bytes_at(ctx, ETH_LEN + 28, 24) else {
        return false;
    };
    // SAFETY: `bytes_at` checked the 24 bytes are in bounds; field by field, nothing on the stack.
    unsafe {
        s.quoted.saddr = core::ptr::read_unaligned(quote.add(12).cast::<u32>());
        s.quoted.daddr = core::ptr::read_unaligned(quote.add(16).cast::<u32>());
        s.quoted.sport = core::ptr::read_unaligned(quote.add(20).cast::<u16>());
        s.quoted.dport = core::ptr::read_unaligned(quote.add(22).cast::<u16>());
        s.quoted.protocol = *quote.add(9);
    }
    let quoted = s.quoted;
    reverse_into(&quoted, &mut s.reversed);
    // SAFETY (both): only whether an entry exists is read.
    unsafe { POLICY_CT_V1.get(&s.quoted) }.is_some()
        || unsafe { POLICY_CT_V1.get(&s.reversed) }.is_some()
}

/// Traffic between a pod and its own node, or a pod and itself (directly, or through a Service with
/// the hairpin source): never judged. The node's own traffic to its pods does not pass the programs,
/// so its replies, and what a pod starts towards its node, are let through too.
#[inline(always)]
fn own_node(subject: u32, peer: u32) -> bool {
    peer == subject || node_local::is_node_address(peer)
}

/// Judges the slot's flow in its direction; whether it passes. A packet of a flow judged here, or a
/// reply to one (the arrival reversed), is not judged again.
#[inline(always)]
fn judge(s: &mut Scratch) -> bool {
    // SAFETY: helper without arguments.
    s.now_s = (unsafe { bpf_ktime_get_ns() } / 1_000_000_000) as u32;
    if s.syn == 0 {
        let (mine, other) = ct_flags(s.verdict.direction);
        if established(&s.flow, mine, s.now_s) {
            return true;
        }
        let arrived = s.arrived;
        reverse_into(&arrived, &mut s.reversed);
        if established(&s.reversed, other, s.now_s) {
            return true;
        }
    }
    s.verdict.rule = PolicyRule::default();
    s.verdict.peer_identity = 0;
    if unjudged(s) {
        s.verdict.verdict = VERDICT_ALLOWED;
        s.verdict.by = BY_NOT_ISOLATED;
    } else {
        // SAFETY: the value is copied out at once.
        s.verdict.peer_identity =
            unsafe { IPCACHE_V1.get(&s.peer) }.map_or(IDENTITY_WORLD, |v| v.identity);
        if allowing_rule(s) {
            s.verdict.verdict = VERDICT_ALLOWED;
            s.verdict.by = BY_RULE;
        } else {
            s.verdict.by = BY_DEFAULT_DENY;
            s.verdict.verdict = if s.subject.flags & SUBJECT_F_AUDIT != 0 {
                VERDICT_AUDIT
            } else {
                VERDICT_DENIED
            };
        }
    }
    s.verdict.subject_identity = s.subject.identity;
    s.verdict.flow = s.flow;
    // SAFETY: helper without arguments.
    s.verdict.time_ns = unsafe { bpf_ktime_get_ns() };
    // Lost when user space lags and the buffer is full: counted, so user space knows.
    if POLICY_EVENTS_V1
        .output::<PolicyVerdict>(&s.verdict, 0)
        .is_err()
        && let Some(lost) = POLICY_EVENTS_LOST_V1.get_ptr_mut(0)
    {
        // SAFETY: this CPU's cell; programs do not preempt each other on one CPU.
        unsafe { *lost += 1 };
    }
    if s.verdict.verdict == VERDICT_DENIED {
        return false;
    }
    // Recorded in an LRU map: a full one forgets its oldest flow, which is then judged again.
    // SAFETY: the value is copied out at once.
    s.ct_value.flags = unsafe { POLICY_CT_V1.get(&s.flow) }.map_or(0, |v| v.flags)
        | ct_flags(s.verdict.direction).0;
    s.ct_value.seen_s = s.now_s;
    let _ = POLICY_CT_V1.insert(&s.flow, &s.ct_value, 0);
    if s.piece == FIRST {
        set_frag_key(s);
        // SAFETY: the value is copied out at once.
        s.ct_value.flags = unsafe { POLICY_FRAG_V1.get(&s.frag_key) }.map_or(0, |v| v.flags)
            | ct_flags(s.verdict.direction).0;
        let _ = POLICY_FRAG_V1.insert(&s.frag_key, &s.ct_value, 0);
    }
    true
}

/// Whether `flow` (a key in the scratch slot) was judged here with `flag` and is still live; a live
/// one that was not seen this second is refreshed in place.
#[inline(always)]
fn established(flow: &PolicyCtKey, flag: u32, now_s: u32) -> bool {
    let Some(entry) = POLICY_CT_V1.get_ptr_mut(flow) else {
        return false;
    };
    // SAFETY: a pointer into the map's value; a concurrent update can at worst race a refresh.
    unsafe {
        if (*entry).flags & flag == 0 {
            return false;
        }
        let idle = now_s.wrapping_sub((*entry).seen_s);
        if flow.protocol != PROTO_TCP && idle > POLICY_CT_IDLE_S {
            return false;
        }
        if idle != 0 {
            (*entry).seen_s = now_s;
        }
    }
    true
}

/// Whether a rule allows the slot's flow for `subject` in `direction`, by the peer's identity, by any
/// peer, then by the peer's address; the rule goes into the slot's verdict.
#[inline(always)]
fn allowing_rule(s: &mut Scratch) -> bool {
    // Both keys are filled in before the first lookup, field by field, so no value has to live
    // across a helper call (each would be spilled to the stack).
    s.allow_key.prefix_len = POLICY_KEY_FIXED_BITS + 16;
    s.allow_key.data.subject = s.subject_addr.addr;
    s.allow_key.data.peer = s.verdict.peer_identity.to_be_bytes();
    s.allow_key.data.direction = s.verdict.direction;
    s.allow_key.data.protocol = s.flow.protocol;
    s.allow_key.data.port = s.flow.dport.to_ne_bytes();
    s.cidr_key.prefix_len = POLICY_CIDR_KEY_FIXED_BITS + 32;
    s.cidr_key.data.subject = s.subject_addr.addr;
    s.cidr_key.data.direction = s.verdict.direction;
    s.cidr_key.data.protocol = s.flow.protocol;
    s.cidr_key.data.addr = s.peer.addr;
    if let Some(rule) = POLICY_V1.get(&s.allow_key) {
        s.verdict.rule = *rule;
        return true;
    }
    s.allow_key.data.peer = IDENTITY_ANY.to_be_bytes();
    if let Some(rule) = POLICY_V1.get(&s.allow_key) {
        s.verdict.rule = *rule;
        return true;
    }
    let Some(allow) = POLICY_CIDR_V1.get(&s.cidr_key) else {
        return false;
    };
    let port = u16::from_be(s.flow.dport);
    // Every slot is read, and the ones past `count` ignored: a loop bounded by the array alone is
    // one the verifier can follow.
    let mut allowed = false;
    for (i, range) in allow.ranges.iter().enumerate() {
        allowed |= (i as u32) < allow.count && range.first <= port && port <= range.last;
    }
    if allowed {
        s.verdict.rule = allow.rule;
    }
    allowed
}
