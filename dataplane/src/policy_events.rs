//! The verdict ring buffer (POLICY_EVENTS_V1) from user space: one [`Verdict`] per judgement the data
//! path made (the first packet of a flow in each direction this node judges), decoded from the kernel's
//! [`PolicyVerdict`] with byte order handled here.
//!
//! [`Dataplane::policy_events`] opens the ring buffer on a descriptor of its own (a duplicate of the
//! map's), so its reader needs no borrow of the `Dataplane`, which the endpoint manager holds. The map is
//! pinned with the others: a restarted agent reads on from where the last one stopped (the consumer
//! position lives in the map), and verdicts made while no agent ran wait in the buffer until it is
//! full; beyond that new ones are lost, and the programs count them in POLICY_EVENTS_LOST_V1, which
//! [`Dataplane::policy_lost_reader`] reads.
//!
//! A ring buffer has one consumer: open one reader per map. [`PolicyEvents::drain`] takes what is
//! there without waiting; [`AsyncPolicyEvents`] waits for the kernel's wake-up through tokio's
//! `AsyncFd` on the ring buffer's descriptor (epoll says readable while records wait), so no timer
//! polls an idle buffer.

use std::{
    io,
    net::{Ipv4Addr, SocketAddrV4},
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
};

use aya::maps::{Map, MapData, PerCpuArray, RingBuf};
use strait_abi::{
    maps::{POLICY_EVENTS_LOST_MAP, POLICY_EVENTS_MAP},
    policy::{
        BY_DEFAULT_DENY, BY_NOT_ISOLATED, BY_RULE, POLICY_EGRESS, POLICY_INGRESS, PolicyVerdict,
        VERDICT_ALLOWED, VERDICT_AUDIT, VERDICT_DENIED,
    },
};
use tokio::io::unix::AsyncFd;

pub use crate::stats::Direction;
use crate::{Dataplane, DataplaneError};

/// What the judgement decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Decision {
    /// The packet passed.
    Allowed,
    /// The packet was dropped.
    Denied,
    /// It would have been dropped; the pod is in audit mode, so it passed.
    Audit,
}

impl Decision {
    /// Every decision, for iteration (metrics).
    pub const ALL: [Decision; 3] = [Decision::Allowed, Decision::Denied, Decision::Audit];

    /// Stable label (metrics, JSON, filters).
    pub const fn label(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Denied => "denied",
            Decision::Audit => "audit",
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            VERDICT_ALLOWED => Some(Decision::Allowed),
            VERDICT_DENIED => Some(Decision::Denied),
            VERDICT_AUDIT => Some(Decision::Audit),
            _ => None,
        }
    }
}

/// What decided it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DecidedBy {
    /// No policy isolates the pod in this direction.
    NotIsolated,
    /// A rule allowed it ([`Verdict::policy`], [`Verdict::rule`]).
    Rule,
    /// The pod is isolated and no rule allows it.
    DefaultDeny,
}

impl DecidedBy {
    /// Stable label (JSON).
    pub const fn label(self) -> &'static str {
        match self {
            DecidedBy::NotIsolated => "not-isolated",
            DecidedBy::Rule => "rule",
            DecidedBy::DefaultDeny => "default-deny",
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            BY_NOT_ISOLATED => Some(DecidedBy::NotIsolated),
            BY_RULE => Some(DecidedBy::Rule),
            BY_DEFAULT_DENY => Some(DecidedBy::DefaultDeny),
            _ => None,
        }
    }
}

/// One judgement, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// When it was made: `CLOCK_MONOTONIC` nanoseconds (see [`monotonic_ns`]).
    pub time_ns: u64,
    /// The flow as judged (after service translation): source and destination with their ports (0 for
    /// protocols without ports; ICMP echo carries its identifier in both).
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
    /// IP protocol number.
    pub protocol: u8,
    /// The local pod judged: the source for egress, the destination for ingress.
    pub direction: Direction,
    pub decision: Decision,
    pub by: DecidedBy,
    /// The local pod's identity, and its peer's (0 when the pod is not isolated: not looked up).
    pub subject_identity: u32,
    pub peer_identity: u32,
    /// The policy number (this node's table; 0: none) and rule index that allowed it, when
    /// [`DecidedBy::Rule`].
    pub policy: u32,
    pub rule: u32,
}

impl Verdict {
    /// The kernel's record decoded; `None` for a code this build does not know.
    pub fn decode(raw: &PolicyVerdict) -> Option<Self> {
        let addr = |word: u32| Ipv4Addr::from(word.to_ne_bytes());
        let port = u16::from_be;
        let direction = match raw.direction {
            POLICY_EGRESS => Direction::Egress,
            POLICY_INGRESS => Direction::Ingress,
            _ => return None,
        };
        Some(Self {
            time_ns: raw.time_ns,
            source: SocketAddrV4::new(addr(raw.flow.saddr), port(raw.flow.sport)),
            destination: SocketAddrV4::new(addr(raw.flow.daddr), port(raw.flow.dport)),
            protocol: raw.flow.protocol,
            direction,
            decision: Decision::from_code(raw.verdict)?,
            by: DecidedBy::from_code(raw.by)?,
            subject_identity: raw.subject_identity,
            peer_identity: raw.peer_identity,
            policy: raw.rule.policy,
            rule: raw.rule.rule,
        })
    }

