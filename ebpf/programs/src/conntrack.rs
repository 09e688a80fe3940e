//! Connection tracking for the per-packet service path: lookup of live entries, per-packet state,
//! timestamp and TCP sequence updates, the RST plausibility check, and creation of a flow's two entries
//! (see `strait_abi::conntrack`). Expired entries
//! are treated as absent here and deleted by the agent's sweeper; the LRU map evicts the oldest flows when
//! it is full.

pub use strait_abi::conntrack::partner;
use strait_abi::{
    CtEntry, CtKey, Reason,
    conntrack::{
        CT_DIR_FORWARD, CT_DIR_REPLY, CT_STATE_CLOSING, CT_STATE_ESTABLISHED, CT_STATE_NEW,
        CT_STATE_SYN_RECV, ct_expired, flow_expired, rst_plausible, seq_after, snat_port_reusable,
    },
};

use aya_ebpf::bindings::BPF_NOEXIST;

use crate::{
    maps::CT_V1,
    nat::Tuple,
    parse::{L4, PROTO_TCP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
};
/// An entry's timestamp is rewritten at most this often (ns) while its state stays the same.
const TOUCH_INTERVAL_NS: u64 = 1_000_000_000;

/// The CT key of `tuple` in direction `dir`.
#[inline(always)]
pub fn key(tuple: &Tuple, proto: u8, dir: u8) -> CtKey {
    CtKey {
        saddr: tuple.saddr,
        daddr: tuple.daddr,
        sport: tuple.sport,
        dport: tuple.dport,
        proto,
        dir,
        pad: 0,
    }
}

/// The tuple a packet matching `entry` is rewritten to.
#[inline(always)]
pub fn rewritten(entry: &CtEntry) -> Tuple {
    Tuple {
        saddr: entry.new_saddr,
        daddr: entry.new_daddr,
        sport: entry.new_sport,
        dport: entry.new_dport,
    }
}

/// The live entry for `key`, updated for this packet (timestamp, TCP state, the end of what this
/// direction sent), as a copy. A RST its sender could not have sent ([`rst_plausible`]) changes nothing
/// and is refused with [`Reason::DropRstOutOfWindow`].
#[inline(always)]
pub fn track(key: &CtKey, l4: &L4, now: u64) -> Result<Option<CtEntry>, Reason> {
    let Some(entry) = CT_V1.get_ptr_mut(key) else {
        return Ok(None);
    };
    // SAFETY: a pointer into the map value; plain fields, racing writers can only leave a stale value.
    let current = unsafe { *entry };
    // An entry expired by itself may belong to a flow whose other direction is in use (a one-way UDP
    // stream, a half-closed TCP flow): the flow decides.
    if ct_expired(key.proto, current.state, current.last_seen_ns, now) {
        // SAFETY: the value is copied out at once.
        let Some(other) = (unsafe { CT_V1.get(partner(key, &current)) }).copied() else {
            return Ok(None);
        };
        if flow_expired(
            key.proto,
            current.state,
            current.last_seen_ns,
            other.state,
            other.last_seen_ns,
            now,
        ) {
            return Ok(None);
        }
    }
    let segment = key.proto == PROTO_TCP && l4.has_seq;
    let reset = segment && l4.tcp_flags & TCP_RST != 0;
    if reset {
        // SAFETY: the value is copied out at once.
        let other = unsafe { CT_V1.get(partner(key, &current)) }
            .copied()
            .unwrap_or_default();
        let has_ack = l4.tcp_flags & TCP_ACK != 0;
        if !rst_plausible(&current, &other, l4.seq, l4.ack, has_ack) {
            return Err(Reason::DropRstOutOfWindow);
        }
    }
    let state = if key.proto == PROTO_TCP && !l4.has_seq {
        // A later fragment carries no flags.
        current.state
    } else {
        next_state(key, current.state, l4.tcp_flags)
    };
    // A new connection on a closed one's tuple starts its sequence numbers afresh.
    let reopened = state == CT_STATE_NEW && current.state != CT_STATE_NEW;
    let advanced =
        segment && (current.seq_seen == 0 || reopened || seq_after(l4.seq_end, current.seq_end));
    if state != current.state
        || reset
        || advanced
        || now.saturating_sub(current.last_seen_ns) > TOUCH_INTERVAL_NS
    {
        // SAFETY: as above.
        unsafe {
            (*entry).state = state;
            (*entry).last_seen_ns = now;
            if advanced {
                (*entry).seq_end = l4.seq_end;
                (*entry).seq_seen = 1;
            }
        }
        update_partner(key, &current, state, reset, now);
    }
    Ok(Some(CtEntry {
        state,
        last_seen_ns: now,
        ..current
    }))
}

/// Moves the other direction of the flow along where a packet of `key` (whose entry was `current`)
/// speaks for both: the handshake's steps (the first reply, the opener's ACK); a SYN reusing a closed
/// flow's tuple, which reopens both (else the reply entry would stay closing and quiet, and a new flow
/// could take its SNAT port over from under the reopened one); a RST, which closes both (a FIN only its
/// own side).
#[inline(always)]
fn update_partner(key: &CtKey, current: &CtEntry, state: u8, reset: bool, now: u64) {
    let opening = |s: u8| s == CT_STATE_NEW || s == CT_STATE_SYN_RECV;
    let reopened = state == CT_STATE_NEW && current.state != CT_STATE_NEW;
    let both = (opening(current.state)
        && (state == CT_STATE_SYN_RECV || state == CT_STATE_ESTABLISHED))
        || reopened
        || reset;
    if both && let Some(other) = CT_V1.get_ptr_mut(partner(key, current)) {
        // SAFETY: a pointer into the map value; plain fields.
        unsafe {
            (*other).state = state;
            (*other).last_seen_ns = now;
            if reopened {
                // The other side of the new connection has sent nothing yet.
                (*other).seq_seen = 0;
            }
        }
    }
}

/// The state after a packet with `tcp_flags` on entry `key` in `state`. TCP: NEW (the opener's SYN)
/// -> SYN_RECV (the first reply) -> ESTABLISHED (the opener's next ACK) -> CLOSING (a FIN or RST);
/// UDP: NEW -> ESTABLISHED at the first reply.
#[inline(always)]
fn next_state(key: &CtKey, state: u8, tcp_flags: u8) -> u8 {
    if key.proto == PROTO_TCP {
        if tcp_flags & (TCP_FIN | TCP_RST) != 0 {
            return CT_STATE_CLOSING;
        }
        if tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN && key.dir == CT_DIR_FORWARD {
            // A new connection reusing the tuple of a closed one starts over.
            return CT_STATE_NEW;
        }
        if key.dir == CT_DIR_REPLY && state == CT_STATE_NEW {
            return CT_STATE_SYN_RECV;
        }
        if key.dir == CT_DIR_FORWARD && state == CT_STATE_SYN_RECV && tcp_flags & TCP_ACK != 0 {
            return CT_STATE_ESTABLISHED;
        }
        return state;
    }
    if key.dir == CT_DIR_REPLY && state == CT_STATE_NEW {
        return CT_STATE_ESTABLISHED;
    }
    state
}

/// Writes both entries of a new flow (reply first, so a reply racing the first packet finds it).
#[inline(always)]
pub fn create(forward: (&CtKey, &CtEntry), reply: (&CtKey, &CtEntry)) -> Result<(), i32> {
    CT_V1.insert(reply.0, reply.1, 0)?;
    CT_V1.insert(forward.0, forward.1, 0)
}

/// Whether the reply direction `key` (a SNAT port towards a backend) can be given to a new flow: no
/// entry, an expired one, or a TCP flow closed from both sides and quiet for a moment (see
/// [`snat_port_reusable`]). The old flow's entries are deleted then: its forward entry, so its late
/// packets are not translated onto the new flow and the sweeper, expiring it later, cannot delete the
/// new flow's reply entry as its partner; its reply entry, so [`reserve`] can take the port.
#[inline(always)]
pub fn claim_snat(key: &CtKey, now: u64) -> bool {
    // SAFETY: the value is copied out at once.
    let Some(entry) = (unsafe { CT_V1.get(key) }).copied() else {
        return true;
    };
    let forward_key = partner(key, &entry);
    // SAFETY: the value is copied out at once.
    let (forward_state, forward_seen) = match unsafe { CT_V1.get(forward_key) } {
        Some(forward) => (forward.state, forward.last_seen_ns),
        None => (CT_STATE_CLOSING, 0),
    };
    if !snat_port_reusable(
        key.proto,
        entry.state,
        entry.last_seen_ns,
        forward_state,
        forward_seen,
        now,
    ) {
        return false;
    }
    let _ = CT_V1.remove(forward_key);
    let _ = CT_V1.remove(key);
    true
}

/// Writes `entry` under `key` only if no entry is there (`BPF_NOEXIST`): false when another CPU took
/// the key first.
#[inline(always)]
pub fn reserve(key: &CtKey, entry: &CtEntry) -> bool {
    CT_V1.insert(key, entry, u64::from(BPF_NOEXIST)).is_ok()
}
