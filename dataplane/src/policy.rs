//! The NetworkPolicy maps from user space: IPCACHE_V1 (every pod address of the cluster → its
//! identity), POLICY_SUBJECT_V1 (local pods' isolation and audit mode), POLICY_V1 (allow entries by
//! peer identity) and POLICY_CIDR_V1 (allow entries by peer address prefix) are made to hold exactly a
//! wanted [`PolicyTables`], by difference against what the kernel holds. The kernel's entries are read
//! back on every sync rather than remembered, so an agent that restarts converges on whatever an earlier
//! one left. Byte order is handled here only.
//!
//! Writes are ordered so that a change never opens a hole and never closes a door early: first the
//! subjects that lose isolation (or are no longer subjects) are relaxed, then new and changed allow
//! entries (POLICY_V1, POLICY_CIDR_V1) and IPCACHE entries are written, then subjects gain their new
//! isolation, and only then are allow entries and addresses no longer wanted removed. In between, the
//! kernel allows at most what the old or the new tables allow.

use std::{collections::BTreeMap, net::Ipv4Addr};

use aya::maps::Map;
use strait_abi::maps::{
    ENDPOINT_MAP_DEFAULT_CAPACITY, IPCACHE_MAP, IPCACHE_MAP_DEFAULT_CAPACITY, POLICY_CIDR_MAP,
    POLICY_CIDR_MAP_DEFAULT_CAPACITY, POLICY_MAP, POLICY_MAP_DEFAULT_CAPACITY, POLICY_SUBJECT_MAP,
};
pub use strait_abi::policy::{
    FIRST_POD_IDENTITY, IDENTITY_ANY, IDENTITY_HOST, IDENTITY_WORLD, POLICY_CIDR_RANGES,
    POLICY_EGRESS, POLICY_INGRESS, PolicyCidrAllow, PolicyRule, PolicySubject, PortRange,
    SUBJECT_F_AUDIT, SUBJECT_F_EGRESS_ISOLATED, SUBJECT_F_INGRESS_ISOLATED,
};
use strait_abi::policy::{IdentityValue, PolicyCidrKey, PolicyKey};

mod access;
mod keys;
mod plan;

use access::{read_hash, read_trie, remove_hash, remove_trie, write_hash, write_trie};
use keys::{RawAllow, RawCidr, addr_word, allow_raw, cidr_raw};
use plan::{Plan, subject_steps};

use crate::{Dataplane, DataplaneError};

/// The policy maps the agent writes, in the order [`Dataplane::sync_policy`] checks they exist.
pub const POLICY_MAPS: [&str; 4] = [IPCACHE_MAP, POLICY_SUBJECT_MAP, POLICY_MAP, POLICY_CIDR_MAP];

/// A POLICY_V1 key: traffic of `protocol` (IANA number) between local pod `subject` and a peer of
/// identity `peer` ([`IDENTITY_ANY`]: any) in `direction` ([`POLICY_EGRESS`] or [`POLICY_INGRESS`]), on
/// the ports whose first `port_prefix` bits (0-16) are those of `port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AllowKey {
    pub subject: Ipv4Addr,
    pub direction: u8,
    pub protocol: u8,
    pub peer: u32,
    pub port: u16,
    pub port_prefix: u8,
}

/// A POLICY_CIDR_V1 key: traffic of `protocol` between local pod `subject` and the peer addresses in
/// `prefix`/`prefix_len`, in `direction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CidrKey {
    pub subject: Ipv4Addr,
    pub direction: u8,
    pub protocol: u8,
    pub prefix: Ipv4Addr,
    pub prefix_len: u8,
}

/// Everything the policy maps are to hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyTables {
    /// IPCACHE_V1: every pod address of the cluster → the pod's identity.
    pub ipcache: BTreeMap<Ipv4Addr, u32>,
    /// POLICY_SUBJECT_V1: local pods that are isolated or audited.
    pub subjects: BTreeMap<Ipv4Addr, PolicySubject>,
    /// POLICY_V1.
    pub allow: BTreeMap<AllowKey, PolicyRule>,
    /// POLICY_CIDR_V1 (unused ranges zero).
    pub cidr: BTreeMap<CidrKey, PolicyCidrAllow>,
}

/// What a sync did to one map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapSync {
    /// Entries written (new or changed).
    pub written: usize,
    pub removed: usize,
    /// Entries the map holds afterwards.
    pub entries: usize,
}

impl MapSync {
    /// Whether the sync changed the map.
    pub fn changed(&self) -> bool {
        self.written + self.removed > 0
    }
}

/// What [`Dataplane::sync_policy`] did, map by map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicySyncReport {
    pub ipcache: MapSync,
    pub subjects: MapSync,
    pub allow: MapSync,
    pub cidr: MapSync,
}

impl PolicySyncReport {
    /// Whether any map changed.
    pub fn changed(&self) -> bool {
        [self.ipcache, self.subjects, self.allow, self.cidr]
            .iter()
            .any(MapSync::changed)
    }
}

/// The four maps, borrowed together.
struct PolicyMaps<'a> {
    ipcache: &'a mut Map,
    subjects: &'a mut Map,
    allow: &'a mut Map,
    cidr: &'a mut Map,
}

