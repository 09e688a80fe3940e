//! The kernel DNS fast path, a tcx program on each pod's host-side veth ahead of `from_pod`: a pod's
//! UDP query to this node's DNS listener (where
//! the socket hooks send queries for the DNS Service) for an A record of a name in DNS_A_V1 is
//! answered on the spot. The reply is built in place over the query (question kept byte for byte, so
//! the name's case is the pod's own; answers point at it; an EDNS OPT record answered with one of
//! ours), with its IPv4 and UDP checksums, and sent back into the pod with `bpf_redirect_peer`.
//!
//! Anything it cannot answer exactly goes on to the server unchanged: another type or class, a name
//! it does not hold, an EDNS version other than 0 (options are ignored, as RFC 6891 has a server do
//! with those it does not implement), more than one question or record, a name longer than
//! [`DNS_NAME_MAX`] or compressed, flags a plain query does not have, a length that does not add up.
//! Each query is counted under the program `dns-fast` by what became of it.
//!
//! A program of its own rather than a part of `from_pod`: its parsing loops and buffers would not fit
//! in `from_pod`'s stack and verifier budget. Queries it does not answer go on to `from_pod`
//! ([`TCX_NEXT`]). Its buffers live in a per-CPU scratch slot.

use aya_ebpf::{
    helpers::{bpf_redirect_peer, bpf_skb_change_tail, bpf_skb_load_bytes, bpf_skb_store_bytes},
    macros::map,
    maps::PerCpuArray,
    programs::TcContext,
};
use strait_abi::{
    Direction, Program, Reason,
    dns::{
        DNS_A_MAX, DNS_FAST_F_ENABLED, DNS_FAST_F_RECURSION, DNS_NAME_MAX, DnsFastConfig,
        DnsNameKey,
    },
};

use crate::{
    maps::{DNS_A_V1, DNS_FAST_V1},
    parse::{ETH_LEN, PROTO_UDP, bytes_at},
    reject::{fold, ipv4_header, swap_macs},
    stats,
};

/// Where the UDP header starts (the caller checked the IPv4 header has no options).
const UDP_AT: usize = ETH_LEN + 20;
/// Where the DNS message starts.
const DNS_AT: usize = UDP_AT + 8;
const DNS_HEADER: usize = 12;
/// The EDNS OPT record we answer with: root name, type 41, payload 1232, no extended rcode, version
/// 0, no flags, no options.
const OPT: [u8; 11] = [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];
const OPT_LEN: usize = OPT.len();
/// The most bytes of EDNS options a query may carry (they are ignored, as RFC 6891 has a server do
/// with options it does not implement: a cookie, a client subnet, padding).
const OPTIONS_MAX: usize = 64;
/// The longest question section handled: name, type, class, OPT record with its options.
const QUESTION_MAX: usize = DNS_NAME_MAX + 4 + OPT_LEN + OPTIONS_MAX;
/// One A record pointing at the question's name: pointer, type, class, TTL, length, address.
const ANSWER_LEN: usize = 16;
/// The longest reply built: header, question, answers, OPT record.
const REPLY_MAX: usize = DNS_HEADER + DNS_NAME_MAX + 4 + DNS_A_MAX * ANSWER_LEN + OPT_LEN;
/// Buffer sizes, powers of two so that masked indexes stay inside them.
const REPLY_SIZE: usize = 512;
const _: () =
    assert!(QUESTION_MAX <= 256 && DNS_HEADER + 256 <= REPLY_SIZE && REPLY_MAX <= REPLY_SIZE);

/// Not a query for this node's DNS listener: nothing counted, the packet goes on.
const NOT_FOR_US: i32 = -1;
/// A query the fast path could answer, for a name it does not hold.
const NOT_HELD: i32 = -2;
/// A query the fast path does not answer exactly.
const NOT_HANDLED: i32 = -3;

