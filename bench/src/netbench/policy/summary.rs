//! A policy sweep's figures as plain serializable data ([`PolicyReport`], saved as JSON with every
//! round), and what the report derives from them: each cell's median and range (cross-node's
//! [`spread`]), and the ratios between policy counts, of the medians and round by round (the rounds
//! are interleaved, so round `i` of two counts ran within seconds of each other).

use serde::{Deserialize, Serialize};

use crate::netbench::{
    crossnode::summary::{RatioFigure, Spread, figure, spread},
    load::Outcome,
    results::{Machine, Test},
};

/// The goal: with policies, at least this share of the rate without any.
pub const GOAL: f64 = 0.95;

/// Who enforces the policies.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyStack {
    /// Two strait nodes, `--overlay vxlan`, the policies applied through the lab.
    #[default]
    Strait,
    /// Two Flannel reference nodes with kube-router's iptables rules and ipsets for the policies.
    KubeRouter,
}

impl PolicyStack {
    pub const ALL: [PolicyStack; 2] = [Self::Strait, Self::KubeRouter];

    /// The name used in tables and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Strait => "strait",
            Self::KubeRouter => "kube-router",
        }
    }
}

/// One stack, policy count and test: the outcome of every round, in round order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyCell {
    #[serde(default)]
    pub stack: PolicyStack,
    /// NetworkPolicies in the cluster.
    pub policies: usize,
    pub test: Test,
    pub rounds: Vec<Outcome>,
    /// Attempts that failed and were measured again (`round N: error`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

impl PolicyCell {
    /// The headline figure of every round.
    pub fn figures(&self) -> Vec<f64> {
        self.rounds.iter().map(figure).collect()
    }
}

/// Putting one lab's policies in place before the rounds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    #[serde(default)]
    pub stack: PolicyStack,
    pub policies: usize,
    /// Of them, the policies that select the server pod.
    pub selecting_server: usize,
    /// How long applying them all took (for strait: `Lab::apply` of one manifest, which returns once
    /// every agent has synced them, 0 when there were none; for kube-router: the slowest node's
    /// sync).
    pub apply_ms: f64,
    /// kube-router: the ipsets on a node.
    #[serde(default)]
    pub ipsets: usize,
    /// kube-router: the rules of its chains on the server's node.
    #[serde(default)]
    pub rules: usize,
}

/// One change of verdict with many policies in force, times in milliseconds from the start of the
/// apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnforceRound {
    /// Until the apply of the policy that stops allowing the client returned.
    pub deny_apply_ms: f64,
    /// Until the client's first new connection was not let through (the start of the attempt that
    /// failed, confirmed by the next one failing too).
    pub denied_ms: f64,
    /// Until the apply that allows the client again returned.
    pub allow_apply_ms: f64,
    /// Until the client's first new connection got through again.
    pub allowed_ms: f64,
    /// Packets the agents dropped as `policy_denied` while the client was denied (the proof that the
    /// failed connections were the policy's doing).
    #[serde(default)]
    pub policy_drops: u64,
}

/// The enforcement measurements of one stack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnforceReport {
    #[serde(default)]
    pub stack: PolicyStack,
    /// Policies in force.
    pub policies: usize,
    pub rounds: Vec<EnforceRound>,
}

/// A whole policy sweep.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    pub machine: Machine,
    /// The command line, as run.
    pub command: String,
    pub started_at: String,
    pub duration_s: f64,
    pub quick: bool,
    pub rounds: usize,
    pub test_seconds: f64,
    /// The strait agents' `--xdp-mode`.
    pub xdp_mode: String,
    /// The policy counts swept, in the order given.
    pub counts: Vec<usize>,
    /// `/proc/loadavg` before the labs were built and after the last measurement.
    pub load_before: String,
    pub load_after: String,
    pub setups: Vec<Setup>,
    /// How long the run waited, once every lab was built, for the strait agents to be quiet.
    #[serde(default)]
    pub settled_s: f64,
    pub cells: Vec<PolicyCell>,
    pub enforce: Vec<EnforceReport>,
    /// Why the enforcement measurement failed, if it did (the figures above it are kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce_error: Option<String>,
    /// Why the kube-router baseline was not measured, when it was asked for and not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_router_note: Option<String>,
    /// The kernel's ipset table size settings (`CONFIG_IP_SET_MAX=…, max_sets=…`), when kube-router
    /// was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_set_max: Option<String>,
}

/// A ratio of one stack's figures at two policy counts, with the goal when the issue sets one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CountRatio {
    pub numerator: usize,
    pub denominator: usize,
    pub goal: Option<f64>,
}

impl CountRatio {
    /// `stack(a) ÷ stack(b)`.
    pub fn label(&self, stack: PolicyStack) -> String {
        format!(
            "{0}({1}) ÷ {0}({2})",
            stack.name(),
            self.numerator,
            self.denominator
        )
    }
}

/// The ratios a sweep of `counts` reports: every count against no policy at all (goal
/// [`GOAL`]), and every larger count against the smallest non-zero one (no goal: it isolates what
/// the number of policies costs from what being selected at all costs).
pub fn count_ratios(counts: &[usize]) -> Vec<CountRatio> {
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    if sorted.first() == Some(&0) {
        out.extend(sorted.iter().skip(1).map(|&n| CountRatio {
            numerator: n,
            denominator: 0,
            goal: Some(GOAL),
        }));
    }
    if let Some(&least) = sorted.iter().find(|&&n| n > 0) {
        out.extend(sorted.iter().filter(|&&n| n > least).map(|&n| CountRatio {
            numerator: n,
            denominator: least,
            goal: None,
        }));
    }
    out
}

