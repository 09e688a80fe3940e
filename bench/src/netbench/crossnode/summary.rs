//! A cross-node run's figures as plain serializable data ([`CrossReport`], saved as JSON with every
//! round), and what the report derives from them: each cell's median and range over the rounds, and
//! the ratios between stacks, both of the medians and round by round (the rounds are interleaved, so
//! round `i` of two stacks ran within seconds of each other).

use serde::{Deserialize, Serialize};

use super::{Stack, stacks::RatioSpec};
use crate::netbench::{
    load::Outcome,
    results::{Machine, Scenario, Test},
};

/// One stack, scenario and test: the outcome of every round, in round order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CrossCell {
    pub stack: Stack,
    pub scenario: Scenario,
    pub test: Test,
    pub rounds: Vec<Outcome>,
    /// Attempts that failed and were measured again (`round N: error`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

impl CrossCell {
    /// The headline figure of every round: Gbit/s for a stream, per second otherwise.
    pub fn figures(&self) -> Vec<f64> {
        self.rounds.iter().map(figure).collect()
    }
}

/// The headline figure of an outcome.
pub fn figure(outcome: &Outcome) -> f64 {
    match outcome {
        Outcome::Stream(stream) => stream.gbit_per_s,
        Outcome::Rate(rate) => rate.per_second,
    }
}

/// The unit of `test`'s headline figure.
pub fn unit(test: Test) -> &'static str {
    match test {
        Test::TcpStream => "Gbit/s",
        Test::TcpRr | Test::UdpRr => "tps",
        Test::TcpCrr => "conn/s",
    }
}

/// One join of a node to a running lab, times from the start of `lab node add`, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JoinRound {
    /// Until `Lab::add_node` returned (agent healthy, every agent synced with the new Node).
    pub add_ms: f64,
    /// Until a pod on every existing node reached the new node's address.
    pub node_reachable_ms: f64,
    /// Until a pod on the new node was running (its apply returned, after the add).
    pub pod_ready_ms: f64,
    /// Until a pod on every existing node reached that pod.
    pub pod_reachable_ms: f64,
}

/// The join measurements.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JoinReport {
    /// Nodes in the lab before each join.
    pub nodes_before: usize,
    pub rounds: Vec<JoinRound>,
}

/// A whole cross-node run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CrossReport {
    pub machine: Machine,
    /// The command line, as run.
    pub command: String,
    pub started_at: String,
    pub duration_s: f64,
    pub quick: bool,
    pub rounds: usize,
    pub test_seconds: f64,
    /// The strait agents' `--xdp-mode` (`generic` or `off`).
    #[serde(default)]
    pub xdp_mode: String,
    /// `/proc/loadavg` before the labs were built and after the last measurement.
    pub load_before: String,
    pub load_after: String,
    pub cells: Vec<CrossCell>,
    pub join: Option<JoinReport>,
    /// Why the join measurement failed, if it did (the figures above it are kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_error: Option<String>,
}

/// Median (the upper middle value for an even count, as netbench's cells) and range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// The spread of `values`; `None` when empty.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(Spread {
        median: *sorted.get(sorted.len() / 2)?,
        min: *sorted.first()?,
        max: *sorted.last()?,
    })
}

/// A ratio of two cells: of their medians, and the range of the round-by-round ratios.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatioFigure {
    pub of_medians: f64,
    pub per_round: Spread,
}

impl RatioFigure {
    /// How the ratio stands against `goal`: met when even the lowest round meets it, missed when even
    /// the highest round misses it, else within the rounds' noise.
    pub fn verdict(&self, goal: f64) -> Verdict {
        if self.per_round.min >= goal {
            Verdict::Met
        } else if self.per_round.max < goal {
            Verdict::Missed
        } else if self.of_medians >= goal {
            Verdict::MetWithinNoise
        } else {
            Verdict::MissedWithinNoise
        }
    }
}

/// A ratio against its goal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every round meets the goal.
    Met,
    /// The medians meet it, some rounds do not.
    MetWithinNoise,
    /// The medians miss it, some rounds meet it.
    MissedWithinNoise,
    /// No round meets it.
    Missed,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::MetWithinNoise => "met by the medians, not in every round",
            Self::MissedWithinNoise => "missed by the medians, met in some rounds",
            Self::Missed => "missed in every round",
        }
    }
}

