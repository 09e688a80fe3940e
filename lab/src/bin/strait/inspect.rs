//! `strait status`, `strait services`, `strait maps`, `strait ct list` and `strait dns records`: what every agent's data path holds, asked of a lab's nodes
//! (`--name`), of agents by address (`--agent`), or of every Node of a live cluster (`--kube`), as
//! `strait flows` asks them; tables or `-o wide|json|yaml`.

use std::process::ExitCode;

use anyhow::Context as _;
use strait_lab::{
    agent_status::{self, Answers},
    cluster::Lab,
    ct_listing, dns_listing,
    flows::{self, Source},
    listing::Output,
    map_listing, policy_listing, service_listing,
};

/// Which agents to ask.
#[derive(clap::Args, Debug)]
pub(crate) struct AgentsArgs {
    /// The lab whose nodes' agents are asked [default: lab].
    #[arg(long, conflicts_with_all = ["agent", "kube"])]
    name: Option<String>,
    /// Ask this agent instead (http://HOST[:PORT], port 9962 by default); repeat for several nodes.
    #[arg(long, conflicts_with = "kube")]
    agent: Vec<String>,
    /// Ask the agent of every Node of a live cluster (the current kubeconfig context, KUBECONFIG,
    /// or the in-cluster service account): the Node's InternalIP on --agent-port.
    #[arg(long)]
    kube: bool,
    /// The agents' HTTP port, with --kube.
    #[arg(long, default_value_t = flows::DEFAULT_AGENT_PORT, requires = "kube")]
    agent_port: u16,
    /// Only this node (a lab node's name, an --agent as given, or a Node's name with --kube).
    #[arg(long)]
    node: Option<String>,
}

impl AgentsArgs {
    /// The agents to ask, at least one.
    pub(crate) fn sources(&self) -> anyhow::Result<Vec<Source>> {
        let mut sources = if self.kube {
            flows::kube_sources(self.agent_port)?
        } else if self.agent.is_empty() {
            Lab::open(self.name.as_deref().unwrap_or("lab"))?.flow_sources()
        } else {
            self.agent
                .iter()
                .map(|a| Source::parse_agent(a))
                .collect::<Result<_, _>>()?
        };
        if let Some(node) = &self.node {
            sources.retain(|s| s.name() == node);
            anyhow::ensure!(!sources.is_empty(), "no agent for node {node}");
        }
        anyhow::ensure!(
            !sources.is_empty(),
            if self.kube {
                "the cluster has no Node with an address to ask"
            } else {
                "no node runs a strait agent"
            }
        );
        Ok(sources)
    }
}

/// `-o`: how a listing prints.
#[derive(clap::Args, Debug)]
pub(crate) struct OutputArg {
    /// Output format: json, yaml or wide (default: a table).
    #[arg(
        short = 'o',
        long = "output",
        default_value = "table",
        hide_default_value = true
    )]
    output: Output,
}

/// `strait maps` and `strait services` arguments: which agents, and the output.
#[derive(clap::Args, Debug)]
pub(crate) struct MapsArgs {
    #[command(flatten)]
    agents: AgentsArgs,
    #[command(flatten)]
    output: OutputArg,
}

/// `strait ct` subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum CtCommand {
    /// List each agent's CT entries (one row per direction of a flow: the packet, and what it
    /// becomes), filtered by the agents. NodePort, LoadBalancer and externalIP traffic is tracked;
    /// pods reach ClusterIPs through the socket hooks, untracked.
    ///
    /// Example: `strait ct list --name lab --dst 172.30.0.11 --proto tcp -o wide`
    List(CtListArgs),
}

/// `strait ct list` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct CtListArgs {
    #[command(flatten)]
    agents: AgentsArgs,
    /// An address on the source side, before or after translation.
    #[arg(long)]
    src: Option<String>,
    /// An address on the destination side, before or after translation.
    #[arg(long)]
    dst: Option<String>,
    /// Any of the flow's ports.
    #[arg(long)]
    port: Option<u16>,
    /// tcp, udp or icmp.
    #[arg(long)]
    proto: Option<String>,
    /// At most this many entries per node [default: 1000].
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    output: OutputArg,
}

/// `strait dns` subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum DnsCommand {
    /// List the cluster zone each agent answers: every record (Services, endpoints, SRV, PTR,
    /// ExternalName CNAMEs, the apex) and whether the kernel fast path answers it.
    ///
    /// Example: `strait dns records --name lab --filter web --type A`
    Records(DnsRecordsArgs),
}

