//! The CT map: connection tracking for the per-packet service path (flows the socket hooks did not
//! translate, and every flow from outside the cluster). Each translated flow has two entries, one per
//! direction, keyed by the tuple as it appears on the wire in that direction; the value is the tuple to
//! rewrite it to. The map is an LRU hash (a full table evicts the oldest flow); user space also deletes
//! entries idle for longer than their state's timeout ([`ct_timeout_ns`]).

/// Key of CT_V1: a flow as seen on the wire (addresses and ports in network byte order).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtKey {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
    /// IANA protocol number.
    pub proto: u8,
    /// [`CT_DIR_FORWARD`] or [`CT_DIR_REPLY`].
    pub dir: u8,
    pub pad: u16,
}

/// Value of CT_V1: what the packet becomes and how it leaves.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtEntry {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) when a packet last used the entry.
    pub last_seen_ns: u64,
    /// Rewritten source address and port (network byte order).
    pub new_saddr: u32,
    pub new_sport: u16,
    /// Rewritten destination port (network byte order).
    pub new_dport: u16,
    /// Rewritten destination address (network byte order).
    pub new_daddr: u32,
    /// One of `CT_STATE_*`.
    pub state: u8,
    /// `CT_F_*` flags.
    pub flags: u8,
    /// TCP: 1 once a segment of this direction was seen and [`CtEntry::seq_end`] holds its end.
    pub seq_seen: u8,
    pub pad: u8,
    /// The frontend's service id (host byte order), for accounting.
    pub service_id: u32,
    /// TCP: the sequence number after the furthest segment this direction sent (its `seq` plus payload,
    /// SYN and FIN; host byte order): what the other side acknowledges at most. A RST must lie close
    /// below it to count ([`rst_plausible`]).
    pub seq_end: u32,
}

/// Entry for packets travelling in the direction of the first packet.
pub const CT_DIR_FORWARD: u8 = 0;
/// Entry for the replies.
pub const CT_DIR_REPLY: u8 = 1;

/// TCP: only the opening side has been seen (or a UDP flow without a reply yet).
pub const CT_STATE_NEW: u8 = 0;
/// Both sides have been seen (TCP: the handshake completed; UDP: a reply came).
pub const CT_STATE_ESTABLISHED: u8 = 1;
/// TCP: a FIN or RST was seen.
pub const CT_STATE_CLOSING: u8 = 2;
/// TCP: the answering side replied (SYN-ACK) but the opener has not acknowledged it yet. Short-lived
/// like [`CT_STATE_NEW`]: a client that sends SYNs and never completes the handshake must not hold SNAT
/// ports for the established timeout.
pub const CT_STATE_SYN_RECV: u8 = 3;

/// The source was rewritten too (SNAT for `externalTrafficPolicy: Cluster`, hairpin).
pub const CT_F_SNAT: u8 = 1;
/// After the rewrite the packet leaves through the node's uplink (its destination is outside the node).
pub const CT_F_TO_UPLINK: u8 = 2;

/// Source address for hairpin flows (a pod reaching itself through a service address by packet): the
/// pod would drop a packet whose source is its own address. Link-local, never routed.
pub const HAIRPIN_SNAT_ADDR: [u8; 4] = [169, 254, 42, 1];
/// First source port the per-packet path allocates for SNAT (above Linux's default ephemeral range
/// 32768-60999, so SNATed flows never collide with the node's own connections).
pub const SNAT_PORT_MIN: u16 = 61_000;
/// Number of ports in the SNAT range (61000-65535).
pub const SNAT_PORT_COUNT: u16 = 4_536;

const SECOND_NS: u64 = 1_000_000_000;

