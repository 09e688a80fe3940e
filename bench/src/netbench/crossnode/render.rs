//! A cross-node run as text: the section `bench/RESULTS.md` carries between [`BEGIN`] and [`END`]
//! (the tables per scenario, the goal ratios, the join times, the stacks), printed to the terminal
//! too, and the splicing that puts that section into an existing file without touching the rest
//! (netbench's single-node report, which keeps the section when it rewrites the file).

use std::fmt::Write as _;

use super::{
    stacks::{self, RatioSpec},
    summary::{CrossCell, CrossReport, JoinRound, Spread, Verdict, spread, unit},
};
use crate::netbench::{
    load::Outcome,
    results::{Scenario, Test},
};

/// Opens the cross-node section of a results file.
pub const BEGIN: &str = "<!-- cross-node:begin (written by `netbench cross-node --markdown`; `netbench --markdown` keeps it) -->";
/// Closes it.
pub const END: &str = "<!-- cross-node:end -->";
/// The section's markers in a results file.
pub const MARKERS: crate::netbench::sections::Markers = crate::netbench::sections::Markers {
    begin_prefix: "<!-- cross-node:begin",
    end: END,
};

/// `text`'s cross-node section, markers included, if it has one.
pub fn section_of(text: &str) -> Option<&str> {
    MARKERS.section_of(text)
}

/// `existing` with its cross-node section replaced by `section` (appended when it has none).
pub fn splice(existing: Option<&str>, section: &str) -> String {
    MARKERS.splice(existing, section)
}

/// A figure in its test's unit: two decimals for Gbit/s, whole numbers for rates.
pub fn number(test: Test, value: f64) -> String {
    if test == Test::TcpStream {
        format!("{value:.2}")
    } else {
        format!("{value:.0}")
    }
}

/// A cell: the median, and the range when there was more than one round.
pub fn cell_text(test: Test, s: Spread, ranges: bool) -> String {
    if !ranges {
        return number(test, s.median);
    }
    format!(
        "{} [{}–{}]",
        number(test, s.median),
        number(test, s.min),
        number(test, s.max)
    )
}

pub fn verdict_mark(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Met => "✓",
        Verdict::MetWithinNoise => "≈✓",
        Verdict::MissedWithinNoise => "≈✗",
        Verdict::Missed => "✗",
    }
}

/// The figures table of `scenario`: one row per stack, one column per test.
fn figures_table(out: &mut String, report: &CrossReport, scenario: Scenario) {
    let tests = report.tests();
    let _ = write!(out, "| stack |");
    for test in &tests {
        let _ = write!(out, " {} {} |", test.name(), unit(*test));
    }
    let _ = writeln!(out, "\n|---|{}", "---:|".repeat(tests.len()));
    for stack in report.stacks(scenario) {
        let _ = write!(out, "| {} |", stack.name());
        for &test in &tests {
            let text = report
                .spread(stack, scenario, test)
                .map_or_else(|| "–".to_owned(), |s| cell_text(test, s, report.rounds > 1));
            let _ = write!(out, " {text} |");
        }
        out.push('\n');
    }
}

/// A ratio with two decimals, or three when two would round it onto its goal (0.946 against 0.95).
pub fn ratio_text(ratio: f64, goal: Option<f64>) -> String {
    let two = format!("{ratio:.2}");
    match goal {
        Some(goal) if two == format!("{goal:.2}") && (ratio - goal).abs() > 1e-9 => {
            format!("{ratio:.3}")
        }
        _ => two,
    }
}

/// The ratios table of `scenario`: one row per ratio, the goal's verdict beside each figure.
fn ratios_table(out: &mut String, report: &CrossReport, scenario: Scenario) {
    let tests = report.tests();
    let specs: Vec<RatioSpec> = stacks::ratios(scenario)
        .into_iter()
        .filter(|r| {
            let stacks = report.stacks(scenario);
            stacks.contains(&r.numerator) && stacks.contains(&r.denominator)
        })
        .collect();
    if specs.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "\n| ratio of the medians [range of the per-round ratios] | goal |"
    );
    for test in &tests {
        let _ = write!(out, " {} |", test.name());
    }
    let _ = writeln!(out, "\n|---|---|{}", "---:|".repeat(tests.len()));
    for spec in specs {
        let goal = spec
            .goal
            .map_or_else(|| "–".to_owned(), |g| format!("≥ {g:.2}"));
        let _ = write!(out, "| {} | {goal} |", spec.label());
        for &test in &tests {
            let text = report.ratio(&spec, scenario, test).map_or_else(
                || "–".to_owned(),
                |r| {
                    let mark = spec.goal.map_or("", |g| verdict_mark(r.verdict(g)));
                    let range = if report.rounds > 1 {
                        format!(" [{:.2}–{:.2}]", r.per_round.min, r.per_round.max)
                    } else {
                        String::new()
                    };
                    format!("{}{range} {mark}", ratio_text(r.of_medians, spec.goal))
                        .trim_end()
                        .to_owned()
                },
            );
            let _ = write!(out, " {text} |");
        }
        out.push('\n');
    }
}

