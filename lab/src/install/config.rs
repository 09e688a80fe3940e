//! The agent's settings as a ConfigMap: each key is read by the DaemonSet into one `STRAIT_*`
//! environment variable of `straitd` (see [`AGENT_SETTINGS`]), and `cni-conflist` is the network
//! configuration list the init container installs on the node.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::{InstallValues, NAME, namespaced};

/// The ConfigMap's name.
pub const CONFIG_NAME: &str = "strait-config";
/// The key holding the network configuration list.
pub const CONFLIST_KEY: &str = "cni-conflist";
/// Where the agent listens for the plugin (the conflist's `agentSocket`; straitd's default).
pub const AGENT_SOCKET: &str = strait_cni::protocol::DEFAULT_AGENT_SOCKET;

/// `(ConfigMap key, straitd environment variable)` for every setting.
pub const AGENT_SETTINGS: [(&str, &str); 11] = [
    ("cluster-cidr", "STRAIT_CLUSTER_CIDR"),
    ("service-cidr", "STRAIT_SERVICE_CIDR"),
    ("overlay", "STRAIT_OVERLAY"),
    ("vni", "STRAIT_VNI"),
    ("vxlan-port", "STRAIT_VXLAN_PORT"),
    ("uplink", "STRAIT_UPLINK"),
    ("network-policy", "STRAIT_NETWORK_POLICY"),
    ("cluster-domain", "STRAIT_CLUSTER_DOMAIN"),
    ("dns-service", "STRAIT_DNS_SERVICE"),
    ("node-port-range", "STRAIT_NODE_PORT_RANGE"),
    ("log-format", "STRAIT_LOG_FORMAT"),
];

/// The DNS Service every agent answers: kubeadm's name for it, so kubelets need no change.
pub const DNS_SERVICE: (&str, &str) = ("kube-system", "kube-dns");

/// The network configuration list (JSON, as runtimes read it).
pub fn conflist() -> String {
    let list = serde_json::json!({
        "cniVersion": "1.1.0",
        "name": NAME,
        "plugins": [{ "type": strait_cni::install::PLUGIN_NAME, "agentSocket": AGENT_SOCKET }],
    });
    serde_json::to_string_pretty(&list).unwrap_or_default() + "\n"
}

pub fn config_map(values: &InstallValues) -> ConfigMap {
    let value = |key: &str| -> String {
        match key {
            "cluster-cidr" => values.cluster_cidr.to_string(),
            "service-cidr" => values.service_cidr.to_string(),
            "overlay" => values.overlay.clone(),
            "vni" => values.vni.to_string(),
            "vxlan-port" => values.vxlan_port.to_string(),
            // The interface holding the node's address (status.hostIP).
            "uplink" => "auto".into(),
            "network-policy" => values.network_policy.to_string(),
            "cluster-domain" => values.cluster_domain.clone(),
            "dns-service" => format!("{}/{}", DNS_SERVICE.0, DNS_SERVICE.1),
            "node-port-range" => {
                format!("{}-{}", values.node_port_range.0, values.node_port_range.1)
            }
            "log-format" => "json".into(),
            _ => String::new(),
        }
    };
    let mut data: BTreeMap<String, String> = AGENT_SETTINGS
        .iter()
        .map(|(key, _)| ((*key).to_owned(), value(key)))
        .collect();
    data.insert(CONFLIST_KEY.into(), conflist());
    ConfigMap {
        metadata: namespaced(CONFIG_NAME, &values.namespace),
        data: Some(data),
        ..ConfigMap::default()
    }
}
