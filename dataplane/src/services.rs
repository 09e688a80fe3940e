//! Service load-balancing entries as the data path sees them: a virtual address and port with an ordered
//! list of backends. This is the domain type the control plane produces; the typed map access that
//! programs it into the kernel lives beside it.

use std::net::Ipv4Addr;

/// Transport protocol of a service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L4Proto {
    Tcp,
    Udp,
}

impl L4Proto {
    /// IANA protocol number.
    pub const fn number(self) -> u8 {
        match self {
            L4Proto::Tcp => 6,
            L4Proto::Udp => 17,
        }
    }
}

/// A service frontend: virtual IP, port and protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub vip: Ipv4Addr,
    pub port: u16,
    pub proto: L4Proto,
}

/// One backend of a service frontend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Backend {
    pub addr: Ipv4Addr,
    pub port: u16,
}

/// An IPv4 prefix (`addr/len`, host bits zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

/// How clients from outside the cluster use a frontend (NodePort, LoadBalancer ingress IP, externalIP).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExternalAccess {
    /// `externalTrafficPolicy: Local`: clients keep their source address (no SNAT) and the backends are
    /// this node's endpoints.
    pub local: bool,
    /// `loadBalancerSourceRanges`: only these prefixes may connect; empty lets everyone in.
    pub source_ranges: Vec<Prefix>,
}

/// A frontend and its backends, in slot order (the order is part of the entry: same order, same slots).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    pub key: ServiceKey,
    pub backends: Vec<Backend>,
    /// `sessionAffinity: ClientIP`: how long (seconds) a client keeps its backend after its last
    /// connection; `None` picks a backend per connection.
    pub affinity_timeout_s: Option<u32>,
    /// Set for frontends reached from outside the cluster: the per-packet path picks their backends with
    /// a Maglev table.
    pub external: Option<ExternalAccess>,
    /// The frontend's traffic policy is `Local` and its Service has ready endpoints, none on this node
    /// (`backends` is empty): packets are dropped without an answer instead of refused.
    pub endpoints_elsewhere: bool,
}
