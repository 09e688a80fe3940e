//! IPAM: hands out pod addresses from the node's pod CIDR. The network and broadcast addresses are never
//! given out; the allocator prefers the lowest free address after the last one handed out, so a freed
//! address is not reused at once.

use std::{collections::BTreeSet, net::Ipv4Addr};

use ipnet::Ipv4Net;

/// Why an address could not be allocated or reserved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IpamError {
    #[error("pod CIDR {cidr} has no free address ({used} in use)")]
    Exhausted { cidr: Ipv4Net, used: usize },
    #[error("address {addr} is outside pod CIDR {cidr}")]
    OutOfRange { addr: Ipv4Addr, cidr: Ipv4Net },
    #[error("address {addr} is already allocated")]
    InUse { addr: Ipv4Addr },
    #[error("pod CIDR {cidr} is too small: it needs at least two usable addresses")]
    TooSmall { cidr: Ipv4Net },
}

/// Allocator over one IPv4 CIDR.
#[derive(Debug, Clone)]
pub struct Ipam {
    cidr: Ipv4Net,
    used: BTreeSet<Ipv4Addr>,
    next: u32,
}

impl Ipam {
    /// A new allocator; the CIDR must leave at least two usable addresses (a /30 or larger).
    pub fn new(cidr: Ipv4Net) -> Result<Self, IpamError> {
        let cidr = cidr.trunc();
        if cidr.prefix_len() > 30 {
            return Err(IpamError::TooSmall { cidr });
        }
        Ok(Self {
            cidr,
            used: BTreeSet::new(),
            next: u32::from(cidr.network()) + 1,
        })
    }

    /// The CIDR this allocator serves.
    pub fn cidr(&self) -> Ipv4Net {
        self.cidr
    }

    /// Number of addresses that can be handed out.
    pub fn capacity(&self) -> usize {
        (u32::from(self.cidr.broadcast()) - u32::from(self.cidr.network()) - 1) as usize
    }

    /// Number of addresses in use.
    pub fn used(&self) -> usize {
        self.used.len()
    }

    fn first(&self) -> u32 {
        u32::from(self.cidr.network()) + 1
    }

    fn last(&self) -> u32 {
        u32::from(self.cidr.broadcast()) - 1
    }

    /// Hands out a free address.
    pub fn allocate(&mut self) -> Result<Ipv4Addr, IpamError> {
        let (first, last) = (self.first(), self.last());
        let start = self.next.clamp(first, last);
        let candidates = (start..=last).chain(first..start);
        for raw in candidates {
            let addr = Ipv4Addr::from(raw);
            if !self.used.contains(&addr) {
                self.used.insert(addr);
                self.next = if raw == last { first } else { raw + 1 };
                return Ok(addr);
            }
        }
        Err(IpamError::Exhausted {
            cidr: self.cidr,
            used: self.used.len(),
        })
    }

    /// Marks `addr` as used (restoring state after a restart).
    pub fn reserve(&mut self, addr: Ipv4Addr) -> Result<(), IpamError> {
        let raw = u32::from(addr);
        if !self.cidr.contains(&addr) || raw < self.first() || raw > self.last() {
            return Err(IpamError::OutOfRange {
                addr,
                cidr: self.cidr,
            });
        }
        if !self.used.insert(addr) {
            return Err(IpamError::InUse { addr });
        }
        if raw >= self.next {
            self.next = raw + 1;
        }
        Ok(())
    }

    /// Returns `addr` to the pool; returns whether it was in use.
    pub fn release(&mut self, addr: Ipv4Addr) -> bool {
        self.used.remove(&addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(cidr: &str) -> Ipam {
        Ipam::new(cidr.parse().unwrap()).unwrap()
    }

    #[test]
    fn skips_network_and_broadcast_addresses() {
        let mut ipam = ipam("10.244.0.0/30");
        assert_eq!(ipam.capacity(), 2);
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 0, 1));
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 0, 2));
        assert!(matches!(
            ipam.allocate(),
            Err(IpamError::Exhausted { used: 2, .. })
        ));
    }

    #[test]
    fn freed_address_is_not_reused_at_once() {
        let mut ipam = ipam("10.244.1.0/24");
        let a = ipam.allocate().unwrap();
        let b = ipam.allocate().unwrap();
        assert!(ipam.release(a));
        let c = ipam.allocate().unwrap();
        assert_ne!(c, a);
        assert_ne!(c, b);
    }

    #[test]
    fn wraps_around_to_freed_addresses_when_the_end_is_reached() {
        let mut ipam = ipam("10.0.0.0/29");
        let all: Vec<_> = (0..6).map(|_| ipam.allocate().unwrap()).collect();
        assert_eq!(all.first(), Some(&Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(all.last(), Some(&Ipv4Addr::new(10, 0, 0, 6)));
        ipam.release(Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 0, 0, 3));
    }

    #[test]
    fn reserve_rejects_foreign_and_duplicate_addresses() {
        let mut ipam = ipam("10.244.0.0/24");
        assert_eq!(
            ipam.reserve(Ipv4Addr::new(10, 244, 1, 5)),
            Err(IpamError::OutOfRange {
                addr: Ipv4Addr::new(10, 244, 1, 5),
                cidr: "10.244.0.0/24".parse().unwrap()
            })
        );
        assert!(ipam.reserve(Ipv4Addr::new(10, 244, 0, 0)).is_err());
        ipam.reserve(Ipv4Addr::new(10, 244, 0, 7)).unwrap();
        assert_eq!(
            ipam.reserve(Ipv4Addr::new(10, 244, 0, 7)),
            Err(IpamError::InUse {
                addr: Ipv4Addr::new(10, 244, 0, 7)
            })
        );
        // Allocation continues after the highest reserved address.
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 0, 8));
    }

    #[test]
    fn tiny_cidrs_are_refused() {
        assert!(matches!(
            Ipam::new("10.0.0.0/31".parse().unwrap()),
            Err(IpamError::TooSmall { .. })
        ));
    }
}
