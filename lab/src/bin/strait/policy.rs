//! `strait policy`: `get` (what each agent enforces), `explain` (one flow's verdict and its reasons), `audit` (what a set of policies leaves
//! open, never selects or says twice) and `propose` (policies that allow exactly the observed flows),
//! over manifests, a running lab or a live cluster (`--kube`).

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;
use ipnet::Ipv4Net;
use strait_lab::listing::Output;

#[derive(Subcommand, Debug)]
pub(crate) enum PolicyCommand {
    /// The NetworkPolicies each agent enforces and the local pods each isolates, per direction, as
    /// the agents hold them (`GET /policies`); -o wide adds each node's policy table.
    ///
    /// Example: `strait policy get --name lab` or `strait policy get --kube -o json`
    Get {
        #[command(flatten)]
        agents: crate::inspect::AgentsArgs,
        #[command(flatten)]
        output: crate::inspect::OutputArg,
    },
    /// Why a connection is allowed or denied: which policies select each side, and rule by rule
    /// whether the peer and the port matched. Reads Namespaces, Pods and NetworkPolicies from
    /// manifests (other kinds are skipped), so policies can be checked before they are applied, or
    /// from a running lab (--name) or a live cluster's API server (--kube). Exits
    /// 0 when the connection is allowed, 1 when it is denied, 2 when the question cannot be answered
    /// (a bad manifest or policy, an unknown pod).
    ///
    /// Example: `strait policy explain --manifests k8s/ shop/web shop/api:8080/TCP`, on a lab:
    /// `strait policy explain --name demo default/client default/server:8080`, on a cluster:
    /// `strait policy explain --kube shop/web shop/api:8080`
    #[command(group(
        clap::ArgGroup::new("source")
            .args(["manifests", "name", "kube"])
            .required(true)
    ))]
    Explain {
        /// Manifest file or directory (offline: before anything is applied).
        #[arg(long)]
        manifests: Option<PathBuf>,
        /// A running lab instead: its Namespaces, Pods and NetworkPolicies as its agents enforce them.
        #[arg(long)]
        name: Option<String>,
        /// A live cluster instead: the Namespaces, Pods and NetworkPolicies its API server holds (the
        /// current kubeconfig context, KUBECONFIG, or the in-cluster service account).
        #[arg(long)]
        kube: bool,
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
    /// manifests, a running lab (--name) or a live cluster (--kube). Exits 0 without warnings, 1 with warnings, 2 when the audit cannot
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
        .args(["manifests", "files", "name", "kube"])
        .required(true)
        .multiple(true)
))]
pub(crate) struct AuditArgs {
    /// Manifest file or directory (offline: before anything is applied); may be repeated.
    #[arg(long, value_name = "PATH")]
    manifests: Vec<PathBuf>,
    /// A manifest file, as kubectl's -f; may be repeated, and mixed with --manifests.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// A running lab instead: its Namespaces, nodes, Pods and NetworkPolicies.
    #[arg(long, conflicts_with_all = ["manifests", "files"])]
    name: Option<String>,
    /// A live cluster instead: its API server's Namespaces, Nodes, Pods and NetworkPolicies (the
    /// current kubeconfig context, KUBECONFIG, or the in-cluster service account).
    #[arg(long, conflicts_with_all = ["manifests", "files", "name"])]
    kube: bool,
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
        None if args.kube => Source::Kube,
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
pub(crate) fn run_policy(command: PolicyCommand) -> ExitCode {
    let (manifests, name, kube, from, to, output) = match command {
        PolicyCommand::Explain {
            manifests,
            name,
            kube,
            from,
            to,
            output,
        } => (manifests, name, kube, from, to, output),
        PolicyCommand::Audit(args) => return run_audit(args),
        PolicyCommand::Get { agents, output } => {
            return crate::inspect::run_policy_get(&agents, &output).unwrap_or_else(|error| {
                eprintln!("error: {error:#}");
                ExitCode::from(2)
            });
        }
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
        (None, None) if kube => strait_lab::policy_explain::explain_kube(&from, &to),
        (None, None) => Err(strait_lab::LabError::Usage(
            "--manifests DIR, --name LAB or --kube is needed".to_owned(),
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
