//! How long a node joining a running cluster takes to become reachable. In a strait VXLAN lab of two
//! nodes with a pod on each, every round adds a third node (`Lab::add_node`, what `strait lab node
//! add` runs: the node's namespace, its agent, its Node object, every agent synced) while the pods
//! probe the new node's address (its agent's HTTP port; a refusal counts too, as it proves the round
//! trip) from the moment the add starts. Then a pod is started on the new node and the pods probe it.
//! The node is removed again before the next round, and the others forget its ARP entry (see
//! [`forget_neighbour`]). All times count from the start of the add.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use strait_dataplane::netns;
use strait_lab::{
    cluster::{AGENT_HTTP_PORT, Lab},
    network,
    state::{LabOptions, LabOverlay, LabXdp, PodRecord},
};
use strait_tests::LabGuard;

use super::{
    CrossError, error, signals,
    summary::{JoinReport, JoinRound},
};
use crate::netbench::{bridge_lab, run::progress};

/// Each connection attempt's timeout: the lab's round trip is tens of microseconds, so a SYN that
/// gets no answer in this time was dropped.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(20);
/// Pause after an attempt that failed at once (no route, unreachable).
const ATTEMPT_PAUSE: Duration = Duration::from_millis(2);
/// How long a prober keeps trying.
const GIVE_UP: Duration = Duration::from_mins(1);
/// The port the new node's pod serves (the lab's workload answers on it).
const POD_PORT: u16 = 8080;
/// The pod started on the new node.
const NEW_POD: &str = "default/join-new";

/// A thread in `netns` that connects to `target` until a connection succeeds or is refused (either
/// proves the round trip) and returns when that happened, or `None` at `deadline` or on `stop`.
fn prober(
    netns: PathBuf,
    target: SocketAddr,
    deadline: Instant,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Option<Instant>> {
    thread::spawn(move || {
        netns::enter(&netns).ok()?;
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            match TcpStream::connect_timeout(&target, ATTEMPT_TIMEOUT) {
                Ok(_) => return Some(Instant::now()),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Some(Instant::now());
                }
                Err(_) if started.elapsed() < ATTEMPT_TIMEOUT => thread::sleep(ATTEMPT_PAUSE),
                Err(_) => {}
            }
        }
        None
    })
}

/// Waits for `probers` (one per pod in `from`); returns when the last one got through, counted from
/// `since`, or an error naming the pod that did not.
fn reached(
    probers: Vec<JoinHandle<Option<Instant>>>,
    from: &[PodRecord],
    what: &str,
    since: Instant,
) -> Result<f64, CrossError> {
    let mut last = Duration::ZERO;
    for (prober, pod) in probers.into_iter().zip(from) {
        let at = prober.join().ok().flatten().ok_or_else(|| {
            CrossError::Join(format!(
                "{} did not reach {what} within {} s",
                pod.id(),
                GIVE_UP.as_secs()
            ))
        })?;
        last = last.max(at.saturating_duration_since(since));
    }
    Ok(last.as_secs_f64() * 1000.0)
}

