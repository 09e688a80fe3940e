//! The stacks a cross-node run compares, the scenarios each takes part in, and the ratios it reports
//! against the goals.

use serde::{Deserialize, Serialize};

use crate::netbench::results::Scenario;

/// One way of carrying traffic between two nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stack {
    /// Two strait nodes, `--overlay vxlan`.
    StraitVxlan,
    /// Two strait nodes, `--overlay direct`.
    StraitDirect,
    /// Two Flannel reference nodes (VXLAN backend), kube-proxy's iptables rules on the client's node.
    Flannel,
    /// The same, switched to Flannel's host-gw backend (routes via the other node, no tunnel).
    HostGw,
    /// Node namespace to node namespace between the two Flannel nodes: no pod, no eBPF program.
    Underlay,
    /// Node to node between the two strait nodes of the direct lab, through their uplink programs.
    UnderlayStraitNodes,
}

impl Stack {
    pub const ALL: [Stack; 6] = [
        Self::StraitVxlan,
        Self::StraitDirect,
        Self::Flannel,
        Self::HostGw,
        Self::Underlay,
        Self::UnderlayStraitNodes,
    ];

    /// The name used in tables and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::StraitVxlan => "strait-vxlan",
            Self::StraitDirect => "strait-direct",
            Self::Flannel => "flannel",
            Self::HostGw => "host-gw",
            Self::Underlay => "underlay",
            Self::UnderlayStraitNodes => "underlay-strait-nodes",
        }
    }

    /// Whether the stack is measured in `scenario`: the underlays have no pods and no Services.
    pub fn serves(self, scenario: Scenario) -> bool {
        !matches!(self, Self::Underlay | Self::UnderlayStraitNodes)
            || scenario == Scenario::PodToPod
    }
}

/// A ratio of two stacks' medians, with the goal when it sets one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatioSpec {
    pub numerator: Stack,
    pub denominator: Stack,
    /// The goal (the ratio should be at least this), if the issue sets one.
    pub goal: Option<f64>,
}

impl RatioSpec {
    /// `a ÷ b`.
    pub fn label(&self) -> String {
        format!("{} ÷ {}", self.numerator.name(), self.denominator.name())
    }
}

/// The ratios reported for `scenario`: strait VXLAN against Flannel (goal ≥ 1.0) everywhere; strait
/// direct against the underlay (goal ≥ 0.95) and against the underlay between strait nodes for
/// pod-to-pod; strait direct against host-gw everywhere.
pub fn ratios(scenario: Scenario) -> Vec<RatioSpec> {
    let spec = |numerator, denominator, goal| RatioSpec {
        numerator,
        denominator,
        goal,
    };
    let mut out = vec![spec(Stack::StraitVxlan, Stack::Flannel, Some(1.0))];
    if scenario == Scenario::PodToPod {
        out.push(spec(Stack::StraitDirect, Stack::Underlay, Some(0.95)));
    }
    out.push(spec(Stack::StraitDirect, Stack::HostGw, None));
    if scenario == Scenario::PodToPod {
        out.push(spec(Stack::StraitDirect, Stack::UnderlayStraitNodes, None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underlays_take_part_in_pod_to_pod_only() {
        for stack in [Stack::Underlay, Stack::UnderlayStraitNodes] {
            assert!(stack.serves(Scenario::PodToPod));
            assert!(!stack.serves(Scenario::PodToClusterIp));
            assert!(!stack.serves(Scenario::ExternalToNodePort));
        }
        assert!(Stack::HostGw.serves(Scenario::ExternalToNodePort));
    }

    #[test]
    fn every_scenario_compares_vxlan_with_flannel_and_only_pod_to_pod_with_the_underlay() {
        for scenario in Scenario::ALL {
            let ratios = ratios(scenario);
            assert_eq!(ratios[0].label(), "strait-vxlan ÷ flannel");
            assert_eq!(ratios[0].goal, Some(1.0));
            let underlay = ratios.iter().any(|r| r.denominator == Stack::Underlay);
            assert_eq!(underlay, scenario == Scenario::PodToPod, "{scenario:?}");
            assert!(
                ratios
                    .iter()
                    .all(|r| r.numerator.serves(scenario) && r.denominator.serves(scenario))
            );
        }
    }
}
