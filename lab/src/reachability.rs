//! `strait lab reachability`: probes every (from pod, to pod, port, protocol) of a lab at once and
//! holds the result as the truth tables the upstream Kubernetes NetworkPolicy e2e suite prints (rows =
//! from, columns = to, `.` allowed, `X` blocked, one table per port and protocol). [`Reachability`] is
//! also what tests compare: a probed table against one computed by a specification evaluator
//! ([`Reachability::from_fn`], [`Reachability::compare`]).
//!
//! Probing starts one `strait lab probe-batch` per probing pod (in its namespace and cgroup, so
//! ClusterIPs are translated as for the pod's own sockets), a bounded number at a time, each running its
//! probes on its own threads. A probe is allowed when the destination answers with its own identity.
//! Probes that come out blocked are probed again ([`ReachabilityOptions::retries`]) so one lost
//! datagram or a slow first connection does not flip a cell. UDP probes come from source ports no
//! recent run of the lab used, so enforcement that remembers UDP flows judges each run's probes as new
//! flows (see `ports`).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::Write as _,
    net::{Ipv4Addr, SocketAddr},
    process::{Command, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::{
    LabError, cluster::Lab, manifests::Protocol, probe::Target, process, state::PodRecord,
};

mod ports;
mod select;
mod table;

use select::pick;
pub use select::selects;
use table::Cell;
pub use table::{Mismatch, ProbeResult, Reachability};

/// How the destination is addressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// The destination pod's IP.
    #[default]
    Pod,
    /// The ClusterIP of the destination's own Service, `s-<namespace>-<pod>` (see
    /// [`service_name`]), which must exist with every probed port.
    Service,
}

/// What to probe.
#[derive(Clone, Debug)]
pub struct ReachabilityOptions {
    pub ports: Vec<u16>,
    pub protocols: Vec<Protocol>,
    pub via: Via,
    /// Probing pods: `ns/pod` globs (`*`, `?`) or namespaces; empty = every pod.
    pub from: Vec<String>,
    /// Destination pods, as `from`.
    pub to: Vec<String>,
    /// How long one probe waits for its answer.
    pub timeout: Duration,
    /// How many times a blocked probe is tried again.
    pub retries: usize,
    /// Probing pods probed at once (each runs all its probes in parallel).
    pub parallel_pods: usize,
}

impl Default for ReachabilityOptions {
    fn default() -> Self {
        Self {
            ports: vec![80, 81],
            protocols: vec![Protocol::Tcp, Protocol::Udp],
            via: Via::Pod,
            from: Vec::new(),
            to: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            retries: 1,
            parallel_pods: 16,
        }
    }
}

/// The default time one probe waits (the upstream suite's 1 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Probes one `probe-batch` process runs at once.
const BATCH_THREADS: usize = 64;

/// Parses `tcp` / `udp` (any case), as `--protocols` takes them.
pub fn parse_protocol(text: &str) -> Result<Protocol, String> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        _ => Err(format!(
            "{text:?}: protocol must be tcp or udp (SCTP is absent from the lab's kernel)"
        )),
    }
}

/// The Service `--via service` probes for pod `pod` of `namespace`: `s-<namespace>-<pod>`, in the
/// pod's namespace, as the upstream model names them.
pub fn service_name(namespace: &str, pod: &str) -> String {
    format!("s-{namespace}-{pod}")
}

/// One probe to run: its cell and where it goes.
struct Planned {
    cell: Cell,
    target: Target,
}

