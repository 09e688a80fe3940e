//! Map names and default capacities. Names carry a layout version (`_V<n>`) that is bumped whenever a key or
//! value layout changes, because a pinned map is reused by name without any layout check.

/// Pod endpoints on this node: [`crate::EndpointKey`] -> [`crate::EndpointInfo`].
pub const ENDPOINT_MAP: &str = "ENDPOINT_V1";
/// Per-CPU packet/byte counters indexed by [`crate::stats_index`].
pub const STATS_MAP: &str = "STATS_V1";

/// Service frontends: [`crate::ServiceFrontendKey`] -> [`crate::ServiceFrontend`].
pub const SVC_MAP: &str = "SVC_V1";
/// Backend slots: [`crate::BackendSlotKey`] -> [`crate::BackendAddr`].
pub const SVC_SLOT_MAP: &str = "SVC_SLOT_V1";
/// Socket-level reverse translation (LRU): [`crate::SockRevNatKey`] -> [`crate::SockRevNatValue`].
pub const SOCK_REVNAT_MAP: &str = "SOCK_REVNAT_V1";

/// Session affinity (LRU): [`crate::service::AffinityKey`] -> [`crate::service::AffinityValue`].
pub const AFFINITY_MAP: &str = "AFFINITY_V1";
/// Default number of remembered client affinities (LRU).
pub const AFFINITY_MAP_DEFAULT_CAPACITY: u32 = 65_536;

/// Default number of service frontends.
pub const SVC_MAP_DEFAULT_CAPACITY: u32 = 65_536;
/// Default number of backend slots over all frontends.
pub const SVC_SLOT_MAP_DEFAULT_CAPACITY: u32 = 262_144;
/// Default number of remembered socket translations (LRU: the oldest are evicted).
pub const SOCK_REVNAT_MAP_DEFAULT_CAPACITY: u32 = 262_144;

/// Default number of endpoints a node can hold (overridable at load time).
pub const ENDPOINT_MAP_DEFAULT_CAPACITY: u32 = 16_384;

/// Connection tracking for the per-packet service path (LRU): [`crate::CtKey`] -> [`crate::CtEntry`].
pub const CT_MAP: &str = "CT_V1";
/// Default number of tracked flow directions (two per flow).
pub const CT_MAP_DEFAULT_CAPACITY: u32 = 262_144;

/// Maglev tables of external frontends: service id -> [`crate::service::MaglevTable`].
pub const MAGLEV_MAP: &str = "MAGLEV_V1";
/// Default number of external frontends with a Maglev table (allocated on use, 4 KiB each).
pub const MAGLEV_MAP_DEFAULT_CAPACITY: u32 = 16_384;

/// `loadBalancerSourceRanges` (LPM trie): (service id, prefix) -> 1.
pub const SOURCE_RANGE_MAP: &str = "SOURCE_RANGE_V1";
/// Default number of allowed source prefixes over all frontends.
pub const SOURCE_RANGE_MAP_DEFAULT_CAPACITY: u32 = 16_384;

/// Ports of fragmented datagrams of translated flows (LRU): [`crate::fragment::FragKey`] ->
/// [`crate::fragment::FragPorts`].
pub const FRAG_MAP: &str = "FRAG_V1";
/// Default number of fragmented datagrams remembered at once (LRU).
pub const FRAG_MAP_DEFAULT_CAPACITY: u32 = 8_192;

/// Remote nodes by pod CIDR and address (LPM trie): [`crate::overlay::RemotePrefix`] ->
/// [`crate::overlay::RemoteNode`].
pub const REMOTE_MAP: &str = "REMOTE_V1";
/// Default number of remote prefixes (two per node: its pod CIDR and its address).
pub const REMOTE_MAP_DEFAULT_CAPACITY: u32 = 16_384;
/// This node's end of the overlay (one-entry array): [`crate::overlay::OverlayConfig`].
pub const OVERLAY_MAP: &str = "OVERLAY_V1";

/// This node's facts (one-entry array): [`crate::NodeConfig`].
pub const NODE_MAP: &str = "NODE_V1";

