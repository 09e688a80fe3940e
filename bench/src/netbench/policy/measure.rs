//! The labs of a sweep and the rounds. Per stack, one lab per policy count, its policies in place
//! before any measuring, so changing counts costs no apply inside the rounds: for strait a two-node
//! strait VXLAN lab (cross-node's builder: the client pod on one node, the server pod with
//! netbench's server on the other), the policies applied through the lab; for kube-router
//! cross-node's Flannel lab with kube-router's rules synced onto both nodes
//! ([`super::kube_router_lab`]). In each round every test runs once on every lab, one after the other; the
//! order of the labs turns by one each round, so no count always runs first after a pause or last.
//! A test that fails is measured once more, and the failure kept in its cell; a second failure ends
//! the run.

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use strait_lab::state::{LabOverlay, LabXdp};

use super::{
    kube_router_lab::KubeRouterNodes,
    manifest,
    summary::{PolicyCell, PolicyStack, Setup},
};
use crate::netbench::{
    crossnode::{
        CrossError, Stack, error,
        labs::{self, BuiltLab, Endpoint},
        rounds::error_chain,
        summary::{figure, unit},
    },
    load::Outcome,
    results::{Scenario, Test},
    run::progress,
    wiring,
};

/// Seconds of each check.
const CHECK_SECONDS: f64 = 0.2;
/// Tries of each check before the lab counts as broken (a first packet may wait for ARP).
const CHECK_TRIES: usize = 3;
/// Pause before measuring a failed test again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// The window over which the agents' CPU time is compared, what counts as quiet in it (clock ticks,
/// usually 10 ms each: about 6% of one CPU for all the agents together), and the longest wait.
const SETTLE_WINDOW: Duration = Duration::from_millis(500);
const QUIET_TICKS: u64 = 3;
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// One stack's lab for one policy count, its policies in force.
pub struct CountLab {
    pub stack: PolicyStack,
    pub policies: usize,
    pub built: BuiltLab,
    /// The client pod to the server pod's address.
    pub endpoint: Endpoint,
    pub setup: Setup,
    /// The kube-router lab's nodes (to sync a change).
    kube_router: Option<KubeRouterNodes>,
}

impl CountLab {
    /// Puts [`manifest::ALLOW_CLIENT`] in force as it allows the client (`allow`) or moved off the
    /// server's port (the client denied): for strait through the lab, for kube-router by a sync of
    /// every policy on both nodes. Returns when that is done.
    pub fn set_allowing(&mut self, allow: bool) -> Result<(), CrossError> {
        let spec = if allow {
            manifest::allowing_spec()
        } else {
            manifest::flipped_spec()
        };
        if let Some(nodes) = &mut self.kube_router {
            let mut specs = manifest::specs(self.policies);
            specs[0] = spec;
            nodes.sync(&specs)?;
            return Ok(());
        }
        self.built
            .lab
            .apply_str(Path::new("flip.yaml"), &spec.yaml())
            .map_err(error::lab("applying the change"))?;
        Ok(())
    }
}

/// Builds a kube-router lab (`pk<index>…`) and syncs `policies` policies onto it.
pub fn build_kube_router(policies: usize, index: usize) -> Result<CountLab, CrossError> {
    let (built, endpoints) = labs::flannel(Stack::Flannel, &format!("pk{index}"))?;
    let endpoint = endpoints
        .into_iter()
        .find(|e| e.stack == Stack::Flannel && e.scenario == Scenario::PodToPod)
        .ok_or_else(|| CrossError::Invalid("the Flannel lab has no pod-to-pod endpoint".into()))?;
    let mut nodes = KubeRouterNodes::new(&built.lab)?;
    let synced = nodes.sync(&manifest::specs(policies))?;
    let selecting_server = manifest::selecting_server(policies);
    progress(format_args!(
        "policy: lab {} has kube-router's rules for {policies} policies ({selecting_server} select the server): \
         {} ipsets, {} rules on the server's node, synced in {:.0} ms",
        built.lab.names.lab, synced.sets, synced.rules, synced.ms
    ));
    Ok(CountLab {
        stack: PolicyStack::KubeRouter,
        policies,
        built,
        endpoint,
        setup: Setup {
            stack: PolicyStack::KubeRouter,
            policies,
            selecting_server,
            apply_ms: synced.ms,
            ipsets: synced.sets,
            rules: synced.rules,
        },
        kube_router: Some(nodes),
    })
}

/// Builds a strait lab (`pp<index>…`) and applies `policies` policies to it.
pub fn build(policies: usize, index: usize, xdp: LabXdp) -> Result<CountLab, CrossError> {
    let (mut built, endpoints) = labs::strait(
        Stack::StraitVxlan,
        &format!("pp{index}"),
        LabOverlay::Vxlan,
        xdp,
    )?;
    let endpoint = endpoints
        .into_iter()
        .find(|e| e.scenario == Scenario::PodToPod)
        .ok_or_else(|| CrossError::Invalid("the strait lab has no pod-to-pod endpoint".into()))?;
    let started = Instant::now();
    if policies > 0 {
        let text = manifest::policies(policies);
        built
            .lab
            .apply_str(Path::new("policies.yaml"), &text)
            .map_err(error::lab(format!(
                "applying {policies} policies to lab {}",
                built.lab.names.lab
            )))?;
    }
    let apply_ms = started.elapsed().as_secs_f64() * 1000.0;
    let selecting_server = manifest::selecting_server(policies);
    progress(format_args!(
        "policy: lab {} has {policies} policies ({selecting_server} select the server), applied in {apply_ms:.0} ms",
        built.lab.names.lab
    ));
    Ok(CountLab {
        stack: PolicyStack::Strait,
        policies,
        built,
        endpoint,
        setup: Setup {
            stack: PolicyStack::Strait,
            policies,
            selecting_server,
            apply_ms,
            ..Setup::default()
        },
        kube_router: None,
    })
}

