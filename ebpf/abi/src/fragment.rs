//! The FRAG map: the ports of fragmented datagrams of translated flows. Only a datagram's first
//! fragment carries its TCP/UDP header; when the per-packet path translates it, it records the ports
//! under the datagram's identity (addresses, protocol, IP id, as on the wire), so the later fragments
//! find the flow's CT entry and get the same address rewrite. A later fragment that arrives before its
//! first is not translated (the datagram is lost, as it would be in Cilium). The map is an LRU hash:
//! entries are never deleted, the oldest make room.

/// Key of FRAG_V1: a datagram as it arrived (addresses in network byte order, `id` as on the wire).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub saddr: u32,
    pub daddr: u32,
    /// The IPv4 identification field.
    pub id: u16,
    /// IANA protocol number.
    pub proto: u8,
    pub pad: u8,
}

/// Value of FRAG_V1: the datagram's ports as its first fragment carried them (network byte order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragPorts {
    pub sport: u16,
    pub dport: u16,
}

const _: () = assert!(core::mem::size_of::<FragKey>() == 12);
const _: () = assert!(core::mem::size_of::<FragPorts>() == 4);

#[cfg(feature = "user")]
mod pod {
    use super::{FragKey, FragPorts};
    // SAFETY (both): plain-old-data, `#[repr(C)]`, no implicit padding (checked by the size assertions).
    unsafe impl aya::Pod for FragKey {}
    unsafe impl aya::Pod for FragPorts {}
}
