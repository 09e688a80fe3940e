//! The lab's own record of what it built (nodes, pods, services, policies), saved as JSON in the lab's run
//! directory after every change so every `strait lab` command, and `down` after a crash, can find it.

use std::{collections::BTreeMap, fs, net::Ipv4Addr, path::Path};

use k8s_openapi::api::{
    core::v1::{Namespace, Service},
    discovery::v1::EndpointSlice,
    networking::v1::NetworkPolicy,
};
use serde::{Deserialize, Serialize};

use crate::{
    LabError,
    manifests::{PodDns, PodPort},
};

/// A node of the lab.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub index: usize,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub pod_cidr: String,
    pub agent_pid: i32,
    pub agent_socket: String,
    pub http_port: u16,
    /// Set on a Flannel reference node (no agent: `agent_pid` is 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flannel: Option<crate::flannel::FlannelNode>,
}

impl NodeRecord {
    /// Whether strait's agent runs on the node (not a Flannel reference node).
    pub fn runs_strait(&self) -> bool {
        self.flannel.is_none()
    }
}

/// A pod of the lab.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PodRecord {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub container_id: String,
    pub netns: String,
    pub cgroup: String,
    pub ip: Ipv4Addr,
    pub ports: Vec<PodPort>,
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_hash: Option<String>,
    pub workload_pid: i32,
    #[serde(default, skip_serializing_if = "PodDns::is_empty")]
    pub dns: PodDns,
}

impl PodRecord {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Everything the lab knows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LabState {
    pub name: String,
    pub nodes: Vec<NodeRecord>,
    pub pods: Vec<PodRecord>,
    /// Namespaces applied to the lab, by name (the built-in ones, [`crate::apply::BUILTIN_NAMESPACES`],
    /// exist without being here).
    #[serde(default)]
    pub namespaces: BTreeMap<String, Namespace>,
    /// Services by `namespace/name`.
    pub services: BTreeMap<String, Service>,
    /// Deployments by `namespace/name`: (replicas, template hash).
    pub deployments: BTreeMap<String, (usize, String)>,
    /// NetworkPolicies by `namespace/name`, as applied (with `metadata.namespace` set).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, NetworkPolicy>,
    /// EndpointSlices applied to the lab (for Services without a selector, as a user or another
    /// controller writes them), by `namespace/name`, with `metadata.namespace` set. The lab's own
    /// controller's slices are computed, never kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoint_slices: BTreeMap<String, EndpointSlice>,
    /// The external namespace's server ([`crate::external`]); 0 when none runs (a lab from before it).
    #[serde(default)]
    pub external_pid: i32,
    /// How the lab was built; a restarted agent gets the same flags.
    #[serde(default)]
    pub options: LabOptions,
}

/// Choices made when a lab is brought up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabOptions {
    /// Run the uplink's XDP fast path (tracked external flows translated and redirected to pods by XDP).
    /// The lab's agents run XDP in generic mode, where the agent leaves it off unless asked.
    pub xdp_fast_path: bool,
    /// How pods reach pods on other nodes (`straitd --overlay`).
    #[serde(default)]
    pub overlay: LabOverlay,
    /// Flannel reference nodes added after the strait nodes ([`crate::flannel`]).
    #[serde(default)]
    pub flannel_nodes: usize,
    /// The agents' `--xdp-mode` on the uplink.
    #[serde(default)]
    pub xdp_mode: LabXdp,
    /// No cluster DNS: no `kube-system/kube-dns` Service, and pods see the host's resolv.conf.
    #[serde(default)]
    pub no_cluster_dns: bool,
    /// Where the agents forward names outside the cluster zone: a server inside the lab (the
    /// external namespace, say); `None`: nowhere (REFUSED), never the machine's resolver.
    #[serde(default)]
    pub dns_upstream: Option<std::net::SocketAddrV4>,
    /// The agents answer no DNS query in the kernel: every one reaches the server.
    #[serde(default)]
    pub no_dns_fast_path: bool,
}

/// The agents' `--xdp-mode` in a lab: the uplink is a veth, so XDP runs generic or not at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LabXdp {
    /// XDP in generic mode: every XDP check and answer runs (the underlay side of a node's veth runs no
    /// XDP program, so native XDP_TX could not transmit).
    #[default]
    Generic,
    /// No XDP program: tc alone, as on a node where generic XDP's copy of each aggregate costs more than
    /// its early drops save.
    Off,
    /// strait's default: on a veth uplink that is no XDP program either (`straitd --xdp-mode auto`
    /// runs native XDP on hardware NICs only).
    Auto,
}

impl LabXdp {
    /// The value of `straitd --xdp-mode`.
    pub fn flag(self) -> &'static str {
        match self {
            LabXdp::Generic => "generic",
            LabXdp::Off => "off",
            LabXdp::Auto => "auto",
        }
    }
}

/// The agents' `--overlay` mode in a lab.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LabOverlay {
    /// VXLAN tunnels between the nodes (Flannel's wire format).
    #[default]
    Vxlan,
    /// Unencapsulated, node to node on the underlay (every lab node shares one L2 segment).
    Direct,
    /// Direct to on-link nodes, VXLAN to the rest (in the lab every node is on-link).
    Auto,
}

impl LabOverlay {
    /// The value of `straitd --overlay`.
    pub fn flag(self) -> &'static str {
        match self {
            LabOverlay::Vxlan => "vxlan",
            LabOverlay::Direct => "direct",
            LabOverlay::Auto => "auto",
        }
    }
}

impl LabState {
    /// Reads the state file of a lab.
    pub fn load(path: &Path) -> Result<Self, LabError> {
        let text = fs::read_to_string(path)
            .map_err(|e| LabError::io(format!("reading lab state {}", path.display()), e))?;
        serde_json::from_str(&text).map_err(|e| {
            LabError::Environment(format!("lab state {} is corrupt: {e}", path.display()))
        })
    }

    /// Writes the state file atomically.
    pub fn save(&self, path: &Path) -> Result<(), LabError> {
        let text =
            serde_json::to_vec_pretty(self).map_err(|e| LabError::Environment(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, text).map_err(|e| LabError::io(format!("writing {}", tmp.display()), e))?;
        fs::rename(&tmp, path).map_err(|e| LabError::io(format!("replacing {}", path.display()), e))
    }

    /// The pod `namespace/name`.
    pub fn pod(&self, id: &str) -> Option<&PodRecord> {
        self.pods.iter().find(|p| p.id() == id)
    }

    /// Pods whose owner is `owner` (`namespace/name` of a Deployment).
    pub fn pods_owned_by(&self, owner: &str) -> Vec<PodRecord> {
        self.pods
            .iter()
            .filter(|p| p.owner.as_deref() == Some(owner))
            .cloned()
            .collect()
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.name == name)
    }
}
