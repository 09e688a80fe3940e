//! Programming service entries into SVC_V1 / SVC_SLOT_V1 (and, for external frontends, MAGLEV_V1 and
//! SOURCE_RANGE_V1) by difference. The table of what is in the
//! kernel is read back from the maps when the agent starts, so a restarted agent rewrites nothing that is
//! already right. Slots are written before the backend count grows and removed after it shrinks, so a
//! connection never picks an empty slot.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
};

use aya::maps::{HashMap, MapData, MapError, lpm_trie::Key, lpm_trie::LpmTrie};
use strait_abi::{
    BackendAddr, BackendSlotKey, ServiceFrontend, ServiceFrontendKey,
    maps::{
        MAGLEV_MAP, MAGLEV_MAP_DEFAULT_CAPACITY, SOURCE_RANGE_MAP,
        SOURCE_RANGE_MAP_DEFAULT_CAPACITY, SVC_MAP, SVC_SLOT_MAP,
    },
    service::{
        MAGLEV_TABLE_SIZE, MaglevTable, SVC_F_AFFINITY, SVC_F_ENDPOINTS_ELSEWHERE, SVC_F_EXTERNAL,
        SVC_F_LOCAL, SVC_F_SOURCE_RANGES, SourceRange,
    },
};

use crate::{
    Dataplane, DataplaneError, maglev,
    services::{Backend, ExternalAccess, L4Proto, Prefix, ServiceEntry, ServiceKey},
};

/// What one sync changed, and the frontends it could not write.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
    /// Frontends that could not be written or removed, with why. Every other frontend was; a failed new
    /// frontend leaves nothing behind (its slots, Maglev table and ranges are freed, its id reused), a
    /// failed update or removal stays as the table says the kernel holds it, for the caller to retry.
    pub failed: Vec<(ServiceKey, DataplaneError)>,
}

/// The service entries in the kernel, with their slot-range ids.
#[derive(Debug, Default)]
pub struct ServiceTable {
    entries: BTreeMap<ServiceKey, (u32, ServiceEntry)>,
    /// Next never-used slot-range id.
    next_id: u32,
    /// Ids given back by failed new frontends, used again first.
    free_ids: Vec<u32>,
}

fn frontend_key(key: ServiceKey) -> ServiceFrontendKey {
    ServiceFrontendKey {
        vip: u32::from_ne_bytes(key.vip.octets()),
        port: key.port.to_be(),
        proto: key.proto.number(),
        pad: 0,
    }
}

fn map_error(name: &'static str, capacity: u32) -> impl Fn(MapError) -> DataplaneError {
    move |source| DataplaneError::map(name, capacity, source)
}

impl Dataplane {
    fn svc_map(
        &mut self,
    ) -> Result<HashMap<&mut MapData, ServiceFrontendKey, ServiceFrontend>, DataplaneError> {
        self.typed_map(SVC_MAP)
    }

    fn slot_map(
        &mut self,
    ) -> Result<HashMap<&mut MapData, BackendSlotKey, BackendAddr>, DataplaneError> {
        self.typed_map(SVC_SLOT_MAP)
    }

    fn maglev_map(&mut self) -> Result<HashMap<&mut MapData, u32, MaglevTable>, DataplaneError> {
        self.typed_map(MAGLEV_MAP)
    }

    fn source_range_map(
        &mut self,
    ) -> Result<LpmTrie<&mut MapData, SourceRange, u32>, DataplaneError> {
        self.typed_map(SOURCE_RANGE_MAP)
    }