/// How long an entry may stay unused in `state` before it is expired (nanoseconds). TCP follows Cilium's
/// defaults (handshake 60 s, whether only the SYN or also the SYN-ACK was seen; established 6 h; closing
/// 10 s); UDP follows Linux conntrack (30 s until a reply, then 120 s).
pub const fn ct_timeout_ns(proto: u8, state: u8) -> u64 {
    match (proto, state) {
        (6, CT_STATE_ESTABLISHED) => 21_600 * SECOND_NS,
        (6, CT_STATE_CLOSING) => 10 * SECOND_NS,
        (6, _) => 60 * SECOND_NS,
        (_, CT_STATE_ESTABLISHED) => 120 * SECOND_NS,
        _ => 30 * SECOND_NS,
    }
}

/// Whether an entry last used at `last_seen_ns` has expired at `now_ns`.
pub const fn ct_expired(proto: u8, state: u8, last_seen_ns: u64, now_ns: u64) -> bool {
    now_ns.saturating_sub(last_seen_ns) > ct_timeout_ns(proto, state)
}

/// The timeout of a flow whose two entries are in `a` and `b` (see [`flow_expired`]): TCP closes only
/// once both sides have (a half-closed flow is established until its open side is done), is established
/// once either entry is, and is in its handshake otherwise; UDP is established once a reply came.
pub const fn flow_timeout_ns(proto: u8, a: u8, b: u8) -> u64 {
    let state = if proto == 6 && a == CT_STATE_CLOSING && b == CT_STATE_CLOSING {
        CT_STATE_CLOSING
    } else if a == CT_STATE_ESTABLISHED || b == CT_STATE_ESTABLISHED {
        CT_STATE_ESTABLISHED
    } else {
        CT_STATE_NEW
    };
    ct_timeout_ns(proto, state)
}

/// Whether a flow has expired at `now_ns`: the later use of its two entries against the flow's timeout
/// ([`flow_timeout_ns`]). A flow quiet in one direction (a one-way UDP stream, a half-closed TCP flow)
/// lives as long as the other direction is used. Never sooner than [`ct_expired`] says of either entry
/// alone, so an entry that is not expired by itself needs no look at its partner.
pub const fn flow_expired(
    proto: u8,
    a_state: u8,
    a_seen_ns: u64,
    b_state: u8,
    b_seen_ns: u64,
    now_ns: u64,
) -> bool {
    let last_seen = if a_seen_ns > b_seen_ns {
        a_seen_ns
    } else {
        b_seen_ns
    };
    now_ns.saturating_sub(last_seen) > flow_timeout_ns(proto, a_state, b_state)
}

/// How long a TCP flow closed from both sides (a FIN each way, or a RST) must have been quiet before its
/// SNAT port may go to a new flow. Only the last ACK and retransmissions can still follow; netfilter
/// likewise lets NAT reuse the tuple of a connection in TIME_WAIT. Holding the port for the whole closing
/// timeout (10 s) would cap new SNATed connections at about 450/s per backend; 1 s held the range
/// (4,536 ports) so full at netbench's ~3,000 connections/s that 16 random tries failed a few times a
/// second; 100 ms leaves it about 7 % full at that rate.
pub const SNAT_REUSE_CLOSED_NS: u64 = SECOND_NS / 10;

/// Whether the SNAT port held by a flow is free at `now_ns`. `reply_*` describe the entry of the port
/// (the reply direction), `forward_*` its partner (a missing partner counts as closed at time 0). The
/// port is free once the flow has expired ([`flow_expired`]), or once a TCP flow has been closed from both
/// sides and quiet for [`SNAT_REUSE_CLOSED_NS`]. A half-closed flow keeps its port: the open side may
/// still send.
pub const fn snat_port_reusable(
    proto: u8,
    reply_state: u8,
    reply_seen_ns: u64,
    forward_state: u8,
    forward_seen_ns: u64,
    now_ns: u64,
) -> bool {
    if flow_expired(
        proto,
        reply_state,
        reply_seen_ns,
        forward_state,
        forward_seen_ns,
        now_ns,
    ) {
        return true;
    }
    let last_seen = if reply_seen_ns > forward_seen_ns {
        reply_seen_ns
    } else {
        forward_seen_ns
    };
    proto == 6
        && reply_state == CT_STATE_CLOSING
        && forward_state == CT_STATE_CLOSING
        && now_ns.saturating_sub(last_seen) >= SNAT_REUSE_CLOSED_NS
}

