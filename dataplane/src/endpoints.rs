//! Typed access to the ENDPOINT map: domain type [`Endpoint`] <-> ABI types, byte order handled here only.

use std::net::Ipv4Addr;

use aya::maps::{HashMap, MapData, MapError};
use strait_abi::{
    EndpointInfo, EndpointKey,
    endpoint::{ENDPOINT_F_READY, ENDPOINT_F_TRACKED},
    maps::ENDPOINT_MAP,
};

use crate::{Dataplane, DataplaneError};

/// A pod endpoint on this node as the data path sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: Ipv4Addr,
    /// Host-side veth index in the node namespace.
    pub host_ifindex: u32,
    pub pod_mac: [u8; 6],
    pub host_mac: [u8; 6],
}

impl Endpoint {
    fn key(addr: Ipv4Addr) -> EndpointKey {
        EndpointKey {
            addr: u32::from_ne_bytes(addr.octets()),
        }
    }

    fn info(&self) -> EndpointInfo {
        EndpointInfo {
            host_ifindex: self.host_ifindex,
            flags: ENDPOINT_F_READY,
            pod_mac: self.pod_mac,
            host_mac: self.host_mac,
            pad: [0; 4],
        }
    }

    fn from_abi(key: EndpointKey, info: EndpointInfo) -> Self {
        Self {
            addr: Ipv4Addr::from(key.addr.to_ne_bytes()),
            host_ifindex: info.host_ifindex,
            pod_mac: info.pod_mac,
            host_mac: info.host_mac,
        }
    }
}

impl Dataplane {
    fn endpoint_map(
        &mut self,
    ) -> Result<HashMap<&mut MapData, EndpointKey, EndpointInfo>, DataplaneError> {
        self.typed_map(ENDPOINT_MAP)
    }

    /// Inserts or updates an endpoint; returns whether the map changed (unchanged entries are not rewritten).
    pub fn upsert_endpoint(&mut self, endpoint: &Endpoint) -> Result<bool, DataplaneError> {
        let capacity = self.endpoint_capacity;
        let mut map = self.endpoint_map()?;
        let key = Endpoint::key(endpoint.addr);
        let mut info = endpoint.info();
        let current = map.get(&key, 0).ok();
        // The data path's TRACKED bit is not ours to clear: tracked flows of the pod depend on it.
        info.flags |= current.map_or(0, |c| c.flags & ENDPOINT_F_TRACKED);
        if current == Some(info) {
            return Ok(false);
        }
        map.insert(key, info, 0)
            .map_err(|source| DataplaneError::map(ENDPOINT_MAP, capacity, source))?;
        Ok(true)
    }

    /// Removes the endpoint with `addr`; returns whether it was present.
    pub fn remove_endpoint(&mut self, addr: Ipv4Addr) -> Result<bool, DataplaneError> {
        let mut map = self.endpoint_map()?;
        match map.remove(&Endpoint::key(addr)) {
            Ok(()) => Ok(true),
            Err(MapError::KeyNotFound) => Ok(false),
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
                Ok(false)
            }
            Err(source) => Err(DataplaneError::Map {
                name: ENDPOINT_MAP,
                source,
            }),
        }
    }

    /// Every endpoint in the map.
    pub fn endpoints(&mut self) -> Result<Vec<Endpoint>, DataplaneError> {
        let map = self.endpoint_map()?;
        let mut out = Vec::new();
        for entry in &map {
            let (key, info) = entry.map_err(|source| DataplaneError::Map {
                name: ENDPOINT_MAP,
                source,
            })?;
            out.push(Endpoint::from_abi(key, info));
        }
        out.sort_by_key(|e| e.addr);
        Ok(out)
    }
}
