//! The overlay maps: where pods of other nodes live, and how this node reaches them.
//!
//! REMOTE_V1 is an LPM trie from a prefix (a remote node's pod CIDR, or its address as a /32) to that
//! node's underlay address, VXLAN tunnel endpoint MAC and mode. OVERLAY_V1 (a one-entry array) holds
//! this node's own side: the VXLAN device packets are redirected to, the VNI, and the VTEP MAC the inner
//! Ethernet header carries as its source, as Flannel's `flannel.<VNI>` expects.

/// Key of REMOTE_V1 (wrapped in an LPM key with its prefix length): an IPv4 prefix, network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RemotePrefix {
    pub addr: u32,
}

/// Packets for the node go through the VXLAN tunnel (Flannel's `vxlan` backend).
pub const OVERLAY_MODE_VXLAN: u8 = 1;
/// Packets for the node go straight to its underlay address, unencapsulated (Flannel's `DirectRouting`,
/// `host-gw`): the node must be on the same L2 segment.
pub const OVERLAY_MODE_DIRECT: u8 = 2;

/// Value of REMOTE_V1: a remote node.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoteNode {
    /// The node's underlay address (network byte order): the tunnel's remote end.
    pub node_ip: u32,
    /// The MAC of the node's VXLAN device (its VTEP): the inner Ethernet destination.
    pub vtep_mac: [u8; 6],
    /// [`OVERLAY_MODE_VXLAN`] or [`OVERLAY_MODE_DIRECT`].
    pub mode: u8,
    pub pad: u8,
}

/// Value of OVERLAY_V1[0]: this node's end of the overlay; all zero while the overlay is off.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverlayConfig {
    /// Interface index (host byte order) of this node's VXLAN device (collect-metadata mode).
    pub vxlan_ifindex: u32,
    /// The VXLAN network identifier (host byte order; Flannel's default is 1).
    pub vni: u32,
    /// The MAC of this node's VXLAN device: the inner Ethernet source.
    pub vtep_mac: [u8; 6],
    pub pad: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<RemotePrefix>() == 4);
const _: () = assert!(core::mem::size_of::<RemoteNode>() == 12);
const _: () = assert!(core::mem::size_of::<OverlayConfig>() == 16);

#[cfg(feature = "user")]
mod pod {
    use super::{OverlayConfig, RemoteNode, RemotePrefix};
    // SAFETY (all): plain-old-data, `#[repr(C)]`, no implicit padding (checked by the size assertions).
    unsafe impl aya::Pod for RemotePrefix {}
    unsafe impl aya::Pod for RemoteNode {}
    unsafe impl aya::Pod for OverlayConfig {}
}
