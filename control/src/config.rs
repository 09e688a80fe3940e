//! The agent's configuration, resolved from its command line (see `straitd --help`).

use std::{net::SocketAddr, path::PathBuf};

use ipnet::Ipv4Net;

/// Everything straitd needs to run on one node.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// This node's name (as in the Kubernetes Node object).
    pub node_name: String,
    /// The node's pod CIDR; pod addresses are allocated from it.
    pub pod_cidr: Ipv4Net,
    /// The cluster's pod range (every node's pod CIDR) and Service range: no Service may claim an
    /// address inside them as an externalIP or LoadBalancer ingress.
    pub cluster_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    /// Link-local gateway address every pod routes through.
    pub gateway: std::net::Ipv4Addr,
    /// Unix socket the CNI plugin talks to.
    pub socket: PathBuf,
    /// Directory of the crash-safe endpoint state.
    pub state_dir: PathBuf,
    /// bpffs mount point; pins go under `<bpffs>/strait/<node>/`.
    pub bpffs: PathBuf,
    /// Address of the HTTP server for /healthz, /syncz and /metrics.
    pub http_addr: SocketAddr,
    /// Capacity of the ENDPOINT map.
    pub endpoint_capacity: u32,
    /// Capacity of the service frontend map.
    pub service_capacity: u32,
    /// Capacity of the backend slot map (backends summed over all frontends).
    pub backend_capacity: u32,
    /// Capacity of the conntrack map (per-packet service path).
    pub conntrack_capacity: u32,
    /// Interface facing the rest of the network; `None` serves no traffic from outside the node.
    pub uplink: Option<String>,
    /// The node's address (SNAT source of external flows); `None` uses the address the client asked for.
    pub node_ip: Option<std::net::Ipv4Addr>,
    /// What runs on the uplink's XDP hook ([`UplinkXdp`]).
    pub xdp_mode: UplinkXdp,
    /// Whether XDP translates and redirects packets of tracked flows to local pods itself (otherwise tc
    /// does); see [`fast_path_default`].
    pub xdp_fast_path: bool,
    /// Whether pods' traffic leaving the cluster is masqueraded to the node's address.
    pub masquerade: bool,
    /// cgroup (v2) whose processes get socket-level service load balancing; `None` leaves it off.
    pub cgroup: Option<PathBuf>,
    /// Directory of Kubernetes objects (Services, EndpointSlices, ...) to serve; `None` serves none.
    pub manifests: Option<PathBuf>,
    /// Watch the Kubernetes API (in-cluster config or kubeconfig) instead of a directory.
    pub kube: bool,
    /// How often the incremental model is checked against a full look at the source and a full
    /// translation (the safety net).
    pub resync_interval: std::time::Duration,
    /// How pods reach pods on other nodes.
    pub overlay: crate::overlay::OverlaySettings,
    /// Whether and how NetworkPolicies are enforced.
    pub network_policy: PolicyMode,
    /// The cluster's NodePort range (first, last), reserved from the node's ephemeral ports; `None`
    /// reserves nothing.
    pub node_port_range: Option<(u16, u16)>,
    /// Cluster DNS answered by this node (`None`: off).
    pub dns: Option<DnsConfig>,
}

/// The API server's default `--service-node-port-range`.
pub const DEFAULT_NODE_PORT_RANGE: &str = "30000-32767";

/// `--node-port-range`: `FIRST-LAST` (as the API server's `--service-node-port-range` writes it), or
/// `none`.
pub fn parse_node_port_range(text: &str) -> Result<Option<(u16, u16)>, String> {
    if text == "none" {
        return Ok(None);
    }
    let bad = || format!("{text:?} is not FIRST-LAST (e.g. {DEFAULT_NODE_PORT_RANGE}) or none");
    let (first, last) = text.split_once('-').ok_or_else(bad)?;
    let (first, last): (u16, u16) = (
        first.trim().parse().map_err(|_| bad())?,
        last.trim().parse().map_err(|_| bad())?,
    );
    if first == 0 || first > last {
        return Err(bad());
    }
    Ok(Some((first, last)))
}

/// Whether and how NetworkPolicies are enforced on the node's pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyMode {
    /// Not at all: the policy maps are left empty.
    Off,
    /// Enforced; a Namespace annotated `strait.io/policy-audit: "true"` puts its pods in audit mode.
    Enforce,
    /// Audit mode for every pod: a packet policy would drop passes and is reported as `audit`.
    Audit,
}

