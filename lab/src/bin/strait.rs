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
use ipnet::Ipv4Net;
use strait_lab::{
    cluster::Lab,
    connbench,
    listing::{self, Output},
    probe, reachability, status, workload,
};
use tracing_subscriber::EnvFilter;

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
    Policy(PolicyCommand),
    /// NetworkPolicy verdicts as the nodes' data paths made them: one per flow and direction judged
    /// (the source pod's egress on its node, the destination pod's ingress on its node), allowed,
    /// denied or audit (would have been denied; passed in audit mode), with both pods, the port,
    /// the protocol and the policy rule (or the default deny, and the policies isolating the pod)
    /// that decided. Asks every node's agent (each keeps its last 4096) and merges them in time
    /// order; filters are ANDed and applied by the agents.
    ///
    /// Example: `strait flows --name lab --namespace y --verdict denied --follow`
    Flows(FlowsArgs),
}

/// `strait flows` arguments.
#[derive(clap::Args, Debug)]
struct FlowsArgs {
    /// The lab whose nodes' agents are asked [default: lab].
    #[arg(long, conflicts_with = "agent")]
    name: Option<String>,
    /// Ask this agent instead (http://HOST[:PORT], port 9962 by default); repeat for several nodes.
    #[arg(long)]
    agent: Vec<String>,
    /// Only flows with a pod of this namespace at either end.
    #[arg(long)]
    namespace: Option<String>,
    /// Only flows with this pod at either end: NS/NAME, or NAME (in --namespace when given, else in
    /// any namespace).
    #[arg(long)]
    pod: Option<String>,
    /// Only this verdict: allowed, denied or audit.
    #[arg(long, value_parser = ["allowed", "denied", "audit"])]
    verdict: Option<String>,
    /// Only this direction: egress (judged on the source's node) or ingress (on the destination's).
    #[arg(long, value_parser = ["ingress", "egress"])]
    direction: Option<String>,
    /// Only flows to this destination port (as judged, after Service translation: the pod's port,
    /// not the Service's).
    #[arg(long)]
    port: Option<u16>,
    /// At most the last N recent verdicts of each agent.
    #[arg(long)]
    limit: Option<usize>,
    /// After the recent verdicts, keep printing new ones as they are made (until interrupted).
    #[arg(short = 'f', long)]
    follow: bool,
    /// `text`: one line per verdict (local time); `json`: one JSON object per line, as the agents
    /// serve them.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: FlowOutput,
}

/// How `strait flows` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum FlowOutput {
    Text,
    Json,
}