/// The request/response tests whose load generator counted errors (refused, reset or timed-out
/// connections, lost datagrams), with the count of each round: a tcp-crr connection that times out
/// costs the client its 1 s connect timeout, so one error can cut a 2 s round's rate by half.
fn errors(out: &mut String, report: &CrossReport) {
    let counted: Vec<(&CrossCell, Vec<u64>)> = report
        .cells
        .iter()
        .filter_map(|cell| {
            let counts: Vec<u64> = cell
                .rounds
                .iter()
                .map(|o| match o {
                    Outcome::Rate(rate) => rate.errors,
                    Outcome::Stream(_) => 0,
                })
                .collect();
            counts.iter().any(|&n| n > 0).then_some((cell, counts))
        })
        .collect();
    if counted.is_empty() {
        return;
    }
    out.push_str(
        "Errors the load generator counted (per round; a tcp-crr connection that times out costs the client \
         its 1 s connect timeout):\n\n",
    );
    for (cell, counts) in counted {
        let counts: Vec<String> = counts.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "- {} {} {}: {}",
            cell.stack.name(),
            cell.scenario.name(),
            cell.test.name(),
            counts.join(", ")
        );
    }
    out.push('\n');
}

/// The tests that failed once and were measured again.
fn failures(out: &mut String, report: &CrossReport) {
    let failed: Vec<_> = report
        .cells
        .iter()
        .filter(|c| !c.failures.is_empty())
        .collect();
    if failed.is_empty() {
        return;
    }
    out.push_str(
        "Tests that failed once and were measured again (the figures are the second attempt's):

",
    );
    for cell in failed {
        for failure in &cell.failures {
            let _ = writeln!(
                out,
                "- {} {} {}, {failure}",
                cell.stack.name(),
                cell.scenario.name(),
                cell.test.name()
            );
        }
    }
    out.push('\n');
}

/// Picks one time out of a join round.
type Pick = fn(&JoinRound) -> f64;

/// The join table.
fn join_table(out: &mut String, report: &CrossReport) {
    if let Some(error) = &report.join_error {
        let _ = writeln!(
            out,
            "### Joining a node\n\nThe join measurement failed: {error}\n"
        );
    }
    let Some(join) = &report.join else { return };
    let _ = writeln!(
        out,
        "### Joining a node\n\nA third node joins a running strait VXLAN lab of {} nodes (`Lab::add_node`, what \
         `strait lab node add` runs), {} time(s), removed again after each. Times from the start of the add; \
         median [range]:\n",
        join.nodes_before,
        join.rounds.len()
    );
    let _ = writeln!(out, "| from the start of the add until | ms |\n|---|---:|");
    let rows: [(&str, Pick); 4] = [
        (
            "`lab node add` returned (agent healthy, every agent synced with the new Node)",
            |r| r.add_ms,
        ),
        (
            "the new node's address answered a pod on every other node",
            |r| r.node_reachable_ms,
        ),
        (
            "a pod on the new node was running (started after the add returned)",
            |r| r.pod_ready_ms,
        ),
        ("that pod answered a pod on every other node", |r| {
            r.pod_reachable_ms
        }),
    ];
    for (what, pick) in rows {
        let values: Vec<f64> = join.rounds.iter().map(pick).collect();
        if let Some(s) = spread(&values) {
            let _ = writeln!(
                out,
                "| {what} | {:.0} [{:.0}–{:.0}] |",
                s.median, s.min, s.max
            );
        }
    }
    out.push('\n');
}