impl CrossReport {
    /// The cell of `stack`, `scenario` and `test`.
    pub fn cell(&self, stack: Stack, scenario: Scenario, test: Test) -> Option<&CrossCell> {
        self.cells
            .iter()
            .find(|c| c.stack == stack && c.scenario == scenario && c.test == test)
    }

    /// The spread of a cell's figures.
    pub fn spread(&self, stack: Stack, scenario: Scenario, test: Test) -> Option<Spread> {
        spread(&self.cell(stack, scenario, test)?.figures())
    }

    /// `spec`'s ratio in `scenario` for `test`, when both cells were measured.
    pub fn ratio(&self, spec: &RatioSpec, scenario: Scenario, test: Test) -> Option<RatioFigure> {
        let a = self.cell(spec.numerator, scenario, test)?.figures();
        let b = self.cell(spec.denominator, scenario, test)?.figures();
        let per_round: Vec<f64> = a
            .iter()
            .zip(&b)
            .filter(|(_, b)| **b > 0.0)
            .map(|(a, b)| a / b)
            .collect();
        let (ma, mb) = (spread(&a)?.median, spread(&b)?.median);
        (mb > 0.0).then_some(())?;
        Some(RatioFigure {
            of_medians: ma / mb,
            per_round: spread(&per_round)?,
        })
    }

    /// The scenarios measured, in the order of [`Scenario::ALL`].
    pub fn scenarios(&self) -> Vec<Scenario> {
        Scenario::ALL
            .into_iter()
            .filter(|s| self.cells.iter().any(|c| c.scenario == *s))
            .collect()
    }

    /// The stacks measured in `scenario`, in the order of [`Stack::ALL`].
    pub fn stacks(&self, scenario: Scenario) -> Vec<Stack> {
        Stack::ALL
            .into_iter()
            .filter(|s| {
                self.cells
                    .iter()
                    .any(|c| c.stack == *s && c.scenario == scenario)
            })
            .collect()
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
    use crate::netbench::results::Rate;

    fn rate(per_second: f64) -> Outcome {
        Outcome::Rate(Rate {
            per_second,
            ..Rate::default()
        })
    }

    fn cell(stack: Stack, rates: &[f64]) -> CrossCell {
        CrossCell {
            stack,
            scenario: Scenario::PodToPod,
            test: Test::TcpRr,
            rounds: rates.iter().map(|r| rate(*r)).collect(),
            failures: Vec::new(),
        }
    }

    #[test]
    fn spread_takes_the_upper_middle_and_the_range() {
        let s = spread(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 10.0));
        assert_eq!(spread(&[]), None);
    }

    #[test]
    fn ratios_pair_the_rounds_and_judge_the_goal() {
        let report = CrossReport {
            cells: vec![
                cell(Stack::StraitVxlan, &[110.0, 90.0, 100.0]),
                cell(Stack::Flannel, &[100.0, 100.0, 100.0]),
            ],
            ..CrossReport::default()
        };
        let spec = super::super::stacks::ratios(Scenario::PodToPod)[0];
        let ratio = report
            .ratio(&spec, Scenario::PodToPod, Test::TcpRr)
            .unwrap();
        assert!((ratio.of_medians - 1.0).abs() < 1e-9);
        assert!((ratio.per_round.min - 0.9).abs() < 1e-9);
        assert!((ratio.per_round.max - 1.1).abs() < 1e-9);
        assert_eq!(ratio.verdict(1.0), Verdict::MetWithinNoise);
        assert_eq!(ratio.verdict(0.5), Verdict::Met);
        assert_eq!(ratio.verdict(1.2), Verdict::Missed);
        assert_eq!(ratio.verdict(1.05), Verdict::MissedWithinNoise);
        assert_eq!(
            report.ratio(&spec, Scenario::PodToClusterIp, Test::TcpRr),
            None
        );
        assert_eq!(
            report.stacks(Scenario::PodToPod),
            [Stack::StraitVxlan, Stack::Flannel]
        );
    }

    #[test]
    fn the_report_round_trips_through_json() {
        let report = CrossReport {
            cells: vec![cell(Stack::HostGw, &[1.0])],
            join: Some(JoinReport {
                nodes_before: 2,
                rounds: vec![JoinRound::default()],
            }),
            ..CrossReport::default()
        };
        let text = serde_json::to_string(&report).unwrap();
        assert!(text.contains("\"host-gw\""), "{text}");
        assert_eq!(serde_json::from_str::<CrossReport>(&text).unwrap(), report);
    }
}
