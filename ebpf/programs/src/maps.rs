//! Every map of the object, declared once. Names and layouts come from `strait-abi`; the loader pins them.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray},
};
use strait_abi::{
    BackendAddr, BackendSlotKey, EndpointInfo, EndpointKey, ServiceFrontend, ServiceFrontendKey,
    SockRevNatKey, SockRevNatValue, StatsValue,
    maps::{
        AFFINITY_MAP_DEFAULT_CAPACITY, ENDPOINT_MAP_DEFAULT_CAPACITY,
        SOCK_REVNAT_MAP_DEFAULT_CAPACITY, SVC_MAP_DEFAULT_CAPACITY, SVC_SLOT_MAP_DEFAULT_CAPACITY,
    },
    service::{AffinityKey, AffinityValue},
    stats::STATS_ENTRIES,
};

/// Pod endpoints on this node (see `strait_abi::endpoint`).
#[map(name = "ENDPOINT_V1")]
pub static ENDPOINT_V1: HashMap<EndpointKey, EndpointInfo> =
    HashMap::with_max_entries(ENDPOINT_MAP_DEFAULT_CAPACITY, 0);

/// Per-CPU counters (see `strait_abi::stats`).
#[map(name = "STATS_V1")]
pub static STATS_V1: PerCpuArray<StatsValue> = PerCpuArray::with_max_entries(STATS_ENTRIES, 0);

/// Service frontends (see `strait_abi::service`).
#[map(name = "SVC_V1")]
pub static SVC_V1: HashMap<ServiceFrontendKey, ServiceFrontend> =
    HashMap::with_max_entries(SVC_MAP_DEFAULT_CAPACITY, 0);

/// Backend slots (see `strait_abi::service`).
#[map(name = "SVC_SLOT_V1")]
pub static SVC_SLOT_V1: HashMap<BackendSlotKey, BackendAddr> =
    HashMap::with_max_entries(SVC_SLOT_MAP_DEFAULT_CAPACITY, 0);

/// Socket-level reverse translation (see `strait_abi::service`).
#[map(name = "SOCK_REVNAT_V1")]
pub static SOCK_REVNAT_V1: LruHashMap<SockRevNatKey, SockRevNatValue> =
    LruHashMap::with_max_entries(SOCK_REVNAT_MAP_DEFAULT_CAPACITY, 0);

/// Session affinity per (client netns, frontend) (see `strait_abi::service`).
#[map(name = "AFFINITY_V1")]
pub static AFFINITY_V1: LruHashMap<AffinityKey, AffinityValue> =
    LruHashMap::with_max_entries(AFFINITY_MAP_DEFAULT_CAPACITY, 0);
