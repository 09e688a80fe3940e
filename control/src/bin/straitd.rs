//! `straitd`: the strait node agent. Thin: parses flags, sets up logging, runs the agent.

use std::{io::IsTerminal as _, net::SocketAddr, path::PathBuf};

use anyhow::Context as _;
use clap::Parser;
use ipnet::Ipv4Net;
use strait_control::{
    AgentConfig,
    config::{PolicyMode, UplinkXdp},
    model::translate::ReservedAddresses,
    node_discovery,
    overlay::{OverlayMode, OverlaySettings},
    run,
};
use strait_dataplane::XdpMode;
use tracing_subscriber::EnvFilter;

/// strait node agent: loads strait's eBPF data path on this node, serves the CNI plugin and exposes
/// health and metrics.
///
/// Stopping the agent (SIGTERM) leaves the data path in place: pods keep talking, and a restarted agent
/// adopts the pinned maps, links and endpoints without disturbing them.
#[derive(Parser, Debug)]
#[command(name = "straitd", version)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "command-line switches; the agent's configuration turns them into modes"
)]
struct Args {
    /// This node's name (Kubernetes Node name); names the pin directory and labels metrics.
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// The node's pod CIDR, e.g. 10.244.1.0/24. Pod addresses come from it. Under --kube it defaults
    /// to the Node's spec.podCIDR (the agent waits until the controller manager has assigned one);
    /// without --kube it is required.
    #[arg(long, env = "STRAIT_POD_CIDR", required_unless_present = "kube")]
    pod_cidr: Option<Ipv4Net>,
    /// The cluster's pod range (every node's pod CIDR, kube-controller-manager's --cluster-cidr). A
    /// Service naming an address inside it as an externalIP or LoadBalancer ingress is refused (logged
    /// by name): it would capture pod traffic.
    #[arg(long, env = "STRAIT_CLUSTER_CIDR", default_value = ReservedAddresses::DEFAULT_CLUSTER_CIDR)]
    cluster_cidr: Ipv4Net,
    /// The Service range (kube-apiserver's --service-cluster-ip-range). A Service naming an address
    /// inside it as an externalIP or LoadBalancer ingress is refused (logged by name): it could pose as
    /// another Service's ClusterIP.
    #[arg(long, env = "STRAIT_SERVICE_CIDR", default_value = ReservedAddresses::DEFAULT_SERVICE_CIDR)]
    service_cidr: Ipv4Net,
    /// Link-local gateway every pod routes through (answered by the host side of its veth).
    #[arg(long, default_value = "169.254.1.1")]
    gateway: std::net::Ipv4Addr,
    /// Unix socket for the CNI plugin (must match `agentSocket` in the CNI config).
    #[arg(long, default_value = strait_cni::protocol::DEFAULT_AGENT_SOCKET)]
    socket: PathBuf,
    /// Directory for crash-safe endpoint state [default: /var/lib/strait/<node-name>].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// bpffs mount point (mounted if absent); pins go under <bpffs>/strait/<node-name>/.
    #[arg(long, env = "STRAIT_BPFFS", default_value = strait_dataplane::bpffs::DEFAULT_BPFFS)]
    bpffs: PathBuf,
    /// Where the node's procfs is mounted: sysctls are written under <procfs>/sys. In a container,
    /// whose own /proc/sys is read-only, this is the host's /proc mounted elsewhere.
    #[arg(long, env = "STRAIT_PROCFS", default_value = "/proc")]
    procfs: PathBuf,
    /// Listen address for /healthz, /syncz and /metrics (Prometheus). Default: the node's address
    /// (--node-ip) on port 9962, else 127.0.0.1:9962; not every address. The endpoint list (pods'
    /// container ids and netns paths) is served only on the --socket, to root.
    #[arg(long, env = "STRAIT_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// Capacity of the ENDPOINT map (pods this node can hold).
    #[arg(long, default_value_t = 16_384)]
    endpoint_capacity: u32,
    /// Capacity of the service frontend map (one entry per service address, port and protocol).
    #[arg(long, default_value_t = 65_536)]
    service_capacity: u32,
    /// Capacity of the backend slot map (backends summed over all service frontends).
    #[arg(long, default_value_t = 262_144)]
    backend_capacity: u32,
    /// Capacity of the connection-tracking map of the per-packet service path (flow directions, two per
    /// flow; the least recently used are evicted when it is full).
    #[arg(long, default_value_t = 262_144)]
    conntrack_capacity: u32,
    /// The node's interface to the rest of the network (e.g. eth0). NodePort, LoadBalancer and externalIP
    /// traffic from outside the node is served on it by XDP + tc programs [default: none, so those
    /// frontends serve in-cluster clients only]. `auto`: the interface that holds --node-ip.
    #[arg(long, env = "STRAIT_UPLINK")]
    uplink: Option<String>,
    /// The node's address, used as the source of external flows with `externalTrafficPolicy: Cluster`
    /// (SNAT) [default: the address the client connected to].
    #[arg(long, env = "STRAIT_NODE_IP", requires = "uplink")]
    node_ip: Option<std::net::Ipv4Addr>,
    /// How the uplink's XDP program runs: `auto` runs it native (in the driver) on a hardware NIC whose
    /// driver has native XDP, and runs none on a virtual uplink (veth, bridge, bond) or a driver
    /// without it; `native` insists on the driver; `generic` runs it on the skb path (the lab uses it
    /// on its veth uplinks, to exercise every XDP check); `off` runs no XDP program. Without XDP, tc
    /// makes every check XDP makes. `auto` never picks generic: generic XDP copies every GRO/GSO
    /// aggregate into a linear buffer before the program runs, which costs a veth uplink 10-15 % of
    /// its TCP stream throughput, and it saves no skb.
    #[arg(
        long,
        env = "STRAIT_XDP_MODE",
        value_enum,
        default_value = "auto",
        requires = "uplink"
    )]
    xdp_mode: XdpModeArg,
    /// Whether XDP itself translates and redirects the packets of tracked external flows to pods on this
    /// node (the fast path), or leaves them to tc: `auto` turns it on unless `--xdp-mode generic`, where
    /// an XDP redirect into a veth costs more than tc's.
    #[arg(long, value_enum, default_value = "auto", requires = "uplink")]
    xdp_fast_path: FastPathArg,
    /// Whether pods' connections to addresses outside the cluster (no pod, no Service, not this node)
    /// leave through the uplink from the node's address, as Flannel's `--ip-masq` does; their replies
    /// are tracked back to the pod. Needs `--uplink` and `--node-ip`; off, such packets go to the
    /// node's stack unchanged (and reach nothing with IP forwarding off).
    #[arg(long, env = "STRAIT_MASQUERADE", default_value_t = true, action = clap::ArgAction::Set,
          requires = "node_ip")]
    masquerade: bool,
    /// cgroup v2 directory whose processes (pods and node) get socket-level service load balancing
    /// [default: off]. On a real node this is the cgroup2 root.
    #[arg(long, env = "STRAIT_CGROUP")]
    cgroup: Option<PathBuf>,
    /// Directory of Kubernetes objects (Services, EndpointSlices) to serve, watched for changes; files
    /// replaced atomically are picked up, a bad file is reported by name and skipped.
    #[arg(long, conflicts_with = "kube")]
    manifests: Option<PathBuf>,
    /// Watch Services, EndpointSlices, Nodes and Pods (with --network-policy, every Pod, Namespace and
    /// NetworkPolicy; without, this node's Pods) on the Kubernetes API (in-cluster service account, or
    /// KUBECONFIG) instead of a manifest directory.
    #[arg(long, env = "STRAIT_KUBE")]
    kube: bool,
    /// Seconds between full resyncs: the source is looked at again in full, and the incremental
    /// translation is compared with a full one and with the kernel's maps (both must be no-ops; a
    /// difference is logged as drift and repaired).
    #[arg(long, env = "STRAIT_RESYNC_INTERVAL_S", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    resync_interval_s: u64,
    /// How pods reach pods on other nodes: `vxlan` tunnels them (Flannel's wire format: a strait node
    /// and a Flannel node talk), `direct` sends them unencapsulated to the other node's address (every
    /// node on one L2 segment), `auto` goes direct to nodes on this node's uplink subnet and through
    /// VXLAN to the rest (Flannel's DirectRouting), `off` keeps the network to this node. Needs
    /// --uplink and --node-ip.
    #[arg(long, env = "STRAIT_OVERLAY", value_enum, default_value = "vxlan")]
    overlay: OverlayArg,
    /// VXLAN network identifier (Flannel's default).
    #[arg(long, env = "STRAIT_VNI", default_value_t = 1)]
    vni: u32,
    /// UDP port of the VXLAN tunnels (Flannel's and the kernel's default).
    #[arg(long, env = "STRAIT_VXLAN_PORT", default_value_t = 8472)]
    vxlan_port: u16,
    /// Whether NetworkPolicies are enforced on this node's pods. Under --kube the agent then watches
    /// every Pod of the cluster, the Namespaces and the NetworkPolicies; `false` leaves the policy maps
    /// empty (and watches only this node's Pods).
    #[arg(long, env = "STRAIT_NETWORK_POLICY", default_value_t = true, action = clap::ArgAction::Set)]
    network_policy: bool,
    /// Audit mode for every pod: traffic a policy would drop passes and is reported as `audit`
    /// (a Namespace annotated `strait.io/policy-audit: "true"` puts only its own pods in audit mode).
    #[arg(long, env = "STRAIT_POLICY_AUDIT")]
    policy_audit: bool,
    /// The cluster's NodePort range (the API server's --service-node-port-range), reserved in
    /// net.ipv4.ip_local_reserved_ports so no connection the node opens takes a NodePort as its
    /// source port (a reply to it would be taken for NodePort traffic and never reach the socket), as
    /// Cilium does; `none` leaves the reserved ports alone.
    #[arg(long, env = "STRAIT_NODE_PORT_RANGE",
          default_value = strait_control::config::DEFAULT_NODE_PORT_RANGE,
          value_parser = node_port_range_arg)]
    node_port_range: NodePortRangeArg,
    /// Answer cluster DNS on this node: the DNS Service's (--dns-service) port 53 frontends lead to
    /// this agent's own DNS server, so no pod's query leaves its node. The server listens on
    /// --dns-listen (default: --node-ip, port 53) over UDP and TCP and answers the cluster zone as the
    /// Kubernetes DNS specification 1.1.0 and CoreDNS describe it; other names are refused for now.
    #[arg(long, env = "STRAIT_CLUSTER_DNS", default_value_t = true, action = clap::ArgAction::Set)]
    cluster_dns: bool,
    /// The cluster domain (kubelet's --cluster-domain).
    #[arg(long, env = "STRAIT_CLUSTER_DOMAIN", default_value = "cluster.local")]
    cluster_domain: String,
    /// The DNS Service this node answers, NAMESPACE/NAME.
    #[arg(long, env = "STRAIT_DNS_SERVICE", default_value = strait_control::config::DEFAULT_DNS_SERVICE,
          value_parser = strait_control::config::parse_service_name)]
    dns_service: (String, String),
    /// TTL of the cluster zone's records, seconds (kubeadm's Corefile: 30).
    #[arg(long, default_value_t = strait_dns::config::DEFAULT_TTL)]
    dns_ttl: u32,
    /// Pod names `a-b-c-d.<ns>.pod.<zone>`: `insecure` answers any well-formed one (kubeadm's
    /// `pods insecure`), `disabled` answers NXDOMAIN.
    #[arg(long, value_enum, default_value = "insecure")]
    dns_pod_records: PodRecordsArg,
    /// Where the DNS server listens (default: --node-ip, port 53).
    #[arg(long)]
    dns_listen: Option<std::net::SocketAddrV4>,
    /// Where names outside the cluster zone are forwarded: a resolv.conf file (its nameservers, as
    /// CoreDNS's `forward . /etc/resolv.conf`), a comma-separated list of IP[:PORT], or `none`
    /// (REFUSED). Answers are cached (positive up to 3600 s, negative up to 1800 s).
    #[arg(long, env = "STRAIT_DNS_UPSTREAM", default_value = "/etc/resolv.conf")]
    dns_upstream: String,
    /// Questions in flight to the upstreams at most; more are refused (CoreDNS `max_concurrent`).
    #[arg(long, default_value_t = 1000)]
    dns_max_concurrent: usize,
    /// Answers from upstreams the cache holds at most.
    #[arg(long, default_value_t = 9984)]
    dns_cache_size: usize,
    /// Answer the cluster's hot records in the kernel: a pod's UDP query for the A record of a
    /// ClusterIP Service is answered by `from_pod` before it reaches any socket; everything else
    /// goes to the server. Keeps answering them while the agent is down.
    #[arg(long, env = "STRAIT_DNS_FAST_PATH", default_value_t = true, action = clap::ArgAction::Set)]
    dns_fast_path: bool,
    /// UDP threads of the DNS server, apart from the agent's own; they read the server's one UDP
    /// socket in batches. Default: one per two CPUs, at least 1, at most 4 (the node's pods need
    /// CPUs too).
    #[arg(long, env = "STRAIT_DNS_THREADS", value_parser = clap::value_parser!(u16).range(1..=64))]
    dns_threads: Option<u16>,
    /// Log format.
    #[arg(long, env = "STRAIT_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// `--dns-pod-records`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum PodRecordsArg {
    Insecure,
    Disabled,
}

