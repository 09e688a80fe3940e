//! Header parsing with bounds checks. Headers are read by direct packet access after a `data_end` check
//! (pulling them into the linear area first when they are not there); a frame too short for a header
//! yields a drop reason instead of an out-of-bounds read.

use aya_ebpf::programs::TcContext;
use strait_abi::Reason;

/// Length of an Ethernet header.
pub const ETH_LEN: usize = 14;
/// EtherType of IPv4, as read from the wire.
const ETH_P_IPV4: [u8; 2] = [0x08, 0x00];
/// Length of an IPv4 header without options.
const IPV4_MIN_LEN: usize = 20;
/// Bytes the parser needs in the linear area: Ethernet plus a minimal IPv4 header.
const HEADERS_LEN: usize = ETH_LEN + IPV4_MIN_LEN;

/// The IPv4 fields the data path uses (addresses in network byte order).
pub struct Ipv4 {
    pub src: u32,
    pub dst: u32,
    /// IANA protocol number.
    pub proto: u8,
    /// Header length in bytes (20-60): the transport header starts at `ETH_LEN + header_len`.
    pub header_len: usize,
    /// A later fragment (offset set): no transport header; its ports come from the first fragment.
    pub later_fragment: bool,
    /// More fragments follow (with no offset: the first fragment, which carries the transport header).
    pub more_fragments: bool,
    /// The identification field (as on the wire): which fragments belong together.
    pub id: u16,
    /// The packet's total length from its header (the frame may be longer: Ethernet padding).
    pub total_len: usize,
}

/// IANA protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IANA protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// TCP FIN flag.
pub const TCP_FIN: u8 = 0x01;
/// TCP RST flag.
pub const TCP_RST: u8 = 0x04;
/// TCP SYN flag.
pub const TCP_SYN: u8 = 0x02;
/// TCP ACK flag.
pub const TCP_ACK: u8 = 0x10;

/// Ports (network byte order) and, for TCP, what conntrack reads of the segment.
#[derive(Clone, Copy)]
pub struct L4 {
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    /// TCP sequence and acknowledgment numbers (host byte order).
    pub seq: u32,
    pub ack: u32,
    /// The sequence number after this segment (see [`tcp_seq_end`]).
    pub seq_end: u32,
    /// Whether `seq`, `ack` and `seq_end` were read (a TCP header, not a later fragment's ports).
    pub has_seq: bool,
}

impl L4 {
    /// Ports only: UDP, or a later fragment whose ports its first fragment gave.
    #[inline(always)]
    pub fn ports(sport: u16, dport: u16) -> Self {
        Self {
            sport,
            dport,
            tcp_flags: 0,
            seq: 0,
            ack: 0,
            seq_end: 0,
            has_seq: false,
        }
    }
}

/// The sequence number after a segment starting at `seq` with `payload` bytes: SYN and FIN count one.
#[inline(always)]
pub fn tcp_seq_end(seq: u32, payload: usize, flags: u8) -> u32 {
    let control = u32::from(flags & TCP_SYN != 0) + u32::from(flags & TCP_FIN != 0);
    seq.wrapping_add(payload as u32).wrapping_add(control)
}

/// Offset of the transport header.
#[inline(always)]
pub fn l4_offset(ip: &Ipv4) -> usize {
    ETH_LEN + (ip.header_len & 0x3c)
}

