//! How long a policy change takes to be enforced with many policies in force. In each stack's lab
//! with the most policies, each round puts [`super::manifest::ALLOW_CLIENT`] in force moved off the
//! server's port (the client is then denied, since no other policy selecting the server allows that
//! port) while the client pod opens new connections to the server back to back, and times the first
//! one that does not get through; then puts the allowing version back and times the first
//! connection that does. The changes themselves are timed too: for strait the lab's apply (it
//! returns once every agent has synced the change), for kube-router a full sync on both nodes (what
//! its agents run on any change), timed to the slowest node.
//!
//! The prober is a thread in the client pod's namespace. Each attempt is a connect with a short
//! timeout: a denied SYN is dropped, so an attempt that gets no answer within [`DENY_TIMEOUT`] is a
//! denial (confirmed by the next attempt failing too, so one slow answer on a busy machine does not
//! count). A denial is stamped with the start of its attempt; while the client is denied each attempt
//! waits out [`ALLOW_TIMEOUT`], so the re-allow is known to that resolution. Only the server's node
//! judges these flows (the policies are ingress policies of the server; none selects the client).

use std::{
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use strait_dataplane::netns;

use super::{
    measure::CountLab,
    summary::{EnforceReport, EnforceRound, PolicyStack},
};
use crate::netbench::{
    crossnode::{CrossError, error},
    run::progress,
};

/// The timeout of an attempt while the client is allowed: an attempt this slow was denied.
const DENY_TIMEOUT: Duration = Duration::from_millis(100);
/// The timeout of an attempt while the client is denied (the lab's round trip is tens of
/// microseconds; this is the resolution of the re-allow time).
const ALLOW_TIMEOUT: Duration = Duration::from_millis(20);
/// Pause after an attempt that got through or failed at once.
const PAUSE: Duration = Duration::from_millis(1);
/// How long a prober waits for the change.
const GIVE_UP: Duration = Duration::from_mins(1);

/// What the prober waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Until {
    Denied,
    Allowed,
}

/// One connection attempt: whether it got through, and when it started.
fn attempt(target: SocketAddr, timeout: Duration) -> (bool, Instant) {
    let started = Instant::now();
    let ok = TcpStream::connect_timeout(&target, timeout).is_ok();
    if ok || started.elapsed() < timeout {
        thread::sleep(PAUSE);
    }
    (ok, started)
}

/// A thread in `netns` that first sees the current state hold (a connection through before a
/// denial is awaited, one refused before an allow), says so on `ready`, then returns the start of the
/// attempt that showed the change.
fn prober(
    netns: PathBuf,
    target: SocketAddr,
    until: Until,
    ready: mpsc::Sender<()>,
) -> thread::JoinHandle<Result<Instant, String>> {
    thread::spawn(move || {
        netns::enter(&netns).map_err(|e| e.to_string())?;
        let timeout = match until {
            Until::Denied => DENY_TIMEOUT,
            Until::Allowed => ALLOW_TIMEOUT,
        };
        let deadline = Instant::now() + GIVE_UP;
        let expired = || format!("no change within {} s", GIVE_UP.as_secs());
        // The state before the change.
        loop {
            let (ok, _) = attempt(target, timeout);
            if ok == (until == Until::Denied) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the client was not {} before the change",
                    if until == Until::Denied {
                        "allowed"
                    } else {
                        "denied"
                    }
                ));
            }
        }
        let _ = ready.send(());
        let mut first_failure = None;
        while Instant::now() < deadline {
            let (ok, started) = attempt(target, timeout);
            match (until, ok) {
                (Until::Allowed, true) => return Ok(started),
                (Until::Denied, false) => match first_failure {
                    Some(first) => return Ok(first),
                    None => first_failure = Some(started),
                },
                (Until::Denied, true) => first_failure = None,
                (Until::Allowed, false) => {}
            }
        }
        Err(expired())
    })
}

/// The packets every agent of `lab` has dropped as `policy_denied` (`strait_drops_total`).
fn policy_drops(lab: &CountLab) -> Result<u64, CrossError> {
    let lab = &lab.built.lab;
    let mut total = 0;
    for node in &lab.state.nodes {
        let metrics = lab
            .agent_get(&node.name, "/metrics")
            .map_err(error::lab(format!("reading the metrics of {}", node.name)))?;
        total += metrics
            .lines()
            .filter(|l| {
                l.starts_with("strait_drops_total{") && l.contains("reason=\"policy_denied\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok(total)
}

/// Puts the allowing policy in force as `until` asks while a prober waits for the change; returns
/// (apply returned, change seen), in milliseconds from the start of the apply.
fn change(lab: &mut CountLab, until: Until) -> Result<(f64, f64), CrossError> {
    let (ready, is_ready) = mpsc::channel();
    let netns = lab.endpoint.wiring.client.netns.clone();
    let probe = prober(netns, lab.endpoint.wiring.target, until, ready);
    let what = match until {
        Until::Denied => "denial",
        Until::Allowed => "allow",
    };
    // The prober says when it has seen the state before the change (or ends with why not).
    let _ = is_ready.recv_timeout(GIVE_UP);
    let started = Instant::now();
    let applied = lab.set_allowing(until == Until::Allowed);
    let apply_ms = started.elapsed().as_secs_f64() * 1000.0;
    applied?;
    let seen = probe
        .join()
        .map_err(|_| CrossError::Invalid(format!("the {what} prober panicked")))?
        .map_err(|e| CrossError::Invalid(format!("waiting for the {what}: {e}")))?;
    let seen_ms = if seen > started {
        seen.duration_since(started).as_secs_f64() * 1000.0
    } else {
        -(started.duration_since(seen).as_secs_f64() * 1000.0)
    };
    Ok((apply_ms, seen_ms))
}

/// Measures `rounds` flips in `lab` (which must hold [`super::manifest::ALLOW_CLIENT`]); the lab is left
/// allowing the client.
pub fn measure(lab: &mut CountLab, rounds: usize) -> Result<EnforceReport, CrossError> {
    if lab.policies == 0 {
        return Err(CrossError::Invalid(
            "the enforcement measurement needs a lab with policies".into(),
        ));
    }
    let mut report = EnforceReport {
        stack: lab.stack,
        policies: lab.policies,
        rounds: Vec::with_capacity(rounds),
    };
    for round in 1..=rounds {
        let strait = lab.stack == PolicyStack::Strait;
        let before = if strait { policy_drops(lab)? } else { 0 };
        let (deny_apply_ms, denied_ms) = change(lab, Until::Denied)?;
        let policy_drops = if strait {
            policy_drops(lab)?.saturating_sub(before)
        } else {
            0
        };
        // The failed connections were the policy's doing: an agent dropped their SYNs as denied.
        if strait && policy_drops == 0 {
            return Err(CrossError::Invalid(
                "the client's connections failed, but no agent dropped a packet as policy_denied"
                    .into(),
            ));
        }
        let (allow_apply_ms, allowed_ms) = change(lab, Until::Allowed)?;
        progress(format_args!(
            "policy: {} flip {round}/{rounds} with {} policies: deny applied in {deny_apply_ms:.0} ms, enforced at \
             {denied_ms:.0} ms; allow applied in {allow_apply_ms:.0} ms, enforced at {allowed_ms:.0} ms",
            lab.stack.name(),
            lab.policies
        ));
        report.rounds.push(EnforceRound {
            deny_apply_ms,
            denied_ms,
            allow_apply_ms,
            allowed_ms,
            policy_drops,
        });
    }
    Ok(report)
}