/// `strait dns records` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct DnsRecordsArgs {
    #[command(flatten)]
    agents: AgentsArgs,
    /// Only names containing this (case-insensitive).
    #[arg(long)]
    filter: Option<String>,
    /// Only this type: A, AAAA, SRV, PTR, CNAME, TXT, SOA or NS.
    #[arg(long = "type")]
    record_type: Option<String>,
    #[command(flatten)]
    output: OutputArg,
}

/// Runs `strait dns ...`.
pub(crate) fn run_dns(command: &DnsCommand) -> anyhow::Result<ExitCode> {
    let DnsCommand::Records(args) = command;
    let mut query = Vec::new();
    if let Some(filter) = &args.filter {
        query.push(format!("name={filter}"));
    }
    if let Some(record_type) = &args.record_type {
        query.push(format!("type={record_type}"));
    }
    let path = format!("/dns/records?{}", query.join("&"));
    let mut per_node = Vec::new();
    for source in args.agents.sources()? {
        let records = ask_json(&source, &path)?;
        per_node.push((source.name().to_owned(), records));
    }
    print!(
        "{}",
        args.output
            .output
            .render(&dns_listing::records_json(&per_node), |wide| {
                dns_listing::records_table(&per_node, wide)
            })
    );
    Ok(ExitCode::SUCCESS)
}

fn ask_json(source: &Source, path: &str) -> anyhow::Result<serde_json::Value> {
    let text = source.get(path)?;
    serde_json::from_str(&text)
        .with_context(|| format!("the agent of {} answered {path} with {text}", source.name()))
}

/// Runs `strait status`: exits 1 when an agent is not healthy.
pub(crate) fn run_status(args: &MapsArgs) -> anyhow::Result<ExitCode> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut rows = Vec::new();
    for source in args.agents.sources()? {
        let healthz = source.get("/healthz").map_err(|e| e.to_string());
        let up = healthz.is_ok();
        let answers = Answers {
            node: source.name().to_owned(),
            healthz,
            syncz: up.then(|| source.get("/syncz").ok()).flatten(),
            metrics: up.then(|| source.get("/metrics").ok()).flatten(),
            maps: up.then(|| ask_json(&source, "/maps").ok()).flatten(),
        };
        rows.push(agent_status::status_json(&answers, now_ms));
    }
    let healthy = rows.iter().all(|r| r["healthy"] == true);
    print!(
        "{}",
        args.output
            .output
            .render(&serde_json::Value::Array(rows.clone()), |_| {
                agent_status::status_table(&rows)
            })
    );
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs `strait policy get`.
pub(crate) fn run_policy_get(agents: &AgentsArgs, output: &OutputArg) -> anyhow::Result<ExitCode> {
    let mut per_node = Vec::new();
    for source in agents.sources()? {
        per_node.push((source.name().to_owned(), ask_json(&source, "/policies")?));
    }
    print!(
        "{}",
        output
            .output
            .render(&policy_listing::policies_json(&per_node), |wide| {
                policy_listing::policies_table(&per_node, wide)
            })
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `strait services`.
pub(crate) fn run_services(args: &MapsArgs) -> anyhow::Result<ExitCode> {
    let mut per_node = Vec::new();
    for source in args.agents.sources()? {
        per_node.push((source.name().to_owned(), ask_json(&source, "/services")?));
    }
    print!(
        "{}",
        args.output
            .output
            .render(&service_listing::services_json(&per_node), |wide| {
                service_listing::services_table(&per_node, wide)
            })
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `strait maps`.
pub(crate) fn run_maps(args: &MapsArgs) -> anyhow::Result<ExitCode> {
    let mut per_node = Vec::new();
    for source in args.agents.sources()? {
        per_node.push(ask_json(&source, "/maps")?);
    }
    print!(
        "{}",
        args.output
            .output
            .render(&map_listing::maps_json(&per_node), |wide| {
                map_listing::maps_table(&per_node, wide)
            })
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `strait ct ...`.
pub(crate) fn run_ct(command: &CtCommand) -> anyhow::Result<ExitCode> {
    let CtCommand::List(args) = command;
    let query = ct_listing::query(
        args.src.as_deref(),
        args.dst.as_deref(),
        args.port,
        args.proto.as_deref(),
        args.limit,
    );
    let mut per_node = Vec::new();
    for source in args.agents.sources()? {
        let flows = ask_json(&source, &format!("/conntrack?{query}"))?;
        per_node.push((source.name().to_owned(), flows));
    }
    print!(
        "{}",
        args.output
            .output
            .render(&ct_listing::ct_json(&per_node), |wide| {
                ct_listing::ct_table(&per_node, wide)
            })
    );
    Ok(ExitCode::SUCCESS)
}
