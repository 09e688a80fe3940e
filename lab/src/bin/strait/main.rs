//! `strait`: the strait command line. `strait lab ...` builds and drives a local cluster made of network
//! namespaces (see `strait lab --help`).

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use strait_lab::{
    cluster::Lab,
    connbench,
    listing::{self, Output},
    probe, reachability, status, workload,
};
use tracing_subscriber::EnvFilter;

mod flows;
mod inspect;
mod install;
mod policy;
mod report;

/// strait: eBPF networking for Kubernetes.
#[derive(Parser, Debug)]
#[command(name = "strait", version)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand, Debug)]
enum Top {
    /// A local multi-node cluster made of network namespaces (needs root).
    #[command(subcommand)]
    Lab(LabCommand),
    /// NetworkPolicy questions, answered from the specification.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// NetworkPolicy verdicts as the nodes' data paths made them: one per flow and direction judged
    /// (the source pod's egress on its node, the destination pod's ingress on its node), allowed,
    /// denied or audit (would have been denied; passed in audit mode), with both pods, the port,
    /// the protocol and the policy rule (or the default deny, and the policies isolating the pod)
    /// that decided. Asks every node's agent (each keeps its last 4096) and merges them in time
    /// order; filters are ANDed and applied by the agents.
    ///
    /// Example: `strait flows --name lab --namespace y --verdict denied --follow`
    Flows(flows::FlowsArgs),
    /// PNG charts and a Markdown summary of the Grafana dashboards' panels (deploy/grafana), drawn
    /// from a Prometheus over a time range: for a look at the cluster network without Grafana.
    ///
    /// Example: `strait report --prometheus http://10.0.0.5:9090 --since 2h -o report/`
    Report(report::ReportArgs),
    /// Each agent's eBPF maps: kind, capacity, entries and fill (fullest first), from the census
    /// the agent takes every 10 s; -o wide adds the kernel links running each program.
    ///
    /// Example: `strait maps --kube` or `strait maps --name lab --node lab-node-1 -o json`
    Maps(inspect::MapsArgs),
    /// One line per agent: health, version, pods, Services and frontends, the last sync's age and
    /// the fullest map. Exits 1 when an agent is not healthy (the others are still shown).
    ///
    /// Example: `strait status --kube` or `strait status --name lab -o json`
    Status(inspect::MapsArgs),
    /// The Service frontends each agent's kernel holds (as `cilium service list`): address, port,
    /// protocol, the Service, whether it is reached from outside, and its backends in slot order.
    ///
    /// Example: `strait services --name lab` or `strait services --kube -o json`
    Services(inspect::MapsArgs),
    /// The per-packet service path's connection tracking (as `cilium bpf ct list`).
    #[command(subcommand)]
    Ct(inspect::CtCommand),
    /// Cluster DNS as the agents answer it.
    #[command(subcommand)]
    Dns(inspect::DnsCommand),
    /// The manifests that install strait in a cluster (Namespace, RBAC, ConfigMap, the agent's
    /// DaemonSet with its CNI-installing init container, kube-dns and the metrics Service),
    /// rendered with your cluster's values. The defaults (kubeadm's) are committed in
    /// deploy/kubernetes/.
    ///
    /// Example: `strait install --print --cluster-cidr 10.42.0.0/16 --service-cidr 10.43.0.0/16
    /// --cluster-dns-ip 10.43.0.10 | kubectl apply -f -`
    Install(install::InstallArgs),
}

