//! A DNS run's figures as plain serializable data ([`DnsReport`], saved as JSON with every round),
//! and what the report derives from them: each target's median and range per figure, and the
//! issue's three goals as ratios, of the medians and round by round (the rounds are interleaved,
//! so round `i` of two targets ran within seconds of each other).

use serde::{Deserialize, Serialize};

use super::client::{Latency, Throughput};
use crate::netbench::{
    crossnode::summary::{RatioFigure, Spread, spread},
    results::Machine,
};

/// What answers the pod's questions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// strait's kernel fast path (`dns_fast` on the pod's veth), the Service IP 10.96.0.10:53.
    StraitFast,
    /// strait's server in the agent (`--no-dns-fast-path`), the same Service IP.
    StraitServer,
    /// knotd serving the same zone from the node's namespace.
    Knot,
    /// unbound serving the same records (`local-data`) from the node's namespace.
    Unbound,
}

impl Target {
    pub const ALL: [Target; 4] = [
        Self::StraitFast,
        Self::StraitServer,
        Self::Knot,
        Self::Unbound,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::StraitFast => "strait fast path",
            Self::StraitServer => "strait server",
            Self::Knot => "knot",
            Self::Unbound => "unbound",
        }
    }
}

/// One target in one round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsRound {
    pub throughput: Throughput,
    pub latency: Latency,
    /// The batching client's answers per second (a second client, cheaper per query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<super::batch_client::BatchThroughput>,
    /// The fast path's target only: queries the kernel answered during the round (its
    /// `dns_answered` counter), so the figures are known to be the kernel's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_answered: Option<u64>,
    /// The servers only: the server process's CPU time (user and system, every thread) during the
    /// dnsperf run, per query completed, microseconds. The fast path's answer runs in the asking
    /// pod's own system call and softirq, so its cost is measured with test-run instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_query: Option<f64>,
}

/// One target: every round, in round order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsCell {
    pub target: Target,
    /// The server's worker threads (none for the kernel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    pub rounds: Vec<DnsRound>,
}

/// A figure of a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    QueriesPerSecond,
    BatchQueriesPerSecond,
    P50,
    P99,
    CpuPerQuery,
}

impl Figure {
    pub fn of(self, round: &DnsRound) -> f64 {
        match self {
            Self::QueriesPerSecond => round.throughput.queries_per_second,
            Self::BatchQueriesPerSecond => round.batch.map_or(f64::NAN, |b| b.queries_per_second),
            Self::P50 => round.latency.p50_us,
            Self::P99 => round.latency.p99_us,
            Self::CpuPerQuery => round.cpu_us_per_query.unwrap_or(f64::NAN),
        }
    }
}

impl DnsCell {
    pub fn spread(&self, figure: Figure) -> Option<Spread> {
        // A figure a round does not have (NaN) is left out; none at all is no spread.
        let values: Vec<f64> = self
            .rounds
            .iter()
            .map(|r| figure.of(r))
            .filter(|v| v.is_finite())
            .collect();
        spread(&values)
    }
}

/// A goal of the issue: `numerator`'s figure over `denominator`'s, at least `at_least`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Goal {
    pub text: &'static str,
    pub numerator: Target,
    pub denominator: Target,
    pub figure: Figure,
    pub at_least: f64,
}

/// The goals. Latency is better lower, so its ratio is knot's over the fast path's: at
/// least 2 is "the fast path's p99 at most 0.5x knot's".
pub const GOALS: [Goal; 4] = [
    Goal {
        text: "fast path q/s ÷ knot q/s (dnsperf)",
        numerator: Target::StraitFast,
        denominator: Target::Knot,
        figure: Figure::QueriesPerSecond,
        at_least: 2.0,
    },
    Goal {
        text: "fast path q/s ÷ knot q/s (batching client)",
        numerator: Target::StraitFast,
        denominator: Target::Knot,
        figure: Figure::BatchQueriesPerSecond,
        at_least: 2.0,
    },
    Goal {
        text: "knot p99 ÷ fast path p99 (fast ≤ 0.5× knot)",
        numerator: Target::Knot,
        denominator: Target::StraitFast,
        figure: Figure::P99,
        at_least: 2.0,
    },
    Goal {
        text: "strait server q/s ÷ unbound q/s (dnsperf)",
        numerator: Target::StraitServer,
        denominator: Target::Unbound,
        figure: Figure::QueriesPerSecond,
        at_least: 1.0,
    },
];