#[repr(C)]
struct DnsScratch {
    /// The query's header.
    header: [u8; DNS_HEADER],
    key: DnsNameKey,
    /// The reply's DNS message; the query's question is loaded into it, where the reply keeps it.
    reply: [u8; REPLY_SIZE],
    /// Lengths kept here rather than in registers: read back, they carry no bounds from the parsing
    /// paths that produced them, so the verifier need not walk what follows once per path.
    name_len: u32,
    reply_len: u32,
}

#[map(name = "DNS_SCRATCH")]
static DNS_SCRATCH: PerCpuArray<DnsScratch> = PerCpuArray::with_max_entries(1, 0);

/// tcx's "go on to the next program": `from_pod`, which runs after this program on a pod's veth.
pub const TCX_NEXT: i32 = -1;

/// The program: the verdict that sends the reply into the pod, or [`TCX_NEXT`].
#[inline(always)]
pub fn run(ctx: &TcContext) -> i32 {
    // The query's length, counted whatever becomes of it (a reply replaces it).
    let len = ctx.len();
    let code = answer_query(ctx);
    let reason = match code {
        NOT_FOR_US => return TCX_NEXT,
        NOT_HELD => Reason::DnsNotHeld,
        NOT_HANDLED => Reason::DnsNotHandled,
        _ => Reason::DnsAnswered,
    };
    stats::count(Program::DnsFast, reason, Direction::Egress, len);
    if code >= 0 { code } else { TCX_NEXT }
}

/// The query in `ctx` answered in place: the tc verdict (>= 0), or why not (< 0).
#[inline(always)]
fn answer_query(ctx: &TcContext) -> i32 {
    let Some(config) = DNS_FAST_V1.get(0).copied() else {
        return NOT_FOR_US;
    };
    if config.flags & DNS_FAST_F_ENABLED == 0 {
        return NOT_FOR_US;
    }
    let (total, udp_len) = match datagram_for(ctx, &config) {
        Ok(lengths) => lengths,
        Err(code) => return code,
    };
    let Some(slot) = DNS_SCRATCH.get_ptr_mut(0) else {
        return NOT_HANDLED;
    };
    // SAFETY: this CPU's slot; programs do not preempt each other on one CPU.
    let s = unsafe { &mut *slot };
    // The lengths must add up: no trailing bytes, no fragment.
    if total != 20 + udp_len || (ctx.len() as usize) < ETH_LEN + total || udp_len < 8 + DNS_HEADER {
        return NOT_HANDLED;
    }
    let question_len = udp_len - 8 - DNS_HEADER;
    if !(5..=QUESTION_MAX).contains(&question_len) {
        return NOT_HANDLED;
    }
    if ctx.load_bytes(DNS_AT, &mut s.header).is_err() {
        return NOT_HANDLED;
    }
    // SAFETY: the length is `question_len` (within 5..=QUESTION_MAX), written so that the verifier
    // sees it within 1..=256, inside `reply` after its header; the helper checks the skb.
    let loaded = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb.cast(),
            (DNS_AT + DNS_HEADER) as u32,
            s.reply.as_mut_ptr().add(DNS_HEADER).cast(),
            (((question_len - 1) & 0xff) + 1) as u32,
        )
    };
    if loaded != 0 {
        return NOT_HANDLED;
    }
    let Some(has_opt) = plain_query(&s.header) else {
        return NOT_HANDLED;
    };
    let Some(walked) = name_length(&s.reply) else {
        return NOT_HANDLED;
    };
    // SAFETY: plain stores and loads of this CPU's slot (volatile, so the value really is read back).
    let name_len = unsafe {
        core::ptr::write_volatile(&raw mut s.name_len, walked as u32);
        core::ptr::read_volatile(&raw const s.name_len) as usize
    };
    let at = |i: usize| (DNS_HEADER + name_len + i) & (REPLY_SIZE - 1);
    let opt_len = if has_opt {
        OPT_LEN + usize::from(u16::from_be_bytes([s.reply[at(13)], s.reply[at(14)]]))
    } else {
        0
    };
    if name_len > DNS_NAME_MAX
        || opt_len > OPT_LEN + OPTIONS_MAX
        || question_len != name_len + 4 + opt_len
    {
        return NOT_HANDLED;
    }
    // Type A, class IN.
    if s.reply[at(0)] != 0 || s.reply[at(1)] != 1 || s.reply[at(2)] != 0 || s.reply[at(3)] != 1 {
        return NOT_HANDLED;
    }
    if has_opt && !plain_opt(&s.reply, at(4)) {
        return NOT_HANDLED;
    }
    lowercase_key(s, name_len);
    // SAFETY: the value is copied out at once.
    #[expect(
        clippy::needless_borrows_for_generic_args,
        reason = "by reference, so the 128-byte key is not copied onto the stack"
    )]
    let Some(records) = (unsafe { DNS_A_V1.get(&s.key) }).copied() else {
        return NOT_HELD;
    };
    let count = records.count as usize;
    if count == 0 || count > DNS_A_MAX {
        return NOT_HANDLED;
    }
    let built = build_reply(s, name_len, &records, has_opt, config.flags);
    // SAFETY: as for `name_len`.
    let reply_len = unsafe {
        core::ptr::write_volatile(&raw mut s.reply_len, built as u32);
        core::ptr::read_volatile(&raw const s.reply_len) as usize
    };
    if reply_len <= DNS_HEADER || reply_len > REPLY_MAX {
        return NOT_HANDLED;
    }
    send_reply(ctx, s, reply_len)
}

