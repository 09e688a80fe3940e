//! The kernel DNS fast path's maps from user space: DNS_FAST_V1 (where this node's DNS listener is,
//! whether the fast path answers) and DNS_A_V1 (the hot A records, by name in lowercase wire format)
//! synced to a wanted set by difference.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{Ipv4Addr, SocketAddrV4},
};

use aya::maps::{Array, HashMap};
use strait_abi::{
    dns::{
        DNS_A_MAX, DNS_FAST_F_ENABLED, DNS_FAST_F_RECURSION, DNS_NAME_MAX, DnsARecords,
        DnsFastConfig, DnsNameKey,
    },
    maps::{DNS_A_MAP, DNS_A_MAP_DEFAULT_CAPACITY, DNS_FAST_MAP},
};

use crate::{Dataplane, DataplaneError};

/// A name's A records as the fast path answers them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HotRecord {
    /// The name in lowercase wire format (length-prefixed labels, then the root's 0).
    pub wire_name: Vec<u8>,
    pub ttl: u32,
    pub addrs: Vec<Ipv4Addr>,
}

impl HotRecord {
    /// The record as the map holds it; `None` when the name or the address list does not fit.
    fn entry(&self) -> Option<(DnsNameKey, DnsARecords)> {
        if self.addrs.is_empty() || self.addrs.len() > DNS_A_MAX {
            return None;
        }
        let key = name_key(&self.wire_name)?;
        let mut value = DnsARecords {
            ttl: self.ttl,
            count: self.addrs.len() as u32,
            addrs: [0; DNS_A_MAX],
        };
        for (slot, addr) in value.addrs.iter_mut().zip(&self.addrs) {
            *slot = u32::from_ne_bytes(addr.octets());
        }
        Some((key, value))
    }
}

/// The map's key for a name in wire format (lowercased, zero-padded); `None` when it is too long.
fn name_key(wire_name: &[u8]) -> Option<DnsNameKey> {
    if wire_name.len() > DNS_NAME_MAX {
        return None;
    }
    let mut key = DnsNameKey::default();
    for (slot, byte) in key.name.iter_mut().zip(wire_name) {
        *slot = byte.to_ascii_lowercase();
    }
    Some(key)
}

/// What a sync of DNS_A_V1 did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsSyncReport {
    pub written: usize,
    pub removed: usize,
    /// Names left to the server: too long, or with more addresses than one answer carries.
    pub skipped: usize,
}

impl Dataplane {
    /// Points the fast path at this node's DNS listener and turns it on, or off (`None`).
    pub fn set_dns_fast(
        &mut self,
        listener: Option<SocketAddrV4>,
        recursion_available: bool,
    ) -> Result<(), DataplaneError> {
        let mut array: Array<_, DnsFastConfig> = self.typed_map(DNS_FAST_MAP)?;
        let value = match listener {
            Some(addr) => DnsFastConfig {
                addr: u32::from_ne_bytes(addr.ip().octets()),
                port: addr.port().to_be(),
                flags: DNS_FAST_F_ENABLED
                    | if recursion_available {
                        DNS_FAST_F_RECURSION
                    } else {
                        0
                    },
            },
            None => DnsFastConfig::default(),
        };
        array
            .set(0, value, 0)
            .map_err(|source| DataplaneError::map(DNS_FAST_MAP, 1, source))
    }

    /// Writes `upserts` (those that fit) and removes the names `removals` (wire format) from
    /// DNS_A_V1, without reading it back: for a writer that knows what the map holds.
    pub fn apply_dns_changes(
        &mut self,
        upserts: &[HotRecord],
        removals: &[Vec<u8>],
    ) -> Result<DnsSyncReport, DataplaneError> {
        let mut map: HashMap<_, DnsNameKey, DnsARecords> = self.typed_map(DNS_A_MAP)?;
        let mut report = DnsSyncReport::default();
        let mut removals = removals.to_vec();
        for record in upserts {
            let Some((key, value)) = record.entry() else {
                // Left to the server now: what the map held for it goes.
                report.skipped += 1;
                removals.push(record.wire_name.clone());
                continue;
            };
            map.insert(key, value, 0).map_err(|source| {
                DataplaneError::map(DNS_A_MAP, DNS_A_MAP_DEFAULT_CAPACITY, source)
            })?;
            report.written += 1;
        }
        for name in &removals {
            let Some(key) = name_key(name) else {
                continue;
            };
            match map.remove(&key) {
                Ok(()) => report.removed += 1,
                // Never written (it did not fit): nothing to remove.
                Err(aya::maps::MapError::KeyNotFound) => {}
                Err(source) => return Err(DataplaneError::map(DNS_A_MAP, 0, source)),
            }
        }
        Ok(report)
    }

    /// Makes DNS_A_V1 hold exactly `records` (those that fit): new and changed names first, then
    /// names no longer wanted removed.
    pub fn sync_dns_records(
        &mut self,
        records: &[HotRecord],
    ) -> Result<DnsSyncReport, DataplaneError> {
        let mut map: HashMap<_, DnsNameKey, DnsARecords> = self.typed_map(DNS_A_MAP)?;
        let mut present = BTreeMap::new();
        for entry in &map {
            let (key, value) = entry.map_err(|source| DataplaneError::map(DNS_A_MAP, 0, source))?;
            present.insert(key.name, value);
        }
        let mut report = DnsSyncReport::default();
        let mut wanted = BTreeSet::new();
        for record in records {
            let Some((key, value)) = record.entry() else {
                report.skipped += 1;
                continue;
            };
            wanted.insert(key.name);
            if present.get(&key.name) != Some(&value) {
                map.insert(key, value, 0).map_err(|source| {
                    DataplaneError::map(DNS_A_MAP, DNS_A_MAP_DEFAULT_CAPACITY, source)
                })?;
                report.written += 1;
            }
        }
        for name in present.keys() {
            if !wanted.contains(name) {
                map.remove(&DnsNameKey { name: *name })
                    .map_err(|source| DataplaneError::map(DNS_A_MAP, 0, source))?;
                report.removed += 1;
            }
        }
        Ok(report)
    }
}
