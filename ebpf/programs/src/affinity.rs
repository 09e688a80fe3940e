//! `sessionAffinity: ClientIP`, shared by the socket hooks (client = network namespace) and the
//! per-packet path (client = source address): a client keeps the backend it was last given while it
//! comes back within the frontend's timeout and that backend is still in its slot.

use strait_abi::{
    BackendAddr, BackendSlotKey, ServiceFrontend,
    service::{AffinityKey, AffinityValue, SVC_F_AFFINITY},
};

use crate::maps::{AFFINITY_V1, SVC_SLOT_V1};

/// The client's affine backend if it is still valid, renewing it.
#[inline(always)]
pub fn recall(key: &AffinityKey, frontend: &ServiceFrontend, now: u64) -> Option<BackendAddr> {
    // SAFETY: the value is copied out at once.
    let previous = unsafe { AFFINITY_V1.get(key) }.copied()?;
    let timeout_ns = u64::from(frontend.affinity_timeout_s) * 1_000_000_000;
    if now.saturating_sub(previous.last_used_ns) > timeout_ns
        || previous.slot >= frontend.backend_count
    {
        return None;
    }
    let slot_key = BackendSlotKey {
        service_id: frontend.service_id,
        slot: previous.slot,
    };
    // SAFETY: the value is copied out at once.
    let current = unsafe { SVC_SLOT_V1.get(slot_key) }.copied();
    if current != Some(previous.backend) {
        return None;
    }
    let renewed = AffinityValue {
        last_used_ns: now,
        ..previous
    };
    let _ = AFFINITY_V1.insert(key, renewed, 0);
    Some(previous.backend)
}

/// Records that the client was given `backend` from `slot`.
#[inline(always)]
pub fn remember(key: &AffinityKey, slot: u32, backend: BackendAddr, now: u64) {
    let value = AffinityValue {
        last_used_ns: now,
        slot,
        pad: 0,
        backend,
    };
    // An LRU map makes room by itself; a failed insert only loses the stickiness of this client.
    let _ = AFFINITY_V1.insert(key, value, 0);
}

/// The backend for a new connection of client `key`: with affinity, its affine one while still valid;
/// else the one in the slot `slot` picks (remembered for next time when the frontend has affinity).
#[inline(always)]
pub fn choose(
    key: &AffinityKey,
    frontend: &ServiceFrontend,
    now: u64,
    slot: impl FnOnce() -> Option<u32>,
) -> Option<BackendAddr> {
    let affinity = frontend.flags & SVC_F_AFFINITY != 0;
    if affinity && let Some(backend) = recall(key, frontend, now) {
        return Some(backend);
    }
    let slot = slot()? % frontend.backend_count;
    let slot_key = BackendSlotKey {
        service_id: frontend.service_id,
        slot,
    };
    // SAFETY: the value is copied out at once.
    let backend = unsafe { SVC_SLOT_V1.get(slot_key) }.copied()?;
    if affinity {
        remember(key, slot, backend, now);
    }
    Some(backend)
}