/// The IPv4 total length and the UDP length of a whole UDP datagram (IPv4 without options) to the
/// listener; why not otherwise ([`NOT_FOR_US`], or [`NOT_HANDLED`] for a fragment to it).
#[inline(always)]
fn datagram_for(ctx: &TcContext, config: &DnsFastConfig) -> Result<(usize, usize), i32> {
    let Some(frame) = bytes_at(ctx, 0, DNS_AT) else {
        return Err(NOT_FOR_US);
    };
    // SAFETY: `bytes_at` checked the Ethernet, IPv4 and UDP headers' bytes are there.
    let (ethertype, version_ihl, fragment, proto, daddr, dport, total, udp_len) = unsafe {
        let ip = frame.add(ETH_LEN);
        (
            u16::from_be_bytes([*frame.add(12), *frame.add(13)]),
            *ip,
            u16::from_be_bytes([*ip.add(6), *ip.add(7)]),
            *ip.add(9),
            core::ptr::read_unaligned(ip.add(16).cast::<u32>()),
            core::ptr::read_unaligned(ip.add(22).cast::<u16>()),
            usize::from(u16::from_be_bytes([*ip.add(2), *ip.add(3)])),
            usize::from(u16::from_be_bytes([*ip.add(24), *ip.add(25)])),
        )
    };
    // IPv4 without options, UDP, to the listener.
    if ethertype != 0x0800 || version_ihl != 0x45 || proto != PROTO_UDP {
        return Err(NOT_FOR_US);
    }
    if daddr != config.addr || dport != config.port {
        return Err(NOT_FOR_US);
    }
    // A fragment (more to come, or an offset): the datagram is not all here.
    if fragment & 0x3fff != 0 {
        return Err(NOT_HANDLED);
    }
    Ok((total, udp_len))
}

/// Whether the header is that of a plain query: not a response, opcode QUERY, not truncated, rcode 0,
/// one question, no answer or authority records, at most one additional (an OPT record). `Some(true)`
/// when there is that additional.
#[inline(always)]
fn plain_query(header: &[u8; DNS_HEADER]) -> Option<bool> {
    let flags = header[2];
    if flags & 0x80 != 0 || (flags >> 3) & 0x0f != 0 || flags & 0x02 != 0 || header[3] & 0x0f != 0 {
        return None;
    }
    if header[4] != 0 || header[5] != 1 || header[6] | header[7] | header[8] | header[9] != 0 {
        return None;
    }
    match (header[10], header[11]) {
        (0, 0) => Some(false),
        (0, 1) => Some(true),
        _ => None,
    }
}

