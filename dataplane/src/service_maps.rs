//! Programming service entries into SVC_V1 / SVC_SLOT_V1 by difference. The table of what is in the
//! kernel is read back from the maps when the agent starts, so a restarted agent rewrites nothing that is
//! already right. Slots are written before the backend count grows and removed after it shrinks, so a
//! connection never picks an empty slot.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
};

use aya::maps::{HashMap, MapData, MapError};
use strait_abi::{
    BackendAddr, BackendSlotKey, ServiceFrontend, ServiceFrontendKey,
    maps::{SVC_MAP, SVC_SLOT_MAP},
    service::SVC_F_AFFINITY,
};

use crate::{
    Dataplane, DataplaneError,
    services::{Backend, L4Proto, ServiceEntry, ServiceKey},
};

/// What one sync changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
}

/// The service entries in the kernel, with their slot-range ids.
#[derive(Debug, Default)]
pub struct ServiceTable {
    entries: BTreeMap<ServiceKey, (u32, ServiceEntry)>,
    /// Next unused slot-range id (ids are not reused; u32 is ample).
    next_id: u32,
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
        let map = self
            .ebpf
            .map_mut(SVC_MAP)
            .ok_or(DataplaneError::MapMissing { name: SVC_MAP })?;
        HashMap::try_from(map).map_err(|source| DataplaneError::Map {
            name: SVC_MAP,
            source,
        })
    }

    fn slot_map(
        &mut self,
    ) -> Result<HashMap<&mut MapData, BackendSlotKey, BackendAddr>, DataplaneError> {
        let map = self
            .ebpf
            .map_mut(SVC_SLOT_MAP)
            .ok_or(DataplaneError::MapMissing { name: SVC_SLOT_MAP })?;
        HashMap::try_from(map).map_err(|source| DataplaneError::Map {
            name: SVC_SLOT_MAP,
            source,
        })
    }

    /// Reads the service entries already in the kernel (after a restart: what the previous agent wrote).
    pub fn read_services(&mut self) -> Result<ServiceTable, DataplaneError> {
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
        let svc_cap = self.service_capacity;
        let mut report = SyncReport::default();
        let wanted: BTreeSet<ServiceKey> = desired.iter().map(|e| e.key).collect();
        for entry in desired {
            match table.entries.get(&entry.key) {
                Some((_, current)) if current == entry => report.unchanged += 1,
                Some((id, old)) => {
                    let (id, old_count) = (*id, old.backends.len());
                    self.write_service(id, entry, old_count)?;
                    table.entries.insert(entry.key, (id, entry.clone()));
                    report.updated += 1;
                }
                None => {
                    let id = table.take_id();
                    self.write_service(id, entry, 0)?;
                    table.entries.insert(entry.key, (id, entry.clone()));
                    report.added += 1;
                }
            }
        }
        let stale: Vec<ServiceKey> = table
            .entries
            .keys()
            .filter(|k| !wanted.contains(k))
            .copied()
            .collect();
        for key in stale {
            if let Some((id, entry)) = table.entries.remove(&key) {
                self.svc_map()?
                    .remove(&frontend_key(key))
                    .map_err(map_error(SVC_MAP, svc_cap))?;
                let mut slots = self.slot_map()?;
                for slot in 0..entry.backends.len() as u32 {
                    let _ = slots.remove(&BackendSlotKey {
                        service_id: id,
                        slot,
                    });
                }
                report.removed += 1;
            }
        }
        Ok(report)
    }

    fn write_service(
        &mut self,
        id: u32,
        entry: &ServiceEntry,
        old_count: usize,
    ) -> Result<(), DataplaneError> {
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
            flags: if entry.affinity_timeout_s.is_some() {
                SVC_F_AFFINITY
            } else {
                0
            },
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

impl ServiceTable {
    /// Number of frontends.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no frontends.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn take_id(&mut self) -> u32 {
        let id = self.next_id.max(1);
        self.next_id = id + 1;
        id
    }
}