/// A whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsReport {
    pub machine: Machine,
    pub command: String,
    pub started_at: String,
    pub quick: bool,
    pub rounds: usize,
    /// Seconds of each dnsperf run and of each latency run.
    pub test_seconds: f64,
    /// Names (ClusterIP Services) asked in turn.
    pub names: usize,
    /// dnsperf's threads (one per CPU).
    #[serde(default)]
    pub dnsperf_threads: usize,
    pub cells: Vec<DnsCell>,
    /// The fast path's answer to one query in the kernel (`pktcost`, `BPF_PROG_TEST_RUN`), beside
    /// its baseline (a packet dropped at once), nanoseconds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_cost: Vec<crate::netbench::results::PacketCost>,
    /// Targets not measured, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub load_before: String,
    pub load_after: String,
    pub duration_s: f64,
}

impl DnsReport {
    pub fn cell(&self, target: Target) -> Option<&DnsCell> {
        self.cells.iter().find(|c| c.target == target)
    }

    /// `goal`'s ratio: of the medians, and round by round.
    pub fn ratio(&self, goal: &Goal) -> Option<RatioFigure> {
        let (top, bottom) = (self.cell(goal.numerator)?, self.cell(goal.denominator)?);
        let of_medians = top.spread(goal.figure)?.median / bottom.spread(goal.figure)?.median;
        let per_round: Vec<f64> = top
            .rounds
            .iter()
            .zip(&bottom.rounds)
            .map(|(t, b)| goal.figure.of(t) / goal.figure.of(b))
            .filter(|r| r.is_finite())
            .collect();
        Some(RatioFigure {
            of_medians,
            per_round: spread(&per_round)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(qps: f64, p99: f64) -> DnsRound {
        DnsRound {
            throughput: Throughput {
                queries_per_second: qps,
                ..Throughput::default()
            },
            latency: Latency {
                p99_us: p99,
                ..Latency::default()
            },
            kernel_answered: None,
            cpu_us_per_query: None,
            batch: None,
        }
    }

    #[test]
    fn goals_are_ratios_of_medians_and_of_rounds() {
        let cell = |target, rounds: Vec<DnsRound>| DnsCell {
            target,
            threads: None,
            rounds,
        };
        let report = DnsReport {
            cells: vec![
                cell(
                    Target::StraitFast,
                    vec![round(200.0, 10.0), round(300.0, 20.0), round(250.0, 10.0)],
                ),
                cell(
                    Target::Knot,
                    vec![round(100.0, 40.0), round(100.0, 30.0), round(125.0, 30.0)],
                ),
            ],
            ..DnsReport::default()
        };
        let qps = report.ratio(&GOALS[0]).unwrap();
        assert!((qps.of_medians - 2.5).abs() < 1e-9);
        assert_eq!((qps.per_round.min, qps.per_round.max), (2.0, 3.0));
        let p99 = report.ratio(&GOALS[2]).unwrap();
        // Knot's median p99 30 over the fast path's 10.
        assert!((p99.of_medians - 3.0).abs() < 1e-9);
        assert_eq!((p99.per_round.min, p99.per_round.max), (1.5, 4.0));
        assert!(
            report.ratio(&GOALS[1]).is_none(),
            "no batching client figures"
        );
        assert!(
            report.ratio(&GOALS[3]).is_none(),
            "no server or unbound cell"
        );
    }
}