/// How far below the furthest sequence number a direction sent a RST of that direction may lie and
/// still close the flow: netfilter allows the receiver's largest window; strait does not learn window
/// scales, so it allows 1 MiB (a typical scaled window; Linux's default maximum receive buffer is 6 MiB
/// but windows that large are rare). A blind attacker must guess within 1 MiB of 4 GiB per try.
pub const RST_WINDOW: u32 = 1 << 20;

/// Whether `a` comes after `b` in TCP sequence space (RFC 1982 serial arithmetic).
pub const fn seq_after(a: u32, b: u32) -> bool {
    a.wrapping_sub(b).cast_signed() > 0
}

/// Whether a RST (sequence number `seq`, acknowledgment `ack` when `has_ack`) sent in the direction of
/// `sender` may close the flow whose other direction is `receiver`, as an endpoint could have sent it.
/// Once the sender's segments have been seen its RST must lie within [`RST_WINDOW`] below (or at) the
/// end of what it sent: a RST from a live socket carries its next sequence number, a RST answering a
/// stray segment carries that segment's acknowledgment, which is at most that. A side that has sent
/// nothing yet (the answer to a SYN) may only refuse it: with ACK, acknowledging exactly the opener's
/// SYN (RFC 9293's rule for SYN-SENT). Anything else is a blind or stale reset and must not tear the
/// flow down (netfilter marks it INVALID, and kube-proxy drops INVALID packets).
pub const fn rst_plausible(
    sender: &CtEntry,
    receiver: &CtEntry,
    seq: u32,
    ack: u32,
    has_ack: bool,
) -> bool {
    if sender.seq_seen != 0 {
        return sender.seq_end.wrapping_sub(seq) <= RST_WINDOW;
    }
    has_ack && receiver.seq_seen != 0 && receiver.seq_end == ack
}

/// The key of the other direction's entry of the flow `key`/`entry` belongs to: packets of the other
/// direction, once rewritten, are this entry's rewritten tuple reversed, so the partner's key is that
/// tuple reversed.
#[inline]
pub const fn partner(key: &CtKey, entry: &CtEntry) -> CtKey {
    CtKey {
        saddr: entry.new_daddr,
        daddr: entry.new_saddr,
        sport: entry.new_dport,
        dport: entry.new_sport,
        proto: key.proto,
        dir: if key.dir == CT_DIR_FORWARD {
            CT_DIR_REPLY
        } else {
            CT_DIR_FORWARD
        },
        pad: 0,
    }
}

const _: () = assert!(core::mem::size_of::<CtKey>() == 16);
const _: () = assert!(core::mem::size_of::<CtEntry>() == 32);

#[cfg(feature = "user")]
mod pod {
    use super::{CtEntry, CtKey};
    // SAFETY (both): plain-old-data, `#[repr(C)]`, no implicit padding (checked by the size assertions).
    unsafe impl aya::Pod for CtKey {}
    unsafe impl aya::Pod for CtEntry {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: u8 = 6;
    const UDP: u8 = 17;

    fn sent_up_to(seq_end: u32) -> CtEntry {
        CtEntry {
            seq_seen: 1,
            seq_end,
            ..CtEntry::default()
        }
    }

