//! `GET /conntrack`: the CT table of the per-packet service path, filtered by the agent
//! (`src`, `dst`: an address on either side of the translation; `port`: any of the four ports;
//! `proto`: tcp, udp or icmp; `limit`, 1000 by default), as a JSON array, one object per direction
//! of each flow.

use std::net::Ipv4Addr;

use serde_json::{Value, json};
use strait_dataplane::conntrack_view::{ConntrackReader, TrackedFlow};

/// The most entries one answer holds.
pub const MAX_LIMIT: usize = 100_000;

/// A `/conntrack` query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CtQuery {
    pub src: Option<Ipv4Addr>,
    pub dst: Option<Ipv4Addr>,
    pub port: Option<u16>,
    pub proto: Option<String>,
    pub limit: Option<usize>,
}

impl CtQuery {
    /// Reads `src=..&dst=..&port=..&proto=..&limit=..`; an unknown key or a bad value is an error
    /// that says what is accepted.
    pub fn parse(query: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let addr = |v: &str| {
                v.parse::<Ipv4Addr>()
                    .map_err(|_| format!("{key}={v}: not an IPv4 address"))
            };
            match key {
                "src" => out.src = Some(addr(value)?),
                "dst" => out.dst = Some(addr(value)?),
                "port" => {
                    out.port = Some(
                        value
                            .parse()
                            .map_err(|_| format!("port={value}: not a port number"))?,
                    );
                }
                "proto" => {
                    let proto = value.to_ascii_uppercase();
                    if !matches!(proto.as_str(), "TCP" | "UDP" | "ICMP") {
                        return Err(format!("proto={value}: use tcp, udp or icmp"));
                    }
                    out.proto = Some(proto);
                }
                "limit" => {
                    out.limit = Some(
                        value
                            .parse::<usize>()
                            .ok()
                            .filter(|l| (1..=MAX_LIMIT).contains(l))
                            .ok_or_else(|| format!("limit={value}: 1 to {MAX_LIMIT}"))?,
                    );
                }
                other => {
                    return Err(format!(
                        "unknown filter {other:?}: use src, dst, port, proto or limit"
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Whether `flow` passes every filter given.
    pub fn matches(&self, flow: &TrackedFlow) -> bool {
        self.src
            .is_none_or(|a| flow.source.0 == a || flow.new_source.0 == a)
            && self
                .dst
                .is_none_or(|a| flow.destination.0 == a || flow.new_destination.0 == a)
            && self.port.is_none_or(|p| {
                [
                    flow.source,
                    flow.destination,
                    flow.new_source,
                    flow.new_destination,
                ]
                .iter()
                .any(|(_, port)| *port == p)
            })
            && self.proto.as_deref().is_none_or(|p| flow.protocol == p)
    }
}

fn endpoint((addr, port): (Ipv4Addr, u16)) -> String {
    format!("{addr}:{port}")
}

/// One flow direction as `/conntrack` shows it.
pub fn flow_json(flow: &TrackedFlow) -> Value {
    json!({
        "protocol": flow.protocol,
        "direction": flow.direction,
        "source": endpoint(flow.source),
        "destination": endpoint(flow.destination),
        "new_source": endpoint(flow.new_source),
        "new_destination": endpoint(flow.new_destination),
        "state": flow.state,
        "flags": flow.flags,
        "idle_ms": flow.idle_ms,
        "service_id": flow.service_id,
    })
}

/// Answers `query` from `reader`: the JSON text, or why not.
pub fn answer(reader: &ConntrackReader, query: &str) -> Result<String, String> {
    let query = CtQuery::parse(query)?;
    let limit = query.limit.unwrap_or(1000);
    let flows = reader
        .flows(|f| query.matches(f), limit)
        .map_err(|e| format!("reading the CT map: {e}"))?;
    let list: Vec<Value> = flows.iter().map(flow_json).collect();
    Ok(format!("{}\n", Value::Array(list)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> TrackedFlow {
        TrackedFlow {
            protocol: "TCP".into(),
            direction: "forward",
            source: (Ipv4Addr::new(172, 30, 0, 2), 40000),
            destination: (Ipv4Addr::new(172, 30, 0, 11), 30080),
            new_source: (Ipv4Addr::new(172, 30, 0, 11), 61000),
            new_destination: (Ipv4Addr::new(10, 244, 2, 7), 80),
            state: "established",
            flags: vec!["snat"],
            idle_ms: 5,
            service_id: 2,
        }
    }

    #[test]
    fn filters_match_either_side_of_the_translation() {
        let q = |s: &str| CtQuery::parse(s).unwrap();
        assert!(q("").matches(&flow()));
        assert!(q("src=172.30.0.2").matches(&flow()));
        assert!(q("dst=10.244.2.7&port=80&proto=tcp").matches(&flow()));
        assert!(!q("proto=udp").matches(&flow()));
        assert!(!q("port=81").matches(&flow()));
        assert!(!q("src=10.0.0.1").matches(&flow()));
        assert!(CtQuery::parse("src=nope").unwrap_err().contains("IPv4"));
        assert!(
            CtQuery::parse("proto=sctp")
                .unwrap_err()
                .contains("tcp, udp or icmp")
        );
        assert!(CtQuery::parse("limit=0").is_err());
        assert!(
            CtQuery::parse("colour=red")
                .unwrap_err()
                .contains("src, dst")
        );
        let json = flow_json(&flow());
        assert_eq!(json["new_destination"], "10.244.2.7:80");
        assert_eq!(json["flags"][0], "snat");
    }
}
