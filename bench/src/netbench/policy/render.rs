//! A policy sweep as text: the section `bench/RESULTS.md` carries between [`BEGIN`] and [`END`] (the
//! figures per policy count, the goal ratios, the enforcement times, what the policies are), printed
//! to the terminal too, and the splicing that puts that section into an existing file without
//! touching the rest (appended after whatever is there the first time).

use std::fmt::Write as _;

use super::{
    manifest,
    summary::{EnforceRound, PolicyReport, PolicyStack, count_ratios},
};
use crate::netbench::{
    crossnode::{
        render::{cell_text, ratio_text, verdict_mark},
        summary::{RatioFigure, spread, unit},
    },
    load::Outcome,
};

/// Opens the policy section of a results file.
pub const BEGIN: &str = "<!-- policy:begin (written by `netbench policy --markdown`) -->";
/// Closes it.
pub const END: &str = "<!-- policy:end -->";
/// The section's markers in a results file.
pub const MARKERS: crate::netbench::sections::Markers = crate::netbench::sections::Markers {
    begin_prefix: "<!-- policy:begin",
    end: END,
};

/// `text`'s policy section, markers included, if it has one.
pub fn section_of(text: &str) -> Option<&str> {
    MARKERS.section_of(text)
}

/// `existing` with its policy section replaced by `section` (appended when it has none).
pub fn splice(existing: Option<&str>, section: &str) -> String {
    MARKERS.splice(existing, section)
}

/// The figures table: one row per stack and count, the setup beside the tests.
fn figures_table(out: &mut String, report: &PolicyReport) {
    let tests = report.tests();
    let _ = write!(
        out,
        "| stack | policies | selecting the server | applied in (ms) |"
    );
    for test in &tests {
        let _ = write!(out, " {} {} |", test.name(), unit(*test));
    }
    let _ = writeln!(out, "\n|---|---:|---:|---:|{}", "---:|".repeat(tests.len()));
    for stack in report.stacks() {
        for count in report.counts_of(stack) {
            let setup = report
                .setups
                .iter()
                .find(|s| s.stack == stack && s.policies == count);
            let _ = write!(
                out,
                "| {} | {count} | {} | {} |",
                stack.name(),
                setup.map_or_else(|| "–".to_owned(), |s| s.selecting_server.to_string()),
                setup.map_or_else(|| "–".to_owned(), |s| format!("{:.0}", s.apply_ms)),
            );
            for &test in &tests {
                let text = report
                    .spread(stack, count, test)
                    .map_or_else(|| "–".to_owned(), |s| cell_text(test, s, report.rounds > 1));
                let _ = write!(out, " {text} |");
            }
            out.push('\n');
        }
    }
}

/// A ratio row: its label, goal and figure per test.
type RatioRow = (String, Option<f64>, Vec<Option<RatioFigure>>);

/// The ratio rows: each stack against itself without policies (the goal) and at the least count,
/// then strait against kube-router at each count both measured.
fn ratio_rows(report: &PolicyReport) -> Vec<RatioRow> {
    let tests = report.tests();
    let mut rows = Vec::new();
    for stack in report.stacks() {
        for ratio in count_ratios(&report.counts_of(stack)) {
            let figures = tests
                .iter()
                .map(|&t| report.ratio(stack, &ratio, t))
                .collect();
            rows.push((ratio.label(stack), ratio.goal, figures));
        }
    }
    let kube_router = report.counts_of(PolicyStack::KubeRouter);
    for count in report.counts_of(PolicyStack::Strait) {
        if kube_router.contains(&count) {
            let figures = tests
                .iter()
                .map(|&t| report.stack_ratio(count, t))
                .collect();
            rows.push((
                format!("strait({count}) ÷ kube-router({count})"),
                None,
                figures,
            ));
        }
    }
    rows
}

