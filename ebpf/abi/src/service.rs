//! The service maps: SVC (frontend -> service id and backend count), SVC_SLOT ((service id, slot) ->
//! backend) and SOCK_REVNAT (what a socket-level translation replaced, so replies and getpeername show the
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

/// Key of AFFINITY_V1: a client of a frontend. At the socket layer the client is its network namespace
/// (every socket of a pod shares it), identified by the kernel's netns cookie.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AffinityKey {
    pub netns_cookie: u64,
    pub service_id: u32,
    pub pad: u32,
}

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

#[cfg(feature = "user")]
mod pod {
    use super::{
        AffinityKey, AffinityValue, BackendAddr, BackendSlotKey, ServiceFrontend,
        ServiceFrontendKey, SockRevNatKey, SockRevNatValue,
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
}