/// `--node-port-range`: a range, or none.
#[derive(Clone, Copy, Debug)]
struct NodePortRangeArg(Option<(u16, u16)>);

fn node_port_range_arg(text: &str) -> Result<NodePortRangeArg, String> {
    strait_control::config::parse_node_port_range(text).map(NodePortRangeArg)
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum OverlayArg {
    Vxlan,
    Direct,
    Auto,
    Off,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum XdpModeArg {
    Auto,
    Native,
    Generic,
    Off,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum FastPathArg {
    Auto,
    On,
    Off,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// glibc gives every thread that allocates an arena of its own; the sync loop parses on tokio's
/// blocking threads, and each arena kept its own freed pages. Two arenas are plenty for the agent.
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets an allocator parameter; called first thing in main, before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// The cluster DNS settings from the `--cluster-dns`/`--dns-*` flags; `None` when DNS is off.
fn dns_config(args: &Args) -> anyhow::Result<Option<strait_control::config::DnsConfig>> {
    if !args.cluster_dns {
        return Ok(None);
    }
    let mut zone = strait_dns::ZoneConfig::for_domain(&args.cluster_domain)
        .map_err(|e| anyhow::anyhow!("--cluster-domain: {e}"))?;
    zone.ttl = args.dns_ttl;
    zone.pods = match args.dns_pod_records {
        PodRecordsArg::Insecure => strait_dns::PodRecords::Insecure,
        PodRecordsArg::Disabled => strait_dns::PodRecords::Disabled,
    };
    let upstreams = strait_control::config::parse_upstreams(&args.dns_upstream)
        .map_err(|e| anyhow::anyhow!("--dns-upstream: {e}"))?;
    Ok(Some(strait_control::config::DnsConfig {
        zone,
        service: args.dns_service.clone(),
        listen: args.dns_listen,
        forward: strait_dns::forward::ForwardConfig {
            upstreams,
            max_concurrent: args.dns_max_concurrent,
            cache_entries: args.dns_cache_size,
            ..strait_dns::forward::ForwardConfig::default()
        },
        fast_path: args.dns_fast_path,
        threads: args
            .dns_threads
            .map_or_else(strait_dns::server::default_threads, usize::from),
    }))
}

/// The pod CIDR (the flag, else under `--kube` the Node's `spec.podCIDR`) and the uplink (the flag;
/// `auto`: the interface holding `--node-ip`).
async fn node_settings(args: &Args) -> anyhow::Result<(Ipv4Net, Option<String>)> {
    let uplink = match (args.uplink.as_deref(), args.node_ip) {
        (Some("auto"), Some(node_ip)) => {
            let name = node_discovery::interface_with(node_ip)?;
            tracing::info!(uplink = %name, %node_ip, "uplink found by the node's address");
            Some(name)
        }
        (Some("auto"), None) => anyhow::bail!("--uplink auto needs --node-ip to find the uplink"),
        (other, _) => other.map(str::to_owned),
    };
    let pod_cidr = if let Some(net) = args.pod_cidr {
        net
    } else {
        let client = kube::Client::try_default()
            .await
            .context("connecting to the Kubernetes API to read the Node's pod CIDR")?;
        node_discovery::wait_for_pod_cidr(
            client,
            &args.node_name,
            std::time::Duration::from_secs(2),
        )
        .await?
    };
    Ok((pod_cidr, uplink))
}

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stdout().is_terminal())
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }
    let xdp_mode = match args.xdp_mode {
        XdpModeArg::Auto => UplinkXdp::Auto,
        XdpModeArg::Native => UplinkXdp::Mode(XdpMode::Driver),
        XdpModeArg::Generic => UplinkXdp::Mode(XdpMode::Skb),
        XdpModeArg::Off => UplinkXdp::Off,
    };
    let dns = dns_config(&args)?;
    strait_dataplane::sysctl::set_proc_root(args.procfs.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (pod_cidr, uplink) = runtime.block_on(node_settings(&args))?;
    let config = AgentConfig {
        state_dir: args
            .state_dir
            .unwrap_or_else(|| PathBuf::from("/var/lib/strait").join(&args.node_name)),
        node_name: args.node_name,
        pod_cidr,
        cluster_cidr: args.cluster_cidr,
        service_cidr: args.service_cidr,
        gateway: args.gateway,
        socket: args.socket,
        bpffs: args.bpffs,
        http_addr: args
            .http_addr
            .unwrap_or_else(|| strait_control::config::default_http_addr(args.node_ip)),
        endpoint_capacity: args.endpoint_capacity,
        service_capacity: args.service_capacity,
        backend_capacity: args.backend_capacity,
        conntrack_capacity: args.conntrack_capacity,
        uplink,
        node_ip: args.node_ip,
        xdp_mode,
        masquerade: args.masquerade && args.node_ip.is_some(),
        xdp_fast_path: match args.xdp_fast_path {
            FastPathArg::Auto => strait_control::config::fast_path_default(xdp_mode),
            FastPathArg::On => true,
            FastPathArg::Off => false,
        },
        cgroup: args.cgroup,
        manifests: args.manifests,
        kube: args.kube,
        resync_interval: std::time::Duration::from_secs(args.resync_interval_s),
        node_port_range: args.node_port_range.0,
        dns,
        overlay: OverlaySettings {
            mode: match args.overlay {
                OverlayArg::Vxlan => OverlayMode::Vxlan,
                OverlayArg::Direct => OverlayMode::Direct,
                OverlayArg::Auto => OverlayMode::Auto,
                OverlayArg::Off => OverlayMode::Off,
            },
            vni: args.vni,
            port: args.vxlan_port,
        },
        network_policy: match (args.network_policy, args.policy_audit) {
            (false, _) => PolicyMode::Off,
            (true, false) => PolicyMode::Enforce,
            (true, true) => PolicyMode::Audit,
        },
    };
    let result = runtime.block_on(run(config));
    if let Err(error) = &result {
        tracing::error!("straitd failed: {error:#}");
    }
    result
}
