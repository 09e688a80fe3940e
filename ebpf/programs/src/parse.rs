//! Header parsing with bounds checks: every read goes through `bpf_skb_load_bytes`, so a short or malformed
//! frame yields a drop reason instead of an out-of-bounds read.

use aya_ebpf::programs::TcContext;
use strait_abi::Reason;

/// Length of an Ethernet header.
pub const ETH_LEN: usize = 14;
/// Offset of the destination MAC.
pub const ETH_DST: usize = 0;
/// EtherType of IPv4, as read from the wire.
const ETH_P_IPV4: [u8; 2] = [0x08, 0x00];
/// Length of an IPv4 header without options.
const IPV4_MIN_LEN: usize = 20;

/// The IPv4 fields the data path uses (addresses in network byte order).
pub struct Ipv4 {
    pub src: u32,
    pub dst: u32,
}

/// What the frame carries.
pub enum Frame {
    Ipv4(Ipv4),
    Other,
}

/// Parses the Ethernet and IPv4 headers.
#[inline(always)]
pub fn parse(ctx: &TcContext) -> Result<Frame, Reason> {
    let len = ctx.len() as usize;
    if len < ETH_LEN {
        return Err(Reason::DropTruncatedEthernet);
    }
    let ethertype: [u8; 2] = ctx.load(12).map_err(|_| Reason::DropTruncatedEthernet)?;
    if ethertype != ETH_P_IPV4 {
        return Ok(Frame::Other);
    }
    if len < ETH_LEN + IPV4_MIN_LEN {
        return Err(Reason::DropTruncatedIpv4);
    }
    let header: [u8; IPV4_MIN_LEN] = ctx.load(ETH_LEN).map_err(|_| Reason::DropTruncatedIpv4)?;
    let version = header[0] >> 4;
    let header_len = usize::from(header[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if version != 4 || header_len < IPV4_MIN_LEN || total_len < header_len {
        return Err(Reason::DropMalformedIpv4);
    }
    if ETH_LEN + total_len > len {
        return Err(Reason::DropTruncatedIpv4);
    }
    Ok(Frame::Ipv4(Ipv4 {
        src: u32::from_ne_bytes([header[12], header[13], header[14], header[15]]),
        dst: u32::from_ne_bytes([header[16], header[17], header[18], header[19]]),
    }))
}
