//! Prometheus text exposition of the agent's telemetry: packet and byte counters by program, reason and
//! direction (drops also as their own family), endpoint, IPAM, conntrack and SNAT gauges, NetworkPolicy
//! verdicts by direction and verdict, every map's fill and every program's links (from the census),
//! and the build. The sync loop's figures are in [`sync`], the process's in [`process`]; [`openmetrics`]
//! turns the text into OpenMetrics.

pub mod histogram;
pub mod openmetrics;
pub mod process;
pub mod sync;

use std::fmt::Write as _;

use strait_dataplane::stats::StatsSample;

use crate::{census::CensusSnapshot, flows::VerdictCount};

/// Gauges the agent reports besides the eBPF counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentGauges {
    pub endpoints: usize,
    /// Endpoints whose removal began but has not finished (their addresses still taken).
    pub endpoints_deleting: usize,
    pub endpoint_capacity: u32,
    pub ipam_used: usize,
    pub ipam_capacity: usize,
    /// Tracked flow directions of the per-packet service path, as of the last sweep.
    pub conntrack_entries: u64,
    pub conntrack_capacity: u32,
    /// CT entries deleted as expired since the agent started.
    pub conntrack_expired_total: u64,
    /// Live SNATed flows (one SNAT port each), as of the last sweep.
    pub snat_flows: u64,
    /// SNAT ports held towards the busiest destination, as of the last sweep.
    pub snat_busiest: u64,
}

/// Renders the exposition text for `node`.
pub fn render(node: &str, stats: &[StatsSample], gauges: &AgentGauges) -> String {
    let mut out = String::new();
    let node = escape(node);
    family(
        &mut out,
        "strait_packets_total",
        "counter",
        "Packets handled by strait's eBPF programs, by program, verdict reason and direction.",
    );
    for s in stats {
        let _ = writeln!(
            out,
            "strait_packets_total{{node=\"{node}\",{}}} {}",
            labels(s),
            s.packets
        );
    }
    family(
        &mut out,
        "strait_bytes_total",
        "counter",
        "Bytes handled by strait's eBPF programs, by program, verdict reason and direction.",
    );
    for s in stats {
        let _ = writeln!(
            out,
            "strait_bytes_total{{node=\"{node}\",{}}} {}",
            labels(s),
            s.bytes
        );
    }
    family(
        &mut out,
        "strait_drops_total",
        "counter",
        "Packets dropped by strait's eBPF programs, by program, drop reason and direction.",
    );
    for s in stats.iter().filter(|s| s.reason.is_drop()) {
        let _ = writeln!(
            out,
            "strait_drops_total{{node=\"{node}\",{}}} {}",
            labels(s),
            s.packets
        );
    }
    render_gauges(&mut out, &node, gauges);
    family(
        &mut out,
        "strait_conntrack_expired_total",
        "counter",
        "CT entries deleted by the agent's sweeper after their state's timeout.",
    );
    let _ = writeln!(
        out,
        "strait_conntrack_expired_total{{node=\"{node}\"}} {}",
        gauges.conntrack_expired_total
    );
    out
}

/// The agent's gauges for `node` (escaped already).
fn render_gauges(out: &mut String, node: &str, gauges: &AgentGauges) {
    let gauges_list = [
        (
            "strait_endpoints",
            "Pod endpoints on this node.",
            gauges.endpoints as u64,
        ),
        (
            "strait_endpoints_deleting",
            "Pod endpoints whose removal failed part-way and is retried; their addresses stay allocated.",
            gauges.endpoints_deleting as u64,
        ),
        (
            "strait_endpoint_map_capacity",
            "Capacity of the ENDPOINT map.",
            u64::from(gauges.endpoint_capacity),
        ),
        (
            "strait_ipam_allocated",
            "Pod addresses allocated from this node's pod CIDR.",
            gauges.ipam_used as u64,
        ),
        (
            "strait_ipam_capacity",
            "Pod addresses this node's pod CIDR can hold.",
            gauges.ipam_capacity as u64,
        ),
        (
            "strait_conntrack_entries",
            "Tracked flow directions (two per flow) of the per-packet service path, at the last sweep.",
            gauges.conntrack_entries,
        ),
        (
            "strait_conntrack_capacity",
            "Capacity of the CT map (least recently used entries are evicted beyond it).",
            u64::from(gauges.conntrack_capacity),
        ),
        (
            "strait_snat_flows",
            "Live flows of the per-packet service path whose source was rewritten (one SNAT port each), at the last sweep.",
            gauges.snat_flows,
        ),
        (
            "strait_snat_ports_busiest_destination",
            "SNAT ports held towards the busiest destination (address, port, protocol) at the last sweep.",
            gauges.snat_busiest,
        ),
        (
            "strait_snat_ports_per_destination",
            "SNAT ports the node can hold towards one destination (61000-65535).",
            u64::from(strait_dataplane::conntrack::SNAT_PORTS_PER_DESTINATION),
        ),
    ];
    for (name, help, value) in gauges_list {
        family(out, name, "gauge", help);
        let _ = writeln!(out, "{name}{{node=\"{node}\"}} {value}");
    }
}