    #[test]
    fn a_rst_counts_only_near_the_end_of_what_its_sender_sent() {
        let receiver = sent_up_to(7);
        // Near the sender's next sequence number, across the wrap too.
        for end in [5_000, 100, u32::MAX - 3] {
            let sender = sent_up_to(end);
            assert!(rst_plausible(&sender, &receiver, end, 0, false), "{end}");
            assert!(rst_plausible(
                &sender,
                &receiver,
                end.wrapping_sub(RST_WINDOW),
                0,
                false
            ));
            assert!(!rst_plausible(
                &sender,
                &receiver,
                end.wrapping_sub(RST_WINDOW + 1),
                0,
                false
            ));
            // Beyond what the sender ever sent: forged.
            assert!(
                !rst_plausible(&sender, &receiver, end.wrapping_add(1), 0, false),
                "{end}"
            );
            assert!(!rst_plausible(
                &sender,
                &receiver,
                end.wrapping_add(1 << 31),
                7,
                true
            ));
        }
    }

    #[test]
    fn a_side_that_sent_nothing_may_only_refuse_the_syn() {
        let silent = CtEntry::default();
        let opener = sent_up_to(1_001);
        assert!(rst_plausible(&silent, &opener, 0, 1_001, true));
        assert!(
            !rst_plausible(&silent, &opener, 0, 1_002, true),
            "wrong ack"
        );
        assert!(
            !rst_plausible(&silent, &opener, 0, 1_001, false),
            "no ACK flag"
        );
        assert!(
            !rst_plausible(&silent, &CtEntry::default(), 0, 0, true),
            "nothing known"
        );
    }

    #[test]
    fn sequence_numbers_compare_across_the_wrap() {
        assert!(seq_after(2, 1));
        assert!(!seq_after(1, 2));
        assert!(!seq_after(5, 5));
        assert!(seq_after(3, u32::MAX - 2));
        assert!(!seq_after(u32::MAX - 2, 3));
    }

    #[test]
    fn a_tcp_flow_closed_from_both_sides_gives_up_its_snat_port_after_a_quiet_moment() {
        let seen = 100 * SECOND_NS;
        let closed = |reply_seen, forward_seen, now| {
            snat_port_reusable(
                TCP,
                CT_STATE_CLOSING,
                reply_seen,
                CT_STATE_CLOSING,
                forward_seen,
                now,
            )
        };
        assert!(!closed(seen, seen, seen));
        assert!(!closed(seen, seen, seen + SNAT_REUSE_CLOSED_NS - 1));
        assert!(closed(seen, seen, seen + SNAT_REUSE_CLOSED_NS));
        // The later of the two directions counts.
        let later = seen + SECOND_NS;
        assert!(!closed(seen, later, later + SNAT_REUSE_CLOSED_NS - 1));
        assert!(!closed(later, seen, later + SNAT_REUSE_CLOSED_NS - 1));
        assert!(closed(later, seen, later + SNAT_REUSE_CLOSED_NS));
    }

    #[test]
    fn a_half_closed_or_open_flow_keeps_its_snat_port_until_it_expires() {
        let seen = 100 * SECOND_NS;
        for (reply, forward) in [
            (CT_STATE_ESTABLISHED, CT_STATE_CLOSING),
            (CT_STATE_CLOSING, CT_STATE_ESTABLISHED),
            (CT_STATE_ESTABLISHED, CT_STATE_ESTABLISHED),
        ] {
            let reusable = |now| snat_port_reusable(TCP, reply, seen, forward, seen, now);
            assert!(!reusable(seen + 5 * SECOND_NS), "{reply}/{forward}");
            // A half-closed flow is established until its open side is done.
            let established = ct_timeout_ns(TCP, CT_STATE_ESTABLISHED);
            assert!(!reusable(seen + established), "{reply}/{forward}");
            assert!(reusable(seen + established + 1), "{reply}/{forward}");
        }
        assert!(!snat_port_reusable(
            TCP,
            CT_STATE_NEW,
            seen,
            CT_STATE_NEW,
            seen,
            seen + 2 * SECOND_NS
        ));
        assert!(snat_port_reusable(
            TCP,
            CT_STATE_NEW,
            seen,
            CT_STATE_NEW,
            seen,
            seen + 61 * SECOND_NS
        ));
    }