/// The ratio of two cells' figures: of their medians, and the range of the round-by-round ratios.
fn ratio_of(a: &[f64], b: &[f64]) -> Option<RatioFigure> {
    let per_round: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(_, b)| **b > 0.0)
        .map(|(a, b)| a / b)
        .collect();
    let (ma, mb) = (spread(a)?.median, spread(b)?.median);
    (mb > 0.0).then_some(())?;
    Some(RatioFigure {
        of_medians: ma / mb,
        per_round: spread(&per_round)?,
    })
}

impl PolicyReport {
    /// The cell of `stack`, `policies` and `test`.
    pub fn cell(&self, stack: PolicyStack, policies: usize, test: Test) -> Option<&PolicyCell> {
        self.cells
            .iter()
            .find(|c| c.stack == stack && c.policies == policies && c.test == test)
    }

    /// The spread of a cell's figures.
    pub fn spread(&self, stack: PolicyStack, policies: usize, test: Test) -> Option<Spread> {
        spread(&self.cell(stack, policies, test)?.figures())
    }

    /// `ratio`'s figure for `stack` and `test`, when both cells were measured.
    pub fn ratio(&self, stack: PolicyStack, ratio: &CountRatio, test: Test) -> Option<RatioFigure> {
        let a = self.cell(stack, ratio.numerator, test)?.figures();
        let b = self.cell(stack, ratio.denominator, test)?.figures();
        ratio_of(&a, &b)
    }

    /// strait against kube-router at `policies`, when both were measured.
    pub fn stack_ratio(&self, policies: usize, test: Test) -> Option<RatioFigure> {
        let a = self.cell(PolicyStack::Strait, policies, test)?.figures();
        let b = self
            .cell(PolicyStack::KubeRouter, policies, test)?
            .figures();
        ratio_of(&a, &b)
    }

    /// The stacks measured, in the order of [`PolicyStack::ALL`].
    pub fn stacks(&self) -> Vec<PolicyStack> {
        PolicyStack::ALL
            .into_iter()
            .filter(|s| self.cells.iter().any(|c| c.stack == *s))
            .collect()
    }

    /// The policy counts measured for `stack`, ascending.
    pub fn counts_of(&self, stack: PolicyStack) -> Vec<usize> {
        let mut counts: Vec<usize> = self
            .cells
            .iter()
            .filter(|c| c.stack == stack)
            .map(|c| c.policies)
            .collect();
        counts.sort_unstable();
        counts.dedup();
        counts
    }

    /// The tests measured, in the order of [`Test::ALL`].
    pub fn tests(&self) -> Vec<Test> {
        Test::ALL
            .into_iter()
            .filter(|t| self.cells.iter().any(|c| c.test == *t))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netbench::{crossnode::summary::Verdict, results::Rate};

    fn cell(policies: usize, rates: &[f64]) -> PolicyCell {
        PolicyCell {
            stack: PolicyStack::Strait,
            policies,
            test: Test::TcpRr,
            rounds: rates
                .iter()
                .map(|&per_second| {
                    Outcome::Rate(Rate {
                        per_second,
                        ..Rate::default()
                    })
                })
                .collect(),
            failures: Vec::new(),
        }
    }

    #[test]
    fn ratios_are_against_no_policy_with_the_goal_and_against_the_least_without() {
        let ratios = count_ratios(&[1000, 0, 100]);
        let labels: Vec<(usize, usize, Option<f64>)> = ratios
            .iter()
            .map(|r| (r.numerator, r.denominator, r.goal))
            .collect();
        assert_eq!(
            labels,
            [
                (100, 0, Some(GOAL)),
                (1000, 0, Some(GOAL)),
                (1000, 100, None)
            ]
        );
        assert_eq!(
            ratios[0].label(PolicyStack::Strait),
            "strait(100) ÷ strait(0)"
        );
        assert!(count_ratios(&[0]).is_empty());
        assert_eq!(count_ratios(&[100, 1000]).len(), 1);
    }

    #[test]
    fn a_ratio_pairs_the_rounds() {
        let report = PolicyReport {
            cells: vec![
                cell(0, &[100.0, 100.0, 100.0]),
                cell(1000, &[96.0, 90.0, 99.0]),
            ],
            ..PolicyReport::default()
        };
        let ratio = CountRatio {
            numerator: 1000,
            denominator: 0,
            goal: Some(GOAL),
        };
        let figure = report
            .ratio(PolicyStack::Strait, &ratio, Test::TcpRr)
            .unwrap();
        assert!((figure.of_medians - 0.96).abs() < 1e-9);
        assert!((figure.per_round.min - 0.90).abs() < 1e-9);
        assert_eq!(figure.verdict(GOAL), Verdict::MetWithinNoise);
        assert_eq!(report.counts_of(PolicyStack::Strait), [0, 1000]);
        assert_eq!(
            report.ratio(PolicyStack::Strait, &ratio, Test::TcpCrr),
            None
        );
    }

    #[test]
    fn the_report_round_trips_through_json() {
        let report = PolicyReport {
            counts: vec![0, 1000],
            cells: vec![cell(0, &[1.0])],
            enforce: vec![EnforceReport {
                stack: PolicyStack::Strait,
                policies: 1000,
                rounds: vec![EnforceRound::default()],
            }],
            ..PolicyReport::default()
        };
        let text = serde_json::to_string(&report).unwrap();
        assert!(text.contains("\"strait\""), "{text}");
        assert_eq!(serde_json::from_str::<PolicyReport>(&text).unwrap(), report);
    }
}