    /// The source prefixes in SOURCE_RANGE_V1, by service id.
    fn read_source_ranges(&mut self) -> Result<BTreeMap<u32, Vec<Prefix>>, DataplaneError> {
        let trie = self.source_range_map()?;
        let mut out: BTreeMap<u32, Vec<Prefix>> = BTreeMap::new();
        for key in trie.keys() {
            let key = key.map_err(map_error(
                SOURCE_RANGE_MAP,
                SOURCE_RANGE_MAP_DEFAULT_CAPACITY,
            ))?;
            let data = key.data();
            out.entry(u32::from_be(data.service_id_be))
                .or_default()
                .push(Prefix {
                    addr: Ipv4Addr::from(data.addr.to_ne_bytes()),
                    len: u8::try_from(key.prefix_len().saturating_sub(32)).unwrap_or(32),
                });
        }
        for prefixes in out.values_mut() {
            prefixes.sort();
        }
        Ok(out)
    }

    /// Reads the service entries already in the kernel (after a restart: what the previous agent wrote).
    pub fn read_services(&mut self) -> Result<ServiceTable, DataplaneError> {
        let mut ranges = self.read_source_ranges()?;
        let (svc_cap, slot_cap) = (self.service_capacity, self.backend_capacity);
        let mut frontends = Vec::new();
        for entry in &self.svc_map()? {
            frontends.push(entry.map_err(map_error(SVC_MAP, svc_cap))?);
        }
        let slots = self.slot_map()?;
        let mut table = ServiceTable::default();
        for (key, frontend) in frontends {
            let proto = match key.proto {
                6 => L4Proto::Tcp,
                17 => L4Proto::Udp,
                _ => continue,
            };
            let mut backends = Vec::new();
            for slot in 0..frontend.backend_count {
                let addr = slots
                    .get(
                        &BackendSlotKey {
                            service_id: frontend.service_id,
                            slot,
                        },
                        0,
                    )
                    .map_err(map_error(SVC_SLOT_MAP, slot_cap))?;
                backends.push(Backend {
                    addr: Ipv4Addr::from(addr.addr.to_ne_bytes()),
                    port: u16::from_be(addr.port),
                });
            }
            let service_key = ServiceKey {
                vip: Ipv4Addr::from(key.vip.to_ne_bytes()),
                port: u16::from_be(key.port),
                proto,
            };
            let entry = ServiceEntry {
                key: service_key,
                backends,
                affinity_timeout_s: (frontend.flags & SVC_F_AFFINITY != 0)
                    .then_some(frontend.affinity_timeout_s),
                external: (frontend.flags & SVC_F_EXTERNAL != 0).then(|| ExternalAccess {
                    local: frontend.flags & SVC_F_LOCAL != 0,
                    source_ranges: ranges.remove(&frontend.service_id).unwrap_or_default(),
                }),
                endpoints_elsewhere: frontend.flags & SVC_F_ENDPOINTS_ELSEWHERE != 0,
            };
            table.next_id = table.next_id.max(frontend.service_id + 1);
            table
                .entries
                .insert(service_key, (frontend.service_id, entry));
        }
        table.next_id = table.next_id.max(1);
        Ok(table)
    }

    /// Makes the kernel's service entries equal `desired`, touching only what differs.
    pub fn sync_services(
        &mut self,
        table: &mut ServiceTable,
        desired: &[ServiceEntry],
    ) -> Result<SyncReport, DataplaneError> {
        let wanted: BTreeSet<ServiceKey> = desired.iter().map(|e| e.key).collect();
        let stale: Vec<ServiceKey> = table
            .entries
            .keys()
            .filter(|k| !wanted.contains(k))
            .copied()
            .collect();
        self.apply_services(table, desired, &stale)
    }