/// Appends `strait_policy_verdicts_total{node, direction, verdict, namespace}` for `node`: every
/// direction and verdict, zeros included (none at all when the agent reads no verdicts).
pub fn render_policy_verdicts(out: &mut String, node: &str, counts: &[VerdictCount]) {
    if counts.is_empty() {
        return;
    }
    family(
        out,
        "strait_policy_verdicts_total",
        "counter",
        "NetworkPolicy judgements (the first packet of each flow, per direction judged on this node), \
         by direction, verdict (allowed, denied, audit: would have been denied, passed in audit mode) \
         and the judged pod's namespace (the destination's for ingress, the source's for egress; \
         empty when the address is no known pod).",
    );
    let node = escape(node);
    for count in counts {
        let _ = writeln!(
            out,
            "strait_policy_verdicts_total{{node=\"{node}\",direction=\"{}\",verdict=\"{}\",namespace=\"{}\"}} {}",
            count.direction.label(),
            count.decision.label(),
            escape(&count.namespace),
            count.count
        );
    }
}

/// Appends `strait_policy_verdicts_lost_total{node}`: verdicts the kernel had no room for in the
/// ring buffer (nothing when the agent reads no verdicts).
pub fn render_policy_lost(out: &mut String, node: &str, lost: Option<u64>) {
    let Some(lost) = lost else {
        return;
    };
    family(
        out,
        "strait_policy_verdicts_lost_total",
        "counter",
        "NetworkPolicy verdicts the data path could not report because the verdict ring buffer was \
         full (the agent down or slow); they are missing from strait_policy_verdicts_total and /flows. \
         Counted since the pinned map was made, so it survives agent restarts.",
    );
    let _ = writeln!(
        out,
        "strait_policy_verdicts_lost_total{{node=\"{}\"}} {lost}",
        escape(node)
    );
}

/// How one column of the map census is shown.
type MapValue = fn(&strait_dataplane::census::MapFill) -> String;

/// Appends the census's families for `node`: each map's entries, capacity and fill, each program's
/// links, and how long the census took (nothing before the first census).
pub fn render_census(out: &mut String, node: &str, census: Option<&CensusSnapshot>) {
    let Some(census) = census else {
        return;
    };
    let node = escape(node);
    let maps: [(&str, &str, MapValue); 3] = [
        (
            "strait_map_entries",
            "Entries in each eBPF map at the last census (arrays: their length).",
            |m| m.entries.to_string(),
        ),
        (
            "strait_map_capacity",
            "Capacity (max_entries) of each eBPF map.",
            |m| m.capacity.to_string(),
        ),
        (
            "strait_map_fill_ratio",
            "Entries over capacity of each eBPF map at the last census, 0 to 1.",
            |m| m.ratio().to_string(),
        ),
    ];
    for (name, help, value) in maps {
        family(out, name, "gauge", help);
        for map in &census.maps {
            let _ = writeln!(
                out,
                "{name}{{node=\"{node}\",map=\"{}\",kind=\"{}\"}} {}",
                map.name,
                map.kind.label(),
                value(map)
            );
        }
    }
    family(
        out,
        "strait_program_links",
        "gauge",
        "Kernel links (tcx, XDP, cgroup attachments) running each of the agent's eBPF programs at the last census.",
    );
    for program in &census.programs {
        let _ = writeln!(
            out,
            "strait_program_links{{node=\"{node}\",program=\"{}\"}} {}",
            program.program, program.links
        );
    }
    family(
        out,
        "strait_census_duration_seconds",
        "gauge",
        "How long the last census of maps and links took, seconds.",
    );
    let _ = writeln!(
        out,
        "strait_census_duration_seconds{{node=\"{node}\"}} {}",
        census.took.as_secs_f64()
    );
}

