//! `strait install`: renders the manifests that run strait in a cluster with the user's values,
//! printed for `kubectl apply -f -` or written to a directory.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use ipnet::Ipv4Net;
use strait_lab::install::{self, InstallValues};

/// `strait install`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("output").required(true).args(["print", "out"])))]
pub struct InstallArgs {
    /// Print every manifest to stdout (pipe it to `kubectl apply -f -`).
    #[arg(long)]
    print: bool,
    /// Write the manifests into this directory instead (one file per part, as deploy/kubernetes/).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Also print the Prometheus Operator's ServiceMonitor (needs the operator's CRDs).
    #[arg(long)]
    service_monitor: bool,
    /// The agent's container image (built from the repository's Containerfile).
    #[arg(long, default_value = install::values::DEFAULT_IMAGE)]
    image: String,
    /// Namespace of the agent and its configuration.
    #[arg(long, default_value = "strait-system")]
    namespace: String,
    /// The cluster's pod range (kubeadm --pod-network-cidr, k3s --cluster-cidr); nodes' pod CIDRs
    /// come from their Node objects.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: Ipv4Net,
    /// The Service range (kubeadm --service-cidr, k3s --service-cidr).
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: Ipv4Net,
    /// The cluster DNS Service's address (kubelet clusterDNS; k3s: 10.43.0.10).
    #[arg(long, default_value = "10.96.0.10")]
    cluster_dns_ip: Ipv4Addr,
    /// The cluster domain (kubelet clusterDomain).
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// How pods reach other nodes' pods: vxlan (Flannel's wire format), direct, auto or off.
    #[arg(long, default_value = "vxlan")]
    overlay: String,
    /// VXLAN network identifier (Flannel's default: 1).
    #[arg(long, default_value_t = 1)]
    vni: u32,
    /// VXLAN UDP port (Flannel's default: 8472).
    #[arg(long, default_value_t = 8472)]
    vxlan_port: u16,
    /// The agent's HTTP port on each node: /healthz, /readyz, /metrics.
    #[arg(long, default_value_t = 9962)]
    agent_port: u16,
    /// Enforce NetworkPolicies.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    network_policy: bool,
    /// The API server's --service-node-port-range, FIRST-LAST.
    #[arg(long, default_value = "30000-32767", value_parser = node_port_range)]
    node_port_range: (u16, u16),
    /// The nodes' CNI binary directory: containerd's `bin_dir` (k3s keeps its own, see the README).
    #[arg(long, default_value = "/opt/cni/bin")]
    cni_bin_dir: String,
    /// The nodes' CNI configuration directory: containerd's `conf_dir` (k3s:
    /// /var/lib/rancher/k3s/agent/etc/cni/net.d).
    #[arg(long, default_value = "/etc/cni/net.d")]
    cni_conf_dir: String,
    /// Run the agent only on nodes labelled KEY=VALUE (moving a Flannel cluster node by node).
    #[arg(long, value_name = "KEY=VALUE", value_parser = label)]
    node_selector: Option<(String, String)>,
}

fn label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?}: expected KEY=VALUE")),
    }
}

fn node_port_range(text: &str) -> Result<(u16, u16), String> {
    let (first, last) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?}: expected FIRST-LAST"))?;
    let port = |p: &str| p.parse::<u16>().map_err(|e| format!("{p:?}: {e}"));
    Ok((port(first)?, port(last)?))
}

impl InstallArgs {
    fn values(&self) -> InstallValues {
        InstallValues {
            namespace: self.namespace.clone(),
            image: self.image.clone(),
            cluster_cidr: self.cluster_cidr,
            service_cidr: self.service_cidr,
            cluster_dns_ip: self.cluster_dns_ip,
            cluster_domain: self.cluster_domain.clone(),
            overlay: self.overlay.clone(),
            vni: self.vni,
            vxlan_port: self.vxlan_port,
            agent_port: self.agent_port,
            network_policy: self.network_policy,
            node_port_range: self.node_port_range,
            cni_bin_dir: self.cni_bin_dir.clone(),
            cni_conf_dir: self.cni_conf_dir.clone(),
            node_selector: self.node_selector.clone(),
        }
    }
}

pub fn run_install(args: &InstallArgs) -> anyhow::Result<ExitCode> {
    let files = install::render(&args.values())?;
    if let Some(dir) = &args.out {
        let changed = install::write(dir, &files)
            .with_context(|| format!("writing the manifests into {}", dir.display()))?;
        for file in &files {
            let state = if changed.iter().any(|c| c == file.path) {
                "written"
            } else {
                "unchanged"
            };
            println!("{}: {state}", dir.join(file.path).display());
        }
        println!("apply with: kubectl apply -f {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    let chosen = files
        .iter()
        .filter(|f| args.service_monitor || !f.path.contains('/'));
    for file in chosen {
        out.write_all(file.text.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}
