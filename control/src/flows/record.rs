//! A verdict as operators read it ([`FlowRecord`]): when (wall clock), which node, which way, the
//! decision and what made it, the protocol, both ends with the pods holding their addresses, and the
//! policy (or the policies whose default deny) that decided. Served one JSON object a line; the shape
//! is documented on [`FlowRecord`] and mirrored by the CLI (`lab/src/flows.rs`).

use std::net::Ipv4Addr;

use serde::Serialize;
use strait_dataplane::policy_events::{DecidedBy, Verdict, monotonic_ns};

use super::names::NameView;

/// One end of a flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Party {
    pub ip: Ipv4Addr,
    /// `None` for protocols without ports (ICMP carries its echo identifier there, not a port).
    pub port: Option<u16>,
    /// `namespace/name` of the pod holding the address, when one does (as this node last saw).
    pub pod: Option<String>,
}

/// One verdict, resolved. JSON:
///
/// ```json
/// {"seq":12,"time":"2025-12-02T18:21:03.120Z","time_ms":1764699663120,"node":"node-1",
///  "direction":"ingress","verdict":"denied","by":"default-deny","protocol":"TCP",
///  "from":{"ip":"10.244.1.5","port":43512,"pod":"x/a"},"to":{"ip":"10.244.2.7","port":80,"pod":"y/b"},
///  "policy":null,"rule":null,"isolated_by":["y/deny-all"]}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowRecord {
    /// This agent's sequence number: increasing, one per verdict (restarts at 1 with the agent).
    pub seq: u64,
    /// When the data path judged it: RFC 3339, UTC, milliseconds.
    pub time: String,
    /// The same instant in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The node that judged it.
    pub node: String,
    /// `egress` (the source pod's, judged on its node) or `ingress` (the destination pod's).
    pub direction: &'static str,
    /// `allowed`, `denied` or `audit` (would have been denied; the pod is in audit mode).
    pub verdict: &'static str,
    /// `not-isolated`, `rule` or `default-deny`.
    pub by: &'static str,
    /// `TCP`, `UDP`, `ICMP`, `SCTP`, or the protocol number.
    pub protocol: String,
    pub from: Party,
    pub to: Party,
    /// `namespace/name` of the policy whose rule allowed it (`by: rule`); `None` otherwise, or when
    /// the number is not known.
    pub policy: Option<String>,
    /// The rule's index in that policy's ingress or egress list (`by: rule`).
    pub rule: Option<u32>,
    /// `by: default-deny`: the policies isolating the pod in this direction, none of whose rules
    /// allowed it (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub isolated_by: Vec<String>,
}

/// The name of IP protocol `number`.
pub fn protocol_name(number: u8) -> String {
    match number {
        1 => "ICMP".to_owned(),
        6 => "TCP".to_owned(),
        17 => "UDP".to_owned(),
        132 => "SCTP".to_owned(),
        other => other.to_string(),
    }
}

/// Kernel time to wall time: one reading of both clocks, taken per batch of verdicts.
#[derive(Clone, Copy, Debug)]
pub struct Clocks {
    /// `CLOCK_MONOTONIC` now, ns.
    pub monotonic_ns: u64,
    /// Wall clock now, ms since the epoch.
    pub wall_ms: u64,
}

impl Clocks {
    pub fn now() -> Self {
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            monotonic_ns: monotonic_ns(),
            wall_ms,
        }
    }

    /// The wall-clock time (ms since the epoch) of monotonic instant `ns`.
    pub fn wall_ms_of(&self, ns: u64) -> u64 {
        let ago_ms = self.monotonic_ns.saturating_sub(ns) / 1_000_000;
        self.wall_ms.saturating_sub(ago_ms)
    }
}

impl FlowRecord {
    /// `verdict` as `node` made it, named with `names`; `seq` is filled in when it is recorded.
    pub fn resolve(verdict: &Verdict, names: &NameView, node: &str, clocks: &Clocks) -> Self {
        let has_ports = verdict.protocol != 1;
        let party = |ip: Ipv4Addr, port: u16| Party {
            ip,
            port: has_ports.then_some(port),
            pod: names.pod(ip).map(ToString::to_string),
        };
        let ruled = verdict.by == DecidedBy::Rule;
        let isolated_by = if verdict.by == DecidedBy::DefaultDeny {
            names
                .isolating(*verdict.subject().ip(), verdict.direction)
                .iter()
                .map(ToString::to_string)
                .collect()
        } else {
            Vec::new()
        };
        let time_ms = clocks.wall_ms_of(verdict.time_ns);
        Self {
            seq: 0,
            time: rfc3339_ms(time_ms),
            time_ms,
            node: node.to_owned(),
            direction: verdict.direction.label(),
            verdict: verdict.decision.label(),
            by: verdict.by.label(),
            protocol: protocol_name(verdict.protocol),
            from: party(*verdict.source.ip(), verdict.source.port()),
            to: party(*verdict.destination.ip(), verdict.destination.port()),
            policy: ruled
                .then(|| names.policy(verdict.policy).map(ToString::to_string))
                .flatten(),
            rule: ruled.then_some(verdict.rule),
            isolated_by,
        }
    }
}

