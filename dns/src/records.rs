//! Resource records as the zone stores them: canonical owner names, one TTL, canonical order without
//! duplicates, and SRV weights shared out over each RRset (priority 0, weight 100/N, as CoreDNS).

use std::net::IpAddr;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The weight of each of `count` SRV records answered together (CoreDNS: two get 50, six get 16).
pub(crate) fn srv_weight(count: usize) -> u16 {
    u16::try_from(100 / count.max(1)).unwrap_or(0)
}

/// An A or AAAA record.
pub(crate) fn address(owner: Name, address: IpAddr, ttl: u32) -> Record {
    let data = match address {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner, ttl, data)
}

/// An SRV record, priority 0; its weight is set by [`normalise`].
pub(crate) fn srv(owner: Name, port: u16, target: Name, ttl: u32) -> Record {
    Record::from_rdata(owner, ttl, RData::SRV(SRV::new(0, 0, port, target)))
}

pub(crate) fn ptr(owner: Name, target: Name, ttl: u32) -> Record {
    Record::from_rdata(owner, ttl, RData::PTR(PTR(target)))
}

pub(crate) fn cname(owner: Name, target: Name, ttl: u32) -> Record {
    Record::from_rdata(owner, ttl, RData::CNAME(CNAME(target)))
}

/// Sorts the records canonically, drops duplicates, and gives each SRV RRset weight 100/N.
pub(crate) fn normalise(records: &mut Vec<Record>) {
    for record in records.iter_mut() {
        if let RData::SRV(srv) = &mut record.data {
            srv.weight = 0;
        }
    }
    records.sort();
    records.dedup();
    let same_rrset =
        |a: &Record, b: &Record| a.name == b.name && a.record_type() == b.record_type();
    for rrset in records.chunk_by_mut(same_rrset) {
        let weight = srv_weight(rrset.len());
        for record in rrset {
            if let RData::SRV(srv) = &mut record.data {
                srv.weight = weight;
            }
        }
    }
}

/// Whether the record is an A or AAAA record (what SRV additionals carry).
pub(crate) fn is_address(record: &Record) -> bool {
    matches!(record.record_type(), RecordType::A | RecordType::AAAA)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("name")
    }

    fn weights(records: &[Record]) -> Vec<u16> {
        records
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(srv) => Some(srv.weight),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn weights_follow_coredns() {
        assert_eq!(srv_weight(1), 100);
        assert_eq!(srv_weight(2), 50);
        assert_eq!(srv_weight(6), 16);
        assert_eq!(srv_weight(101), 0);
        assert_eq!(srv_weight(0), 100);
    }

    #[test]
    fn normalise_dedups_then_shares_weight_per_rrset() {
        let owner_a = name("_http._tcp.a.ns.svc.cluster.local.");
        let owner_b = name("_http._tcp.b.ns.svc.cluster.local.");
        let target = |t: &str| name(&format!("{t}.a.ns.svc.cluster.local."));
        let mut records = vec![
            srv(owner_a.clone(), 80, target("x"), 30),
            srv(owner_a.clone(), 80, target("y"), 30),
            srv(owner_a.clone(), 80, target("x"), 30),
            srv(owner_b, 80, target("x"), 30),
        ];
        records[2].data = RData::SRV(SRV::new(0, 100, 80, target("x")));
        normalise(&mut records);
        assert_eq!(records.len(), 3);
        assert_eq!(weights(&records), [50, 50, 100]);
    }
}