    /// Writes `upserts` (each skipped when the kernel already holds it) and removes the frontends in
    /// `removals` (absent ones are skipped): the incremental form of [`sync_services`](Self::sync_services).
    pub fn apply_services(
        &mut self,
        table: &mut ServiceTable,
        upserts: &[ServiceEntry],
        removals: &[ServiceKey],
    ) -> Result<SyncReport, DataplaneError> {
        let mut report = SyncReport::default();
        // Removals first: they make room in full maps for the new frontends.
        for key in removals {
            let Some((id, entry)) = table.entries.get(key).cloned() else {
                continue;
            };
            match self.remove_service(id, &entry) {
                Ok(()) => {
                    table.entries.remove(key);
                    report.removed += 1;
                }
                Err(error) => report.failed.push((*key, error)),
            }
        }
        for entry in upserts {
            match table.entries.get(&entry.key) {
                Some((_, current)) if current == entry => report.unchanged += 1,
                Some((id, old)) => {
                    let (id, old) = (*id, old.clone());
                    match self.write_service(id, entry, Some(&old)) {
                        Ok(()) => {
                            table.entries.insert(entry.key, (id, entry.clone()));
                            report.updated += 1;
                        }
                        Err(error) => report.failed.push((entry.key, error)),
                    }
                }
                None => {
                    let id = table.take_id();
                    match self.write_service(id, entry, None) {
                        Ok(()) => {
                            table.entries.insert(entry.key, (id, entry.clone()));
                            report.added += 1;
                        }
                        Err(error) => {
                            // Best effort: the write's own error is the one to report.
                            let _ = self.free_service(id, entry);
                            table.free_ids.push(id);
                            report.failed.push((entry.key, error));
                        }
                    }
                }
            }
        }
        Ok(report)
    }

    /// Removes frontend `entry` (id `id`), then what it holds.
    fn remove_service(&mut self, id: u32, entry: &ServiceEntry) -> Result<(), DataplaneError> {
        let svc_cap = self.service_capacity;
        self.svc_map()?
            .remove(&frontend_key(entry.key))
            .map_err(map_error(SVC_MAP, svc_cap))?;
        self.free_service(id, entry)
    }

    /// Removes what frontend `entry` under id `id` holds besides the frontend itself: its Maglev table,
    /// source ranges and slots. Also what a failed write of a new frontend left (the frontend is
    /// written last, so a failed write never left it); slots that are not there are skipped.
    fn free_service(&mut self, id: u32, entry: &ServiceEntry) -> Result<(), DataplaneError> {
        self.write_external(id, &entry.backends, None, Some(entry))?;
        let mut slots = self.slot_map()?;
        for slot in 0..entry.backends.len() as u32 {
            let _ = slots.remove(&BackendSlotKey {
                service_id: id,
                slot,
            });
        }
        Ok(())
    }

    /// The backend slots in SVC_SLOT_V1 (for tests and inspection: every slot belongs to a frontend).
    pub fn service_slot_count(&mut self) -> Result<usize, DataplaneError> {
        let slot_cap = self.backend_capacity;
        let slots = self.slot_map()?;
        let mut count = 0;
        for key in slots.keys() {
            key.map_err(map_error(SVC_SLOT_MAP, slot_cap))?;
            count += 1;
        }
        Ok(count)
    }

    /// Writes (or, with `external` unset, removes) the Maglev table and source ranges of frontend `id`;
    /// `old` is what the kernel held before.
    fn write_external(
        &mut self,
        id: u32,
        backends: &[Backend],
        external: Option<&ExternalAccess>,
        old: Option<&ServiceEntry>,
    ) -> Result<(), DataplaneError> {
        let old_ranges = old
            .and_then(|o| o.external.as_ref())
            .map_or(&[][..], |e| e.source_ranges.as_slice());
        let new_ranges = external.map_or(&[][..], |e| e.source_ranges.as_slice());
        // Only frontends reached from outside the cluster balance by Maglev: a ClusterIP's table
        // would cost its computation (most of a first sync's CPU at 10,000 Services) for nothing.
        let table = if external.is_some() {
            maglev::table(backends)
        } else {
            Vec::new()
        };
        if !table.is_empty() {
            let mut slots = [0u32; MAGLEV_TABLE_SIZE];
            slots.copy_from_slice(&table);
            self.maglev_map()?
                .insert(id, MaglevTable { slots }, 0)
                .map_err(map_error(MAGLEV_MAP, MAGLEV_MAP_DEFAULT_CAPACITY))?;
        } else if old.is_some_and(|o| o.external.is_some()) {
            let _ = self.maglev_map()?.remove(&id);
        }
        let mut trie = self.source_range_map()?;
        for prefix in new_ranges.iter().filter(|p| !old_ranges.contains(p)) {
            trie.insert(&range_key(id, *prefix), 1, 0)
                .map_err(map_error(
                    SOURCE_RANGE_MAP,
                    SOURCE_RANGE_MAP_DEFAULT_CAPACITY,
                ))?;
        }
        for prefix in old_ranges.iter().filter(|p| !new_ranges.contains(p)) {
            let _ = trie.remove(&range_key(id, *prefix));
        }
        Ok(())
    }

