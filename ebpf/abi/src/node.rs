//! The NODE map: facts about this node the programs need and cannot look up themselves (a one-entry array
//! written by the agent once it knows its uplink).

/// Value of NODE_V1[0].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeConfig {
    /// The node's primary IPv4 address (network byte order): the SNAT source for external flows.
    pub node_ip: u32,
    /// Interface index (host byte order) of the uplink; 0 until the agent has attached to it.
    pub uplink_ifindex: u32,
}

const _: () = assert!(core::mem::size_of::<NodeConfig>() == 8);

#[cfg(feature = "user")]
// SAFETY: plain-old-data, `#[repr(C)]`, no implicit padding (checked by the size assertion).
unsafe impl aya::Pod for NodeConfig {}