const STACKS: &str = "The stacks:
- **strait-vxlan**: two strait nodes, `--overlay vxlan`; the Service applied through the lab, programmed by the agents.
- **strait-direct**: two strait nodes, `--overlay direct`.
- **flannel**: two of the lab's Flannel reference nodes (kernel `flannel.1`, `cni0` bridges, IP forwarding, no strait), with kube-proxy's iptables-mode rules (netbench's generator) loaded into the client's node for the Service; its endpoint is the server pod on the other node.
- **host-gw**: the same, switched to Flannel's host-gw backend: each node routes the other's pod CIDR via the other's address on `eth0`, pods and bridge at MTU 1500.
- **underlay**: node namespace to node namespace between the two Flannel nodes; no pod, no eBPF program.
- **underlay-strait-nodes**: the same between the two strait nodes of the direct lab, through their uplink programs (generic-mode XDP in the lab).
";

/// The cross-node section, markers included.
pub fn section(report: &CrossReport) -> String {
    let mut out = format!("{BEGIN}\n## Cross-node\n\n");
    out.push_str(&crate::run_header!(report));
    let _ = writeln!(
        out,
        "Two nodes, the endpoint always on the other node than the client. Every stack is measured in the same run \
         with netbench's load generator (the client a process in the client's namespace and cgroup, the server in \
         the server pod; no spinners), rounds interleaved: in each round every test runs once on every stack, one \
         stack after another. Cells give the median of {} round(s) of {} s with the range over the rounds in \
         brackets. The strait agents run with `--xdp-mode {}` (the lab's uplinks are veths: `auto`, \
         strait's default, runs no XDP program on a virtual uplink and tc makes every check; `generic` runs \
         every XDP check at the cost of a copy of each GRO/GSO aggregate). Ratios are of the medians, with the range of the round-by-round ratios; against a goal: ✓ met in \
         every round, ≈✓ met by the medians but not in every round, ≈✗ missed by the medians but met in some \
         round, ✗ missed in every round.\n",
        report.rounds,
        report.test_seconds,
        if report.xdp_mode.is_empty() {
            "generic"
        } else {
            &report.xdp_mode
        }
    );
    for scenario in report.scenarios() {
        let _ = writeln!(out, "### {}\n", scenario.name());
        figures_table(&mut out, report, scenario);
        ratios_table(&mut out, report, scenario);
        out.push('\n');
    }
    errors(&mut out, report);
    failures(&mut out, report);
    join_table(&mut out, report);
    out.push_str(STACKS);
    out.push_str(END);
    out
}

/// The terminal's view: the section without its markers.
pub fn terminal(report: &CrossReport) -> String {
    let text = section(report);
    text.trim_start_matches(BEGIN)
        .trim_end_matches(END)
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netbench::{
        crossnode::{Stack, summary::JoinReport},
        results::{Rate, Stream},
    };

    fn report() -> CrossReport {
        let mut cells = Vec::new();
        for (stack, factor) in [
            (Stack::StraitVxlan, 1.1),
            (Stack::Flannel, 1.0),
            (Stack::Underlay, 1.2),
        ] {
            for test in Test::ALL {
                let outcome = |x: f64| match test {
                    Test::TcpStream => Outcome::Stream(Stream {
                        gbit_per_s: x * factor,
                        ..Stream::default()
                    }),
                    _ => Outcome::Rate(Rate {
                        per_second: 1000.0 * x * factor,
                        ..Rate::default()
                    }),
                };
                cells.push(CrossCell {
                    stack,
                    scenario: Scenario::PodToPod,
                    test,
                    rounds: vec![outcome(10.0), outcome(9.0), outcome(11.0)],
                    failures: Vec::new(),
                });
            }
        }
        CrossReport {
            command: "netbench cross-node --rounds 3".to_owned(),
            rounds: 3,
            test_seconds: 2.0,
            cells,
            join: Some(JoinReport {
                nodes_before: 2,
                rounds: vec![JoinRound {
                    add_ms: 900.0,
                    node_reachable_ms: 850.0,
                    pod_ready_ms: 1200.0,
                    pod_reachable_ms: 1210.0,
                }],
            }),
            ..CrossReport::default()
        }
    }

    #[test]
    fn the_section_has_the_tables_ratios_and_join_times() {
        let text = section(&report());
        assert!(text.starts_with(BEGIN) && text.ends_with(END), "{text}");
        assert!(
            text.contains("| strait-vxlan | 11.00 [9.90–12.10] | 11000 [9900–12100] |"),
            "{text}"
        );
        assert!(
            text.contains("| strait-vxlan ÷ flannel | ≥ 1.00 | 1.10 [1.10–1.10] ✓ |"),
            "{text}"
        );
        // Only the stacks measured: no strait-direct, so no ratio of it.
        assert!(!text.contains("strait-direct ÷"), "{text}");
        assert!(text.contains("| `lab node add` returned"), "{text}");
        assert!(text.contains("| 850 [850–850] |"), "{text}");
        assert!(!terminal(&report()).contains("cross-node:begin"));
        assert!(
            !text.contains("Errors the load generator counted"),
            "{text}"
        );
    }

    #[test]
    fn ratios_next_to_their_goal_get_a_third_decimal() {
        assert_eq!(ratio_text(0.9461, Some(0.95)), "0.946");
        assert_eq!(ratio_text(0.95, Some(0.95)), "0.95");
        assert_eq!(ratio_text(0.9461, None), "0.95");
        assert_eq!(ratio_text(1.234, Some(1.0)), "1.23");
    }

    #[test]
    fn splicing_replaces_the_old_section_and_keeps_the_rest() {
        let old = format!("# netbench results\n\nsingle node\n\n{BEGIN}\nold figures\n{END}\n");
        let spliced = splice(Some(&old), &format!("{BEGIN}\nnew figures\n{END}"));
        assert!(
            spliced.starts_with("# netbench results\n\nsingle node\n"),
            "{spliced}"
        );
        assert!(
            spliced.contains("new figures") && !spliced.contains("old figures"),
            "{spliced}"
        );
        assert_eq!(
            section_of(&spliced),
            Some(format!("{BEGIN}\nnew figures\n{END}").as_str())
        );
        let appended = splice(Some("# results\n"), "S");
        assert_eq!(appended, "# results\n\nS\n");
        assert_eq!(splice(None, "S"), "S\n");
        assert_eq!(section_of("no section"), None);
    }
}