/// Cluster DNS served by this node's agent.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// The cluster zone: domain, TTL, pod names.
    pub zone: strait_dns::ZoneConfig,
    /// `(namespace, name)` of the DNS Service this node answers itself (`kube-system/kube-dns`).
    pub service: (String, String),
    /// Where the server listens; `None`: the node's address, port 53.
    pub listen: Option<std::net::SocketAddrV4>,
    /// Where names outside the cluster zone go, and the cache in front of them.
    pub forward: strait_dns::forward::ForwardConfig,
    /// Whether the kernel answers the hot records itself (`from_pod`).
    pub fast_path: bool,
    /// Threads the server runs on (its own, apart from the agent's), one UDP socket each.
    pub threads: usize,
}

/// `--dns-upstream`: `none`, a resolv.conf file (a path; its `nameserver` lines, port 53), or a
/// comma-separated list of `IP[:PORT]`.
pub fn parse_upstreams(text: &str) -> Result<Vec<SocketAddr>, String> {
    if text == "none" {
        return Ok(Vec::new());
    }
    if text.starts_with('/') {
        let conf = std::fs::read_to_string(text).map_err(|e| format!("reading {text}: {e}"))?;
        return Ok(resolv_conf_nameservers(&conf));
    }
    text.split(',')
        .map(|item| {
            let item = item.trim();
            item.parse::<SocketAddr>()
                .or_else(|_| {
                    item.parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map_err(|_| format!("{item:?} is not IP or IP:PORT"))
        })
        .collect()
}

/// The `nameserver` addresses of a resolv.conf, port 53.
pub fn resolv_conf_nameservers(conf: &str) -> Vec<SocketAddr> {
    conf.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The DNS Service kubeadm's CoreDNS addon creates.
pub const DEFAULT_DNS_SERVICE: &str = "kube-system/kube-dns";

/// `NAMESPACE/NAME`.
pub fn parse_service_name(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => {
            Ok((namespace.to_owned(), name.to_owned()))
        }
        _ => Err(format!("{text:?} is not NAMESPACE/NAME")),
    }
}

impl AgentConfig {
    /// What the service sync loop translates for.
    pub fn sync_settings(&self) -> crate::services::SyncSettings {
        crate::services::SyncSettings {
            node: self.node_name.clone(),
            reserved: crate::model::translate::ReservedAddresses {
                cidrs: vec![self.cluster_cidr, self.service_cidr],
            },
            resync_every: self.resync_interval,
            // Filled in once the overlay is set up (`overlay::setup`).
            overlay: None,
            // Filled in once the DNS server listens (`agent::start_dns`).
            dns: None,
        }
    }

    /// How NetworkPolicy is enforced; `None` when it is off.
    pub fn policy_settings(&self) -> Option<crate::policy::PolicySettings> {
        (self.network_policy != PolicyMode::Off).then(|| crate::policy::PolicySettings {
            node: self.node_name.clone(),
            audit: self.network_policy == PolicyMode::Audit,
        })
    }

    /// Whether the overlay runs: it is not off, and the node has an uplink and an address to tunnel
    /// from.
    pub fn overlay_active(&self) -> bool {
        self.overlay.mode != crate::overlay::OverlayMode::Off
            && self.uplink.is_some()
            && self.node_ip.is_some()
    }

    /// Where this node's maps and links are pinned.
    pub fn pin_dir(&self) -> PathBuf {
        self.bpffs.join("strait").join(&self.node_name)
    }

    /// The endpoint state file.
    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("endpoints.json")
    }
}

/// What runs on the uplink's XDP hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UplinkXdp {
    /// Native XDP when the uplink is a hardware NIC whose driver has it; otherwise no XDP program
    /// ([`UplinkXdp::resolve`]). Never generic: generic XDP runs after the skb exists, where tc makes the
    /// same checks without copying every GRO/GSO aggregate first.
    Auto,
    /// XDP in this mode, or an error when the uplink cannot run it.
    Mode(strait_dataplane::XdpMode),
    /// No XDP program: tc alone serves the uplink.
    Off,
}

