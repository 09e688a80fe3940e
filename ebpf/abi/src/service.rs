//! The service maps: SVC (frontend -> service id and backend count), SVC_SLOT ((service id, slot) ->
//! backend), MAGLEV (service id -> consistent-hash table of slots), SOURCE_RANGE (allowed client
//! prefixes per frontend) and SOCK_REVNAT (what a socket-level translation replaced, so replies and getpeername show the
//! service address again). Addresses and ports are in network byte order, as the kernel hands them over.

/// Key of SVC_V1: a service frontend.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceFrontendKey {
    /// Virtual IPv4 address, network byte order.
    pub vip: u32,
    /// Port, network byte order.
    pub port: u16,
    /// IANA protocol number (6 TCP, 17 UDP).
    pub proto: u8,
    /// Always zero.
    pub pad: u8,
}

/// Value of SVC_V1.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceFrontend {
    /// Identifier of this frontend's slot range in SVC_SLOT_V1 (host byte order).
    pub service_id: u32,
    /// Number of backend slots; 0 means "reject".
    pub backend_count: u32,
    /// `SVC_F_*` flags.
    pub flags: u32,
    /// With [`SVC_F_AFFINITY`]: seconds a client keeps its backend after its last connection.
    pub affinity_timeout_s: u32,
}

/// The frontend has `sessionAffinity: ClientIP`.
pub const SVC_F_AFFINITY: u32 = 1;
/// The frontend is reached from outside the cluster (a NodePort, LoadBalancer ingress IP or externalIP):
/// the per-packet path picks its backend with the frontend's Maglev table.
pub const SVC_F_EXTERNAL: u32 = 2;
/// `externalTrafficPolicy: Local`: external clients keep their source address (no SNAT); the backends are
/// this node's endpoints only.
pub const SVC_F_LOCAL: u32 = 4;
/// `loadBalancerSourceRanges`: only sources in SOURCE_RANGE_V1 for this frontend may connect.
pub const SVC_F_SOURCE_RANGES: u32 = 8;
/// A `Local` traffic policy whose Service has ready endpoints, none of them on this node: with no
/// backends here the packet is dropped without an answer (kube-proxy's DROP, "has no local endpoints"),
/// where a Service without any endpoint is refused (its REJECT).
pub const SVC_F_ENDPOINTS_ELSEWHERE: u32 = 16;

/// Number of entries of a Maglev lookup table (a prime; kept above 100 x the backends of a service for
/// an even spread, so up to about 10 backends balance within 1%).
pub const MAGLEV_TABLE_SIZE: usize = 1021;

/// The hash that picks a flow's Maglev bucket: murmur3's finalizer over the first packet's tuple folded
/// into 32 bits (addresses and ports in network byte order, as on the wire). Shared so user space can
/// predict the data path's choice.
#[inline]
pub const fn flow_hash(saddr: u32, daddr: u32, sport: u16, dport: u16, proto: u8) -> u32 {
    let ports = ((sport as u32) << 16) | dport as u32;
    let mut h = saddr ^ daddr.rotate_left(13) ^ ports.rotate_left(7) ^ proto as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Value of MAGLEV_V1 (keyed by service id): for each of [`MAGLEV_TABLE_SIZE`] hash buckets, the backend
/// slot (in SVC_SLOT_V1) it maps to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaglevTable {
    pub slots: [u32; MAGLEV_TABLE_SIZE],
}

/// Data part of SOURCE_RANGE_V1's LPM key: the frontend's service id (big-endian, always matched in
/// full: prefix lengths start at 32) followed by the allowed source prefix.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceRange {
    /// Service id, big-endian.
    pub service_id_be: u32,
    /// Source prefix address, network byte order.
    pub addr: u32,
}

/// Key of AFFINITY_V1: a client of a frontend. At the socket layer the client is its network namespace
/// (every socket of a pod shares it), identified by the kernel's netns cookie; on the per-packet path it
/// is the client's IPv4 address, tagged with [`AFFINITY_CLIENT_IP_TAG`] (netns cookies are a counter from
/// 1 and never reach bit 63).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AffinityKey {
    pub netns_cookie: u64,
    pub service_id: u32,
    pub pad: u32,
}

/// Tag of an AFFINITY_V1 key's `netns_cookie` that holds a client IPv4 address (network byte order, in the
/// low 32 bits) instead of a cookie.
pub const AFFINITY_CLIENT_IP_TAG: u64 = 1 << 63;

/// Value of AFFINITY_V1: the backend the client was given and when it last used it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AffinityValue {
    /// `bpf_ktime_get_ns` of the client's last connection.
    pub last_used_ns: u64,
    /// The slot the backend was in, and the backend itself: if the slot holds another backend now, the
    /// affinity is stale and a new backend is chosen.
    pub slot: u32,
    pub pad: u32,
    pub backend: BackendAddr,
}

/// Key of SVC_SLOT_V1.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BackendSlotKey {
    pub service_id: u32,
    pub slot: u32,
}

/// Value of SVC_SLOT_V1: one backend.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendAddr {
    /// IPv4 address, network byte order.
    pub addr: u32,
    /// Port, network byte order.
    pub port: u16,
    /// Always zero.
    pub pad: u16,
}

/// Key of SOCK_REVNAT_V1: the socket and the backend it was sent to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SockRevNatKey {
    pub cookie: u64,
    /// Backend address, network byte order.
    pub addr: u32,
    /// Backend port, network byte order.
    pub port: u16,
    pub pad: u16,
}

/// Value of SOCK_REVNAT_V1: the service address the application asked for.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockRevNatValue {
    /// Service address, network byte order.
    pub vip: u32,
    /// Service port, network byte order.
    pub port: u16,
    pub pad: u16,
}

const _: () = assert!(core::mem::size_of::<ServiceFrontendKey>() == 8);
const _: () = assert!(core::mem::size_of::<ServiceFrontend>() == 16);
const _: () = assert!(core::mem::size_of::<BackendSlotKey>() == 8);
const _: () = assert!(core::mem::size_of::<BackendAddr>() == 8);
const _: () = assert!(core::mem::size_of::<SockRevNatKey>() == 16);
const _: () = assert!(core::mem::size_of::<SockRevNatValue>() == 8);
const _: () = assert!(core::mem::size_of::<AffinityKey>() == 16);
const _: () = assert!(core::mem::size_of::<AffinityValue>() == 24);
const _: () = assert!(core::mem::size_of::<MaglevTable>() == 4 * MAGLEV_TABLE_SIZE);
const _: () = assert!(core::mem::size_of::<SourceRange>() == 8);

#[cfg(feature = "user")]
mod pod {
    use super::{
        AffinityKey, AffinityValue, BackendAddr, BackendSlotKey, MaglevTable, ServiceFrontend,
        ServiceFrontendKey, SockRevNatKey, SockRevNatValue, SourceRange,
    };
    // SAFETY (all): plain-old-data, `#[repr(C)]`, no implicit padding (checked by the size assertions).
    unsafe impl aya::Pod for ServiceFrontendKey {}
    unsafe impl aya::Pod for ServiceFrontend {}
    unsafe impl aya::Pod for BackendSlotKey {}
    unsafe impl aya::Pod for BackendAddr {}
    unsafe impl aya::Pod for SockRevNatKey {}
    unsafe impl aya::Pod for SockRevNatValue {}
    unsafe impl aya::Pod for AffinityKey {}
    unsafe impl aya::Pod for AffinityValue {}
    unsafe impl aya::Pod for MaglevTable {}
    unsafe impl aya::Pod for SourceRange {}
}