#[derive(Subcommand, Debug)]
enum LabCommand {
    /// Build a lab: underlay, nodes running straitd, pods from manifests. Returns when all are ready.
    Up {
        /// Lab name (lowercase letters, digits, '-'); names every namespace, cgroup and pin of the lab.
        #[arg(long, default_value = "lab")]
        name: String,
        /// Number of nodes.
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// Manifest file or directory (Pods, Deployments, Services, Namespaces) to apply once up.
        #[arg(long)]
        manifests: Option<PathBuf>,
        /// Turn on the uplink XDP fast path (tracked external flows translated and redirected to pods by
        /// XDP). The lab's agents run XDP in generic mode, where the fast path is off by default because
        /// tc's redirect is cheaper there.
        #[arg(long)]
        xdp_fast_path: bool,
        /// The agents' XDP program on the uplink: `generic` (every XDP check and answer), `off` (tc
        /// alone; generic XDP copies every GRO/GSO aggregate, which costs the lab's veth uplinks 10-15 %
        /// of their stream throughput) or `auto` (strait's default, which on a veth is no XDP).
        #[arg(long, value_enum, default_value = "generic")]
        xdp_mode: strait_lab::state::LabXdp,
        /// How pods reach pods on other nodes: `vxlan` tunnels (Flannel's wire format) or `direct`
        /// (unencapsulated over the lab's shared underlay, like Flannel's host-gw).
        #[arg(long, value_enum, default_value = "vxlan")]
        overlay: strait_lab::state::LabOverlay,
        /// Flannel reference nodes to add after the strait nodes: set up as flanneld (VXLAN backend)
        /// and the bridge CNI plugin set up a node, without strait; pods are scheduled on them too.
        #[arg(long, default_value_t = 0)]
        flannel_nodes: usize,
        /// No cluster DNS: by default the lab has the `kube-system/kube-dns` Service (10.96.0.10),
        /// answered on every node by its agent, and every pod's /etc/resolv.conf names it as the kubelet
        /// writes it (`search <ns>.svc.cluster.local svc.cluster.local cluster.local`, `ndots:5`).
        #[arg(long)]
        no_cluster_dns: bool,
        /// Where the agents forward names outside the cluster zone, IP:PORT of a DNS server inside
        /// the lab (e.g. one started in the external namespace, 172.30.0.2). Without it they forward
        /// nowhere and answer REFUSED: a lab never asks the machine's resolver.
        #[arg(long)]
        dns_upstream: Option<std::net::SocketAddrV4>,
        /// The agents answer no DNS query in the kernel (by default a pod's UDP query for a
        /// Service's A record is answered by the data path before it reaches any socket).
        #[arg(long)]
        no_dns_fast_path: bool,
    },
    /// Create or update the objects in a manifest file or directory (`-` reads standard input), as
    /// `kubectl apply -f`: the whole input is checked first and nothing of it is applied when an object
    /// is refused; prints what happened to each object (`service/web created`).
    Apply {
        #[arg(long, default_value = "lab")]
        name: String,
        /// Manifest file or directory, or `-` for standard input.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
    /// Delete the objects named in a manifest file or directory (`-` reads standard input), as
    /// `kubectl delete -f`, or by type and name, as `kubectl delete networkpolicy NAME -n NS`
    /// (`strait lab delete networkpolicy NS/NAME`): prints `service "web" deleted` per object; exits
    /// with 1 when any object was not found (after deleting the others).
    Delete {
        #[arg(long, default_value = "lab")]
        name: String,
        /// Manifest file or directory, or `-` for standard input.
        #[arg(
            short = 'f',
            long = "filename",
            required_unless_present = "resource",
            conflicts_with = "resource"
        )]
        file: Option<PathBuf>,
        /// The type of the objects to delete: namespace, pod, service, deployment, networkpolicy or
        /// endpointslice (kubectl's plurals and short names too: svc, netpol, ...).
        #[arg(requires = "objects")]
        resource: Option<String>,
        /// The objects: NS/NAME, or NAME in namespace `default` (a namespace: its name).
        objects: Vec<String>,
    },
    /// Show nodes, pods (with IPs and nodes) and services (with their ready endpoint counts).
    Status {
        #[arg(long, default_value = "lab")]
        name: String,
        /// Output format: json, yaml or wide (default: a table).
        #[arg(
            short = 'o',
            long = "output",
            default_value = "table",
            hide_default_value = true
        )]
        output: Output,
    },
    /// List the labs on this machine (from their state directories under /run/strait-lab).
    List {
        /// Output format: json, yaml or wide (default: a table).
        #[arg(
            short = 'o',
            long = "output",
            default_value = "table",
            hide_default_value = true
        )]
        output: Output,
    },
    /// Tear a lab down: every process, namespace, link, cgroup and pin it made, also after a crash.
    Down {
        #[arg(long, default_value = "lab", conflicts_with = "all")]
        name: String,
        /// Tear down every lab found.
        #[arg(long)]
        all: bool,
    },
    /// Run a command in a pod's (NS/POD), a node's (node/NAME) or the external client's namespace and cgroup.
    Exec {
        #[arg(long, default_value = "lab")]
        name: String,
        /// NS/POD, node/NAME or external.
        target: String,
        /// The command and its arguments (after --).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Ask TARGET:PORT who answers, from FROM. Prints the answering pod's NS/NAME (exit 0) or `blocked` (exit 1).
    Probe {
        #[arg(long, default_value = "lab")]
        name: String,
        /// NS/POD, node/NAME or external.
        from: String,
        /// IP:PORT, NS/POD:PORT, or NAME:PORT with a DNS name resolved by the prober itself (a pod: through
        /// its resolv.conf, i.e. cluster DNS: `web:80`, `web.default.svc.cluster.local:80`).
        target: String,
        /// Use UDP instead of TCP.
        #[arg(long)]
        udp: bool,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
        /// Also print the client address the answering pod saw (shows SNAT).
        #[arg(long)]
        show_peer: bool,
    },
    /// Probe every (from pod, to pod, port, protocol) at once and print the truth tables the upstream
    /// NetworkPolicy e2e suite prints: one per port/protocol, rows = from, columns = to, `.` allowed
    /// (the destination answered with its own name), `X` blocked. A pod probes itself like any other.
    /// Blocked probes are probed once more (--retries) before they count.
    Reachability {
        #[arg(long, default_value = "lab")]
        name: String,
        /// Ports to probe (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "80,81")]
        ports: Vec<u16>,
        /// Protocols to probe (comma-separated: tcp, udp).
        #[arg(long, value_delimiter = ',', default_value = "tcp,udp",
              value_parser = reachability::parse_protocol)]
        protocols: Vec<strait_lab::manifests::Protocol>,
        /// `pod`: probe the destination pod's IP; `service`: the ClusterIP of its own Service
        /// NS/s-NS-POD (as in the upstream model: `strait lab manifest netpol-model`), which must exist
        /// with every probed port (the missing ones are named).
        #[arg(long, value_enum, default_value = "pod")]
        via: reachability::Via,
        /// Probing pods: NS/POD globs (`*`, `?`) or namespaces, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        from: Vec<String>,
        /// Destination pods, as --from.
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
        /// How long one probe waits for its answer.
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        /// How many more times a blocked probe is tried before it counts as blocked.
        #[arg(long, default_value_t = 1)]
        retries: usize,
        /// Output format: json (a list of {from, to, port, protocol, allowed}) or yaml (default: the
        /// tables).
        #[arg(
            short = 'o',
            long = "output",
            default_value = "table",
            hide_default_value = true
        )]
        output: Output,
    },
    /// Print a built-in manifest: `netpol-model` is the upstream NetworkPolicy e2e model (namespaces
    /// x, y, z; pods a, b, c serving 80 and 81 over TCP and UDP; one Service s-NS-POD per pod), for
    /// `strait lab up --nodes 3 --manifests FILE`.
    Manifest {
        #[arg(value_enum)]
        which: BuiltinManifest,
    },
    /// Show each agent's endpoints (pods it plumbed, with addresses and veths).
    Endpoints {
        #[arg(long, default_value = "lab")]
        name: String,
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
        /// Output format: json, yaml or wide (default: a table).
        #[arg(
            short = 'o',
            long = "output",
            default_value = "table",
            hide_default_value = true
        )]
        output: Output,
    },
    /// Show each agent's metrics, one series a row (non-zero series only unless --all-series).
    Metrics {
        #[arg(long, default_value = "lab")]
        name: String,
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
        /// Include zero-valued series.
        #[arg(long)]
        all_series: bool,
        /// Output format: json, yaml or wide (default: a table).
        #[arg(
            short = 'o',
            long = "output",
            default_value = "table",
            hide_default_value = true
        )]
        output: Output,
    },
    /// Restart a node's agent (SIGTERM, then start a new one); pods keep talking meanwhile.
    RestartAgent {
        #[arg(long, default_value = "lab")]
        name: String,
        /// Node name, as `status` shows it.
        node: String,
    },
    /// Add a node to a running lab, or remove one (its pods go with it); the other nodes learn of it
    /// from its Node object, as in a cluster
    Node {
        #[command(subcommand)]
        action: NodeAction,
    },
    /// (internal) The built-in pod workload.
    #[command(hide = true)]
    Workload {
        #[arg(long)]
        identity: String,
        #[arg(long)]
        ready_file: PathBuf,
        #[arg(long = "listen", value_parser = workload::parse_listen)]
        listen: Vec<workload::Listen>,
    },
    /// (internal) The probe client, run inside the prober's namespace.
    #[command(hide = true)]
    ProbeClient {
        /// IP:PORT, or NAME:PORT resolved here (through this namespace's resolv.conf).
        #[arg(long)]
        target: String,
        #[arg(long)]
        udp: bool,
        #[arg(long)]
        timeout_ms: u64,
    },
    /// (internal) Many probes from one namespace: reads `tcp IP:PORT` or `udp IP:PORT [from SRCPORT]`
    /// lines on stdin, prints one JSON line per probe, in order.
    #[command(hide = true)]
    ProbeBatch {
        #[arg(long)]
        timeout_ms: u64,
        /// Probes run at once.
        #[arg(long, default_value_t = 64)]
        parallel: usize,
    },
    /// (internal) Sequential TCP connections to TARGET, run inside a pod; prints latency statistics as JSON.
    #[command(hide = true)]
    ConnectBench {
        #[arg(long)]
        target: std::net::SocketAddr,
        /// Connections to make, one after another.
        #[arg(long)]
        count: usize,
        /// Time allowed for each connection (connect and answer).
        #[arg(long, default_value_t = connbench::DEFAULT_TIMEOUT_MS)]
        timeout_ms: u64,
    },
}

