//! The policy maps' keys as the kernel stores them: addresses in network byte order read as native
//! words, identities and ports big-endian, bits beyond a prefix cleared; and the ordered raw forms the
//! sync compares, so what is read back from the kernel compares equal to what was written.

use std::net::Ipv4Addr;

use aya::{Pod, maps::lpm_trie::Key};
use strait_abi::policy::{
    POLICY_CIDR_KEY_FIXED_BITS, POLICY_KEY_FIXED_BITS, PolicyCidrKey, PolicyKey,
};

use super::{AllowKey, CidrKey};

/// An address as the maps hold it (network byte order, read as a native word).
pub(super) fn addr_word(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

/// `port` with all but its first `prefix` bits cleared.
fn masked_port(port: u16, prefix: u8) -> u16 {
    match prefix {
        0 => 0,
        p if p >= 16 => port,
        p => port & !(u16::MAX >> p),
    }
}

/// A POLICY_V1 key exactly as the kernel stores it, ordered: (prefix length, subject, peer, direction,
/// protocol, port).
pub(super) type RawAllow = (u32, u32, [u8; 4], u8, u8, [u8; 2]);
/// A POLICY_CIDR_V1 key exactly as the kernel stores it: (prefix length, subject, direction, protocol,
/// padding, address).
pub(super) type RawCidr = (u32, u32, u8, u8, [u8; 2], u32);

pub(super) fn allow_raw(key: &AllowKey) -> RawAllow {
    let prefix = key.port_prefix.min(16);
    (
        POLICY_KEY_FIXED_BITS + u32::from(prefix),
        addr_word(key.subject),
        key.peer.to_be_bytes(),
        key.direction,
        key.protocol,
        masked_port(key.port, prefix).to_be_bytes(),
    )
}

pub(super) fn cidr_raw(key: &CidrKey) -> RawCidr {
    let len = key.prefix_len.min(32);
    let net = u32::from(key.prefix) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    (
        POLICY_CIDR_KEY_FIXED_BITS + u32::from(len),
        addr_word(key.subject),
        key.direction,
        key.protocol,
        [0; 2],
        addr_word(Ipv4Addr::from(net)),
    )
}

/// How one LPM trie's keys convert to and from their ordered raw form.
pub(super) trait RawKey: Pod {
    type Raw: Ord + Copy;
    fn raw(key: &Key<Self>) -> Self::Raw;
    fn key(raw: &Self::Raw) -> Key<Self>;
}

impl RawKey for PolicyKey {
    type Raw = RawAllow;

    fn raw(key: &Key<Self>) -> RawAllow {
        let d = key.data();
        (
            key.prefix_len(),
            d.subject,
            d.peer,
            d.direction,
            d.protocol,
            d.port,
        )
    }

    fn key(&(len, subject, peer, direction, protocol, port): &RawAllow) -> Key<Self> {
        Key::new(
            len,
            PolicyKey {
                subject,
                peer,
                direction,
                protocol,
                port,
            },
        )
    }
}

impl RawKey for PolicyCidrKey {
    type Raw = RawCidr;

    fn raw(key: &Key<Self>) -> RawCidr {
        let d = key.data();
        (
            key.prefix_len(),
            d.subject,
            d.direction,
            d.protocol,
            d.pad,
            d.addr,
        )
    }

    fn key(&(len, subject, direction, protocol, pad, addr): &RawCidr) -> Key<Self> {
        Key::new(
            len,
            PolicyCidrKey {
                subject,
                direction,
                protocol,
                pad,
                addr,
            },
        )
    }
}
