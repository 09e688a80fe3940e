//! Packet fixtures for the per-packet service path through BPF_PROG_TEST_RUN on the real verified
//! programs (`from_pod`, `from_uplink`, `xdp_uplink`, `dns_fast`): services are written with
//! `sync_services`, frames are built with correct checksums, and each case checks the verdict, the
//! output frame (checksums recomputed in full here), the per-reason counter and the CT map.
//!
//! Under test-run every frame arrives on the namespace's loopback (ifindex 1), so both fixture pods are
//! registered behind it: either may send without tripping the anti-spoofing check.
//!
//! `harness` holds the shared setup and frame helpers; `flows` the translated flows (DNAT, reverse NAT,
//! CT states, SNAT, hairpin, Maglev, the XDP fast path); `expiry` how long one-way and half-closed flows
//! live; `refusals` everything that is refused, dropped or swept; `resets` which TCP resets may close a
//! flow; `icmp_errors` and `fragments` how errors about translated flows and fragmented datagrams are
//! translated; `overlay` what goes to other nodes; `tunnel_mtu` what is too big for the tunnel; `policy`
//! NetworkPolicy's judgements; `dns_fast` the kernel DNS fast path's answers and the queries it
//! passes on.

mod dns_fast;
mod expiry;
mod flows;
mod fragments;
mod harness;
mod icmp_errors;
mod overlay;
mod policy;
mod refusals;
mod resets;
mod tunnel_mtu;