/// The length of the uncompressed name the question (loaded after the header in `reply`) starts
/// with, root label included, if it fits [`DNS_NAME_MAX`].
#[inline(always)]
fn name_length(reply: &[u8; REPLY_SIZE]) -> Option<usize> {
    let mut pos = 0usize;
    // At most DNS_NAME_MAX / 2 labels fit.
    for _ in 0..DNS_NAME_MAX / 2 {
        if pos >= DNS_NAME_MAX {
            return None;
        }
        let label = usize::from(reply[(DNS_HEADER + pos) & (REPLY_SIZE - 1)]);
        if label == 0 {
            return Some(pos + 1);
        }
        // A compression pointer (or the reserved 0x40/0x80 forms): not in a question we answer.
        if label > 63 {
            return None;
        }
        pos += label + 1;
    }
    None
}

/// Whether the OPT record at `at` in `reply` is one we answer: root name, type 41, version 0,
/// extended rcode 0 (its options are ignored).
#[inline(always)]
fn plain_opt(reply: &[u8; REPLY_SIZE], at: usize) -> bool {
    let byte = |i: usize| reply[(at + i) & (REPLY_SIZE - 1)];
    byte(0) == 0 && byte(1) == 0 && byte(2) == 41 && byte(5) == 0 && byte(6) == 0
}

/// The key of the question's name: its `name_len` bytes with ASCII letters in lowercase (a label
/// length is at most 63, never a letter), then zeros.
#[inline(always)]
fn lowercase_key(s: &mut DnsScratch, name_len: usize) {
    for i in 0..DNS_NAME_MAX {
        let b = s.reply[(DNS_HEADER + i) & (REPLY_SIZE - 1)];
        s.key.name[i] = if i >= name_len {
            0
        } else if b.is_ascii_uppercase() {
            b | 0x20
        } else {
            b
        };
    }
}

/// Completes the reply's DNS message in the slot around the question already there; its length.
#[inline(always)]
fn build_reply(
    s: &mut DnsScratch,
    name_len: usize,
    records: &strait_abi::dns::DnsARecords,
    has_opt: bool,
    flags: u16,
) -> usize {
    let count = records.count as usize;
    // Header: the query's id; a response, authoritative, recursion desired as asked, recursion
    // available when the server forwards; checking disabled as asked; NOERROR.
    s.reply[0] = s.header[0];
    s.reply[1] = s.header[1];
    s.reply[2] = 0x80 | 0x04 | (s.header[2] & 0x01);
    s.reply[3] = if flags & DNS_FAST_F_RECURSION != 0 {
        0x80
    } else {
        0
    } | (s.header[3] & 0x10);
    s.reply[4] = 0;
    s.reply[5] = 1;
    s.reply[6] = 0;
    s.reply[7] = count as u8;
    s.reply[8] = 0;
    s.reply[9] = 0;
    s.reply[10] = 0;
    s.reply[11] = u8::from(has_opt);
    let ttl = records.ttl.to_be_bytes();
    let mut at = DNS_HEADER + name_len + 4;
    for k in 0..DNS_A_MAX {
        if k >= count {
            break;
        }
        let addr = records.addrs[k].to_ne_bytes();
        let answer = [
            0xc0, 0x0c, 0, 1, 0, 1, ttl[0], ttl[1], ttl[2], ttl[3], 0, 4, addr[0], addr[1],
            addr[2], addr[3],
        ];
        for (i, byte) in answer.iter().enumerate() {
            s.reply[(at + i) & (REPLY_SIZE - 1)] = *byte;
        }
        at += ANSWER_LEN;
    }
    if has_opt {
        for (i, byte) in OPT.iter().enumerate() {
            s.reply[(at + i) & (REPLY_SIZE - 1)] = *byte;
        }
        at += OPT_LEN;
    }
    at
}

