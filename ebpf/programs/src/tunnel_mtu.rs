//! The path MTU at the tunnel's entrance. A packet bound for the VXLAN tunnel that is longer than the
//! tunnel carries (the VXLAN device's MTU: the underlay's minus 50) and may not be fragmented (Don't
//! Fragment set) is answered with ICMP fragmentation needed naming that MTU, as a router and Flannel's
//! kernel `flannel.1` answer, instead of being fragmented in the outer header or lost. The error quotes
//! the packet as its sender sent it, before any service translation, so the packet is judged
//! ([`oversize`]) when it arrives and answered ([`refuse`]) once its way into the tunnel is known.
//!
//! A GSO aggregate is never refused (its segments are cut to size on the way out), nor a packet with
//! IPv4 options, a later fragment, an ICMP message other than an echo, or a source that is not unicast:
//! no ICMP error is sent about an ICMP error or to an address that cannot answer.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_check_mtu, bpf_redirect, bpf_skb_change_tail},
    macros::map,
    maps::PerCpuArray,
    programs::TcContext,
};
use strait_abi::Reason;

use crate::{
    maps::{NODE_V1, OVERLAY_V1},
    parse::{ETH_LEN, Ipv4, bytes_at},
    reject::{fold, ipv4_header, sum_words, swap_macs},
};

/// Bytes an ICMP error quotes: the IPv4 header (without options) and the first 8 bytes after it.
const QUOTE_LEN: usize = 28;
/// The ICMP header: type, code, checksum, unused, next-hop MTU.
const ICMP_HEADER_LEN: usize = 8;
/// The error's IPv4 packet: header, ICMP header, quote.
const ERROR_IP_LEN: usize = 20 + ICMP_HEADER_LEN + QUOTE_LEN;
/// The error's frame.
const ERROR_FRAME_LEN: usize = ETH_LEN + ERROR_IP_LEN;
/// No link carries less than this (RFC 791's minimum datagram): shorter packets always fit.
const ALWAYS_FITS: usize = 576;
const PROTO_ICMP: u8 = 1;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;
/// ICMP destination unreachable, code fragmentation needed and DF set (RFC 1191).
const ICMP_UNREACHABLE: u8 = 3;
const ICMP_FRAG_NEEDED: u8 = 4;
/// The Don't Fragment bit of the IPv4 flags byte.
const IP_DF: u8 = 0x40;

/// What the error about a packet too big for the tunnel needs, kept per CPU between [`oversize`] and
/// [`refuse`] (the BPF stack of the busiest program has no room for it).
#[repr(C)]
pub struct OversizeScratch {
    quote: [u8; QUOTE_LEN],
    mtu: u16,
    pad: u16,
}

/// One slot per CPU: a tc program runs to its end on one CPU, so the slot holds this packet's judgement
/// from [`oversize`] to [`refuse`].
#[map(name = "TUNNEL_MTU_SCRATCH")]
static TUNNEL_MTU_SCRATCH: PerCpuArray<OversizeScratch> = PerCpuArray::with_max_entries(1, 0);

/// Proof that this CPU's scratch slot holds the current packet's quote and the tunnel's MTU.
pub struct Oversize(());

/// Judges the packet as it arrived: `Some` when it could not cross the tunnel whole and must not be
/// fragmented (see the module's rules), `None` otherwise or when there is no VXLAN device.
#[inline(always)]
pub fn oversize(ctx: &TcContext, ip: &Ipv4) -> Option<Oversize> {
    if ip.total_len <= ALWAYS_FITS || ip.header_len != 20 || ip.later_fragment {
        return None;
    }
    // SAFETY: reading a field of the context.
    if unsafe { (*ctx.skb.skb).gso_size } != 0 {
        return None;
    }
    let vxlan_ifindex = OVERLAY_V1.get(0)?.vxlan_ifindex;
    if vxlan_ifindex == 0 {
        return None;
    }
    // In: the packet's IPv4 length; out: the device's MTU.
    let mut mtu = ip.total_len as u32;
    // SAFETY: helper call with the program's own context and a stack slot for the length and MTU.
    let fits = unsafe { bpf_check_mtu(ctx.as_ptr(), vxlan_ifindex, &raw mut mtu, 0, 0) } == 0;
    if fits {
        return None;
    }
    let at = bytes_at(ctx, ETH_LEN, QUOTE_LEN)?;
    // SAFETY: `bytes_at` checked the quoted bytes are in bounds.
    let (flags, sender, icmp_type) = unsafe {
        (
            *at.add(6),
            core::ptr::read_unaligned(at.add(12).cast::<[u8; 4]>()),
            *at.add(20),
        )
    };
    if flags & IP_DF == 0 || !unicast(sender) {
        return None;
    }
    if ip.proto == PROTO_ICMP && !matches!(icmp_type, ICMP_ECHO_REQUEST | ICMP_ECHO_REPLY) {
        return None;
    }
    let slot = TUNNEL_MTU_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: the slot is this CPU's, and `at` has QUOTE_LEN bytes in bounds.
    unsafe {
        core::ptr::copy_nonoverlapping(at, (*slot).quote.as_mut_ptr(), QUOTE_LEN);
        (*slot).mtu = u16::try_from(mtu).unwrap_or(u16::MAX);
    }
    Some(Oversize(()))
}

