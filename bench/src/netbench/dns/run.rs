//! A DNS run from start to end: checks and defaults, the two strait labs (fast path on and off)
//! with the run's Services, knot and unbound in the second lab's node namespace, the check that
//! every target answers the pod correctly (`dig`), the interleaved rounds, and writing the results
//! ([`publish`]).

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use strait_dataplane::netns;
use strait_lab::{cluster::Lab, process::Placement, state::LabOptions};
use strait_tests::LabGuard;

use super::{
    client::{self, Latency, Throughput},
    records, render,
    servers::{Reference, ReferenceServer},
    summary::{DnsCell, DnsReport, DnsRound, Target},
};
use crate::netbench::{
    crossnode::{CrossError, error, run as cross_run, run::load_average, signals},
    host,
    run::progress,
};

/// Rounds and seconds per test of a full run.
pub const FULL_ROUNDS: usize = 5;
pub const FULL_SECONDS: f64 = 3.0;
/// Rounds and seconds per test of a quick run (CI: does it work; figures not to quote).
pub const QUICK_ROUNDS: usize = 2;
pub const QUICK_SECONDS: f64 = 0.5;
/// The kube-dns Service's address in every lab.
const DNS_SERVICE: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)), 53);
/// How long the agents may take to hold every name.
const ZONE_WITHIN: Duration = Duration::from_mins(1);

/// What to run; `None` takes the full or quick default.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub quick: bool,
    pub rounds: Option<usize>,
    pub seconds: Option<f64>,
    pub names: Option<usize>,
    /// The command line, for the report.
    pub command: String,
}

/// A run's settings after defaults, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub rounds: usize,
    pub seconds: f64,
    pub names: usize,
}

/// Checks the options and fills in the defaults.
pub fn plan(options: &Options) -> Result<Plan, CrossError> {
    let (rounds, seconds) = cross_run::plan_rounds(
        &cross_run::Options {
            quick: options.quick,
            rounds: options.rounds,
            seconds: options.seconds,
            ..cross_run::Options::default()
        },
        (FULL_ROUNDS, FULL_SECONDS),
        (QUICK_ROUNDS, QUICK_SECONDS),
    )?;
    let names = options.names.unwrap_or(records::DEFAULT_NAMES);
    if names == 0 || names > records::MAX_NAMES {
        return Err(CrossError::Invalid(format!(
            "--names takes 1 to {} Services",
            records::MAX_NAMES
        )));
    }
    Ok(Plan {
        rounds,
        seconds,
        names,
    })
}

/// Runs everything and returns the report (not yet written anywhere). After a stop signal it does
/// not return: the signal watcher removes the labs and ends the process.
pub fn run(options: &Options) -> Result<DnsReport, CrossError> {
    let result = run_all(options);
    if signals::stopping() {
        signals::wait_for_stop();
    }
    result
}

/// A strait lab of the run, its client pod placed.
struct DnsLab {
    lab: Lab,
    client: Placement,
    _guard: LabGuard,
}

/// What one target is: who asks (the pod of which lab) and where.
struct Endpoint {
    target: Target,
    lab: usize,
    server: SocketAddr,
    threads: Option<usize>,
    /// The server's process (none for the kernel).
    pid: Option<u32>,
}