/// Pod addresses of the cluster → identity: [`crate::policy::PolicyAddr`] ->
/// [`crate::policy::IdentityValue`].
pub const IPCACHE_MAP: &str = "IPCACHE_V1";
/// Default number of pod addresses known (the whole cluster's pods).
pub const IPCACHE_MAP_DEFAULT_CAPACITY: u32 = 131_072;
/// Local pods' isolation: [`crate::policy::PolicyAddr`] -> [`crate::policy::PolicySubject`].
pub const POLICY_SUBJECT_MAP: &str = "POLICY_SUBJECT_V1";
/// Allow entries by peer identity (LPM trie): [`crate::policy::PolicyKey`] ->
/// [`crate::policy::PolicyRule`].
pub const POLICY_MAP: &str = "POLICY_V1";
/// Default number of allow entries over all local pods.
pub const POLICY_MAP_DEFAULT_CAPACITY: u32 = 262_144;
/// Allow entries by peer address (LPM trie, `ipBlock`): [`crate::policy::PolicyCidrKey`] ->
/// [`crate::policy::PolicyCidrAllow`].
pub const POLICY_CIDR_MAP: &str = "POLICY_CIDR_V1";
/// Default number of `ipBlock` prefixes over all local pods.
pub const POLICY_CIDR_MAP_DEFAULT_CAPACITY: u32 = 65_536;
/// Judged flows (LRU): [`crate::policy::PolicyCtKey`] -> [`crate::policy::PolicyCtValue`].
pub const POLICY_CT_MAP: &str = "POLICY_CT_V1";
/// Default number of judged flows remembered (LRU: the oldest are evicted, and judged again).
pub const POLICY_CT_MAP_DEFAULT_CAPACITY: u32 = 262_144;
/// Judged fragmented datagrams (LRU): [`crate::fragment::FragKey`] ->
/// [`crate::policy::PolicyCtValue`]; a later fragment carries no ports, so it follows its first.
pub const POLICY_FRAG_MAP: &str = "POLICY_FRAG_V1";
/// Verdicts (ring buffer of [`crate::policy::PolicyVerdict`]).
pub const POLICY_EVENTS_MAP: &str = "POLICY_EVENTS_V1";
/// Bytes of the verdict ring buffer (a power of two pages).
pub const POLICY_EVENTS_BYTES: u32 = 1 << 20;
/// Verdicts the ring buffer had no room for (per-CPU array of one `u64`): counted by the program that
/// judged, so user space knows how many it never saw.
pub const POLICY_EVENTS_LOST_MAP: &str = "POLICY_EVENTS_LOST_V1";

/// Every map the object declares, in the order the loader pins them.
/// The kernel DNS fast path's hot A records: [`crate::dns::DnsNameKey`] ->
/// [`crate::dns::DnsARecords`].
pub const DNS_A_MAP: &str = "DNS_A_V1";
/// Default number of names the fast path answers.
pub const DNS_A_MAP_DEFAULT_CAPACITY: u32 = 16_384;
/// The fast path's settings (one-entry array): [`crate::dns::DnsFastConfig`].
pub const DNS_FAST_MAP: &str = "DNS_FAST_V1";

pub const ALL_MAPS: [&str; 23] = [
    ENDPOINT_MAP,
    STATS_MAP,
    SVC_MAP,
    SVC_SLOT_MAP,
    SOCK_REVNAT_MAP,
    AFFINITY_MAP,
    CT_MAP,
    MAGLEV_MAP,
    SOURCE_RANGE_MAP,
    NODE_MAP,
    FRAG_MAP,
    REMOTE_MAP,
    OVERLAY_MAP,
    IPCACHE_MAP,
    POLICY_SUBJECT_MAP,
    POLICY_MAP,
    POLICY_CIDR_MAP,
    POLICY_CT_MAP,
    POLICY_FRAG_MAP,
    POLICY_EVENTS_MAP,
    POLICY_EVENTS_LOST_MAP,
    DNS_A_MAP,
    DNS_FAST_MAP,
];