/// An address an error can be sent to: not 0.0.0.0/8, not multicast or reserved, not broadcast.
#[inline(always)]
fn unicast(addr: [u8; 4]) -> bool {
    addr[0] != 0 && addr[0] < 224
}

/// Rewrites the frame into the ICMP fragmentation needed that answers the packet judged by [`oversize`]
/// and sends it back out of the interface it arrived on; (reason, tc verdict), or the drop reason when
/// the frame cannot be rewritten.
#[inline(always)]
pub fn refuse(ctx: &TcContext, _judged: &Oversize) -> Result<(Reason, i32), Reason> {
    let slot = TUNNEL_MTU_SCRATCH
        .get_ptr(0)
        .ok_or(Reason::DropTooBigForTunnel)?;
    if bytes_at(ctx, 0, ERROR_FRAME_LEN).is_none() {
        let _ = ctx.pull_data(ERROR_FRAME_LEN as u32);
    }
    let frame = bytes_at(ctx, 0, ERROR_FRAME_LEN).ok_or(Reason::DropTooBigForTunnel)?;
    // SAFETY: the slot is this CPU's, filled by `oversize` for this packet.
    let (quote, mtu) = unsafe { (&(*slot).quote, (*slot).mtu) };
    let sender = [quote[12], quote[13], quote[14], quote[15]];
    // From the node's address (the router that could not forward it), else from where it was sent.
    let source = match NODE_V1.get(0) {
        Some(node) if node.node_ip != 0 => node.node_ip.to_ne_bytes(),
        _ => [quote[16], quote[17], quote[18], quote[19]],
    };
    let type_code = u16::from_be_bytes([ICMP_UNREACHABLE, ICMP_FRAG_NEEDED]);
    let sum = fold(sum_words(quote, u32::from(type_code) + u32::from(mtu))).to_be_bytes();
    let mtu = mtu.to_be_bytes();
    let header = [
        ICMP_UNREACHABLE,
        ICMP_FRAG_NEEDED,
        sum[0],
        sum[1],
        0,
        0,
        mtu[0],
        mtu[1],
    ];
    // SAFETY: `bytes_at` checked ERROR_FRAME_LEN bytes; tc makes the data writable; the quote is read
    // from the map before the frame's bytes it came from are overwritten.
    unsafe {
        swap_macs(frame);
        let icmp = frame.add(ETH_LEN + 20);
        core::ptr::copy_nonoverlapping(quote.as_ptr(), icmp.add(ICMP_HEADER_LEN), QUOTE_LEN);
        core::ptr::write_unaligned(icmp.cast(), header);
        core::ptr::write_unaligned(
            frame.add(ETH_LEN).cast::<[u8; 20]>(),
            ipv4_header(source, sender, PROTO_ICMP, ERROR_IP_LEN as u16),
        );
    }
    // SAFETY: trimming the skb to the error just written.
    if unsafe { bpf_skb_change_tail(ctx.skb.skb, ERROR_FRAME_LEN as u32, 0) } != 0 {
        return Err(Reason::DropTooBigForTunnel);
    }
    // SAFETY: reading a field of the context, then a helper call with a plain ifindex.
    let verdict = unsafe { bpf_redirect((*ctx.skb.skb).ifindex, 0) };
    Ok((Reason::DropTooBigForTunnel, verdict as i32))
}
