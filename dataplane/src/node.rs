//! NODE_V1: the node facts the programs read (its address, its uplink), written by the agent.

use std::net::Ipv4Addr;

use aya::maps::Array;
use strait_abi::{NodeConfig, maps::NODE_MAP};

use crate::{Dataplane, DataplaneError};

impl Dataplane {
    /// Records the node's primary address (the SNAT source of external flows) and its uplink's ifindex
    /// (where translated packets for outside the node leave).
    pub fn set_node(
        &mut self,
        node_ip: Ipv4Addr,
        uplink_ifindex: u32,
    ) -> Result<(), DataplaneError> {
        let mut array: Array<_, NodeConfig> = self.typed_map(NODE_MAP)?;
        let value = NodeConfig {
            node_ip: u32::from_ne_bytes(node_ip.octets()),
            uplink_ifindex,
        };
        array
            .set(0, value, 0)
            .map_err(|source| DataplaneError::map(NODE_MAP, 1, source))
    }
}