fn probe_all(
    from: &[PodRecord],
    target: SocketAddr,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<Option<Instant>>> {
    let deadline = Instant::now() + GIVE_UP;
    from.iter()
        .map(|pod| prober(netns::path(&pod.netns), target, deadline, Arc::clone(stop)))
        .collect()
}

/// Removes the other nodes' ARP entries for `ip`, the address of a node just removed. The next round's
/// node gets the same address (the lab takes the next free index, and a host's MAC follows its
/// address): an entry left from the last round would spare it the ARP exchange a node joining under a
/// fresh address goes through, so every round starts cold.
fn forget_neighbour(lab: &Lab, ip: std::net::IpAddr) -> Result<(), CrossError> {
    let ip = ip.to_string();
    for node in &lab.state.nodes {
        let netns = netns::path(&node.netns);
        bridge_lab::run_in_netns(
            &lab.names.lab,
            &netns,
            &["ip", "neigh", "flush", "to", &ip],
            "",
        )
        .map_err(error::lab(format!(
            "flushing {ip} from {}'s neighbours",
            node.name
        )))?;
    }
    Ok(())
}

/// One join: add, probe the node, start a pod there, probe it, remove the node.
fn one_round(lab: &mut Lab, from: &[PodRecord]) -> Result<JoinRound, CrossError> {
    let index = lab.state.nodes.iter().map(|n| n.index).max().unwrap_or(0) + 1;
    let address = SocketAddr::from((network::node_ip(index), AGENT_HTTP_PORT));
    let stop = Arc::new(AtomicBool::new(false));
    let probers = probe_all(from, address, &stop);
    let started = Instant::now();
    let added = lab.add_node(false);
    let add_ms = started.elapsed().as_secs_f64() * 1000.0;
    let name = match added {
        Ok(name) => name,
        Err(source) => {
            stop.store(true, Ordering::Relaxed);
            return Err(error::lab("adding a node")(source));
        }
    };
    let node_reachable_ms = reached(probers, from, &format!("{name} at {address}"), started)?;
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: join-new, namespace: default}}\nspec:\n  nodeName: {name}\n  \
         containers: [{{name: c, image: busybox, ports: [{{containerPort: {POD_PORT}}}]}}]\n"
    );
    lab.apply_str(Path::new("join.yaml"), &manifest)
        .map_err(error::lab(format!("starting a pod on {name}")))?;
    let pod_ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    let pod_ip: Ipv4Addr = lab
        .state
        .pod(NEW_POD)
        .map(|p| p.ip)
        .ok_or_else(|| CrossError::Join(format!("{NEW_POD} did not start on {name}")))?;
    let target = SocketAddr::from((pod_ip, POD_PORT));
    let probers = probe_all(from, target, &stop);
    let pod_reachable_ms = reached(probers, from, &format!("{NEW_POD} at {target}"), started)?;
    lab.remove_node(&name)
        .map_err(error::lab(format!("removing {name}")))?;
    forget_neighbour(lab, address.ip())?;
    Ok(JoinRound {
        add_ms,
        node_reachable_ms,
        pod_ready_ms,
        pod_reachable_ms,
    })
}

/// Measures `rounds` joins in a fresh two-node strait VXLAN lab, agents in `xdp` mode (removed
/// afterwards).
pub fn measure(rounds: usize, xdp: LabXdp) -> Result<JoinReport, CrossError> {
    let guard = LabGuard::new("cnj");
    signals::register(&guard.name)?;
    let options = LabOptions {
        overlay: LabOverlay::Vxlan,
        xdp_mode: xdp,
        ..LabOptions::default()
    };
    let mut lab = Lab::up_with(&guard.name, 2, None, options)
        .map_err(error::lab(format!("bringing up lab {}", guard.name)))?;
    let pods: Vec<String> = lab
        .state
        .nodes
        .iter()
        .map(|n| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: join-from-{0}, namespace: default}}\nspec: {{nodeName: {1}, containers: [{{name: c, image: busybox}}]}}\n",
                n.index, n.name
            )
        })
        .collect();
    let pods = pods.join("---\n");
    lab.apply_str(Path::new("join-from.yaml"), &pods)
        .map_err(error::lab("starting the probing pods"))?;
    let from: Vec<PodRecord> = lab.state.pods.clone();
    let mut report = JoinReport {
        nodes_before: lab.state.nodes.len(),
        rounds: Vec::with_capacity(rounds),
    };
    for round in 1..=rounds {
        let one = one_round(&mut lab, &from)?;
        progress(format_args!(
            "cross-node: join {round}/{rounds}: add {:.0} ms, node reachable {:.0} ms, pod ready {:.0} ms, pod reachable {:.0} ms",
            one.add_ms, one.node_reachable_ms, one.pod_ready_ms, one.pod_reachable_ms
        ));
        report.rounds.push(one);
    }
    drop(guard);
    Ok(report)
}