    /// A ring buffer record decoded; `None` when it is not a [`PolicyVerdict`] or holds an unknown code.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < size_of::<PolicyVerdict>() {
            return None;
        }
        // SAFETY: the length was checked; `PolicyVerdict` is plain old data (any bit pattern is a
        // value), read unaligned since a record's alignment is the ring buffer's (8) only by contract.
        let raw = unsafe { bytes.as_ptr().cast::<PolicyVerdict>().read_unaligned() };
        Self::decode(&raw)
    }

    /// The local pod's end of the flow: the source for egress, the destination for ingress.
    pub fn subject(&self) -> SocketAddrV4 {
        match self.direction {
            Direction::Egress => self.source,
            Direction::Ingress => self.destination,
        }
    }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock of [`Verdict::time_ns`] (`bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) };
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}

impl Dataplane {
    /// A reader of POLICY_EVENTS_V1 on a descriptor of its own. Open one: a ring buffer has a single
    /// consumer. [`DataplaneError::MapMissing`] for an object without the map.
    pub fn policy_events(&self) -> Result<PolicyEvents, DataplaneError> {
        let name = POLICY_EVENTS_MAP;
        let own = self.own_map_data(name, "a ring buffer", |map| match map {
            Map::RingBuf(data) => Some(data),
            _ => None,
        })?;
        let ring = RingBuf::try_from(Map::RingBuf(own))
            .map_err(|source| DataplaneError::Map { name, source })?;
        Ok(PolicyEvents {
            ring,
            undecodable: 0,
        })
    }
}

impl Dataplane {
    /// A handle of its own (a duplicate of the map's descriptor) to POLICY_EVENTS_LOST_V1: how many
    /// verdicts the ring buffer had no room for. [`DataplaneError::MapMissing`] for an object
    /// without the map.
    pub fn policy_lost_reader(&self) -> Result<PolicyLostReader, DataplaneError> {
        let name = POLICY_EVENTS_LOST_MAP;
        let own = self.own_map_data(name, "a per-CPU array", |map| match map {
            Map::PerCpuArray(data) => Some(data),
            _ => None,
        })?;
        let array = PerCpuArray::try_from(Map::PerCpuArray(own))
            .map_err(|source| DataplaneError::Map { name, source })?;
        Ok(PolicyLostReader { array })
    }

    /// Map `name` on a duplicate of its descriptor, for a reader that needs no borrow of the
    /// `Dataplane`; `data` finds the map's data if the map is of the kind `kind` names.
    fn own_map_data(
        &self,
        name: &'static str,
        kind: &str,
        data: impl Fn(&Map) -> Option<&MapData>,
    ) -> Result<MapData, DataplaneError> {
        let map = self
            .ebpf
            .map(name)
            .ok_or(DataplaneError::MapMissing { name })?;
        let data = data(map).ok_or_else(|| {
            DataplaneError::io(
                format!("map {name}"),
                io::Error::other(format!("not {kind}")),
            )
        })?;
        let fd =
            data.fd().as_fd().try_clone_to_owned().map_err(|e| {
                DataplaneError::io(format!("duplicating the descriptor of {name}"), e)
            })?;
        MapData::from_fd(fd).map_err(|source| DataplaneError::Map { name, source })
    }
}

/// POLICY_EVENTS_LOST_V1 on a descriptor of its own (see [`Dataplane::policy_lost_reader`]).
pub struct PolicyLostReader {
    array: PerCpuArray<MapData, u64>,
}

impl std::fmt::Debug for PolicyLostReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyLostReader")
    }
}

impl PolicyLostReader {
    /// Verdicts lost since the map was created (it is pinned: the count outlives agent restarts),
    /// summed over CPUs.
    pub fn read(&self) -> Result<u64, DataplaneError> {
        let values = self
            .array
            .get(&0, 0)
            .map_err(|source| DataplaneError::Map {
                name: POLICY_EVENTS_LOST_MAP,
                source,
            })?;
        Ok(values.iter().sum())
    }
}

/// The reader of POLICY_EVENTS_V1 (see [`Dataplane::policy_events`]).
pub struct PolicyEvents {
    ring: RingBuf<MapData>,
    undecodable: u64,
}

impl PolicyEvents {
    /// Takes every record waiting, without blocking, into `out`; how many were taken. Records that
    /// do not decode are skipped and counted ([`PolicyEvents::undecodable`]).
    pub fn drain(&mut self, out: &mut Vec<Verdict>) -> usize {
        let before = out.len();
        while let Some(item) = self.ring.next() {
            match Verdict::from_bytes(&item) {
                Some(verdict) => out.push(verdict),
                None => self.undecodable += 1,
            }
        }
        out.len() - before
    }

    /// Records skipped since the reader was opened: too short, or with a code this build does not
    /// know (an eBPF object newer than the agent).
    pub fn undecodable(&self) -> u64 {
        self.undecodable
    }
}

impl AsFd for PolicyEvents {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }
}

impl AsRawFd for PolicyEvents {
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

/// [`PolicyEvents`] for tokio: waits on the descriptor for the kernel's wake-up.
pub struct AsyncPolicyEvents {
    inner: AsyncFd<PolicyEvents>,
}

impl AsyncPolicyEvents {
    /// Registers the reader with the running tokio runtime's reactor (call inside the runtime).
    pub fn new(events: PolicyEvents) -> io::Result<Self> {
        // SAFETY: the descriptor is the ring buffer's own (a duplicate `PolicyEvents` owns through its
        // `MapData`), open until `PolicyEvents` is dropped, which only the `AsyncFd` can do; `as_raw_fd`
        // always returns it, and the reader is never taken back out.
        let inner =
            unsafe { AsyncFd::register_with_interest(events, tokio::io::Interest::READABLE) }?;
        Ok(Self { inner })
    }

    /// Waits until records are there and takes every one into `out`; how many (at least one, unless
    /// only undecodable records came).
    pub async fn next_batch(&mut self, out: &mut Vec<Verdict>) -> io::Result<usize> {
        loop {
            let mut guard = self.inner.readable_mut().await?;
            let skipped = guard.get_inner().undecodable();
            let taken = guard.get_inner_mut().drain(out);
            // Readiness is cleared only after the buffer was found empty: a record committed since is
            // either taken above or raises readiness again.
            guard.clear_ready();
            if taken > 0 {
                return Ok(taken);
            }
            if guard.get_inner().undecodable() > skipped {
                // Something came, none of it decodable: let the caller see the count move.
                return Ok(0);
            }
        }
    }

    /// See [`PolicyEvents::undecodable`].
    pub fn undecodable(&self) -> u64 {
        self.inner.get_ref().undecodable()
    }
}

#[cfg(test)]
mod tests {
    use strait_abi::policy::{PolicyCtKey, PolicyRule};

    use super::*;

    fn raw() -> PolicyVerdict {
        PolicyVerdict {
            time_ns: 42,
            flow: PolicyCtKey {
                saddr: u32::from_ne_bytes([10, 244, 1, 5]),
                daddr: u32::from_ne_bytes([10, 244, 2, 7]),
                sport: 43512u16.to_be(),
                dport: 80u16.to_be(),
                protocol: 6,
                pad: [0; 3],
            },
            subject_identity: 256,
            peer_identity: 257,
            rule: PolicyRule { policy: 3, rule: 1 },
            direction: POLICY_INGRESS,
            verdict: VERDICT_DENIED,
            by: BY_DEFAULT_DENY,
            pad: 0,
            pad2: 0,
        }
    }

    fn bytes(raw: &PolicyVerdict) -> Vec<u8> {
        // SAFETY: plain old data of that size.
        unsafe {
            std::slice::from_raw_parts(
                std::ptr::from_ref(raw).cast::<u8>(),
                size_of::<PolicyVerdict>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn a_record_decodes_with_addresses_and_ports_in_host_order() {
        let verdict = Verdict::from_bytes(&bytes(&raw())).expect("decodes");
        assert_eq!(
            verdict.source,
            SocketAddrV4::new(Ipv4Addr::new(10, 244, 1, 5), 43512)
        );
        assert_eq!(
            verdict.destination,
            SocketAddrV4::new(Ipv4Addr::new(10, 244, 2, 7), 80)
        );
        assert_eq!(
            (verdict.direction, verdict.decision, verdict.by),
            (Direction::Ingress, Decision::Denied, DecidedBy::DefaultDeny)
        );
        assert_eq!((verdict.policy, verdict.rule, verdict.protocol), (3, 1, 6));
        assert_eq!(verdict.subject(), verdict.destination);
        assert_eq!(verdict.time_ns, 42);
    }

    #[test]
    fn short_records_and_unknown_codes_are_refused() {
        let whole = bytes(&raw());
        assert_eq!(Verdict::from_bytes(&whole[..40]), None);
        for (field, value) in [("direction", 2), ("verdict", 9), ("by", 7)] {
            let mut bad = raw();
            match field {
                "direction" => bad.direction = value,
                "verdict" => bad.verdict = value,
                _ => bad.by = value,
            }
            assert_eq!(Verdict::decode(&bad), None, "{field} {value}");
        }
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }
}