/// Turns the query in `ctx` into the reply in the slot (`reply_len` bytes of DNS), addressed back to
/// the pod, and sends it there; the tc verdict, or [`NOT_HANDLED`].
#[inline(always)]
fn send_reply(ctx: &TcContext, s: &DnsScratch, reply_len: usize) -> i32 {
    let udp_len = 8 + reply_len;
    let frame_len = DNS_AT + reply_len;
    // SAFETY: resizing the skb; every packet pointer is taken again below.
    if unsafe { bpf_skb_change_tail(ctx.skb.skb, frame_len as u32, 0) } != 0 {
        return NOT_HANDLED;
    }
    if bytes_at(ctx, 0, DNS_AT).is_none() {
        let _ = ctx.pull_data(DNS_AT as u32);
    }
    let Some(frame) = bytes_at(ctx, 0, DNS_AT) else {
        return NOT_HANDLED;
    };
    // SAFETY: `bytes_at` checked DNS_AT bytes: Ethernet, IPv4 (no options) and UDP headers.
    unsafe {
        swap_macs(frame);
        let ip = frame.add(ETH_LEN);
        let saddr = core::ptr::read_unaligned(ip.add(12).cast::<[u8; 4]>());
        let daddr = core::ptr::read_unaligned(ip.add(16).cast::<[u8; 4]>());
        core::ptr::write_unaligned(
            ip.cast::<[u8; 20]>(),
            ipv4_header(daddr, saddr, PROTO_UDP, (20 + udp_len) as u16),
        );
        let udp = frame.add(UDP_AT);
        let sport = core::ptr::read_unaligned(udp.cast::<[u8; 2]>());
        let dport = core::ptr::read_unaligned(udp.add(2).cast::<[u8; 2]>());
        let len = (udp_len as u16).to_be_bytes();
        let sum = udp_checksum(s, reply_len, daddr, saddr, dport, sport);
        let sum = sum.to_be_bytes();
        core::ptr::write_unaligned(
            udp.cast::<[u8; 8]>(),
            [
                dport[0], dport[1], sport[0], sport[1], len[0], len[1], sum[0], sum[1],
            ],
        );
    }
    // SAFETY: the length is within 1..=REPLY_SIZE, inside the slot's buffer (`reply_len` itself,
    // which is within 1..=REPLY_MAX, written so the verifier sees the bounds); the helper checks the
    // skb.
    let stored = unsafe {
        bpf_skb_store_bytes(
            ctx.skb.skb,
            DNS_AT as u32,
            s.reply.as_ptr().cast(),
            (((reply_len - 1) & (REPLY_SIZE - 1)) + 1) as u32,
            0,
        )
    };
    if stored != 0 {
        return NOT_HANDLED;
    }
    // SAFETY: reading the context's ifindex (the pod's host-side veth, this program's interface) and a
    // helper call with it: back into the pod.
    unsafe { bpf_redirect_peer((*ctx.skb.skb).ifindex, 0) as i32 }
}

/// The UDP checksum of the reply: pseudo-header, UDP header (checksum zero), and the DNS message.
#[inline(always)]
fn udp_checksum(
    s: &DnsScratch,
    reply_len: usize,
    saddr: [u8; 4],
    daddr: [u8; 4],
    sport: [u8; 2],
    dport: [u8; 2],
) -> u16 {
    let udp_len = (8 + reply_len) as u32;
    let word = |a: u8, b: u8| u32::from(u16::from_be_bytes([a, b]));
    let mut sum = word(saddr[0], saddr[1])
        + word(saddr[2], saddr[3])
        + word(daddr[0], daddr[1])
        + word(daddr[2], daddr[3])
        + u32::from(PROTO_UDP)
        + udp_len
        + word(sport[0], sport[1])
        + word(dport[0], dport[1])
        + udp_len;
    for k in 0..REPLY_MAX.div_ceil(2) {
        let i = 2 * k;
        if i >= reply_len {
            break;
        }
        let low = if i + 1 < reply_len {
            s.reply[(i + 1) & (REPLY_SIZE - 1)]
        } else {
            0
        };
        sum += word(s.reply[i & (REPLY_SIZE - 1)], low);
    }
    match fold(sum) {
        // A computed zero is sent as all ones: zero means "no checksum".
        0 => 0xffff,
        value => value,
    }
}