fn main() -> ExitCode {
    // kube's client logs a failed request before returning it; the command says it once, itself.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,kube_client=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

// One arm per subcommand: the length is the command list's.

/// The manifests `strait lab manifest` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum BuiltinManifest {
    /// The upstream NetworkPolicy e2e model.
    NetpolModel,
}

/// `strait lab node` actions.
#[derive(Subcommand, Debug)]
enum NodeAction {
    /// Add a node with the next free index (a strait node, or with --flannel a Flannel reference node)
    Add {
        #[arg(long, default_value = "lab")]
        name: String,
        /// Set the node up as flanneld and the bridge plugin would, without strait.
        #[arg(long)]
        flannel: bool,
    },
    /// Remove a node: its pods, agent, namespace, pins and Node object
    Remove {
        #[arg(long, default_value = "lab")]
        name: String,
        /// Node name, as `status` shows it.
        node: String,
    },
}

#[expect(
    clippy::too_many_lines,
    reason = "one arm per subcommand: the dispatch table reads best in one place"
)]
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = match cli.command {
        Top::Lab(command) => command,
        Top::Policy(command) => return Ok(policy::run_policy(command)),
        Top::Flows(args) => return flows::run_flows(args),
        Top::Report(args) => return report::run_report(&args),
        Top::Maps(args) => return inspect::run_maps(&args),
        Top::Status(args) => return inspect::run_status(&args),
        Top::Services(args) => return inspect::run_services(&args),
        Top::Ct(command) => return inspect::run_ct(&command),
        Top::Dns(command) => return inspect::run_dns(&command),
        Top::Install(args) => return install::run_install(&args),
    };
    match command {
        LabCommand::Up {
            name,
            nodes,
            manifests,
            xdp_fast_path,
            overlay,
            flannel_nodes,
            xdp_mode,
            no_cluster_dns,
            dns_upstream,
            no_dns_fast_path,
        } => {
            let options = strait_lab::state::LabOptions {
                xdp_fast_path,
                overlay,
                flannel_nodes,
                xdp_mode,
                no_cluster_dns,
                dns_upstream,
                no_dns_fast_path,
            };
            let lab = Lab::up_with(&name, nodes, manifests.as_deref(), options)?;
            print!("{}", status::to_table(&lab));
            println!(
                "\nlab {name} is up. Try: strait lab probe --name {name} NS/POD IP:PORT; tear down: strait lab down --name {name}"
            );
        }
        LabCommand::Apply { name, file } => {
            let mut lab = Lab::open(&name)?;
            let applied = match stdin_text(&file)? {
                Some(text) => lab.apply_str(Path::new(STDIN), &text)?,
                None => lab.apply(&file)?,
            };
            for object in applied {
                println!("{object}");
            }
        }
        LabCommand::Delete {
            name,
            file,
            resource,
            objects,
        } => {
            let mut lab = Lab::open(&name)?;
            let deleted = match (file, resource) {
                (Some(file), _) => match stdin_text(&file)? {
                    Some(text) => lab.delete_str(Path::new(STDIN), &text)?,
                    None => lab.delete(&file)?,
                },
                (None, resource) => {
                    let resource = resource.unwrap_or_default();
                    let kind =
                        strait_lab::apply::kind_of_resource(&resource).with_context(|| {
                            format!(
                                "{resource:?}: the lab deletes namespace, pod, service, deployment, \
                             networkpolicy and endpointslice objects"
                            )
                        })?;
                    let mut deleted = Vec::new();
                    for object in &objects {
                        let (namespace, object) = object.split_once('/').unwrap_or(("", object));
                        deleted.push(lab.delete_object(kind, namespace, object)?);
                    }
                    deleted
                }
            };
            let mut failed = false;
            for object in deleted {
                if object.is_error() {
                    eprintln!("{object}");
                    failed = true;
                } else {
                    println!("{object}");
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        LabCommand::Status { name, output } => {
            let lab = Lab::open(&name)?;
            print!(
                "{}",
                output.render(&status::to_json(&lab), |wide| if wide {
                    status::to_wide_table(&lab)
                } else {
                    status::to_table(&lab)
                })
            );
        }
        LabCommand::List { output } => {
            let labs = listing::labs();
            print!(
                "{}",
                output.render(&listing::labs_json(&labs), |wide| {
                    listing::labs_table(&labs, wide)
                })
            );
        }
        LabCommand::Down { name, all } => {
            let labs = if all { Lab::list() } else { vec![name] };
            for lab in labs {
                tear_down(&lab)?;
            }
        }
        LabCommand::Exec {
            name,
            target,
            command,
        } => {
            let lab = Lab::open(&name)?;
            return match lab.exec(&target, &command) {
                Ok(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))),
                // A command that cannot be run exits as a shell's would: 127 not found, 126 not
                // executable.
                Err(error) => match error.exit_code() {
                    Some(code) => {
                        eprintln!("error: {error}");
                        Ok(ExitCode::from(code))
                    }
                    None => Err(error.into()),
                },
            };
        }
        LabCommand::Probe {
            name,
            from,
            target,
            udp,
            timeout_ms,
            show_peer,
        } => {
            let lab = Lab::open(&name)?;
            let answer =
                lab.probe_with_peer(&from, &target, udp, Duration::from_millis(timeout_ms))?;
            let answer = answer.map(|(who, peer)| match peer {
                Some(peer) if show_peer => format!("{who} (saw client {peer})"),
                _ => who,
            });
            return Ok(report_probe(answer, true));
        }
        LabCommand::Reachability {
            name,
            ports,
            protocols,
            via,
            from,
            to,
            timeout_ms,
            retries,
            output,
        } => {
            let lab = Lab::open(&name)?;
            let options = reachability::ReachabilityOptions {
                ports,
                protocols,
                via,
                from,
                to,
                timeout: Duration::from_millis(timeout_ms),
                retries,
                ..reachability::ReachabilityOptions::default()
            };
            let table = lab.reachability(&options)?;
            let (allowed, all) = table.counts();
            print!(
                "{}",
                output.render(&table.to_json(), |_| format!(
                    "{}{allowed} of {all} probes allowed, in {:.1} s\n",
                    table.render(),
                    table.elapsed.as_secs_f64()
                ))
            );
        }
        LabCommand::Manifest { which } => match which {
            BuiltinManifest::NetpolModel => {
                print!("{}", strait_lab::manifests::netpol_model_manifest());
            }
        },
        LabCommand::ProbeBatch {
            timeout_ms,
            parallel,
        } => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .context("reading probes from standard input")?;
            let targets = input
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::parse)
                .collect::<Result<Vec<probe::Target>, String>>()
                .map_err(anyhow::Error::msg)?;
            let answers = probe::ask_many(&targets, Duration::from_millis(timeout_ms), parallel);
            for answer in answers {
                let line = reachability::BatchAnswer::from_result(answer);
                println!("{}", serde_json::to_string(&line)?);
            }
        }
        LabCommand::Endpoints { name, node, output } => {
            let lab = Lab::open(&name)?;
            let mut per_node = Vec::new();
            for n in nodes_of(&lab, node) {
                let attachments = lab.agent_attachments(&n)?.attachments;
                per_node.push((n, attachments));
            }
            print!(
                "{}",
                output.render(&listing::endpoints_json(&per_node), |wide| {
                    listing::endpoints_table(&per_node, wide)
                })
            );
        }
        LabCommand::Metrics {
            name,
            node,
            all_series,
            output,
        } => {
            let lab = Lab::open(&name)?;
            let mut samples = Vec::new();
            for n in nodes_of(&lab, node) {
                let text = lab.agent_get(&n, "/metrics")?;
                samples.extend(listing::parse_metrics(&n, &text, all_series));
            }
            print!(
                "{}",
                output.render(&listing::metrics_json(&samples), |wide| {
                    listing::metrics_table(&samples, wide)
                })
            );
        }
        LabCommand::Node { action } => match action {
            NodeAction::Add { name, flannel } => {
                let mut lab = Lab::open(&name)?;
                let node = lab.add_node(flannel)?;
                println!("node/{node} added");
            }
            NodeAction::Remove { name, node } => {
                let mut lab = Lab::open(&name)?;
                lab.remove_node(&node)?;
                println!("node/{node} removed");
            }
        },
        LabCommand::RestartAgent { name, node } => {
            let mut lab = Lab::open(&name)?;
            lab.restart_agent(&node)?;
            println!("agent of {node} restarted");
        }
        LabCommand::Workload {
            identity,
            ready_file,
            listen,
        } => {
            workload::run(&identity, &listen, &ready_file)?;
        }
        LabCommand::ProbeClient {
            target,
            udp,
            timeout_ms,
        } => {
            let answer = probe::resolve(&target)
                .and_then(|addr| probe::ask(addr, udp, Duration::from_millis(timeout_ms)));
            return Ok(report_probe(answer, false));
        }
        LabCommand::ConnectBench {
            target,
            count,
            timeout_ms,
        } => {
            let (stats, first_error) =
                connbench::run(target, count, Duration::from_millis(timeout_ms));
            if let Some(error) = first_error {
                eprintln!(
                    "{} of {count} connections failed; first: {error}",
                    stats.failures
                );
            }
            println!("{}", serde_json::to_string(&stats)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a probe's answer; with `blocked_word`, a failure prints `blocked` on stdout (the CLI contract).
fn report_probe(answer: Result<String, String>, blocked_word: bool) -> ExitCode {
    match answer {
        Ok(who) => {
            println!("{who}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            if blocked_word {
                println!("blocked");
            }
            if !why.is_empty() {
                eprintln!("{why}");
            }
            ExitCode::FAILURE
        }
    }
}

fn tear_down(lab: &str) -> anyhow::Result<()> {
    let report = strait_lab::down(lab)?;
    let note = if report.existed {
        ""
    } else {
        " (no state found; cleaned leftovers only)"
    };
    println!(
        "lab {lab}: removed {} process(es), {} namespace(s), {} pin director(ies){note}",
        report.processes, report.namespaces, report.pin_dirs
    );
    Ok(())
}

/// How standard input is named in messages about its manifests.
const STDIN: &str = "<stdin>";

/// The text of standard input when `file` is `-` (kubectl's `-f -`), else `None`.
fn stdin_text(file: &Path) -> anyhow::Result<Option<String>> {
    if file != Path::new("-") {
        return Ok(None);
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading manifests from standard input")?;
    Ok(Some(text))
}

fn nodes_of(lab: &Lab, only: Option<String>) -> Vec<String> {
    match only {
        Some(node) => vec![node],
        None => lab
            .state
            .nodes
            .iter()
            .filter(|n| n.runs_strait())
            .map(|n| n.name.clone())
            .collect(),
    }
}
