//! CT_V1 from user space: counting the tracked flows and sweeping the expired ones (the programs treat an
//! expired flow as absent but cannot delete it; the LRU map only evicts when full). A flow's two entries
//! (one per direction) are judged and deleted together. Also the SNAT port range, which the agent
//! reserves in the node's own port allocation (`sysctl::reserve_local_ports`): nodes often raise
//! `ip_local_port_range` to 65535, and a node socket on a SNAT port would match an external flow's
//! reply entry.

use aya::maps::{HashMap, MapData};
use strait_abi::{
    CtEntry, CtKey,
    conntrack::{
        CT_DIR_FORWARD, CT_F_SNAT, SNAT_PORT_COUNT, SNAT_PORT_MIN, ct_expired, flow_expired,
        partner,
    },
    maps::CT_MAP,
};

use crate::{Dataplane, DataplaneError};

/// SNAT ports the per-packet path can hold towards one destination.
pub const SNAT_PORTS_PER_DESTINATION: u16 = SNAT_PORT_COUNT;

/// The source ports the data path gives SNATed flows (first, last).
pub const SNAT_PORTS: (u16, u16) = (SNAT_PORT_MIN, SNAT_PORT_MIN + (SNAT_PORT_COUNT - 1));

/// What a sweep found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Entries left (both directions counted).
    pub live: usize,
    /// Entries deleted.
    pub expired: usize,
    /// Live flows whose source the per-packet path rewrote (each holds one SNAT port).
    pub snat_flows: usize,
    /// SNAT ports held towards the busiest destination (ports are allocated per destination address,
    /// port and protocol, [`SNAT_PORT_COUNT`] of them each).
    pub snat_busiest: usize,
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) };
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}

impl Dataplane {
    fn ct_map(&mut self) -> Result<HashMap<&mut MapData, CtKey, CtEntry>, DataplaneError> {
        self.typed_map(CT_MAP)
    }

    /// Writes one CT entry as it is (for tests that need a table in a given state).
    pub fn insert_conntrack(&mut self, key: &CtKey, entry: &CtEntry) -> Result<(), DataplaneError> {
        let capacity = self.conntrack_capacity;
        let mut map = self.ct_map()?;
        map.insert(key, entry, 0)
            .map_err(|source| DataplaneError::map(CT_MAP, capacity, source))
    }

    /// Every CT entry (for tests and inspection).
    pub fn conntrack_entries(&mut self) -> Result<Vec<(CtKey, CtEntry)>, DataplaneError> {
        let capacity = self.conntrack_capacity;
        let map = self.ct_map()?;
        map.iter()
            .map(|entry| entry.map_err(|source| DataplaneError::map(CT_MAP, capacity, source)))
            .collect()
    }

    /// Deletes the flows expired at `now_ns` (CLOCK_MONOTONIC): both entries, judged together
    /// ([`flow_expired`]: a flow lives while either direction is used). An entry without a partner is
    /// judged alone.
    pub fn sweep_conntrack(&mut self, now_ns: u64) -> Result<SweepReport, DataplaneError> {
        let snapshot = self.conntrack_entries()?;
        self.sweep_conntrack_from(&snapshot, now_ns)
    }

    /// The second half of [`Dataplane::sweep_conntrack`]: deletes the entries that were expired in
    /// `snapshot` and still are. The programs go on while the table is read, and may give an expired
    /// entry's key to a new flow (a SNAT port taken over), so each entry is judged again as it is now;
    /// its partner goes only while it still belongs to the same flow (its own partner is the entry).
    /// Public so that tests can race a snapshot against the programs.
    pub fn sweep_conntrack_from(
        &mut self,
        snapshot: &[(CtKey, CtEntry)],
        now_ns: u64,
    ) -> Result<SweepReport, DataplaneError> {
        let mut map = self.ct_map()?;
        let mut expired = 0;
        for (key, seen) in snapshot {
            // A flow never expires sooner than either entry alone says.
            if !ct_expired(key.proto, seen.state, seen.last_seen_ns, now_ns) {
                continue;
            }
            // Gone already (deleted as a partner, or by the programs), or no longer expired.
            let Ok(current) = map.get(key, 0) else {
                continue;
            };
            if !ct_expired(key.proto, current.state, current.last_seen_ns, now_ns) {
                continue;
            }
            let other = partner(key, &current);
            // The partner, while it still belongs to this flow (its own partner is this entry).
            let other_entry = map
                .get(&other, 0)
                .ok()
                .filter(|o| partner(&other, o) == *key);
            if let Some(o) = other_entry
                && !flow_expired(
                    key.proto,
                    current.state,
                    current.last_seen_ns,
                    o.state,
                    o.last_seen_ns,
                    now_ns,
                )
            {
                continue;
            }
            if map.remove(key).is_ok() {
                expired += 1;
            }
            if other_entry.is_some() && map.remove(&other).is_ok() {
                expired += 1;
            }
        }
        let (snat_flows, snat_busiest) = snat_use(snapshot, now_ns);
        Ok(SweepReport {
            live: snapshot.len().saturating_sub(expired),
            expired,
            snat_flows,
            snat_busiest,
        })
    }
}

/// SNATed flows among the entries of `snapshot` that are not expired at `now_ns`, and the most of
/// them towards one destination (address, port, protocol).
fn snat_use(snapshot: &[(CtKey, CtEntry)], now_ns: u64) -> (usize, usize) {
    let mut by_destination: std::collections::HashMap<(u32, u16, u8), usize> =
        std::collections::HashMap::new();
    for (key, entry) in snapshot {
        if key.dir == CT_DIR_FORWARD
            && entry.flags & CT_F_SNAT != 0
            && !ct_expired(key.proto, entry.state, entry.last_seen_ns, now_ns)
        {
            *by_destination
                .entry((entry.new_daddr, entry.new_dport, key.proto))
                .or_default() += 1;
        }
    }
    (
        by_destination.values().sum(),
        by_destination.values().copied().max().unwrap_or(0),
    )
}