/// A record for tests: `from` → `to` (pods, or `None` for an outside address) on `port`, judged
/// `verdict` at ingress by the default deny.
#[cfg(test)]
pub(crate) fn example(
    from: Option<&str>,
    to: Option<&str>,
    verdict: &'static str,
    port: u16,
) -> FlowRecord {
    let party = |pod: Option<&str>, port| Party {
        ip: Ipv4Addr::new(10, 244, 1, 1),
        port: Some(port),
        pod: pod.map(str::to_owned),
    };
    FlowRecord {
        seq: 0,
        time: String::new(),
        time_ms: 0,
        node: "node-1".into(),
        direction: "ingress",
        verdict,
        by: "default-deny",
        protocol: "TCP".into(),
        from: party(from, 40000),
        to: party(to, port),
        policy: None,
        rule: None,
        isolated_by: Vec::new(),
    }
}

/// `ms` since the epoch as RFC 3339 in UTC with milliseconds (`2025-12-02T18:21:03.120Z`).
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let of_day = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, net::SocketAddrV4};

    use strait_dataplane::policy_events::{Decision, Direction};

    use super::*;

    fn verdict(direction: Direction, decision: Decision, by: DecidedBy) -> Verdict {
        Verdict {
            time_ns: 5_000_000_000,
            source: SocketAddrV4::new(Ipv4Addr::new(10, 244, 1, 5), 43512),
            destination: SocketAddrV4::new(Ipv4Addr::new(10, 244, 2, 7), 80),
            protocol: 6,
            direction,
            decision,
            by,
            subject_identity: 256,
            peer_identity: 257,
            policy: 2,
            rule: 1,
        }
    }

    fn names() -> NameView {
        let policies: BTreeMap<u32, String> = [(1, "y/deny-all"), (2, "y/allow-a")]
            .into_iter()
            .map(|(n, s)| (n, s.to_owned()))
            .collect();
        NameView::new(
            [
                (Ipv4Addr::new(10, 244, 1, 5), "x/a".to_owned()),
                (Ipv4Addr::new(10, 244, 2, 7), "y/b".to_owned()),
            ],
            &policies,
            [(
                (Ipv4Addr::new(10, 244, 2, 7), Direction::Ingress),
                vec!["y/deny-all".to_owned()],
            )],
        )
    }

    const CLOCKS: Clocks = Clocks {
        monotonic_ns: 7_000_000_000,
        wall_ms: 1_764_699_665_120,
    };

    #[test]
    fn a_default_deny_names_both_pods_and_the_isolating_policies() {
        let record = FlowRecord::resolve(
            &verdict(Direction::Ingress, Decision::Denied, DecidedBy::DefaultDeny),
            &names(),
            "node-1",
            &CLOCKS,
        );
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "seq": 0, "time": "2025-12-02T18:21:03.120Z", "time_ms": 1_764_699_663_120u64,
                "node": "node-1", "direction": "ingress", "verdict": "denied", "by": "default-deny",
                "protocol": "TCP",
                "from": {"ip": "10.244.1.5", "port": 43512, "pod": "x/a"},
                "to": {"ip": "10.244.2.7", "port": 80, "pod": "y/b"},
                "policy": null, "rule": null, "isolated_by": ["y/deny-all"],
            })
        );
    }

    #[test]
    fn a_rule_is_named_by_its_policy_and_unknown_addresses_have_no_pod() {
        let mut allowed = verdict(Direction::Egress, Decision::Allowed, DecidedBy::Rule);
        allowed.destination = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 443);
        let record = FlowRecord::resolve(&allowed, &names(), "node-1", &CLOCKS);
        assert_eq!(
            (record.policy.as_deref(), record.rule),
            (Some("y/allow-a"), Some(1))
        );
        assert_eq!(record.to.pod, None);
        assert!(record.isolated_by.is_empty());
        let json = serde_json::to_string(&record).unwrap();
        assert!(!json.contains("isolated_by"), "{json}");

        let open = FlowRecord::resolve(
            &verdict(Direction::Egress, Decision::Allowed, DecidedBy::NotIsolated),
            &names(),
            "node-1",
            &CLOCKS,
        );
        assert_eq!(
            (open.policy, open.rule, open.by),
            (None, None, "not-isolated")
        );
    }

    #[test]
    fn icmp_has_no_ports_and_unknown_protocols_are_numbers() {
        let mut ping = verdict(Direction::Egress, Decision::Audit, DecidedBy::DefaultDeny);
        ping.protocol = 1;
        let record = FlowRecord::resolve(&ping, &names(), "n", &CLOCKS);
        assert_eq!((record.protocol.as_str(), record.from.port), ("ICMP", None));
        assert_eq!(protocol_name(47), "47");
    }

    #[test]
    fn wall_time_is_formatted_in_utc() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_007), "2000-02-29T00:00:00.007Z");
        assert_eq!(rfc3339_ms(1_764_699_663_120), "2025-12-02T18:21:03.120Z");
    }
}
