//! The zone apex, as CoreDNS serves it: the SOA (also the authority of every negative answer), the
//! NS `ns.dns.<zone>.`, and the schema version TXT at `dns-version.<zone>` (specification §2.2).

use hickory_proto::rr::rdata::{NS, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record};

use crate::SCHEMA_VERSION;
use crate::names::fixed_child;

/// TTL of the schema version TXT (specification §2.2, CoreDNS).
pub(crate) const SCHEMA_VERSION_TTL: u32 = 28800;
/// SOA refresh, retry and expire, as CoreDNS sets them.
const SOA_REFRESH: i32 = 7200;
const SOA_RETRY: i32 = 1800;
const SOA_EXPIRE: i32 = 86400;

/// `ns.dns.<zone>.`, the zone's (nominal) name server; the zone itself if that would be too long.
pub(crate) fn name_server(zone: &Name) -> Name {
    fixed_child(zone, "dns")
        .and_then(|dns| fixed_child(&dns, "ns"))
        .unwrap_or_else(|| zone.clone())
}

/// `<zone> <ttl> IN SOA ns.dns.<zone>. hostmaster.<zone>. <serial> 7200 1800 86400 <ttl>`.
pub(crate) fn soa(zone: &Name, ttl: u32, serial: u32) -> Record {
    let hostmaster = fixed_child(zone, "hostmaster").unwrap_or_else(|| zone.clone());
    let soa = SOA::new(
        name_server(zone),
        hostmaster,
        serial,
        SOA_REFRESH,
        SOA_RETRY,
        SOA_EXPIRE,
        ttl,
    );
    Record::from_rdata(zone.clone(), ttl, RData::SOA(soa))
}

/// `<zone> <ttl> IN NS ns.dns.<zone>.`.
pub(crate) fn ns(zone: &Name, ttl: u32) -> Record {
    Record::from_rdata(zone.clone(), ttl, RData::NS(NS(name_server(zone))))
}

/// `dns-version.<zone> 28800 IN TXT "1.1.0"`, unless the zone name leaves no room for it.
pub(crate) fn schema_version(zone: &Name) -> Option<Record> {
    let owner = fixed_child(zone, "dns-version")?;
    let txt = TXT::new(vec![SCHEMA_VERSION.to_owned()]);
    Some(Record::from_rdata(
        owner,
        SCHEMA_VERSION_TTL,
        RData::TXT(txt),
    ))
}