    /// A half-open handshake (the backend answered, the client never acknowledged) gives its SNAT port
    /// back after the handshake timeout, not the established one: a few thousand SYNs must not block a
    /// NodePort's backend for hours.
    #[test]
    fn a_half_open_handshake_frees_its_snat_port_after_a_minute() {
        let seen = 100 * SECOND_NS;
        assert_eq!(ct_timeout_ns(TCP, CT_STATE_SYN_RECV), 60 * SECOND_NS);
        let reusable =
            |now| snat_port_reusable(TCP, CT_STATE_SYN_RECV, seen, CT_STATE_SYN_RECV, seen, now);
        assert!(!reusable(seen + 59 * SECOND_NS));
        assert!(reusable(seen + 61 * SECOND_NS));
    }

    /// A flow lives as long as either direction is used: a one-way UDP stream, a half-closed TCP flow
    /// whose open side still sends. The closing timeout applies once both sides have closed.
    #[test]
    fn a_flow_expires_on_the_later_of_its_directions() {
        let old = 100 * SECOND_NS;
        let recent = old + 100 * SECOND_NS;
        let now = recent + SECOND_NS;
        // UDP: the reply entry has been silent for 101 s, the forward one is in use.
        assert!(ct_expired(
            UDP,
            CT_STATE_ESTABLISHED,
            old,
            now + 30 * SECOND_NS
        ));
        assert!(!flow_expired(
            UDP,
            CT_STATE_ESTABLISHED,
            old,
            CT_STATE_ESTABLISHED,
            recent,
            now
        ));
        assert!(flow_expired(
            UDP,
            CT_STATE_ESTABLISHED,
            old,
            CT_STATE_ESTABLISHED,
            recent,
            recent + 121 * SECOND_NS
        ));
        // TCP half-closed: the closed side quiet for 101 s, the open side sending.
        assert!(ct_expired(TCP, CT_STATE_CLOSING, old, now));
        assert!(!flow_expired(
            TCP,
            CT_STATE_CLOSING,
            old,
            CT_STATE_ESTABLISHED,
            recent,
            now
        ));
        // Closed from both sides: the closing timeout from the later close.
        assert!(!flow_expired(
            TCP,
            CT_STATE_CLOSING,
            old,
            CT_STATE_CLOSING,
            recent,
            recent + 10 * SECOND_NS
        ));
        assert!(flow_expired(
            TCP,
            CT_STATE_CLOSING,
            old,
            CT_STATE_CLOSING,
            recent,
            recent + 11 * SECOND_NS
        ));
        // A handshake that never completed, with a FIN thrown in, keeps the handshake's timeout.
        assert!(flow_expired(
            TCP,
            CT_STATE_CLOSING,
            old,
            CT_STATE_SYN_RECV,
            old,
            old + 61 * SECOND_NS
        ));
        // Never sooner than either entry alone.
        for (a, b) in [
            (CT_STATE_NEW, CT_STATE_NEW),
            (CT_STATE_SYN_RECV, CT_STATE_ESTABLISHED),
            (CT_STATE_CLOSING, CT_STATE_ESTABLISHED),
            (CT_STATE_CLOSING, CT_STATE_CLOSING),
        ] {
            for proto in [TCP, UDP] {
                assert!(flow_timeout_ns(proto, a, b) >= ct_timeout_ns(proto, a));
                assert!(flow_timeout_ns(proto, a, b) >= ct_timeout_ns(proto, b));
            }
        }
    }

    #[test]
    fn udp_has_no_close_to_see() {
        let seen = 100 * SECOND_NS;
        let reusable =
            |now| snat_port_reusable(UDP, CT_STATE_CLOSING, seen, CT_STATE_CLOSING, seen, now);
        assert!(!reusable(seen + 2 * SECOND_NS));
        assert!(reusable(seen + 31 * SECOND_NS));
    }
}