    fn write_service(
        &mut self,
        id: u32,
        entry: &ServiceEntry,
        old: Option<&ServiceEntry>,
    ) -> Result<(), DataplaneError> {
        let old_count = old.map_or(0, |o| o.backends.len());
        // Tables and ranges before the frontend: a new external frontend is never seen without them.
        self.write_external(id, &entry.backends, entry.external.as_ref(), old)?;
        let (svc_cap, slot_cap) = (self.service_capacity, self.backend_capacity);
        {
            let mut slots = self.slot_map()?;
            for (slot, backend) in entry.backends.iter().enumerate() {
                let value = BackendAddr {
                    addr: u32::from_ne_bytes(backend.addr.octets()),
                    port: backend.port.to_be(),
                    pad: 0,
                };
                slots
                    .insert(
                        BackendSlotKey {
                            service_id: id,
                            slot: slot as u32,
                        },
                        value,
                        0,
                    )
                    .map_err(map_error(SVC_SLOT_MAP, slot_cap))?;
            }
        }
        let frontend = ServiceFrontend {
            service_id: id,
            backend_count: entry.backends.len() as u32,
            flags: frontend_flags(entry),
            affinity_timeout_s: entry.affinity_timeout_s.unwrap_or(0),
        };
        self.svc_map()?
            .insert(frontend_key(entry.key), frontend, 0)
            .map_err(map_error(SVC_MAP, svc_cap))?;
        let mut slots = self.slot_map()?;
        for slot in entry.backends.len()..old_count {
            let _ = slots.remove(&BackendSlotKey {
                service_id: id,
                slot: slot as u32,
            });
        }
        Ok(())
    }
}

/// The SVC_F_* flags of an entry.
fn frontend_flags(entry: &ServiceEntry) -> u32 {
    let mut flags = 0;
    if entry.affinity_timeout_s.is_some() {
        flags |= SVC_F_AFFINITY;
    }
    if entry.endpoints_elsewhere {
        flags |= SVC_F_ENDPOINTS_ELSEWHERE;
    }
    if let Some(external) = &entry.external {
        flags |= SVC_F_EXTERNAL;
        if external.local {
            flags |= SVC_F_LOCAL;
        }
        if !external.source_ranges.is_empty() {
            flags |= SVC_F_SOURCE_RANGES;
        }
    }
    flags
}

/// The SOURCE_RANGE_V1 key of `prefix` for frontend `id`.
fn range_key(id: u32, prefix: Prefix) -> Key<SourceRange> {
    Key::new(
        32 + u32::from(prefix.len.min(32)),
        SourceRange {
            service_id_be: id.to_be(),
            addr: u32::from_ne_bytes(prefix.addr.octets()),
        },
    )
}

impl ServiceTable {
    /// Number of frontends.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no frontends.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry the kernel holds for `key`.
    pub fn get(&self, key: &ServiceKey) -> Option<&ServiceEntry> {
        self.entries.get(key).map(|(_, entry)| entry)
    }

    /// Every entry the kernel holds, sorted by key.
    pub fn entries(&self) -> impl Iterator<Item = &ServiceEntry> {
        self.entries.values().map(|(_, entry)| entry)
    }

    fn take_id(&mut self) -> u32 {
        if let Some(id) = self.free_ids.pop() {
            return id;
        }
        let id = self.next_id.max(1);
        self.next_id = id + 1;
        id
    }
}