impl Lab {
    /// Probes every (from, to, port, protocol) `options` names, in parallel; see the module
    /// documentation. Fails when the selectors pick no pod or, with [`Via::Service`], when a
    /// destination's Service or one of its ports is missing (all of them named).
    pub fn reachability(&self, options: &ReachabilityOptions) -> Result<Reachability, LabError> {
        let started = Instant::now();
        let from = pick(&self.state.pods, &options.from);
        let to = pick(&self.state.pods, &options.to);
        if from.is_empty() || to.is_empty() {
            return Err(LabError::Usage(format!(
                "no pod of lab {} matches --{} {:?}",
                self.names.lab,
                if from.is_empty() { "from" } else { "to" },
                if from.is_empty() {
                    &options.from
                } else {
                    &options.to
                }
            )));
        }
        let mut cases = Vec::new();
        for &port in &options.ports {
            for &protocol in &options.protocols {
                cases.push((port, protocol));
            }
        }
        let mut table = Reachability {
            from: from.iter().map(|p| p.id()).collect(),
            to: to.iter().map(|p| p.id()).collect(),
            cases: cases.clone(),
            ..Reachability::default()
        };
        let mut pending = self.plan(&from, &to, &cases, options.via)?;
        for attempt in 0..=options.retries {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tracing::debug!(
                    probes = pending.values().map(Vec::len).sum::<usize>(),
                    "probing blocked cells again"
                );
            }
            let results = self.run_batches(&pending, options)?;
            let mut again: BTreeMap<String, Vec<Planned>> = BTreeMap::new();
            for (who, planned) in pending {
                for (probe, answer) in planned.into_iter().zip(&results[&who]) {
                    let expected = &probe.cell.1;
                    let allowed = match answer {
                        Ok(text) => text.lines().next().map(str::trim) == Some(expected.as_str()),
                        Err(_) => false,
                    };
                    table.cells.insert(probe.cell.clone(), allowed);
                    if allowed {
                        table.reasons.remove(&probe.cell);
                    } else {
                        let reason = match answer {
                            Ok(text) => {
                                format!("answered by {}", text.lines().next().unwrap_or_default())
                            }
                            Err(why) => why.clone(),
                        };
                        table.reasons.insert(probe.cell.clone(), reason);
                        again.entry(who.clone()).or_default().push(probe);
                    }
                }
            }
            pending = again;
        }
        table.elapsed = started.elapsed();
        Ok(table)
    }

    /// Every probe of a run, by probing pod. Each pod's UDP probes get distinct source ports from a
    /// window no recent run of the lab used ([`ports`]); retries reuse them.
    fn plan(
        &self,
        from: &[&PodRecord],
        to: &[&PodRecord],
        cases: &[(u16, Protocol)],
        via: Via,
    ) -> Result<BTreeMap<String, Vec<Planned>>, LabError> {
        let targets = self.targets(to, cases, via)?;
        // Every probing pod probes every destination on every UDP case.
        let window = cases.iter().filter(|c| c.1 == Protocol::Udp).count() * to.len();
        let offset = if window == 0 {
            0
        } else {
            ports::reserve(&self.names.run_dir(), window)?
        };
        if window > ports::SPAN {
            tracing::warn!(
                window,
                "more UDP probes per pod than source ports to rotate through; some repeat"
            );
        }
        let mut pending: BTreeMap<String, Vec<Planned>> = BTreeMap::new();
        let mut udp_probes: BTreeMap<String, usize> = BTreeMap::new();
        for &(port, protocol) in cases {
            for f in from {
                for t in to {
                    let mut target = targets[&(t.id(), port, protocol)];
                    if target.udp {
                        let i = udp_probes.entry(f.id()).or_default();
                        target.src_port = Some(ports::port(offset, *i));
                        *i += 1;
                    }
                    pending.entry(f.id()).or_default().push(Planned {
                        cell: (f.id(), t.id(), port, protocol),
                        target,
                    });
                }
            }
        }
        Ok(pending)
    }

    /// Where each (destination, port, protocol) is probed: the pod's IP, or its Service's ClusterIP.
    fn targets(
        &self,
        to: &[&PodRecord],
        cases: &[(u16, Protocol)],
        via: Via,
    ) -> Result<BTreeMap<(String, u16, Protocol), Target>, LabError> {
        let mut out = BTreeMap::new();
        let mut missing = Vec::new();
        for pod in to {
            for &(port, protocol) in cases {
                let udp = protocol == Protocol::Udp;
                let ip = match via {
                    Via::Pod => Some(pod.ip),
                    Via::Service => self.service_ip(pod, port, protocol),
                };
                match ip {
                    Some(ip) => {
                        let addr = SocketAddr::from((ip, port));
                        let target = Target {
                            addr,
                            udp,
                            src_port: None,
                        };
                        out.insert((pod.id(), port, protocol), target);
                    }
                    None => missing.push(format!(
                        "{}/{} ({port}/{protocol})",
                        pod.namespace,
                        service_name(&pod.namespace, &pod.name)
                    )),
                }
            }
        }
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(LabError::Usage(format!(
                "--via service probes each destination pod NS/POD through its own Service \
                 NS/s-NS-POD (selecting only that pod) on every probed port; missing: {}",
                missing.join(", ")
            )))
        }
    }

    /// The ClusterIP of `pod`'s own Service when it has `port` over `protocol`.
    fn service_ip(&self, pod: &PodRecord, port: u16, protocol: Protocol) -> Option<Ipv4Addr> {
        let key = format!(
            "{}/{}",
            pod.namespace,
            service_name(&pod.namespace, &pod.name)
        );
        let spec = self.state.services.get(&key)?.spec.as_ref()?;
        let has_port = spec.ports.iter().flatten().any(|p| {
            p.port == i32::from(port) && p.protocol.as_deref().unwrap_or("TCP") == protocol.as_str()
        });
        if !has_port {
            return None;
        }
        spec.cluster_ip.as_deref()?.parse().ok()
    }

    /// Runs each probing pod's probes in one `probe-batch` process in that pod, `parallel_pods` at a
    /// time; each pod's answers in the order of its probes.
    fn run_batches(
        &self,
        pending: &BTreeMap<String, Vec<Planned>>,
        options: &ReachabilityOptions,
    ) -> Result<BTreeMap<String, Vec<Result<String, String>>>, LabError> {
        let jobs: Vec<(&String, &Vec<Planned>)> = pending.iter().collect();
        let next = AtomicUsize::new(0);
        let results = Mutex::new(BTreeMap::new());
        let first_error: Mutex<Option<LabError>> = Mutex::new(None);
        thread::scope(|scope| {
            for _ in 0..options.parallel_pods.clamp(1, jobs.len().max(1)) {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((who, planned)) = jobs.get(i) else {
                            break;
                        };
                        let targets: Vec<Target> = planned.iter().map(|p| p.target).collect();
                        match self.probe_batch(who, &targets, options.timeout) {
                            Ok(answers) => {
                                if let Ok(mut r) = results.lock() {
                                    r.insert((*who).clone(), answers);
                                }
                            }
                            Err(error) => {
                                if let Ok(mut e) = first_error.lock() {
                                    e.get_or_insert(error);
                                }
                            }
                        }
                    }
                });
            }
        });
        if let Some(error) = first_error.into_inner().ok().flatten() {
            return Err(error);
        }
        Ok(results.into_inner().unwrap_or_default())
    }

    /// Runs `targets` from `who` (`NS/POD`, `node/NAME` or `external`) in one `strait lab probe-batch`
    /// inside its namespace and cgroup; the answers in order (`Ok` with what the peer sent, `Err` why
    /// nobody answered).
    pub fn probe_batch(
        &self,
        who: &str,
        targets: &[Target],
        timeout: Duration,
    ) -> Result<Vec<Result<String, String>>, LabError> {
        let placement = self.placement(who)?;
        let mut command = Command::new(self.bin_dir.join("strait"));
        command
            .args(["lab", "probe-batch", "--timeout-ms"])
            .arg(timeout.as_millis().to_string())
            .arg("--parallel")
            .arg(BATCH_THREADS.to_string())
            .env("STRAIT_LAB", &self.names.lab)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = process::spawn_in(&placement, &mut command, false)?;
        let input = targets.iter().fold(String::new(), |mut text, t| {
            let _ = writeln!(text, "{t}");
            text
        });
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .map_err(|e| LabError::io(format!("sending probes to {who}"), e))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| LabError::io(format!("waiting for the probes of {who}"), e))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let answers: Vec<Result<String, String>> = text
            .lines()
            .filter_map(|line| serde_json::from_str::<BatchAnswer>(line).ok())
            .map(BatchAnswer::into_result)
            .collect();
        if !output.status.success() || answers.len() != targets.len() {
            return Err(LabError::Environment(format!(
                "probe-batch in {who} answered {} of {} probes ({}): {}",
                answers.len(),
                targets.len(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(answers)
    }
}

/// One line of `strait lab probe-batch`'s output: what the peer sent, or why nobody answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BatchAnswer {
    /// The line for one probe's answer.
    pub fn from_result(result: Result<String, String>) -> Self {
        match result {
            Ok(answer) => Self {
                answer: Some(answer),
                error: None,
            },
            Err(error) => Self {
                answer: None,
                error: Some(error),
            },
        }
    }

    fn into_result(self) -> Result<String, String> {
        match self.answer {
            Some(answer) => Ok(answer),
            None => Err(self.error.unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests;
