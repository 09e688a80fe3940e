//! Fragments of translated flows (see `strait_abi::fragment`): a translated first fragment leaves its
//! datagram's ports in FRAG_V1; a later fragment borrows them, finds the flow's CT entry with them, and
//! gets the same address rewrite (`nat::rewrite` leaves the absent transport header alone).

use strait_abi::fragment::{FragKey, FragPorts};

use crate::{
    maps::FRAG_V1,
    parse::{Ipv4, L4},
};

/// The FRAG key of the datagram `ip` belongs to.
#[inline(always)]
fn key(ip: &Ipv4) -> FragKey {
    FragKey {
        saddr: ip.src,
        daddr: ip.dst,
        id: ip.id,
        proto: ip.proto,
        pad: 0,
    }
}

/// Records the ports of a translated first fragment's datagram; other packets are ignored.
#[inline(always)]
pub fn remember(ip: &Ipv4, l4: &L4) {
    if ip.more_fragments && !ip.later_fragment {
        let ports = FragPorts {
            sport: l4.sport,
            dport: l4.dport,
        };
        // A full map evicts its oldest datagram (LRU); a failed insert loses only this datagram.
        let _ = FRAG_V1.insert(key(ip), ports, 0);
    }
}

/// The ports of a later fragment's datagram, if its first fragment was translated.
#[inline(always)]
pub fn ports(ip: &Ipv4) -> Option<L4> {
    if !ip.later_fragment {
        return None;
    }
    // SAFETY: the value is copied out at once.
    let ports = unsafe { FRAG_V1.get(key(ip)) }.copied()?;
    Some(L4::ports(ports.sport, ports.dport))
}