/// The ports of a TCP or UDP packet (a first fragment too: it carries the transport header), with the
/// TCP segment's numbers; `None` for other protocols and later fragments.
#[inline(always)]
pub fn parse_l4(ctx: &TcContext, ip: &Ipv4) -> Result<Option<L4>, Reason> {
    if (ip.proto != PROTO_TCP && ip.proto != PROTO_UDP) || ip.later_fragment {
        return Ok(None);
    }
    let offset = l4_offset(ip);
    let need = if ip.proto == PROTO_TCP { 14 } else { 8 };
    // Bounded by the IP packet, not the frame: padding after a short packet is not a header.
    if offset + need > ETH_LEN + ip.total_len || offset + need > ctx.len() as usize {
        return Err(Reason::DropMalformedL4);
    }
    if bytes_at(ctx, offset, need).is_none() {
        let _ = ctx.pull_data((offset + need) as u32);
    }
    let l4 = bytes_at(ctx, offset, 8).ok_or(Reason::DropMalformedL4)?;
    // SAFETY: `bytes_at` checked 8 bytes are in bounds.
    let (sport, dport) = unsafe {
        (
            u16::from_ne_bytes([*l4, *l4.add(1)]),
            u16::from_ne_bytes([*l4.add(2), *l4.add(3)]),
        )
    };
    if ip.proto != PROTO_TCP {
        return Ok(Some(L4::ports(sport, dport)));
    }
    let tcp = bytes_at(ctx, offset, 14).ok_or(Reason::DropMalformedL4)?;
    // SAFETY: `bytes_at` checked 14 bytes are in bounds.
    let header: [u8; 14] = unsafe { core::ptr::read_unaligned(tcp.cast()) };
    let seq = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let ack = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    let flags = header[13];
    let payload = ip
        .total_len
        .saturating_sub((ip.header_len & 0x3c) + usize::from(header[12] >> 4) * 4);
    Ok(Some(L4 {
        sport,
        dport,
        tcp_flags: flags,
        seq,
        ack,
        seq_end: tcp_seq_end(seq, payload, flags),
        has_seq: true,
    }))
}

/// What the frame carries.
pub enum Frame {
    Ipv4(Ipv4),
    Other,
}

/// A pointer to `len` bytes at `offset` in the linear packet data, if they are there.
#[inline(always)]
pub fn bytes_at(ctx: &TcContext, offset: usize, len: usize) -> Option<*mut u8> {
    let start = ctx.data();
    if start + offset + len > ctx.data_end() {
        return None;
    }
    Some((start + offset) as *mut u8)
}

/// Parses the Ethernet and IPv4 headers.
#[inline(always)]
pub fn parse(ctx: &TcContext) -> Result<Frame, Reason> {
    let len = ctx.len() as usize;
    if len < ETH_LEN {
        return Err(Reason::DropTruncatedEthernet);
    }
    if bytes_at(ctx, 0, HEADERS_LEN.min(len)).is_none() {
        // Headers outside the linear area: pull what exists of them in, then read directly.
        let _ = ctx.pull_data(HEADERS_LEN.min(len) as u32);
    }
    let eth = bytes_at(ctx, 0, ETH_LEN).ok_or(Reason::DropTruncatedEthernet)?;
    // SAFETY: `bytes_at` checked that ETH_LEN bytes are in bounds.
    let ethertype = unsafe { [*eth.add(12), *eth.add(13)] };
    if ethertype != ETH_P_IPV4 {
        return Ok(Frame::Other);
    }
    let ip = bytes_at(ctx, ETH_LEN, IPV4_MIN_LEN).ok_or(Reason::DropTruncatedIpv4)?;
    // SAFETY: `bytes_at` checked that IPV4_MIN_LEN bytes are in bounds.
    let header: [u8; IPV4_MIN_LEN] = unsafe { core::ptr::read_unaligned(ip.cast()) };
    let version = header[0] >> 4;
    let header_len = usize::from(header[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if version != 4 || header_len < IPV4_MIN_LEN || total_len < header_len {
        return Err(Reason::DropMalformedIpv4);
    }
    if ETH_LEN + total_len > len {
        return Err(Reason::DropTruncatedIpv4);
    }
    let fragment_bits = u16::from_be_bytes([header[6], header[7]]);
    Ok(Frame::Ipv4(Ipv4 {
        src: u32::from_ne_bytes([header[12], header[13], header[14], header[15]]),
        dst: u32::from_ne_bytes([header[16], header[17], header[18], header[19]]),
        proto: header[9],
        header_len,
        later_fragment: fragment_bits & 0x1fff != 0,
        more_fragments: fragment_bits & 0x2000 != 0,
        id: u16::from_ne_bytes([header[4], header[5]]),
        total_len,
    }))
}