/// The ratios table: one row per ratio, the goal's verdict beside each figure.
fn ratios_table(out: &mut String, report: &PolicyReport) {
    let tests = report.tests();
    let rows = ratio_rows(report);
    if rows.is_empty() {
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
    for (label, goal, figures) in rows {
        let goal_text = goal.map_or_else(|| "–".to_owned(), |g| format!("≥ {g:.2}"));
        let _ = write!(out, "| {label} | {goal_text} |");
        for figure in figures {
            let text = figure.map_or_else(
                || "–".to_owned(),
                |r| {
                    let mark = goal.map_or("", |g| verdict_mark(r.verdict(g)));
                    let range = if report.rounds > 1 {
                        format!(" [{:.2}–{:.2}]", r.per_round.min, r.per_round.max)
                    } else {
                        String::new()
                    };
                    format!("{}{range} {mark}", ratio_text(r.of_medians, goal))
                        .trim_end()
                        .to_owned()
                },
            );
            let _ = write!(out, " {text} |");
        }
        out.push('\n');
    }
}

/// Picks one time out of an enforcement round.
type Pick = fn(&EnforceRound) -> f64;

/// The enforcement table.
fn enforce_table(out: &mut String, report: &PolicyReport) {
    if report.enforce.is_empty() && report.enforce_error.is_none() {
        return;
    }
    out.push_str("### A policy change, enforced\n\n");
    if let Some(error) = &report.enforce_error {
        let _ = writeln!(out, "The enforcement measurement failed: {error}\n");
    }
    for enforce in &report.enforce {
        let (how, proof) = if enforce.stack == PolicyStack::Strait {
            (
                "applied through the lab (which returns once every agent has synced it)",
                format!(
                    "; every denial showed in the agents' `policy_denied` drop counter ({} packets in all)",
                    enforce.rounds.iter().map(|r| r.policy_drops).sum::<u64>()
                ),
            )
        } else {
            (
                "put in force by a full kube-router sync on both nodes at once (ipset restore, iptables-save, \
                 iptables-restore of the filter table; the apply is the slower node's sync; kube-router's own \
                 reaction to the API server is not counted)",
                String::new(),
            )
        };
        let _ = writeln!(
            out,
            "{}, {} policies in force: `{}` (the one policy letting the client reach the server's port) moved to \
             another port, which denies the client, then as it was, {} time(s), each {how}. Meanwhile the client \
             pod opens new connections to the server back to back (100 ms connect timeout while allowed, 20 ms \
             while denied){proof}. Times from the start of the apply; median [range]:\n",
            enforce.stack.name(),
            enforce.policies,
            manifest::ALLOW_CLIENT,
            enforce.rounds.len(),
        );
        let _ = writeln!(
            out,
            "| from the start of the apply until | ms |\n|---|---:|"
        );
        let rows: [(&str, Pick); 4] = [
            ("the apply that denies the client returned", |r| {
                r.deny_apply_ms
            }),
            (
                "the client's new connections were denied (the first failed attempt's start, confirmed by the next)",
                |r| r.denied_ms,
            ),
            ("the apply that allows the client again returned", |r| {
                r.allow_apply_ms
            }),
            (
                "the client's new connections got through again (to 20 ms)",
                |r| r.allowed_ms,
            ),
        ];
        for (what, pick) in rows {
            let values: Vec<f64> = enforce.rounds.iter().map(pick).collect();
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
}

/// The tests whose load generator counted errors, and the tests measured again.
fn errors(out: &mut String, report: &PolicyReport) {
    let mut lines = Vec::new();
    for cell in &report.cells {
        let counts: Vec<u64> = cell
            .rounds
            .iter()
            .map(|o| match o {
                Outcome::Rate(rate) => rate.errors,
                Outcome::Stream(_) => 0,
            })
            .collect();
        if counts.iter().any(|&n| n > 0) {
            let counts: Vec<String> = counts.iter().map(ToString::to_string).collect();
            lines.push(format!(
                "- {} with {} policies, {}: errors per round {}",
                cell.stack.name(),
                cell.policies,
                cell.test.name(),
                counts.join(", ")
            ));
        }
        for failure in &cell.failures {
            lines.push(format!(
                "- {} with {} policies, {}: failed and measured again, {failure}",
                cell.stack.name(),
                cell.policies,
                cell.test.name()
            ));
        }
    }
    if lines.is_empty() {
        return;
    }
    out.push_str(
        "Errors the load generator counted (a tcp-crr connection that times out costs the client its 1 s \
         connect timeout) and tests measured again:\n\n",
    );
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
}

fn policies_text() -> String {
    format!(
        "The policies: with N of them, `{allow}` in `default` selects the server pod (`app: bench-server`) and \
         allows the client pod (`app: bench-client`) on the server's port; of the other N − 1, the odd ones select the \
         server too, each with one ingress rule on a port of its own (10000 + i) from a peer of one of five shapes \
         in turn: the client by label (so the kernel's policy map holds an entry per such policy), a namespace by \
         label, a pod label no pod has ANDed with `default` by name, an `ipBlock` of one outside address, every pod \
         of `default` over UDP. The even ones select `app: other-i` in one of {namespaces} extra namespaces (every \
         fourth with an egress rule too). No policy but `{allow}` allows the server's port, so the client's flow \
         is judged against every rule selecting the server: allowed by one.\n\n",
        allow = manifest::ALLOW_CLIENT,
        namespaces = manifest::NAMESPACES,
    )
}

/// The kube-router baseline's paragraph.
fn baseline(out: &mut String, report: &PolicyReport) {
    let setups: Vec<_> = report
        .setups
        .iter()
        .filter(|s| s.stack == PolicyStack::KubeRouter)
        .collect();
    if setups.is_empty() {
        let why = report
            .kube_router_note
            .as_deref()
            .unwrap_or("kube-router baseline: not measured yet");
        let _ = writeln!(out, "{why}.\n");
        return;
    }
    out.push_str(
        "The baseline, **kube-router** (as k3s runs it: Flannel for the network, kube-router's network policy \
         controller for the policies): cross-node's Flannel lab (two Flannel reference nodes: kernel VXLAN, \
         `cni0` bridges, kube-proxy's iptables rules for the benchmark Service on the client's node) with the \
         iptables rules and ipsets kube-router's network policy controller (iptables mode, IPv4, no default deny) \
         writes for the same policies and pods on each node, generated from its own layout: chains \
         `KUBE-ROUTER-INPUT/FORWARD/OUTPUT` jumped to first, a `KUBE-POD-FW-<hash>` chain per local pod (conntrack \
         ESTABLISHED accepted first through `KUBE-NWPLCY-COMMON`, then a jump to the `KUBE-NWPLCY-<hash>` chain of \
         every policy selecting the pod, then REJECT of what no rule marked), an ipset per policy's pods and per \
         rule's peers (`hash:ip`, `hash:net` for ipBlocks), two rules per (rule, port), loaded as a kube-router \
         sync does (`ipset restore` with temporary sets and `swap`, `iptables-save`, `iptables-restore` of the \
         whole filter table). kube-router's policy order is its informer cache's; the allowing policy's jump stands \
         in the middle of the server's. Per node:",
    );
    for setup in &setups {
        let _ = write!(
            out,
            " {} policies: {} ipsets, {} rules in kube-router's chains on the server's node;",
            setup.policies, setup.ipsets, setup.rules
        );
    }
    out.pop();
    out.push('.');
    if let Some(max) = &report.ip_set_max {
        let largest = setups.iter().max_by_key(|s| s.ipsets);
        let (most, policies) = largest.map_or((0, 0), |s| (s.ipsets, s.policies));
        let _ = write!(
            out,
            " The kernel's ipset table starts at {max} (256 unless set), and {}",
            if most > 256 {
                // Sets grow about linearly with the policies: where the 257th set came.
                let limit = 256 * policies / most;
                format!(
                    "grew past it as the sets were created: all {most} sets of {policies} policies loaded, so the \
                     256-set default did not stop kube-router here. A kernel that cannot grow the table (or \
                     `max_sets` pinned at 256) would refuse the 257th set, and with it kube-router's sync, from \
                     about {limit} policies like these on ({}.{:02} sets per policy).",
                    most / policies.max(1),
                    most * 100 / policies.max(1) % 100
                )
            } else {
                "no count here needed more than 256 sets.".to_owned()
            }
        );
    }
    out.push_str("\n\n");
}

/// The policy section, markers included.
pub fn section(report: &PolicyReport) -> String {
    let mut out = format!("{BEGIN}\n## NetworkPolicy at scale\n\n");
    out.push_str(&crate::run_header!(report));
    let _ = writeln!(
        out,
        "Pod to pod between two nodes, client and server on different nodes, with a given number of \
         NetworkPolicies in the cluster: strait (two strait nodes, `--overlay vxlan`, `--xdp-mode {}`) and, as the \
         baseline, kube-router's rules on Flannel nodes (below). One lab per stack and policy count, built and given \
         its policies (strait: through the lab, which returns once every agent has synced them; kube-router: a sync \
         on both nodes) before any measuring, so the rounds need no apply (then the run waited {:.1} s for the strait \
         agents to be quiet: an agent goes on working a little after its sync clock moves): in each round every \
         test runs once in every lab, one lab after another, the order turned by one each round. Cells give the median of {} round(s) \
         of {} s with the range over the rounds in brackets. Ratios are of the medians, with the range of the \
         round-by-round ratios; against the goal (within 5% of no policy at all): ✓ met in every round, ≈✓ met by \
         the medians but not in every round, ≈✗ missed by the medians but met in some round, ✗ missed in every \
         round. With policies the server pod is isolated, so its flows are judged at all (strait: a flow's first \
         packet against the policy maps, then a POLICY_CT lookup per packet); the ratio against the smallest \
         non-zero count shows what the number of policies adds to that.\n",
        report.xdp_mode, report.settled_s, report.rounds, report.test_seconds,
    );
    figures_table(&mut out, report);
    ratios_table(&mut out, report);
    out.push('\n');
    errors(&mut out, report);
    enforce_table(&mut out, report);
    out.push_str(&policies_text());
    baseline(&mut out, report);
    out.push_str(END);
    out
}

/// The terminal's view: the section without its markers.
pub fn terminal(report: &PolicyReport) -> String {
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
        policy::summary::{EnforceReport, PolicyCell, Setup},
        results::{Rate, Test},
    };

    fn report() -> PolicyReport {
        let mut cells = Vec::new();
        let mut setups = Vec::new();
        for (policies, factor, apply_ms) in [(0, 1.0, 0.0), (100, 0.97, 100.0), (1000, 0.9, 1000.0)]
        {
            setups.push(Setup {
                stack: PolicyStack::Strait,
                policies,
                selecting_server: manifest::selecting_server(policies),
                apply_ms,
                ..Setup::default()
            });
            for test in [Test::TcpRr, Test::TcpCrr] {
                let rate = |x: f64| {
                    Outcome::Rate(Rate {
                        per_second: 1000.0 * x * factor,
                        ..Rate::default()
                    })
                };
                cells.push(PolicyCell {
                    stack: PolicyStack::Strait,
                    policies,
                    test,
                    rounds: vec![rate(10.0), rate(9.0), rate(11.0)],
                    failures: Vec::new(),
                });
            }
        }
        PolicyReport {
            command: "netbench policy --rounds 3".to_owned(),
            rounds: 3,
            test_seconds: 2.0,
            xdp_mode: "auto".to_owned(),
            counts: vec![0, 100, 1000],
            setups,
            cells,
            enforce: vec![EnforceReport {
                stack: PolicyStack::Strait,
                policies: 1000,
                rounds: vec![EnforceRound {
                    deny_apply_ms: 300.0,
                    denied_ms: 120.0,
                    allow_apply_ms: 310.0,
                    allowed_ms: 130.0,
                    policy_drops: 2,
                }],
            }],
            ..PolicyReport::default()
        }
    }

    #[test]
    fn the_section_has_the_figures_ratios_and_enforcement() {
        let text = section(&report());
        assert!(text.starts_with(BEGIN) && text.ends_with(END), "{text}");
        assert!(
            text.contains("| strait | 1000 | 501 | 1000 | 9000 [8100–9900] | 9000 [8100–9900] |"),
            "{text}"
        );
        assert!(
            text.contains("| strait(100) ÷ strait(0) | ≥ 0.95 | 0.97 [0.97–0.97] ✓ |"),
            "{text}"
        );
        assert!(
            text.contains("| strait(1000) ÷ strait(0) | ≥ 0.95 | 0.90 [0.90–0.90] ✗ |"),
            "{text}"
        );
        assert!(
            text.contains("| strait(1000) ÷ strait(100) | – | 0.93 [0.93–0.93] |"),
            "{text}"
        );
        assert!(text.contains("| 120 [120–120] |"), "{text}");
        assert!(
            text.contains("kube-router baseline: not measured yet"),
            "{text}"
        );
        assert!(!terminal(&report()).contains("policy:begin"));
    }

    #[test]
    fn the_baseline_has_its_rules_and_a_ratio_against_strait() {
        let mut report = report();
        let strait: Vec<PolicyCell> = report.cells.clone();
        for mut cell in strait {
            cell.stack = PolicyStack::KubeRouter;
            for outcome in &mut cell.rounds {
                if let Outcome::Rate(rate) = outcome {
                    rate.per_second /= 2.0;
                }
            }
            report.cells.push(cell);
        }
        report.setups.push(Setup {
            stack: PolicyStack::KubeRouter,
            policies: 1000,
            selecting_server: 501,
            apply_ms: 400.0,
            ipsets: 1550,
            rules: 1137,
        });
        report.ip_set_max = Some("CONFIG_IP_SET_MAX=256, max_sets=0".to_owned());
        let text = section(&report);
        assert!(
            text.contains("| strait(1000) ÷ kube-router(1000) | – | 2.00 [2.00–2.00] |"),
            "{text}"
        );
        assert!(
            text.contains("1000 policies: 1550 ipsets, 1137 rules"),
            "{text}"
        );
        assert!(text.contains("grew past it"), "{text}");
        assert!(text.contains("from about 165 policies"), "{text}");
        assert!(!text.contains("not measured yet"), "{text}");
    }

    #[test]
    fn splicing_keeps_the_rest_of_the_file() {
        let old = format!("# results\n\nx\n\n{BEGIN}\nold\n{END}\n\ntail\n");
        let spliced = splice(Some(&old), &format!("{BEGIN}\nnew\n{END}"));
        assert!(
            spliced.contains("new") && !spliced.contains("old"),
            "{spliced}"
        );
        assert!(spliced.ends_with("tail\n"), "{spliced}");
        assert_eq!(splice(Some("# r\n"), "S"), "# r\n\nS\n");
        assert_eq!(splice(None, "S"), "S\n");
    }
}