/// Runs `strait flows`.
fn run_flows(args: FlowsArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    use strait_lab::flows;
    let sources = if args.agent.is_empty() {
        let name = args.name.as_deref().unwrap_or("lab");
        Lab::open(name)?.flow_sources()
    } else {
        args.agent
            .iter()
            .map(|a| flows::Source::parse_agent(a))
            .collect::<Result<_, _>>()?
    };
    anyhow::ensure!(!sources.is_empty(), "no node runs a strait agent");
    let query = flows::FlowQuery {
        namespace: args.namespace,
        pod: args.pod,
        verdict: args.verdict,
        direction: args.direction,
        port: args.port,
        limit: args.limit,
    };
    let stdout = std::io::stdout();
    let output = args.output;
    // False once standard output is gone (a closed pipe): stop.
    let print = |flow: &flows::Flow| {
        let line = match output {
            FlowOutput::Json => serde_json::to_string(flow).unwrap_or_default(),
            FlowOutput::Text => flows::text_line(flow, &flows::local_time),
        };
        let mut out = stdout.lock();
        writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
    };
    if args.follow {
        flows::follow(&sources, &query, print)?;
    } else {
        for flow in flows::recent(&sources, &query)? {
            if !print(&flow) {
                break;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Why a connection is allowed or denied: which policies select each side, and rule by rule
    /// whether the peer and the port matched. Reads Namespaces, Pods and NetworkPolicies from
    /// manifests (other kinds are skipped), so policies can be checked before they are applied. Exits
    /// 0 when the connection is allowed, 1 when it is denied, 2 when the question cannot be answered
    /// (a bad manifest or policy, an unknown pod).
    ///
    /// Example: `strait policy explain --manifests k8s/ shop/web shop/api:8080/TCP`, or on a lab:
    /// `strait policy explain --name demo default/client default/server:8080`
    Explain {
        /// Manifest file or directory (offline: before anything is applied).
        #[arg(long, required_unless_present = "name", conflicts_with = "name")]
        manifests: Option<PathBuf>,
        /// A running lab instead: its Namespaces, Pods and NetworkPolicies as its agents enforce them.
        #[arg(long)]
        name: Option<String>,
        /// The client: NAMESPACE/POD, or an IPv4 address (a pod's, or one outside the cluster).
        from: String,
        /// The server: NAMESPACE/POD:PORT or ADDRESS:PORT, then /TCP (the default), /UDP or /SCTP.
        to: String,
        /// `json` prints {"allowed": bool, "explanation": text}; anything else prints the text.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// What the policies leave open, never select, say twice or say about the cluster's own
    /// addresses: pods isolated in neither direction, namespaces with no ingress policy or a policy
    /// letting everything in, policies selecting no pod, named ports no pod declares, ipBlocks over the
    /// pod, service or node ranges (warnings); rules shadowed by broader ones and ipBlocks over nodes
    /// (info). Reads Namespaces, Nodes, Pods, Deployments (one pod NAME-* each) and NetworkPolicies from
    /// manifests, or a running lab. Exits 0 without warnings, 1 with warnings, 2 when the audit cannot
    /// run (a bad manifest or policy, no such lab).
    ///
    /// Example: `strait policy audit --manifests k8s/ -o markdown`
    Audit(AuditArgs),
    /// NetworkPolicies that allow exactly the traffic the lab's agents observed (verdicts allowed or
    /// audit; gather it in audit mode), by label not by address: per pod identity (namespace and full
    /// labels) of the selected namespaces one ingress and one egress policy, a rule per peer with the
    /// ports seen; an identity seen with nobody in a direction gets that direction's policy with no
    /// rules (never seen, denied). Peers that are no pod are ipBlock /32. Exits 2 when it cannot run.
    ///
    /// Example: `strait policy propose --name demo --namespace shop > proposed.yaml`
    Propose {
        /// The running lab whose agents' verdicts are read.
        #[arg(long)]
        name: String,
        /// Propose policies for this namespace's pods (repeatable); default every namespace with a pod.
        #[arg(long = "namespace", short = 'n', value_name = "NS")]
        namespaces: Vec<String>,
        /// `yaml` (documents separated by ---) or `json` (a v1 List).
        #[arg(short = 'o', long, value_enum, default_value = "yaml")]
        output: strait_lab::policy_propose::Format,
    },
}

/// `strait policy audit`'s arguments.
#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("source")
        .args(["manifests", "files", "name"])
        .required(true)
        .multiple(true)
))]
struct AuditArgs {
    /// Manifest file or directory (offline: before anything is applied); may be repeated.
    #[arg(long, value_name = "PATH")]
    manifests: Vec<PathBuf>,
    /// A manifest file, as kubectl's -f; may be repeated, and mixed with --manifests.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// A running lab instead: its Namespaces, nodes, Pods and NetworkPolicies.
    #[arg(long, conflicts_with_all = ["manifests", "files"])]
    name: Option<String>,
    /// The pods' address range(s): ipBlocks over it are reported.
    #[arg(long, value_name = "CIDR", default_value = "10.244.0.0/16")]
    cluster_cidr: Vec<Ipv4Net>,
    /// The ClusterIPs' range(s).
    #[arg(long, value_name = "CIDR", default_value = "10.96.0.0/12")]
    service_cidr: Vec<Ipv4Net>,
    /// The nodes' network(s), besides the addresses of Node objects.
    #[arg(long, value_name = "CIDR")]
    node_cidr: Vec<Ipv4Net>,
    /// `table`, `markdown` (or `md`) or `json`.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: strait_lab::policy_audit::Format,
}

/// Runs `strait policy audit`: 0 no warnings, 1 warnings, 2 the audit could not run.
fn run_audit(args: AuditArgs) -> ExitCode {
    use strait_k8s::netpol::audit::{ClusterRanges, Severity};
    use strait_lab::policy_audit::{Source, audit_source, render};

    let source = match args.name {
        Some(name) => Source::Lab(name),
        None => Source::Manifests(args.manifests.into_iter().chain(args.files).collect()),
    };
    let ranges = ClusterRanges {
        pods: args.cluster_cidr,
        services: args.service_cidr,
        nodes: args.node_cidr,
    };
    match audit_source(&source, &ranges) {
        Ok(report) => {
            print!("{}", render(&report, args.output));
            if report.count(Severity::Warning) == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("strait policy audit: {error}");
            ExitCode::from(2)
        }
    }
}

/// Runs `strait policy propose`: 0 with the proposal printed, 2 when it could not run.
fn run_propose(
    name: &str,
    namespaces: &[String],
    output: strait_lab::policy_propose::Format,
) -> ExitCode {
    use strait_lab::policy_propose::{propose_lab, render};
    match propose_lab(name, namespaces) {
        Ok(policies) => {
            print!("{}", render(&policies, output));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("strait policy propose: {error}");
            ExitCode::from(2)
        }
    }
}

/// Runs a `strait policy` command.
fn run_policy(command: PolicyCommand) -> ExitCode {
    let (manifests, name, from, to, output) = match command {
        PolicyCommand::Explain {
            manifests,
            name,
            from,
            to,
            output,
        } => (manifests, name, from, to, output),
        PolicyCommand::Audit(args) => return run_audit(args),
        PolicyCommand::Propose {
            name,
            namespaces,
            output,
        } => return run_propose(&name, &namespaces, output),
    };
    // As grep: 0 allowed, 1 denied, 2 the question could not be answered.
    let explained = match (&manifests, &name) {
        (Some(manifests), _) => {
            strait_lab::policy_explain::explain_manifests(manifests, &from, &to)
        }
        (None, Some(name)) => strait_lab::policy_explain::explain_lab(name, &from, &to),
        (None, None) => Err(strait_lab::LabError::Usage(
            "--manifests DIR or --name LAB is needed".to_owned(),
        )),
    };
    let explanation = match explained {
        Ok(explanation) => explanation,
        Err(error) => {
            eprintln!("strait policy explain: {error}");
            return ExitCode::from(2);
        }
    };
    let allowed = explanation.verdict.allowed();
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({ "allowed": allowed, "explanation": explanation.text })
        ),
        _ => print!("{}", explanation.text),
    }
    if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
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
        /// The type of the objects to delete: namespace, pod, service, deployment or networkpolicy
        /// (kubectl's plurals and short names too: svc, netpol, ...).
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
        /// IP:PORT or NS/POD:PORT.
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
        #[arg(long)]
        target: std::net::SocketAddr,
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
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
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
        Top::Policy(command) => return Ok(run_policy(command)),
        Top::Flows(args) => return run_flows(args),
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
        } => {
            let options = strait_lab::state::LabOptions {
                xdp_fast_path,
                overlay,
                flannel_nodes,
                xdp_mode,
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
                                "{resource:?}: the lab deletes namespace, pod, service, deployment \
                             and networkpolicy objects"
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
            let answer = probe::ask(target, udp, Duration::from_millis(timeout_ms));
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
