//! Measuring: first a short check that every stack carries every scenario's traffic (TCP and UDP),
//! then the rounds. In each round every scenario's tests run once on every stack, one stack after the
//! other for each test, so a slow spell of the machine falls on all of them alike. A test that fails
//! is measured once more, and the failure kept in its cell (the report lists them); a second failure
//! ends the run.

use std::{thread, time::Duration};

use super::{
    CrossError, error,
    labs::{BuiltLab, Endpoint},
    summary::{CrossCell, figure, unit},
};
use crate::netbench::{
    load::Outcome,
    results::{Scenario, Test},
    run::progress,
    wiring,
};

/// Seconds of each check.
const CHECK_SECONDS: f64 = 0.2;
/// Tries of each check before the stack counts as broken (a first packet may wait for ARP).
const CHECK_TRIES: usize = 3;

/// Pause before measuring a failed test again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// `error` and its causes, on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.replace('\n', " ")
}

/// Tunes every client's namespace (netbench's port range and TIME_WAIT reuse) and checks that each
/// endpoint answers a short tcp-rr and udp-rr; the error names the stack and scenario that do not.
pub fn check(endpoints: &[Endpoint]) -> Result<(), CrossError> {
    for endpoint in endpoints {
        let broken = |source| CrossError::NotWorking {
            stack: endpoint.stack.name(),
            scenario: endpoint.scenario.name(),
            source: Box::new(source),
        };
        wiring::tune_client(&endpoint.wiring.client).map_err(broken)?;
        for test in [Test::TcpRr, Test::UdpRr] {
            let mut tries = 0;
            loop {
                tries += 1;
                match wiring::run_client(&endpoint.wiring, &endpoint.lab, test, CHECK_SECONDS) {
                    Ok(_) => break,
                    Err(error) if tries >= CHECK_TRIES => return Err(broken(error)),
                    Err(_) => thread::sleep(Duration::from_millis(200)),
                }
            }
        }
    }
    progress(format_args!(
        "cross-node: all {} stack/scenario pairs answer TCP and UDP",
        endpoints.len()
    ));
    Ok(())
}

/// Runs `rounds` rounds of `tests` of `seconds` on every endpoint; checks before each round that the
/// servers of `labs` still run. Returns one cell per endpoint and test.
pub fn measure(
    endpoints: &[Endpoint],
    labs: &mut [BuiltLab],
    tests: &[Test],
    rounds: usize,
    seconds: f64,
) -> Result<Vec<CrossCell>, CrossError> {
    let mut cells: Vec<CrossCell> = endpoints
        .iter()
        .flat_map(|e| {
            tests.iter().map(|&test| CrossCell {
                stack: e.stack,
                scenario: e.scenario,
                test,
                rounds: Vec::with_capacity(rounds),
                failures: Vec::new(),
            })
        })
        .collect();
    for round in 1..=rounds {
        for lab in labs.iter_mut() {
            lab.ensure_alive()?;
        }
        for scenario in Scenario::ALL {
            for (t, &test) in tests.iter().enumerate() {
                for (e, endpoint) in endpoints.iter().enumerate() {
                    if endpoint.scenario != scenario {
                        continue;
                    }
                    let cell = &mut cells[e * tests.len() + t];
                    let outcome = match one(endpoint, test, seconds, round) {
                        Ok(outcome) => outcome,
                        // Once: a datagram lost in a short udp-rr, a slow spell of the machine.
                        Err(error) => {
                            let text = error_chain(&error);
                            progress(format_args!("  failed, measuring again: {text}"));
                            cell.failures.push(format!("round {round}: {text}"));
                            thread::sleep(RETRY_PAUSE);
                            one(endpoint, test, seconds, round)?
                        }
                    };
                    cell.rounds.push(outcome);
                }
            }
        }
    }
    Ok(cells)
}

/// One test on one endpoint, reported on stderr.
fn one(endpoint: &Endpoint, test: Test, seconds: f64, round: usize) -> Result<Outcome, CrossError> {
    let outcome = wiring::run_client(&endpoint.wiring, &endpoint.lab, test, seconds).map_err(
        error::run(format!(
            "{} {} {} (round {round})",
            endpoint.stack.name(),
            endpoint.scenario.name(),
            test.name()
        )),
    )?;
    let errors = match &outcome {
        Outcome::Rate(rate) if rate.errors > 0 => format!(" ({} errors)", rate.errors),
        _ => String::new(),
    };
    progress(format_args!(
        "  round {round} {:<21} {:<9} {:<22} {:>10.2} {}{errors}",
        endpoint.scenario.name(),
        test.name(),
        endpoint.stack.name(),
        figure(&outcome),
        unit(test)
    ));
    Ok(outcome)
}
