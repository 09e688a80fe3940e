//! Per-packet backend selection: the frontend of a destination, `loadBalancerSourceRanges`, the backend
//! (the client's affine one; else Maglev for external frontends, so every node maps a flow to the same
//! backend; random otherwise) and a free SNAT port.

use aya_ebpf::{helpers::bpf_get_prandom_u32, maps::lpm_trie::Key};
use strait_abi::{
    BackendAddr, CtEntry, ServiceFrontend, ServiceFrontendKey,
    conntrack::{CT_DIR_REPLY, SNAT_PORT_COUNT, SNAT_PORT_MIN},
    service::{
        AFFINITY_CLIENT_IP_TAG, AffinityKey, MAGLEV_TABLE_SIZE, SVC_F_EXTERNAL,
        SVC_F_SOURCE_RANGES, SourceRange, flow_hash,
    },
};

use crate::{
    affinity, conntrack,
    maps::{MAGLEV_V1, SOURCE_RANGE_V1, SVC_V1},
    nat::Tuple,
};

/// How many random SNAT ports are tried before the flow is dropped.
const SNAT_TRIES: u32 = 16;

/// The frontend serving `addr:port/proto`, if any.
#[inline(always)]
pub fn frontend(addr: u32, port: u16, proto: u8) -> Option<ServiceFrontend> {
    let key = ServiceFrontendKey {
        vip: addr,
        port,
        proto,
        pad: 0,
    };
    // SAFETY: the value is copied out at once.
    unsafe { SVC_V1.get(key) }.copied()
}

/// Whether `source` may use `frontend` (always, unless it has source ranges).
#[inline(always)]
pub fn source_allowed(frontend: &ServiceFrontend, source: u32) -> bool {
    if frontend.flags & SVC_F_SOURCE_RANGES == 0 {
        return true;
    }
    let key = Key::new(
        64,
        SourceRange {
            service_id_be: frontend.service_id.to_be(),
            addr: source,
        },
    );
    SOURCE_RANGE_V1.get(&key).is_some()
}

/// The backend for a new flow of `frontend`: the client's affine one (`sessionAffinity: ClientIP`,
/// keyed by its address), else by Maglev (external frontends) or at random.
#[inline(always)]
pub fn pick(frontend: &ServiceFrontend, tuple: &Tuple, proto: u8, now: u64) -> Option<BackendAddr> {
    let key = AffinityKey {
        netns_cookie: AFFINITY_CLIENT_IP_TAG | u64::from(tuple.saddr),
        service_id: frontend.service_id,
        pad: 0,
    };
    affinity::choose(&key, frontend, now, || {
        if frontend.flags & SVC_F_EXTERNAL != 0 {
            maglev_slot(frontend, tuple, proto)
        } else {
            // SAFETY: helper without arguments.
            Some(unsafe { bpf_get_prandom_u32() })
        }
    })
}

/// The slot the frontend's Maglev table gives the flow (random while the table is missing).
#[inline(always)]
fn maglev_slot(frontend: &ServiceFrontend, tuple: &Tuple, proto: u8) -> Option<u32> {
    let hash = flow_hash(tuple.saddr, tuple.daddr, tuple.sport, tuple.dport, proto);
    let bucket = (hash as usize) % MAGLEV_TABLE_SIZE;
    // The compiler turns `%` into a multiplication the verifier cannot bound: reload the index so the
    // bounds check below is kept and seen.
    // SAFETY: reading a local.
    let bucket = unsafe { core::ptr::read_volatile(&raw const bucket) };
    if bucket >= MAGLEV_TABLE_SIZE {
        return None;
    }
    // SAFETY: the table is read in place; the index was checked against its length.
    match unsafe { MAGLEV_V1.get(frontend.service_id) } {
        Some(table) => table.slots.get(bucket).copied(),
        // SAFETY: helper without arguments.
        None => Some(unsafe { bpf_get_prandom_u32() }),
    }
}

/// A source port (network byte order) for `snat_addr` towards `backend` that no live flow holds (a port
/// of a flow closed from both sides and quiet for a moment is taken over, see [`conntrack::claim_snat`]),
/// reserved by writing the flow's `reply` entry under it only if no entry exists: two CPUs opening flows
/// at once can never be given the same port.
#[inline(always)]
pub fn snat_port(
    backend: &BackendAddr,
    snat_addr: u32,
    proto: u8,
    now: u64,
    reply: &CtEntry,
) -> Option<u16> {
    // SAFETY: helper without arguments.
    let start = unsafe { bpf_get_prandom_u32() };
    for attempt in 0..SNAT_TRIES {
        let offset = (start.wrapping_add(attempt.wrapping_mul(2_654_435_761))
            % u32::from(SNAT_PORT_COUNT)) as u16;
        let port = (SNAT_PORT_MIN + offset).to_be();
        let tuple = Tuple {
            saddr: backend.addr,
            daddr: snat_addr,
            sport: backend.port,
            dport: port,
        };
        let key = conntrack::key(&tuple, proto, CT_DIR_REPLY);
        if conntrack::claim_snat(&key, now) && conntrack::reserve(&key, reply) {
            return Some(port);
        }
    }
    None
}
