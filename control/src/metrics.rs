//! Prometheus text exposition of the agent's telemetry: packet and byte counters by program, reason and
//! direction (drops also as their own family), endpoint, IPAM and conntrack gauges, and NetworkPolicy
//! verdicts by direction and verdict.

use std::fmt::Write as _;

use strait_dataplane::stats::StatsSample;

use crate::flows::VerdictCount;

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
    ];
    for (name, help, value) in gauges_list {
        family(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name}{{node=\"{node}\"}} {value}");
    }
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

/// Appends `strait_policy_verdicts_total{node, direction, verdict}` for `node`: every direction and
/// verdict, zeros included (none at all when the agent reads no verdicts).
pub fn render_policy_verdicts(out: &mut String, node: &str, counts: &[VerdictCount]) {
    if counts.is_empty() {
        return;
    }
    family(
        out,
        "strait_policy_verdicts_total",
        "counter",
        "NetworkPolicy judgements (the first packet of each flow, per direction judged on this node), \
         by direction and verdict (allowed, denied, audit: would have been denied, passed in audit mode).",
    );
    let node = escape(node);
    for count in counts {
        let _ = writeln!(
            out,
            "strait_policy_verdicts_total{{node=\"{node}\",direction=\"{}\",verdict=\"{}\"}} {}",
            count.direction.label(),
            count.decision.label(),
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
                count: 3,
            }],
        );
        assert!(text.contains("# TYPE strait_policy_verdicts_total counter"));
        assert!(text.contains(
            "strait_policy_verdicts_total{node=\"n1\",direction=\"ingress\",verdict=\"denied\"} 3"
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
