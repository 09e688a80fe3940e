//! ICMP errors about translated flows. A router (or the far endpoint) answers a packet strait
//! translated with an ICMP error quoting that packet as it left: fragmentation needed (path-MTU
//! discovery), unreachable, time exceeded. Such an error is translated like the flow it refers to: the
//! quoted header back to what the flow's sender sent, the outer destination to that sender (and the
//! outer source too when the quoted packet's destination answered itself), then it goes where the
//! flow's packets in that direction go. Without this, path-MTU discovery black-holes clients behind a
//! smaller MTU, as netfilter's NAT avoids by the same translation.
//!
//! The quoted fields lie inside the ICMP message, so the ICMP checksum, the quoted IPv4 header's and
//! the quoted UDP checksum are updated by hand (RFC 1624); every change inside the message is matched
//! by its checksum's, so the message still sums as before. A quoted TCP checksum lies beyond the
//! 8 quoted bytes the sender must include and is left alone, as netfilter does when it may be absent.

use aya_ebpf::programs::TcContext;
use strait_abi::{
    CtEntry, CtKey, Reason,
    conntrack::{CT_DIR_FORWARD, CT_DIR_REPLY, CT_F_TO_UPLINK},
};

use crate::{
    csum::{read16, replace_sum, replace16, replace32},
    maps::CT_V1,
    nat::{Tuple, rewrite_addresses},
    parse::{ETH_LEN, Ipv4, PROTO_TCP, PROTO_UDP, bytes_at},
    service_nat::{Origin, Translated},
};

/// IANA protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// ICMP types that quote the packet they answer: destination unreachable (fragmentation needed is
/// its code 4), time exceeded, parameter problem.
const ICMP_ERRORS: [u8; 3] = [3, 11, 12];

/// Offsets in the frame, for an option-less outer IPv4 header.
const ICMP: usize = ETH_LEN + 20;
const ICMP_SUM: usize = ICMP + 2;
const QUOTED_IP: usize = ICMP + 8;
const QUOTED_IP_SUM: usize = QUOTED_IP + 10;
const QUOTED_SADDR: usize = QUOTED_IP + 12;
const QUOTED_DADDR: usize = QUOTED_IP + 16;
const QUOTED_L4: usize = QUOTED_IP + 20;
const QUOTED_UDP_SUM: usize = QUOTED_L4 + 6;
/// Bytes read: through the quoted transport header's first 8 bytes.
const NEEDED: usize = QUOTED_L4 + 8;

/// The quoted packet of an ICMP error, as it left strait (addresses and ports in network byte order).
struct Quote {
    tuple: Tuple,
    proto: u8,
    ip_sum: u16,
    icmp_sum: u16,
    /// The quoted UDP checksum (0: none, or TCP).
    udp_sum: u16,
}

/// Translates an ICMP error about a translated flow; `None` when the packet is not one.
#[inline(always)]
pub fn translate(ctx: &TcContext, ip: &Ipv4, origin: Origin) -> Result<Option<Translated>, Reason> {
    if ip.proto != PROTO_ICMP
        || ip.later_fragment
        || ip.more_fragments
        || ip.header_len != 20
        || ip.total_len < NEEDED - ETH_LEN
    {
        return Ok(None);
    }
    let Some(quote) = read_quote(ctx) else {
        return Ok(None);
    };
    // A pod may only report on packets it received: it cannot steer errors into other flows.
    if origin == Origin::Pod && quote.tuple.daddr != ip.src {
        return Ok(None);
    }
    let Some(entry) = answering_entry(&quote) else {
        return Ok(None);
    };
    // The flow's packets in the answering direction become `new`; the quoted packet, travelling the
    // other way, becomes `new` reversed, and the error goes to its sender.
    let original = Tuple {
        saddr: entry.new_daddr,
        daddr: entry.new_saddr,
        sport: entry.new_dport,
        dport: entry.new_sport,
    };
    rewrite_quote(ctx, &quote, &original)?;
    let outer = Tuple {
        saddr: ip.src,
        daddr: ip.dst,
        sport: 0,
        dport: 0,
    };
    let answered_by_destination = ip.src == quote.tuple.daddr;
    let new_outer = Tuple {
        saddr: if answered_by_destination {
            original.daddr
        } else {
            ip.src
        },
        daddr: original.saddr,
        sport: 0,
        dport: 0,
    };
    rewrite_addresses(ctx, &outer, &new_outer)?;
    Ok(Some(Translated {
        reason: Reason::IcmpErrorNat,
        daddr: new_outer.daddr,
        to_uplink: entry.flags & CT_F_TO_UPLINK != 0,
    }))
}

