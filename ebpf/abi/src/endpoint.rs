//! The ENDPOINT map: which pod owns an IPv4 address on this node and how to deliver to it.

/// Key of the ENDPOINT map: the pod's IPv4 address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    /// IPv4 address in network byte order, exactly as it appears in the IP header
    /// (`u32::from_ne_bytes(addr.octets())` in user space).
    pub addr: u32,
}

/// Value of the ENDPOINT map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    /// Interface index (host byte order) of the host-side veth of the pod, in the node's namespace.
    pub host_ifindex: u32,
    /// Bit set of `ENDPOINT_F_*` flags (host byte order).
    pub flags: u32,
    /// MAC address of the pod's own interface (inside the pod namespace): the destination MAC on delivery.
    pub pod_mac: [u8; 6],
    /// MAC address of the host-side veth: the source MAC on delivery (the pod's gateway).
    pub host_mac: [u8; 6],
    /// Explicit padding to an 8-byte multiple; always zero.
    pub pad: [u8; 4],
}

/// The endpoint is ready to receive traffic.
pub const ENDPOINT_F_READY: u32 = 1;
/// Set by the data path once the pod is the client or the backend of a flow in CT_V1: only then are its
/// packets looked up there (pod-to-pod traffic of other pods skips conntrack). User space keeps the bit
/// when it rewrites the entry.
pub const ENDPOINT_F_TRACKED: u32 = 2;

const _: () = assert!(core::mem::size_of::<EndpointKey>() == 4);
const _: () = assert!(core::mem::size_of::<EndpointInfo>() == 24);

#[cfg(feature = "user")]
// SAFETY: plain-old-data, `#[repr(C)]`, no implicit padding (checked by the size assertions above).
unsafe impl aya::Pod for EndpointKey {}
#[cfg(feature = "user")]
// SAFETY: plain-old-data, `#[repr(C)]`, no implicit padding (checked by the size assertions above).
unsafe impl aya::Pod for EndpointInfo {}