/// CPU time (user + system, in clock ticks) of every strait agent in `labs`.
fn agents_cpu(labs: &[CountLab]) -> u64 {
    labs.iter()
        .flat_map(|l| l.built.lab.state.nodes.iter())
        .filter(|n| n.runs_strait())
        .filter_map(|n| std::fs::read_to_string(format!("/proc/{}/stat", n.agent_pid)).ok())
        .filter_map(|stat| {
            let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// Waits until the agents are quiet (under [`QUIET_TICKS`] clock ticks of CPU, all together, in
/// [`SETTLE_WINDOW`]), at most [`SETTLE_LIMIT`]: an agent goes on working a little after the lab's
/// apply returns (its sync clock has moved), and a round measured then would count that work
/// against the lab's datapath. Returns how long it waited.
pub fn settle(labs: &[CountLab]) -> Duration {
    let started = Instant::now();
    let mut before = agents_cpu(labs);
    while started.elapsed() < SETTLE_LIMIT {
        thread::sleep(SETTLE_WINDOW);
        let now = agents_cpu(labs);
        if now.saturating_sub(before) < QUIET_TICKS {
            break;
        }
        before = now;
    }
    let waited = started.elapsed();
    progress(format_args!(
        "policy: the agents were quiet after {:.1} s",
        waited.as_secs_f64()
    ));
    waited
}

/// Tunes every client's namespace and checks that each lab's client reaches its server (a short
/// tcp-rr and tcp-crr): its policies allow it.
pub fn check(labs: &[CountLab]) -> Result<(), CrossError> {
    for lab in labs {
        let broken = |source| CrossError::NotWorking {
            stack: lab.stack.name(),
            scenario: "pod-to-pod with policies",
            source: Box::new(source),
        };
        wiring::tune_client(&lab.endpoint.wiring.client).map_err(broken)?;
        for test in [Test::TcpRr, Test::TcpCrr] {
            let mut tries = 0;
            loop {
                tries += 1;
                match wiring::run_client(
                    &lab.endpoint.wiring,
                    &lab.endpoint.lab,
                    test,
                    CHECK_SECONDS,
                ) {
                    Ok(_) => break,
                    Err(error) if tries >= CHECK_TRIES => {
                        progress(format_args!(
                            "policy: {}: the client does not reach the server with {} policies",
                            lab.stack.name(),
                            lab.policies
                        ));
                        return Err(broken(error));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(200)),
                }
            }
        }
    }
    progress(format_args!(
        "policy: the client reaches the server in all {} lab(s)",
        labs.len()
    ));
    Ok(())
}

/// Runs `rounds` rounds of `tests` of `seconds` on every lab. Returns one cell per lab and test.
pub fn rounds(
    labs: &mut [CountLab],
    tests: &[Test],
    rounds: usize,
    seconds: f64,
) -> Result<Vec<PolicyCell>, CrossError> {
    let mut cells: Vec<PolicyCell> = labs
        .iter()
        .flat_map(|lab| {
            tests.iter().map(|&test| PolicyCell {
                stack: lab.stack,
                policies: lab.policies,
                test,
                rounds: Vec::with_capacity(rounds),
                failures: Vec::new(),
            })
        })
        .collect();
    let n = labs.len();
    for round in 1..=rounds {
        for lab in labs.iter_mut() {
            lab.built.ensure_alive()?;
        }
        for (t, &test) in tests.iter().enumerate() {
            for k in 0..n {
                let l = (k + round - 1) % n;
                let lab = &labs[l];
                let cell = &mut cells[l * tests.len() + t];
                let outcome = match one(lab, test, seconds, round) {
                    Ok(outcome) => outcome,
                    Err(error) => {
                        let text = error_chain(&error);
                        progress(format_args!("  failed, measuring again: {text}"));
                        cell.failures.push(format!("round {round}: {text}"));
                        thread::sleep(RETRY_PAUSE);
                        one(lab, test, seconds, round)?
                    }
                };
                cell.rounds.push(outcome);
            }
        }
    }
    Ok(cells)
}

/// One test on one lab, reported on stderr.
fn one(lab: &CountLab, test: Test, seconds: f64, round: usize) -> Result<Outcome, CrossError> {
    let outcome = wiring::run_client(&lab.endpoint.wiring, &lab.endpoint.lab, test, seconds)
        .map_err(error::run(format!(
            "{} with {} policies {} (round {round})",
            lab.stack.name(),
            lab.policies,
            test.name()
        )))?;
    let errors = match &outcome {
        Outcome::Rate(rate) if rate.errors > 0 => format!(" ({} errors)", rate.errors),
        _ => String::new(),
    };
    progress(format_args!(
        "  round {round} {:<11} {:>6} policies {:<8} {:>10.0} {}{errors}",
        lab.stack.name(),
        lab.policies,
        test.name(),
        figure(&outcome),
        unit(test)
    ));
    Ok(outcome)
}