impl Dataplane {
    /// Makes IPCACHE_V1, POLICY_SUBJECT_V1, POLICY_V1 and POLICY_CIDR_V1 hold exactly `tables`, in the
    /// order the module describes. Fails before writing anything when the object lacks one of the maps
    /// ([`DataplaneError::MapMissing`]).
    pub fn sync_policy(
        &mut self,
        tables: &PolicyTables,
    ) -> Result<PolicySyncReport, DataplaneError> {
        let mut found: [Option<&mut Map>; 4] = Default::default();
        for (name, map) in self.ebpf.maps_mut() {
            if let Some(index) = POLICY_MAPS.iter().position(|n| *n == name) {
                found[index] = Some(map);
            }
        }
        if let Some(index) = found.iter().position(Option::is_none) {
            return Err(DataplaneError::MapMissing {
                name: POLICY_MAPS[index],
            });
        }
        let [Some(ipcache), Some(subjects), Some(allow), Some(cidr)] = found else {
            unreachable!("every map was found");
        };
        sync(
            PolicyMaps {
                ipcache,
                subjects,
                allow,
                cidr,
            },
            tables,
        )
    }
}

/// The wanted tables in the maps' own key forms.
struct Wanted {
    ipcache: BTreeMap<u32, IdentityValue>,
    subjects: BTreeMap<u32, PolicySubject>,
    allow: BTreeMap<RawAllow, PolicyRule>,
    cidr: BTreeMap<RawCidr, PolicyCidrAllow>,
}

impl Wanted {
    fn of(tables: &PolicyTables) -> Self {
        Self {
            ipcache: tables
                .ipcache
                .iter()
                .map(|(addr, identity)| {
                    let value = IdentityValue {
                        identity: *identity,
                    };
                    (addr_word(*addr), value)
                })
                .collect(),
            subjects: tables
                .subjects
                .iter()
                .map(|(addr, subject)| (addr_word(*addr), *subject))
                .collect(),
            allow: tables
                .allow
                .iter()
                .map(|(key, rule)| (allow_raw(key), *rule))
                .collect(),
            cidr: tables
                .cidr
                .iter()
                .map(|(key, allow)| (cidr_raw(key), *allow))
                .collect(),
        }
    }
}

fn sync(maps: PolicyMaps<'_>, tables: &PolicyTables) -> Result<PolicySyncReport, DataplaneError> {
    let PolicyMaps {
        ipcache: ipcache_map,
        subjects: subject_map,
        allow: allow_map,
        cidr: cidr_map,
    } = maps;
    let want = Wanted::of(tables);
    let subjects = subject_steps(&want.subjects, &read_hash(subject_map, POLICY_SUBJECT_MAP)?);
    let allow = Plan::new(
        &want.allow,
        &read_trie::<PolicyKey, _>(allow_map, POLICY_MAP)?,
    );
    let cidr = Plan::new(
        &want.cidr,
        &read_trie::<PolicyCidrKey, _>(cidr_map, POLICY_CIDR_MAP)?,
    );
    let ipcache = Plan::new(&want.ipcache, &read_hash(ipcache_map, IPCACHE_MAP)?);
    let report = PolicySyncReport {
        ipcache: MapSync {
            written: ipcache.upserts.len(),
            removed: ipcache.removals.len(),
            entries: want.ipcache.len(),
        },
        subjects: MapSync {
            written: subjects.relax.upserts.len() + subjects.tighten.len(),
            removed: subjects.relax.removals.len(),
            entries: want.subjects.len(),
        },
        allow: MapSync {
            written: allow.upserts.len(),
            removed: allow.removals.len(),
            entries: want.allow.len(),
        },
        cidr: MapSync {
            written: cidr.upserts.len(),
            removed: cidr.removals.len(),
            entries: want.cidr.len(),
        },
    };
    let (subject_target, ipcache_target) = (
        (POLICY_SUBJECT_MAP, ENDPOINT_MAP_DEFAULT_CAPACITY),
        (IPCACHE_MAP, IPCACHE_MAP_DEFAULT_CAPACITY),
    );
    write_hash(subject_map, subject_target, &subjects.relax.upserts)?;
    remove_hash::<PolicySubject>(subject_map, POLICY_SUBJECT_MAP, &subjects.relax.removals)?;
    let allow_target = (POLICY_MAP, POLICY_MAP_DEFAULT_CAPACITY);
    write_trie::<PolicyKey, _>(allow_map, allow_target, &allow.upserts)?;
    let cidr_target = (POLICY_CIDR_MAP, POLICY_CIDR_MAP_DEFAULT_CAPACITY);
    write_trie::<PolicyCidrKey, _>(cidr_map, cidr_target, &cidr.upserts)?;
    write_hash(ipcache_map, ipcache_target, &ipcache.upserts)?;
    write_hash(subject_map, subject_target, &subjects.tighten)?;
    remove_trie::<PolicyKey, PolicyRule>(allow_map, POLICY_MAP, &allow.removals)?;
    remove_trie::<PolicyCidrKey, PolicyCidrAllow>(cidr_map, POLICY_CIDR_MAP, &cidr.removals)?;
    remove_hash::<IdentityValue>(ipcache_map, IPCACHE_MAP, &ipcache.removals)?;
    Ok(report)
}

#[cfg(test)]
mod tests;
