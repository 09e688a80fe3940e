//! Rewriting a packet's addresses and ports in place, with the IPv4 header checksum and the TCP/UDP
//! checksum (pseudo header included) fixed up incrementally by the kernel's csum helpers. A UDP
//! checksum of zero ("none") stays zero. A later fragment has no transport header: only its addresses
//! change (the first fragment's checksum update covers the whole datagram's pseudo header).

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR},
    programs::TcContext,
};
use strait_abi::Reason;

use crate::parse::{ETH_LEN, Ipv4, PROTO_TCP, l4_offset};

/// Addresses and ports of a flow direction, in network byte order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
}

const IP_CSUM: usize = ETH_LEN + 10;
const IP_SADDR: usize = ETH_LEN + 12;
const IP_DADDR: usize = ETH_LEN + 16;

/// Rewrites `old` into `new` (only the fields that differ).
#[inline(always)]
pub fn rewrite(ctx: &TcContext, ip: &Ipv4, old: &Tuple, new: &Tuple) -> Result<(), Reason> {
    if ip.later_fragment {
        return rewrite_addresses(ctx, old, new);
    }
    let l4 = l4_offset(ip);
    let (csum, extra) = if ip.proto == PROTO_TCP {
        (l4 + 16, 0)
    } else {
        (l4 + 6, u64::from(BPF_F_MARK_MANGLED_0))
    };
    if old.saddr != new.saddr {
        address(ctx, IP_SADDR, csum, extra, old.saddr, new.saddr)?;
    }
    if old.daddr != new.daddr {
        address(ctx, IP_DADDR, csum, extra, old.daddr, new.daddr)?;
    }
    if old.sport != new.sport {
        port(ctx, l4, csum, extra, old.sport, new.sport)?;
    }
    if old.dport != new.dport {
        port(ctx, l4 + 2, csum, extra, old.dport, new.dport)?;
    }
    Ok(())
}

/// Rewrites the addresses of a packet without a transport header (IPv4 header checksum only).
#[inline(always)]
pub fn rewrite_addresses(ctx: &TcContext, old: &Tuple, new: &Tuple) -> Result<(), Reason> {
    for (offset, from, to) in [
        (IP_SADDR, old.saddr, new.saddr),
        (IP_DADDR, old.daddr, new.daddr),
    ] {
        if from != to {
            ctx.l3_csum_replace(IP_CSUM, u64::from(from), u64::from(to), 4)
                .map_err(|_| Reason::DropNatFailed)?;
            ctx.store(offset, &to, 0)
                .map_err(|_| Reason::DropNatFailed)?;
        }
    }
    Ok(())
}

#[inline(always)]
fn address(
    ctx: &TcContext,
    offset: usize,
    csum: usize,
    extra: u64,
    old: u32,
    new: u32,
) -> Result<(), Reason> {
    let failed = |_| Reason::DropNatFailed;
    ctx.l4_csum_replace(
        csum,
        u64::from(old),
        u64::from(new),
        u64::from(BPF_F_PSEUDO_HDR) | extra | 4,
    )
    .map_err(failed)?;
    ctx.l3_csum_replace(IP_CSUM, u64::from(old), u64::from(new), 4)
        .map_err(failed)?;
    ctx.store(offset, &new, 0).map_err(failed)
}

#[inline(always)]
fn port(
    ctx: &TcContext,
    offset: usize,
    csum: usize,
    extra: u64,
    old: u16,
    new: u16,
) -> Result<(), Reason> {
    let failed = |_| Reason::DropNatFailed;
    ctx.l4_csum_replace(csum, u64::from(old), u64::from(new), extra | 2)
        .map_err(failed)?;
    ctx.store(offset, &new, 0).map_err(failed)
}
