//! Every map of the object, declared once. Names and layouts come from `strait-abi`; the loader pins them.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use strait_abi::{
    BackendAddr, BackendSlotKey, CtEntry, CtKey, EndpointInfo, EndpointKey, NodeConfig,
    ServiceFrontend, ServiceFrontendKey, SockRevNatKey, SockRevNatValue, StatsValue,
    dns::{DnsARecords, DnsFastConfig, DnsNameKey},
    fragment::{FragKey, FragPorts},
    maps::{
        AFFINITY_MAP_DEFAULT_CAPACITY, CT_MAP_DEFAULT_CAPACITY, DNS_A_MAP_DEFAULT_CAPACITY,
        ENDPOINT_MAP_DEFAULT_CAPACITY, FRAG_MAP_DEFAULT_CAPACITY, IPCACHE_MAP_DEFAULT_CAPACITY,
        MAGLEV_MAP_DEFAULT_CAPACITY, POLICY_CIDR_MAP_DEFAULT_CAPACITY,
        POLICY_CT_MAP_DEFAULT_CAPACITY, POLICY_EVENTS_BYTES, POLICY_MAP_DEFAULT_CAPACITY,
        REMOTE_MAP_DEFAULT_CAPACITY, SOCK_REVNAT_MAP_DEFAULT_CAPACITY,
        SOURCE_RANGE_MAP_DEFAULT_CAPACITY, SVC_MAP_DEFAULT_CAPACITY, SVC_SLOT_MAP_DEFAULT_CAPACITY,
    },
    overlay::{OverlayConfig, RemoteNode, RemotePrefix},
    policy::{
        IdentityValue, PolicyAddr, PolicyCidrAllow, PolicyCidrKey, PolicyCtKey, PolicyCtValue,
        PolicyKey, PolicyRule, PolicySubject,
    },
    service::{AffinityKey, AffinityValue, MaglevTable, SourceRange},
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

/// Connection tracking for the per-packet service path (see `strait_abi::conntrack`).
#[map(name = "CT_V1")]
pub static CT_V1: LruHashMap<CtKey, CtEntry> =
    LruHashMap::with_max_entries(CT_MAP_DEFAULT_CAPACITY, 0);

/// Maglev tables of external frontends, allocated on use (see `strait_abi::service`).
#[map(name = "MAGLEV_V1")]
pub static MAGLEV_V1: HashMap<u32, MaglevTable> =
    HashMap::with_max_entries(MAGLEV_MAP_DEFAULT_CAPACITY, BPF_F_NO_PREALLOC);

/// `loadBalancerSourceRanges` per frontend (see `strait_abi::service`).
#[map(name = "SOURCE_RANGE_V1")]
pub static SOURCE_RANGE_V1: LpmTrie<SourceRange, u32> =
    LpmTrie::with_max_entries(SOURCE_RANGE_MAP_DEFAULT_CAPACITY, 0);

/// This node's facts (see `strait_abi::node`).
#[map(name = "NODE_V1")]
pub static NODE_V1: Array<NodeConfig> = Array::with_max_entries(1, 0);

/// Ports of fragmented datagrams of translated flows (see `strait_abi::fragment`).
#[map(name = "FRAG_V1")]
pub static FRAG_V1: LruHashMap<FragKey, FragPorts> =
    LruHashMap::with_max_entries(FRAG_MAP_DEFAULT_CAPACITY, 0);

/// Remote nodes by pod CIDR and address (see `strait_abi::overlay`).
#[map(name = "REMOTE_V1")]
pub static REMOTE_V1: LpmTrie<RemotePrefix, RemoteNode> =
    LpmTrie::with_max_entries(REMOTE_MAP_DEFAULT_CAPACITY, 0);

/// This node's end of the overlay (see `strait_abi::overlay`).
#[map(name = "OVERLAY_V1")]
pub static OVERLAY_V1: Array<OverlayConfig> = Array::with_max_entries(1, 0);

/// Pod addresses of the cluster → identity (see `strait_abi::policy`).
#[map(name = "IPCACHE_V1")]
pub static IPCACHE_V1: HashMap<PolicyAddr, IdentityValue> =
    HashMap::with_max_entries(IPCACHE_MAP_DEFAULT_CAPACITY, BPF_F_NO_PREALLOC);

/// Local pods' isolation (see `strait_abi::policy`).
#[map(name = "POLICY_SUBJECT_V1")]
pub static POLICY_SUBJECT_V1: HashMap<PolicyAddr, PolicySubject> =
    HashMap::with_max_entries(ENDPOINT_MAP_DEFAULT_CAPACITY, 0);

/// Allow entries by peer identity (see `strait_abi::policy`).
#[map(name = "POLICY_V1")]
pub static POLICY_V1: LpmTrie<PolicyKey, PolicyRule> =
    LpmTrie::with_max_entries(POLICY_MAP_DEFAULT_CAPACITY, 0);

/// Allow entries by peer address, `ipBlock` (see `strait_abi::policy`).
#[map(name = "POLICY_CIDR_V1")]
pub static POLICY_CIDR_V1: LpmTrie<PolicyCidrKey, PolicyCidrAllow> =
    LpmTrie::with_max_entries(POLICY_CIDR_MAP_DEFAULT_CAPACITY, 0);

/// Judged flows (see `strait_abi::policy`).
#[map(name = "POLICY_CT_V1")]
pub static POLICY_CT_V1: LruHashMap<PolicyCtKey, PolicyCtValue> =
    LruHashMap::with_max_entries(POLICY_CT_MAP_DEFAULT_CAPACITY, 0);

/// Judged fragmented datagrams (see `strait_abi::policy`).
#[map(name = "POLICY_FRAG_V1")]
pub static POLICY_FRAG_V1: LruHashMap<FragKey, PolicyCtValue> =
    LruHashMap::with_max_entries(FRAG_MAP_DEFAULT_CAPACITY, 0);

/// Verdicts for user space (see `strait_abi::policy`).
#[map(name = "POLICY_EVENTS_V1")]
pub static POLICY_EVENTS_V1: RingBuf = RingBuf::with_byte_size(POLICY_EVENTS_BYTES, 0);

/// Verdicts POLICY_EVENTS_V1 had no room for, per CPU.
#[map(name = "POLICY_EVENTS_LOST_V1")]
pub static POLICY_EVENTS_LOST_V1: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The kernel DNS fast path's hot A records (see `strait_abi::dns`).
#[map(name = "DNS_A_V1")]
pub static DNS_A_V1: HashMap<DnsNameKey, DnsARecords> =
    HashMap::with_max_entries(DNS_A_MAP_DEFAULT_CAPACITY, 0);

/// The DNS fast path's settings (see `strait_abi::dns`).
#[map(name = "DNS_FAST_V1")]
pub static DNS_FAST_V1: Array<DnsFastConfig> = Array::with_max_entries(1, 0);
