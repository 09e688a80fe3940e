//! Refusals the node answers itself, built in place over the offending packet: a TCP RST for a segment,
//! an ICMP port unreachable for a UDP datagram, with freshly computed checksums. Shared by XDP (`xdp_reject`)
//! and tc (`tc_reject`), which differ only in how they trim the frame and send it back.

use crate::parse::{ETH_LEN, PROTO_TCP, TCP_RST};

/// Bytes of a reset frame: Ethernet, IPv4 without options, TCP without options.
pub const RST_LEN: usize = ETH_LEN + 20 + 20;
/// Bytes an ICMP error puts before the offending datagram's headers: IPv4 header and ICMP header.
pub const ICMP_PREFIX: usize = 20 + 8;
/// Bytes of the ICMP error frame: Ethernet, IPv4, ICMP, then the datagram's IPv4 header and 8 bytes.
pub const ICMP_LEN: usize = ETH_LEN + ICMP_PREFIX + 20 + 8;
const PROTO_ICMP: u8 = 1;
const TCP_SYN: u8 = 0x02;
const TCP_FIN: u8 = 0x01;
const TCP_ACK: u8 = 0x10;

/// Turns the TCP segment at `frame` (option-less IPv4) into the RST that refuses it, addressed back to
/// its sender, in its first [`RST_LEN`] bytes. False when the segment is itself a RST.
///
/// # Safety
/// `frame` must point to at least [`RST_LEN`] readable and writable bytes.
#[inline(always)]
pub unsafe fn write_reset(frame: *mut u8) -> bool {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let ip = frame.add(ETH_LEN);
        let tcp = ip.add(20);
        let flags = *tcp.add(13);
        if flags & TCP_RST != 0 {
            return false;
        }
        let total = u32::from(u16::from_be_bytes([*ip.add(2), *ip.add(3)]));
        let tcp_header = u32::from(*tcp.add(12) >> 4) * 4;
        let payload = total.saturating_sub(20 + tcp_header);
        let seq = u32::from_be_bytes([*tcp.add(4), *tcp.add(5), *tcp.add(6), *tcp.add(7)]);
        let ack = u32::from_be_bytes([*tcp.add(8), *tcp.add(9), *tcp.add(10), *tcp.add(11)]);
        let (new_seq, new_ack, new_flags) = if flags & TCP_ACK != 0 {
            (ack, 0, TCP_RST)
        } else {
            let consumed =
                payload + u32::from(flags & TCP_SYN != 0) + u32::from(flags & TCP_FIN != 0);
            (0, seq.wrapping_add(consumed), TCP_RST | TCP_ACK)
        };
        swap_macs(frame);
        let saddr = core::ptr::read_unaligned(ip.add(12).cast::<[u8; 4]>());
        let daddr = core::ptr::read_unaligned(ip.add(16).cast::<[u8; 4]>());
        core::ptr::write_unaligned(
            ip.cast::<[u8; 20]>(),
            ipv4_header(daddr, saddr, PROTO_TCP, 40),
        );
        // TCP: swapped ports, no options, zero window.
        let sport = core::ptr::read_unaligned(tcp.cast::<[u8; 2]>());
        let dport = core::ptr::read_unaligned(tcp.add(2).cast::<[u8; 2]>());
        let s = new_seq.to_be_bytes();
        let a = new_ack.to_be_bytes();
        let mut tcp_header = [
            dport[0], dport[1], sport[0], sport[1], s[0], s[1], s[2], s[3], a[0], a[1], a[2], a[3],
            0x50, new_flags, 0, 0, 0, 0, 0, 0,
        ];
        let pseudo = sum_words(&daddr, 0) + sum_words(&saddr, 0) + u32::from(PROTO_TCP) + 20;
        let tcp_sum = fold(sum_words(&tcp_header, pseudo));
        tcp_header[16..18].copy_from_slice(&tcp_sum.to_be_bytes());
        core::ptr::write_unaligned(tcp.cast::<[u8; 20]>(), tcp_header);
    }
    true
}

/// Writes the ICMP port unreachable that refuses a UDP datagram. The frame must already be laid out as
/// the error: the datagram's Ethernet header at the front, [`ICMP_PREFIX`] bytes of room, then the
/// datagram's (option-less) IPv4 header and its first 8 bytes.
///
/// # Safety
/// `frame` must point to at least [`ICMP_LEN`] readable and writable bytes.
#[inline(always)]
pub unsafe fn write_port_unreachable(frame: *mut u8) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        swap_macs(frame);
        let inner = frame.add(ETH_LEN + ICMP_PREFIX);
        let saddr = core::ptr::read_unaligned(inner.add(12).cast::<[u8; 4]>());
        let daddr = core::ptr::read_unaligned(inner.add(16).cast::<[u8; 4]>());
        let total = u16::try_from(ICMP_LEN - ETH_LEN).unwrap_or(56);
        core::ptr::write_unaligned(
            frame.add(ETH_LEN).cast::<[u8; 20]>(),
            ipv4_header(daddr, saddr, PROTO_ICMP, total),
        );
        // Type 3 (destination unreachable), code 3 (port), checksum over the ICMP message.
        let icmp = frame.add(ETH_LEN + 20);
        core::ptr::write_unaligned(icmp.cast::<[u8; 8]>(), [3, 3, 0, 0, 0, 0, 0, 0]);
        let message = core::ptr::read_unaligned(icmp.cast::<[u8; 36]>());
        let sum = fold(sum_words(&message, 0));
        core::ptr::write_unaligned(icmp.add(2).cast::<[u8; 2]>(), sum.to_be_bytes());
    }
}

/// Swaps the destination and source MACs of the Ethernet header at `frame`.
///
/// # Safety
/// `frame` must point to at least 12 writable bytes.
#[inline(always)]
pub unsafe fn swap_macs(frame: *mut u8) {
    let mut mac = [0u8; 6];
    // SAFETY: guaranteed by the caller.
    unsafe {
        core::ptr::copy_nonoverlapping(frame, mac.as_mut_ptr(), 6);
        core::ptr::copy_nonoverlapping(frame.add(6), frame, 6);
        core::ptr::copy_nonoverlapping(mac.as_ptr(), frame.add(6), 6);
    }
}

/// An option-less IPv4 header from `saddr` to `daddr` with its checksum.
#[inline(always)]
pub fn ipv4_header(saddr: [u8; 4], daddr: [u8; 4], proto: u8, total: u16) -> [u8; 20] {
    let t = total.to_be_bytes();
    let mut header = [
        0x45, 0, t[0], t[1], 0, 0, 0x40, 0, 64, proto, 0, 0, saddr[0], saddr[1], saddr[2],
        saddr[3], daddr[0], daddr[1], daddr[2], daddr[3],
    ];
    let sum = fold(sum_words(&header, 0));
    header[10..12].copy_from_slice(&sum.to_be_bytes());
    header
}

/// One's-complement sum of big-endian 16-bit words, added to `initial`.
#[inline(always)]
pub fn sum_words<const N: usize>(bytes: &[u8; N], initial: u32) -> u32 {
    let mut sum = initial;
    let mut i = 0;
    while i + 1 < N {
        sum += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        i += 2;
    }
    sum
}

/// Folds a 32-bit sum into the 16-bit checksum field value.
#[inline(always)]
pub fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}