fn run_all(options: &Options) -> Result<DnsReport, CrossError> {
    let plan = plan(options)?;
    cross_run::preflight()?;
    if which::which("dnsperf").is_err() || which::which("dig").is_err() {
        return Err(CrossError::Invalid(
            "netbench dns needs `dnsperf` and `dig` (Debian: `apt-get install dnsperf bind9-dnsutils`, \
             or `cargo xtask bootstrap`)"
                .to_owned(),
        ));
    }
    signals::install()?;
    let started = Instant::now();
    let threads = strait_dns::server::default_threads();
    let mut report = DnsReport {
        machine: host::machine(),
        command: options.command.clone(),
        started_at: host::utc_now(),
        quick: options.quick,
        rounds: plan.rounds,
        test_seconds: plan.seconds,
        names: plan.names,
        dnsperf_threads: client::dnsperf_threads(),
        load_before: load_average(),
        ..DnsReport::default()
    };
    progress(format_args!(
        "dns: {} round(s) of {} s per test, {} names; load average {}",
        plan.rounds, plan.seconds, plan.names, report.load_before
    ));
    let files = tempfile::Builder::new()
        .prefix("netbench-dns-")
        .tempdir()
        .map_err(|source| CrossError::Io {
            what: "creating a directory in",
            path: std::env::temp_dir(),
            source,
        })?;
    let queries = files.path().join("queries");
    let names = files.path().join("names");
    write(&queries, &records::query_file(plan.names))?;
    write(
        &names,
        &(0..plan.names)
            .map(|n| records::fqdn(n) + "\n")
            .collect::<String>(),
    )?;

    let labs = [up("dnf", false, plan.names)?, up("dns", true, plan.names)?];
    let addresses = cluster_ips(&labs[1].lab, plan.names)?;
    let mut endpoints = vec![
        Endpoint {
            target: Target::StraitFast,
            lab: 0,
            server: DNS_SERVICE,
            threads: None,
            pid: None,
        },
        Endpoint {
            target: Target::StraitServer,
            lab: 1,
            server: DNS_SERVICE,
            threads: Some(threads),
            pid: u32::try_from(labs[1].lab.state.nodes[0].agent_pid).ok(),
        },
    ];
    let references = start_references(&labs[1], &addresses, files.path(), &mut report.notes)?;
    endpoints.extend(references.iter().map(|server| Endpoint {
        target: match server.reference {
            Reference::Knot => Target::Knot,
            Reference::Unbound => Target::Unbound,
        },
        lab: 1,
        server: server.addr,
        threads: Some(server.threads),
        pid: Some(server.pid()),
    }));
    let mut references = references;
    check(&labs, &endpoints, &addresses)?;
    report.cells = rounds(&labs, &endpoints, &plan, &queries, &names, &mut references)?;
    report.kernel_cost = kernel_cost()?;
    report.load_after = load_average();
    drop(references);
    drop(labs);
    report.duration_s = started.elapsed().as_secs_f64().round();
    progress(format_args!("dns: done in {:.0} s", report.duration_s));
    Ok(report)
}

/// knot and unbound in `lab`'s node namespace, each answering the pod before this returns; one
/// that is not installed is left out, with a note saying so.
fn start_references(
    lab: &DnsLab,
    addresses: &[Ipv4Addr],
    dir: &Path,
    notes: &mut Vec<String>,
) -> Result<Vec<ReferenceServer>, CrossError> {
    let node = &lab.lab.state.nodes[0];
    let on_node = Placement {
        netns: netns::path(&node.netns),
        cgroup: None,
        resolv_conf: None,
    };
    let mut references = Vec::new();
    for reference in Reference::ALL {
        let (program, package) = reference.program();
        if which::which(program).is_err() {
            let note = format!(
                "{program} not measured: it is not installed (Debian: `apt-get install {package}`, or `cargo xtask bootstrap`)."
            );
            progress(format_args!("dns: {note}"));
            notes.push(note);
            continue;
        }
        let mut server = ReferenceServer::start(reference, &on_node, node.ip, addresses, dir)?;
        let expected = addresses[0].to_string();
        server.wait_ready(|addr| {
            client::dig(&lab.client, addr, &records::fqdn(0)).is_ok_and(|answer| answer == expected)
        })?;
        references.push(server);
    }
    Ok(references)
}

fn write(path: &Path, text: &str) -> Result<(), CrossError> {
    fs::write(path, text).map_err(|source| CrossError::Io {
        what: "writing",
        path: PathBuf::from(path),
        source,
    })
}

