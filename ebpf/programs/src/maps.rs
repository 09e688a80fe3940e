//! Every map of the object, declared once. Names and layouts come from `strait-abi`; the loader pins them.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray},
};
use strait_abi::{
    EndpointInfo, EndpointKey, StatsValue, maps::ENDPOINT_MAP_DEFAULT_CAPACITY,
    stats::STATS_ENTRIES,
};

/// Pod endpoints on this node (see `strait_abi::endpoint`).
#[map(name = "ENDPOINT_V1")]
pub static ENDPOINT_V1: HashMap<EndpointKey, EndpointInfo> =
    HashMap::with_max_entries(ENDPOINT_MAP_DEFAULT_CAPACITY, 0);

/// Per-CPU counters (see `strait_abi::stats`).
#[map(name = "STATS_V1")]
pub static STATS_V1: PerCpuArray<StatsValue> = PerCpuArray::with_max_entries(STATS_ENTRIES, 0);