impl UplinkXdp {
    /// The XDP mode to attach on an uplink of link kind `kind` (`None`: a hardware NIC; see
    /// [`strait_dataplane::netlink::Netlink::link_kind`]), and why, for the log; `None`: no XDP
    /// program. `Auto` tries native mode on a hardware NIC only: a virtual uplink (veth, bridge,
    /// bond, VLAN) either lacks native XDP or, as a veth, would strip its peer's GSO and drop
    /// XDP_TX answers unless the peer runs XDP too (measured: a veth uplink's TCP stream falls from
    /// 13 to 4 Gbit/s with native XDP).
    #[must_use]
    pub fn resolve(self, kind: Option<&str>) -> (Option<strait_dataplane::XdpMode>, &'static str) {
        match (self, kind) {
            (UplinkXdp::Mode(mode), _) => (Some(mode), "as configured"),
            (UplinkXdp::Off, _) => (None, "--xdp-mode off"),
            (UplinkXdp::Auto, None) => (
                Some(strait_dataplane::XdpMode::Driver),
                "auto: a hardware NIC, native XDP",
            ),
            (UplinkXdp::Auto, Some(_)) => (
                None,
                "auto: a virtual uplink has no native XDP worth running; tc makes every check",
            ),
        }
    }
}

/// The XDP fast path's default for an XDP mode: on where XDP runs in the driver, off in generic (skb)
/// mode, where an XDP redirect to a pod's veth queues the packet for another softirq pass and costs more
/// than tc's `bpf_redirect_peer`, and off without XDP.
#[must_use]
pub fn fast_path_default(mode: UplinkXdp) -> bool {
    match mode {
        UplinkXdp::Auto => true,
        UplinkXdp::Mode(mode) => !matches!(mode, strait_dataplane::XdpMode::Skb),
        UplinkXdp::Off => false,
    }
}

/// The port of the agent's HTTP server.
pub const HTTP_PORT: u16 = 9962;

/// Where the agent's HTTP server listens unless told: the node's address when it is known (Prometheus
/// scrapes it there), else loopback only; never every address (the metrics describe the node's pods
/// and traffic; the endpoint list is not served over HTTP at all).
pub fn default_http_addr(node_ip: Option<std::net::Ipv4Addr>) -> SocketAddr {
    SocketAddr::from((node_ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST), HTTP_PORT))
}

#[cfg(test)]
mod tests {
    use super::{UplinkXdp, default_http_addr, fast_path_default, parse_node_port_range};
    use strait_dataplane::XdpMode;

    #[test]
    fn node_port_ranges_read_as_the_api_server_writes_them() {
        assert_eq!(
            parse_node_port_range("30000-32767"),
            Ok(Some((30000, 32767)))
        );
        assert_eq!(parse_node_port_range("none"), Ok(None));
        for bad in ["30000", "32767-30000", "0-10", "a-b", "30000-70000"] {
            let error = parse_node_port_range(bad).unwrap_err();
            assert!(error.contains("FIRST-LAST"), "{bad}: {error}");
        }
    }

    #[test]
    fn http_listens_on_the_node_address_or_loopback_by_default() {
        let node = std::net::Ipv4Addr::new(172, 30, 0, 11);
        assert_eq!(
            default_http_addr(Some(node)).to_string(),
            "172.30.0.11:9962"
        );
        assert_eq!(default_http_addr(None).to_string(), "127.0.0.1:9962");
    }

    #[test]
    fn the_fast_path_defaults_off_in_generic_mode_and_without_xdp() {
        assert!(fast_path_default(UplinkXdp::Auto));
        assert!(fast_path_default(UplinkXdp::Mode(XdpMode::Default)));
        assert!(fast_path_default(UplinkXdp::Mode(XdpMode::Driver)));
        assert!(!fast_path_default(UplinkXdp::Mode(XdpMode::Skb)));
        assert!(!fast_path_default(UplinkXdp::Off));
    }

    #[test]
    fn auto_runs_native_xdp_on_a_nic_and_none_on_a_virtual_uplink() {
        assert_eq!(UplinkXdp::Auto.resolve(None).0, Some(XdpMode::Driver));
        assert_eq!(UplinkXdp::Auto.resolve(Some("veth")).0, None);
        assert_eq!(UplinkXdp::Off.resolve(None).0, None);
        assert_eq!(
            UplinkXdp::Mode(XdpMode::Skb).resolve(Some("veth")).0,
            Some(XdpMode::Skb)
        );
    }
}
