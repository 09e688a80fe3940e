//! The kernel DNS fast path: the cluster's hot A records, keyed by the question's name in lowercase
//! wire format, and this node's DNS listener (which the pods' queries reach after the socket hooks
//! translate the DNS Service address), so `from_pod` can answer a matching query in place.

/// The longest question name (wire format, root label included) the fast path answers; longer names
/// go to the server.
pub const DNS_NAME_MAX: usize = 128;
/// The most A records one answer carries from the fast path; a name with more goes to the server.
pub const DNS_A_MAX: usize = 8;

/// Key of DNS_A_V1: the name in wire format (length-prefixed labels, then the root's 0), ASCII
/// letters in lowercase, zero-padded.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DnsNameKey {
    pub name: [u8; DNS_NAME_MAX],
}

impl Default for DnsNameKey {
    fn default() -> Self {
        Self {
            name: [0; DNS_NAME_MAX],
        }
    }
}

/// Value of DNS_A_V1: the records' TTL and addresses.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsARecords {
    /// TTL in seconds (host byte order).
    pub ttl: u32,
    /// How many of `addrs` are used, 1 to [`DNS_A_MAX`].
    pub count: u32,
    /// IPv4 addresses (network byte order).
    pub addrs: [u32; DNS_A_MAX],
}

/// Value of DNS_FAST_V1[0]: where this node's DNS server listens, and how the fast path answers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsFastConfig {
    /// The listener's IPv4 address (network byte order).
    pub addr: u32,
    /// The listener's UDP port (network byte order).
    pub port: u16,
    /// [`DNS_FAST_F_ENABLED`], [`DNS_FAST_F_RECURSION`].
    pub flags: u16,
}

/// The fast path answers.
pub const DNS_FAST_F_ENABLED: u16 = 1;
/// Answers say recursion is available (the server forwards other names).
pub const DNS_FAST_F_RECURSION: u16 = 2;

const _: () = assert!(core::mem::size_of::<DnsNameKey>() == DNS_NAME_MAX);
const _: () = assert!(core::mem::size_of::<DnsARecords>() == 8 + 4 * DNS_A_MAX);
const _: () = assert!(core::mem::size_of::<DnsFastConfig>() == 8);

#[cfg(feature = "user")]
// SAFETY: plain-old-data, `#[repr(C)]`, no implicit padding (checked by the size assertions).
unsafe impl aya::Pod for DnsNameKey {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for DnsARecords {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for DnsFastConfig {}
