//! `strait flows`: the NetworkPolicy verdicts every node's agent made, merged in time order, filtered
//! by the agents, printed as text lines or JSON, and followed live with `--follow`.

use std::{io::Write as _, process::ExitCode};

use strait_lab::flows;

use crate::inspect::AgentsArgs;

/// `strait flows` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct FlowsArgs {
    #[command(flatten)]
    agents: AgentsArgs,
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
pub(crate) enum FlowOutput {
    Text,
    Json,
}

/// Runs `strait flows`.
pub(crate) fn run_flows(args: FlowsArgs) -> anyhow::Result<ExitCode> {
    let sources = args.agents.sources()?;
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
