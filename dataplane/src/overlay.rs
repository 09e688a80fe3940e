//! The overlay maps from user space: REMOTE_V1 (which node owns which pod CIDR and address, and how it
//! is reached) synced to a wanted set by difference, and OVERLAY_V1 (this node's VXLAN device, VNI and
//! VTEP MAC).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
};

use aya::maps::{
    Array,
    lpm_trie::{Key, LpmTrie},
};
use strait_abi::{
    maps::{OVERLAY_MAP, REMOTE_MAP, REMOTE_MAP_DEFAULT_CAPACITY},
    overlay::{OVERLAY_MODE_DIRECT, OVERLAY_MODE_VXLAN, OverlayConfig, RemoteNode, RemotePrefix},
};

use crate::{Dataplane, DataplaneError};

/// How a remote node is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RemoteMode {
    /// Through the VXLAN tunnel.
    Vxlan,
    /// Straight to its underlay address (it is on this node's L2 segment).
    Direct,
}

/// One prefix of REMOTE_V1: a remote node's pod CIDR, or its address as a /32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RemoteRoute {
    pub prefix: Ipv4Addr,
    pub prefix_len: u8,
    /// The node's underlay address.
    pub node_ip: Ipv4Addr,
    /// The node's VTEP MAC.
    pub vtep_mac: [u8; 6],
    pub mode: RemoteMode,
}

/// What a sync of REMOTE_V1 changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoteSyncReport {
    pub written: usize,
    pub removed: usize,
}

fn lpm_key(prefix: Ipv4Addr, len: u8) -> Key<RemotePrefix> {
    Key::new(
        u32::from(len),
        RemotePrefix {
            addr: u32::from_ne_bytes(prefix.octets()),
        },
    )
}

fn value_of(route: &RemoteRoute) -> RemoteNode {
    RemoteNode {
        node_ip: u32::from_ne_bytes(route.node_ip.octets()),
        vtep_mac: route.vtep_mac,
        mode: match route.mode {
            RemoteMode::Vxlan => OVERLAY_MODE_VXLAN,
            RemoteMode::Direct => OVERLAY_MODE_DIRECT,
        },
        pad: 0,
    }
}

impl Dataplane {
    /// Records this node's end of the overlay (0 as `vxlan_ifindex` turns the overlay off).
    pub fn set_overlay(
        &mut self,
        vxlan_ifindex: u32,
        vni: u32,
        vtep_mac: [u8; 6],
    ) -> Result<(), DataplaneError> {
        let mut array: Array<_, OverlayConfig> = self.typed_map(OVERLAY_MAP)?;
        let value = OverlayConfig {
            vxlan_ifindex,
            vni,
            vtep_mac,
            pad: [0; 2],
        };
        array
            .set(0, value, 0)
            .map_err(|source| DataplaneError::map(OVERLAY_MAP, 1, source))
    }

    /// Makes REMOTE_V1 hold exactly `routes`: changed and new prefixes are written first, then prefixes
    /// no longer wanted removed (a prefix moving between nodes is overwritten in place, never absent).
    pub fn sync_remote_routes(
        &mut self,
        routes: &[RemoteRoute],
    ) -> Result<RemoteSyncReport, DataplaneError> {
        let mut trie: LpmTrie<_, RemotePrefix, RemoteNode> = self.typed_map(REMOTE_MAP)?;
        let mut present = BTreeMap::new();
        for key in trie.keys() {
            let key = key.map_err(|source| DataplaneError::map(REMOTE_MAP, 0, source))?;
            let value = trie
                .get(&key, 0)
                .map_err(|source| DataplaneError::map(REMOTE_MAP, 0, source))?;
            present.insert((key.prefix_len(), key.data().addr), value);
        }
        let mut report = RemoteSyncReport::default();
        let mut wanted = BTreeSet::new();
        for route in routes {
            let key = lpm_key(route.prefix, route.prefix_len);
            let value = value_of(route);
            wanted.insert((key.prefix_len(), key.data().addr));
            if present.get(&(key.prefix_len(), key.data().addr)) != Some(&value) {
                trie.insert(&key, value, 0).map_err(|source| {
                    DataplaneError::map(REMOTE_MAP, REMOTE_MAP_DEFAULT_CAPACITY, source)
                })?;
                report.written += 1;
            }
        }
        for (len, addr) in present.keys() {
            if !wanted.contains(&(*len, *addr)) {
                let key = Key::new(*len, RemotePrefix { addr: *addr });
                trie.remove(&key)
                    .map_err(|source| DataplaneError::map(REMOTE_MAP, 0, source))?;
                report.removed += 1;
            }
        }
        Ok(report)
    }
}

/// The prefixes of the REMOTE_V1 pinned under `pin_dir` (a running agent's), sorted: (prefix, prefix
/// length, node address). For inspection and tests; the agent itself syncs through
/// [`Dataplane::sync_remote_routes`].
pub fn pinned_remote_prefixes(
    pin_dir: &std::path::Path,
) -> Result<Vec<(Ipv4Addr, u8, Ipv4Addr)>, DataplaneError> {
    let path = pin_dir.join("maps").join(REMOTE_MAP);
    let map_error = |source| DataplaneError::Map {
        name: REMOTE_MAP,
        source,
    };
    let data = aya::maps::MapData::from_pin(&path).map_err(map_error)?;
    let trie: LpmTrie<_, RemotePrefix, RemoteNode> =
        LpmTrie::try_from(aya::maps::Map::LpmTrie(data)).map_err(map_error)?;
    let mut out = Vec::new();
    for key in trie.keys() {
        let key = key.map_err(map_error)?;
        let node = trie.get(&key, 0).map_err(map_error)?;
        out.push((
            Ipv4Addr::from(key.data().addr.to_ne_bytes()),
            u8::try_from(key.prefix_len()).unwrap_or(32),
            Ipv4Addr::from(node.node_ip.to_ne_bytes()),
        ));
    }
    out.sort();
    Ok(out)
}