/// Reads the ICMP error's type and quoted headers; `None` unless it is an error quoting an option-less
/// TCP or UDP packet's start.
#[inline(always)]
fn read_quote(ctx: &TcContext) -> Option<Quote> {
    if bytes_at(ctx, 0, NEEDED).is_none() {
        let _ = ctx.pull_data(NEEDED as u32);
    }
    let frame = bytes_at(ctx, 0, NEEDED)?;
    // SAFETY: `bytes_at` checked NEEDED bytes are in bounds.
    unsafe {
        let icmp_type = *frame.add(ICMP);
        let quoted = frame.add(QUOTED_IP);
        let proto = *quoted.add(9);
        let fragment_offset = u16::from_be_bytes([*quoted.add(6), *quoted.add(7)]) & 0x1fff;
        if !ICMP_ERRORS.contains(&icmp_type)
            || *quoted != 0x45
            || fragment_offset != 0
            || (proto != PROTO_TCP && proto != PROTO_UDP)
        {
            return None;
        }
        let l4 = frame.add(QUOTED_L4);
        Some(Quote {
            tuple: Tuple {
                saddr: core::ptr::read_unaligned(frame.add(QUOTED_SADDR).cast::<u32>()),
                daddr: core::ptr::read_unaligned(frame.add(QUOTED_DADDR).cast::<u32>()),
                sport: core::ptr::read_unaligned(l4.cast::<u16>()),
                dport: core::ptr::read_unaligned(l4.add(2).cast::<u16>()),
            },
            proto,
            ip_sum: read16(frame.add(QUOTED_IP_SUM)),
            icmp_sum: read16(frame.add(ICMP_SUM)),
            udp_sum: if proto == PROTO_UDP {
                read16(frame.add(QUOTED_UDP_SUM))
            } else {
                0
            },
        })
    }
}

/// The CT entry of the direction that answers the quoted packet (its tuple reversed), if the quoted
/// packet belongs to a translated flow.
#[inline(always)]
fn answering_entry(quote: &Quote) -> Option<CtEntry> {
    for dir in [CT_DIR_REPLY, CT_DIR_FORWARD] {
        let key = CtKey {
            saddr: quote.tuple.daddr,
            daddr: quote.tuple.saddr,
            sport: quote.tuple.dport,
            dport: quote.tuple.sport,
            proto: quote.proto,
            dir,
            pad: 0,
        };
        // SAFETY: the value is copied out at once.
        if let Some(entry) = unsafe { CT_V1.get(key) } {
            return Some(*entry);
        }
    }
    None
}

/// Rewrites the quoted header from `quote.tuple` to `new`, with the quoted IPv4 and UDP checksums and
/// the ICMP checksum updated to match.
#[inline(always)]
fn rewrite_quote(ctx: &TcContext, quote: &Quote, new: &Tuple) -> Result<(), Reason> {
    let old = &quote.tuple;
    let mut ip_sum = quote.ip_sum;
    let mut icmp_sum = quote.icmp_sum;
    let mut udp_sum = quote.udp_sum;
    for (from, to) in [(old.saddr, new.saddr), (old.daddr, new.daddr)] {
        ip_sum = replace32(ip_sum, from, to);
        icmp_sum = replace32(icmp_sum, from, to);
        udp_sum = replace32(udp_sum, from, to);
    }
    for (from, to) in [(old.sport, new.sport), (old.dport, new.dport)] {
        icmp_sum = replace16(icmp_sum, from, to);
        udp_sum = replace16(udp_sum, from, to);
    }
    icmp_sum = replace_sum(icmp_sum, quote.ip_sum, ip_sum);
    let udp_summed = quote.udp_sum != 0;
    if udp_summed {
        // Zero means "no checksum": a sum that comes out as zero is written as all ones.
        if udp_sum == 0 {
            udp_sum = 0xffff;
        }
        icmp_sum = replace_sum(icmp_sum, quote.udp_sum, udp_sum);
    }
    let failed = |_| Reason::DropNatFailed;
    ctx.store(QUOTED_SADDR, &new.saddr, 0).map_err(failed)?;
    ctx.store(QUOTED_DADDR, &new.daddr, 0).map_err(failed)?;
    ctx.store(QUOTED_L4, &new.sport, 0).map_err(failed)?;
    ctx.store(QUOTED_L4 + 2, &new.dport, 0).map_err(failed)?;
    ctx.store(QUOTED_IP_SUM, &ip_sum.to_be_bytes(), 0)
        .map_err(failed)?;
    if udp_summed {
        ctx.store(QUOTED_UDP_SUM, &udp_sum.to_be_bytes(), 0)
            .map_err(failed)?;
    }
    ctx.store(ICMP_SUM, &icmp_sum.to_be_bytes(), 0)
        .map_err(failed)
}