/// A one-node lab (`prefix…`, run-unique) with cluster DNS, the fast path off with `no_fast_path`,
/// and the run's Services; returns once the agent answers the last of them.
fn up(prefix: &str, no_fast_path: bool, names: usize) -> Result<DnsLab, CrossError> {
    let guard = LabGuard::new(prefix);
    signals::register(&guard.name)?;
    progress(format_args!(
        "dns: bringing up lab {} (fast path {})",
        guard.name,
        if no_fast_path { "off" } else { "on" }
    ));
    let options = LabOptions {
        no_dns_fast_path: no_fast_path,
        ..LabOptions::default()
    };
    let mut lab = Lab::up_with(&guard.name, 1, None, options)
        .map_err(error::lab(format!("bringing up lab {}", guard.name)))?;
    lab.apply_str(Path::new("dns-bench.yaml"), &records::manifest(names))
        .map_err(error::lab(format!(
            "applying the Services to lab {}",
            guard.name
        )))?;
    let client = lab
        .placement(records::CLIENT_POD)
        .map_err(error::lab(format!("placing {}", records::CLIENT_POD)))?;
    let last = names - 1;
    let expected = cluster_ips(&lab, names)?[last].to_string();
    let started = Instant::now();
    loop {
        match client::dig(&client, DNS_SERVICE, &records::fqdn(last)) {
            Ok(answer) if answer == expected => break,
            outcome if started.elapsed() > ZONE_WITHIN => {
                return Err(CrossError::Invalid(format!(
                    "lab {}: {} is not answered {expected} within {ZONE_WITHIN:?} ({outcome:?})",
                    guard.name,
                    records::fqdn(last)
                )));
            }
            _ => thread::sleep(Duration::from_millis(200)),
        }
    }
    Ok(DnsLab {
        lab,
        client,
        _guard: guard,
    })
}

/// The ClusterIPs of the run's Services, in order.
fn cluster_ips(lab: &Lab, names: usize) -> Result<Vec<Ipv4Addr>, CrossError> {
    (0..names)
        .map(|n| {
            let key = format!("default/{}", records::service(n));
            lab.state
                .services
                .get(&key)
                .and_then(|s| s.spec.as_ref()?.cluster_ip.as_deref()?.parse().ok())
                .ok_or_else(|| {
                    CrossError::Invalid(format!("lab {}: {key} has no ClusterIP", lab.names.lab))
                })
        })
        .collect()
}

/// Every target answers the pod a name with the address the Service has (in both labs the lab
/// allocates the same addresses in the same order: checked).
fn check(
    labs: &[DnsLab],
    endpoints: &[Endpoint],
    addresses: &[Ipv4Addr],
) -> Result<(), CrossError> {
    if cluster_ips(&labs[0].lab, addresses.len())? != addresses {
        return Err(CrossError::Invalid(
            "the two labs gave the Services different addresses".to_owned(),
        ));
    }
    for endpoint in endpoints {
        let n = addresses.len() / 2;
        let answer = client::dig(
            &labs[endpoint.lab].client,
            endpoint.server,
            &records::fqdn(n),
        )?;
        if answer != addresses[n].to_string() {
            return Err(CrossError::Invalid(format!(
                "{} answers {} with {answer:?}, not {}",
                endpoint.target.name(),
                records::fqdn(n),
                addresses[n]
            )));
        }
    }
    Ok(())
}

/// The fast path's `dns_answered` counter on a lab's node.
fn kernel_answered(lab: &Lab) -> Result<u64, CrossError> {
    let node = &lab.state.nodes[0].name;
    let text = lab
        .agent_get(node, "/metrics")
        .map_err(error::lab("reading the agent's metrics"))?;
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("strait_packets_total{")
                && l.contains("program=\"dns-fast\"")
                && l.contains("reason=\"dns_answered\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<u64>().ok())
        .sum())
}