/// Appends `strait_build_info{node, version}` 1.
pub fn render_build_info(out: &mut String, node: &str) {
    family(
        out,
        "strait_build_info",
        "gauge",
        "Always 1; the agent's version in the version label.",
    );
    let _ = writeln!(
        out,
        "strait_build_info{{node=\"{}\",version=\"{}\"}} 1",
        escape(node),
        env!("CARGO_PKG_VERSION")
    );
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn labels(s: &StatsSample) -> String {
    format!(
        "program=\"{}\",reason=\"{}\",direction=\"{}\"",
        s.program.label(),
        s.reason.label(),
        s.direction.label()
    )
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use strait_dataplane::stats::{Direction, Program, Reason};

    use super::*;

    fn sample(reason: Reason, packets: u64) -> StatsSample {
        StatsSample {
            program: Program::FromPod,
            reason,
            direction: Direction::Egress,
            packets,
            bytes: packets * 100,
        }
    }

    #[test]
    fn counters_and_gauges_are_rendered_with_labels() {
        let stats = [
            sample(Reason::DeliveredLocal, 7),
            sample(Reason::DropTruncatedIpv4, 2),
        ];
        let text = render(
            "node-\"1\"",
            &stats,
            &AgentGauges {
                endpoints: 3,
                endpoints_deleting: 0,
                endpoint_capacity: 100,
                ipam_used: 3,
                ipam_capacity: 254,
                conntrack_entries: 12,
                conntrack_capacity: 4096,
                conntrack_expired_total: 5,
                snat_flows: 2,
                snat_busiest: 1,
            },
        );
        assert!(text.contains("strait_conntrack_entries{node=\"node-\\\"1\\\"\"} 12"));
        assert!(text.contains("# TYPE strait_conntrack_expired_total counter"));
        assert!(text.contains("strait_conntrack_expired_total{node=\"node-\\\"1\\\"\"} 5"));
        assert!(text.contains(
            "strait_packets_total{node=\"node-\\\"1\\\"\",program=\"from-pod\",reason=\"delivered_local\",direction=\"egress\"} 7"
        ));
        assert!(text.contains("reason=\"truncated_ipv4\",direction=\"egress\"} 200"));
        assert!(text.contains("strait_drops_total{node=\"node-\\\"1\\\"\",program=\"from-pod\",reason=\"truncated_ipv4\",direction=\"egress\"} 2"));
        assert!(!text.contains("strait_drops_total{node=\"node-\\\"1\\\"\",program=\"from-pod\",reason=\"delivered_local\""));
        assert!(text.contains("strait_endpoints{node=\"node-\\\"1\\\"\"} 3"));
        assert!(text.contains("# TYPE strait_ipam_capacity gauge"));
        assert!(text.contains("strait_snat_flows{node=\"node-\\\"1\\\"\"} 2"));
        assert!(text.contains("strait_snat_ports_per_destination{node=\"node-\\\"1\\\"\"} 4536"));
    }

    #[test]
    fn the_census_is_rendered_per_map_and_program() {
        use strait_dataplane::census::{MapFill, MapKind, ProgramLinks};
        let mut text = String::new();
        render_census(&mut text, "n1", None);
        assert!(text.is_empty(), "nothing before the first census");
        let census = CensusSnapshot {
            maps: vec![MapFill {
                name: "CT_V1".into(),
                kind: MapKind::LruHash,
                capacity: 1000,
                entries: 250,
            }],
            programs: vec![ProgramLinks {
                program: "from_pod".into(),
                links: 3,
            }],
            took: std::time::Duration::from_millis(2),
        };
        render_census(&mut text, "n1", Some(&census));
        for line in [
            "strait_map_entries{node=\"n1\",map=\"CT_V1\",kind=\"lru_hash\"} 250\n",
            "strait_map_capacity{node=\"n1\",map=\"CT_V1\",kind=\"lru_hash\"} 1000\n",
            "strait_map_fill_ratio{node=\"n1\",map=\"CT_V1\",kind=\"lru_hash\"} 0.25\n",
            "strait_program_links{node=\"n1\",program=\"from_pod\"} 3\n",
            "strait_census_duration_seconds{node=\"n1\"} 0.002\n",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn policy_verdicts_are_counted_by_direction_and_verdict() {
        use strait_dataplane::policy_events::{Decision, Direction};
        let mut text = String::new();
        render_policy_verdicts(
            &mut text,
            "n1",
            &[VerdictCount {
                direction: Direction::Ingress,
                decision: Decision::Denied,
                namespace: "web".into(),
                count: 3,
            }],
        );
        assert!(text.contains("# TYPE strait_policy_verdicts_total counter"));
        assert!(text.contains(
            "strait_policy_verdicts_total{node=\"n1\",direction=\"ingress\",verdict=\"denied\",namespace=\"web\"} 3"
        ));
    }

    #[test]
    fn lost_verdicts_are_one_counter_and_absent_without_a_reader() {
        let mut text = String::new();
        render_policy_lost(&mut text, "n1", None);
        assert!(text.is_empty());
        render_policy_lost(&mut text, "n1", Some(17));
        assert!(text.contains("# HELP strait_policy_verdicts_lost_total NetworkPolicy verdicts"));
        assert!(text.contains("# TYPE strait_policy_verdicts_lost_total counter"));
        assert!(
            text.ends_with("strait_policy_verdicts_lost_total{node=\"n1\"} 17\n"),
            "{text}"
        );
    }
}
