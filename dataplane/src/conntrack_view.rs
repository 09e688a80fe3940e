//! The CT table as people read it (`strait lab ct list`, the agent's `GET /conntrack`): a
//! [`ConntrackReader`] on a descriptor of its own (never borrowing the [`Dataplane`]), and each entry
//! as a [`TrackedFlow`] with addresses, ports, protocol, state and age decoded from the wire order
//! the programs keep.

use std::{net::Ipv4Addr, os::fd::AsFd as _};

use aya::maps::{HashMap, Map, MapData};
use strait_abi::{
    CtEntry, CtKey,
    conntrack::{
        CT_DIR_FORWARD, CT_F_SNAT, CT_F_TO_UPLINK, CT_STATE_CLOSING, CT_STATE_ESTABLISHED,
        CT_STATE_NEW, CT_STATE_SYN_RECV,
    },
    maps::CT_MAP,
};

use crate::{Dataplane, DataplaneError, conntrack::monotonic_ns};

/// One CT entry, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackedFlow {
    /// `TCP`, `UDP`, `ICMP` or the protocol number.
    pub protocol: String,
    /// `forward` (the direction of the first packet) or `reply`.
    pub direction: &'static str,
    /// The packet as it arrives: source and destination.
    pub source: (Ipv4Addr, u16),
    pub destination: (Ipv4Addr, u16),
    /// What the packet becomes.
    pub new_source: (Ipv4Addr, u16),
    pub new_destination: (Ipv4Addr, u16),
    /// `new`, `syn_recv`, `established`, `closing`.
    pub state: &'static str,
    /// `snat`, `to_uplink`.
    pub flags: Vec<&'static str>,
    /// Milliseconds since a packet last used the entry.
    pub idle_ms: u64,
    /// The frontend's service id.
    pub service_id: u32,
}

fn addr(wire: u32) -> Ipv4Addr {
    Ipv4Addr::from(wire.to_ne_bytes())
}

fn port(wire: u16) -> u16 {
    u16::from_be(wire)
}

/// `key` and `entry` decoded, with `now_ns` (CLOCK_MONOTONIC) for the age.
pub fn decode(key: &CtKey, entry: &CtEntry, now_ns: u64) -> TrackedFlow {
    let protocol = match key.proto {
        6 => "TCP".to_owned(),
        17 => "UDP".to_owned(),
        1 => "ICMP".to_owned(),
        other => other.to_string(),
    };
    let state = match entry.state {
        CT_STATE_NEW => "new",
        CT_STATE_ESTABLISHED => "established",
        CT_STATE_CLOSING => "closing",
        CT_STATE_SYN_RECV => "syn_recv",
        _ => "unknown",
    };
    let mut flags = Vec::new();
    if entry.flags & CT_F_SNAT != 0 {
        flags.push("snat");
    }
    if entry.flags & CT_F_TO_UPLINK != 0 {
        flags.push("to_uplink");
    }
    TrackedFlow {
        protocol,
        direction: if key.dir == CT_DIR_FORWARD {
            "forward"
        } else {
            "reply"
        },
        source: (addr(key.saddr), port(key.sport)),
        destination: (addr(key.daddr), port(key.dport)),
        new_source: (addr(entry.new_saddr), port(entry.new_sport)),
        new_destination: (addr(entry.new_daddr), port(entry.new_dport)),
        state,
        flags,
        idle_ms: now_ns.saturating_sub(entry.last_seen_ns) / 1_000_000,
        service_id: entry.service_id,
    }
}

/// The CT map on a descriptor of its own; see [`Dataplane::conntrack_reader`].
pub struct ConntrackReader {
    map: HashMap<MapData, CtKey, CtEntry>,
}

impl Dataplane {
    /// A handle of its own to the CT map.
    pub fn conntrack_reader(&self) -> Result<ConntrackReader, DataplaneError> {
        let map = self
            .ebpf
            .map(CT_MAP)
            .ok_or(DataplaneError::MapMissing { name: CT_MAP })?;
        let Map::LruHashMap(data) = map else {
            return Err(DataplaneError::io(
                format!("map {CT_MAP}"),
                std::io::Error::other("not an LRU hash map"),
            ));
        };
        let fd = data.fd().as_fd().try_clone_to_owned().map_err(|e| {
            DataplaneError::io(format!("duplicating the descriptor of {CT_MAP}"), e)
        })?;
        let own = MapData::from_fd(fd).map_err(|source| DataplaneError::Map {
            name: CT_MAP,
            source,
        })?;
        let map =
            HashMap::try_from(Map::LruHashMap(own)).map_err(|source| DataplaneError::Map {
                name: CT_MAP,
                source,
            })?;
        Ok(ConntrackReader { map })
    }
}

impl ConntrackReader {
    /// Every entry that `keep` accepts, decoded, at most `limit`.
    pub fn flows(
        &self,
        keep: impl Fn(&TrackedFlow) -> bool,
        limit: usize,
    ) -> Result<Vec<TrackedFlow>, DataplaneError> {
        let now = monotonic_ns();
        let mut out = Vec::new();
        for item in &self.map {
            // An entry deleted while the walk passes it is skipped.
            let Ok((key, entry)) = item else {
                continue;
            };
            let flow = decode(&key, &entry, now);
            if keep(&flow) {
                out.push(flow);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_order_is_decoded() {
        let key = CtKey {
            saddr: u32::from_ne_bytes([10, 244, 1, 5]),
            daddr: u32::from_ne_bytes([10, 96, 0, 10]),
            sport: 40000u16.to_be(),
            dport: 53u16.to_be(),
            proto: 17,
            dir: CT_DIR_FORWARD,
            pad: 0,
        };
        let entry = CtEntry {
            last_seen_ns: 1_000_000_000,
            new_saddr: u32::from_ne_bytes([172, 30, 0, 11]),
            new_sport: 61000u16.to_be(),
            new_daddr: u32::from_ne_bytes([10, 244, 2, 7]),
            new_dport: 5353u16.to_be(),
            state: CT_STATE_ESTABLISHED,
            flags: CT_F_SNAT,
            service_id: 4,
            ..CtEntry::default()
        };
        let flow = decode(&key, &entry, 3_500_000_000);
        assert_eq!(flow.protocol, "UDP");
        assert_eq!(flow.source, (Ipv4Addr::new(10, 244, 1, 5), 40000));
        assert_eq!(flow.destination, (Ipv4Addr::new(10, 96, 0, 10), 53));
        assert_eq!(flow.new_source, (Ipv4Addr::new(172, 30, 0, 11), 61000));
        assert_eq!(flow.new_destination, (Ipv4Addr::new(10, 244, 2, 7), 5353));
        assert_eq!((flow.state, flow.direction), ("established", "forward"));
        assert_eq!(flow.flags, ["snat"]);
        assert_eq!(flow.idle_ms, 2500);
    }
}