/// The rounds: in each, every target runs dnsperf then the latency client; the order of the
/// targets turns by one each round.
fn rounds(
    labs: &[DnsLab],
    endpoints: &[Endpoint],
    plan: &Plan,
    queries: &Path,
    names: &Path,
    references: &mut [ReferenceServer],
) -> Result<Vec<DnsCell>, CrossError> {
    let mut cells: Vec<DnsCell> = endpoints
        .iter()
        .map(|e| DnsCell {
            target: e.target,
            threads: e.threads,
            rounds: Vec::with_capacity(plan.rounds),
        })
        .collect();
    for round in 0..plan.rounds {
        if signals::stopping() {
            return Err(CrossError::Interrupted);
        }
        for step in 0..endpoints.len() {
            let index = (round + step) % endpoints.len();
            let endpoint = &endpoints[index];
            let lab = &labs[endpoint.lab];
            let before = (endpoint.target == Target::StraitFast)
                .then(|| kernel_answered(&lab.lab))
                .transpose()?;
            let cpu_before = endpoint.pid.and_then(cpu_seconds);
            let throughput: Throughput =
                client::dnsperf(&lab.client, endpoint.server, queries, plan.seconds)?;
            let cpu = cpu_before
                .zip(endpoint.pid.and_then(cpu_seconds))
                .filter(|_| throughput.completed > 0)
                .map(|(before, after)| (after - before) * 1e6 / small_f64(throughput.completed));
            let latency: Latency =
                client::latency_in(&lab.client, endpoint.server, names, plan.seconds)?;
            let batch = client::batch_load_in(&lab.client, endpoint.server, names, plan.seconds)?;
            let kernel = match before {
                Some(before) => Some(kernel_answered(&lab.lab)?.saturating_sub(before)),
                None => None,
            };
            progress(format_args!(
                "dns: round {}: {}: {:.0} q/s (batching client {:.0}), p50 {:.1} µs, p99 {:.1} µs",
                round + 1,
                endpoint.target.name(),
                throughput.queries_per_second,
                batch.queries_per_second,
                latency.p50_us,
                latency.p99_us
            ));
            cells[index].rounds.push(DnsRound {
                throughput,
                latency,
                kernel_answered: kernel,
                cpu_us_per_query: cpu,
                batch: Some(batch),
            });
        }
        for server in references.iter_mut() {
            server.ensure_alive()?;
        }
    }
    Ok(cells)
}

/// The fast path's cost per answer from `pktcost` (next to this binary), with its baseline.
fn kernel_cost() -> Result<Vec<crate::netbench::results::PacketCost>, CrossError> {
    let bin_dir = crate::netbench::run::export_bin_dir().map_err(error::run("finding pktcost"))?;
    let costs =
        host::packet_costs(&bin_dir, true).map_err(error::run("measuring the kernel's cost"))?;
    // The service table's rows (`single call: …`): its baseline and the fast path's answer with the
    // table's own number of names, not the rows repeated at other sizes (`[N services]`).
    let of_table = |c: &&crate::netbench::results::PacketCost| {
        c.path.starts_with("single call:") && !c.path.contains('[')
    };
    let baseline = costs
        .iter()
        .filter(of_table)
        .find(|c| c.path.contains("(baseline)"));
    let answer = costs
        .iter()
        .filter(of_table)
        .find(|c| c.path.contains("dns-fast"));
    Ok(baseline.into_iter().chain(answer).cloned().collect())
}

/// A count as a float (counts here stay far below 2^32; larger ones are capped).
fn small_f64(n: u64) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX))
}

/// The CPU time `pid` has used (user and system, every thread), seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command's closing parenthesis: state is the first field, utime the 12th, stime
    // the 13th (fields 14 and 15 of proc(5)).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|&n| n > 0)?;
    Some(small_f64(ticks) / small_f64(per_second))
}

/// Reads a saved run.
pub fn load(path: &Path) -> Result<DnsReport, CrossError> {
    cross_run::load_json(path)
}

/// Writes the JSON (with `json`) and the section into `markdown` (kept beside whatever else the file
/// holds), then prints the tables.
pub fn publish(
    report: &DnsReport,
    json: Option<&Path>,
    markdown: Option<&Path>,
) -> Result<(), CrossError> {
    let section = cross_run::Section {
        name: "dns",
        text: render::section(report),
        splice: |existing, section| render::MARKERS.splice(existing, section),
    };
    cross_run::publish_section(report, json, markdown, section, &render::terminal(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_refusals() {
        let full = plan(&Options::default()).unwrap();
        assert_eq!(
            full,
            Plan {
                rounds: FULL_ROUNDS,
                seconds: FULL_SECONDS,
                names: records::DEFAULT_NAMES
            }
        );
        let quick = plan(&Options {
            quick: true,
            ..Options::default()
        })
        .unwrap();
        assert_eq!((quick.rounds, quick.seconds), (QUICK_ROUNDS, QUICK_SECONDS));
        for names in [0, records::MAX_NAMES + 1] {
            assert!(
                plan(&Options {
                    names: Some(names),
                    ..Options::default()
                })
                .is_err()
            );
        }
    }
}
