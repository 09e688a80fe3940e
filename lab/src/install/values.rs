//! The values a cluster's installation is rendered with (`strait install --print` flags), their
//! defaults (kubeadm's) and the checks that refuse a combination that could not work.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use strait_k8s::validate;

/// The image built from this checkout's `Containerfile` and loaded onto the nodes (see the README):
/// there is no public registry image, so the default names a local one.
pub const DEFAULT_IMAGE: &str = concat!("localhost/strait:", env!("CARGO_PKG_VERSION"));

/// Everything the manifests depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallValues {
    /// Namespace of the agent, its account, configuration and metrics Service.
    pub namespace: String,
    /// The agent's container image.
    pub image: String,
    /// The cluster's pod range (kube-controller-manager's `--cluster-cidr`, kubeadm's
    /// `--pod-network-cidr`); each node's share comes from its Node's `spec.podCIDR`.
    pub cluster_cidr: Ipv4Net,
    /// The Service range (kube-apiserver's `--service-cluster-ip-range`).
    pub service_cidr: Ipv4Net,
    /// The cluster DNS Service's address (kubelet's `clusterDNS`).
    pub cluster_dns_ip: Ipv4Addr,
    /// The cluster domain (kubelet's `clusterDomain`).
    pub cluster_domain: String,
    /// How pods reach pods on other nodes: `vxlan`, `direct`, `auto` or `off`.
    pub overlay: String,
    /// VXLAN network identifier (Flannel's default is 1).
    pub vni: u32,
    /// UDP port of the VXLAN tunnels (Flannel's default is 8472).
    pub vxlan_port: u16,
    /// The agent's HTTP port (health, readiness, metrics) on the node's address.
    pub agent_port: u16,
    /// Whether NetworkPolicies are enforced.
    pub network_policy: bool,
    /// The API server's `--service-node-port-range`.
    pub node_port_range: (u16, u16),
    /// The node's CNI binary directory (containerd's `bin_dir`).
    pub cni_bin_dir: String,
    /// The node's CNI configuration directory (containerd's `conf_dir`).
    pub cni_conf_dir: String,
    /// Only nodes with this label run the agent (a migration moves nodes one at a time); `None`: all.
    pub node_selector: Option<(String, String)>,
}

impl Default for InstallValues {
    fn default() -> Self {
        Self {
            namespace: "strait-system".into(),
            image: DEFAULT_IMAGE.into(),
            cluster_cidr: Ipv4Net::new(Ipv4Addr::new(10, 244, 0, 0), 16).unwrap_or_default(),
            service_cidr: Ipv4Net::new(Ipv4Addr::new(10, 96, 0, 0), 12).unwrap_or_default(),
            cluster_dns_ip: Ipv4Addr::new(10, 96, 0, 10),
            cluster_domain: "cluster.local".into(),
            overlay: "vxlan".into(),
            vni: 1,
            vxlan_port: 8472,
            agent_port: 9962,
            network_policy: true,
            node_port_range: (30_000, 32_767),
            cni_bin_dir: "/opt/cni/bin".into(),
            cni_conf_dir: "/etc/cni/net.d".into(),
            node_selector: None,
        }
    }
}

/// A combination of values that could not work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValuesError {
    #[error(
        "--cluster-dns-ip {ip} is outside --service-cidr {cidr}: the API server would refuse the kube-dns Service"
    )]
    DnsOutsideServices { ip: Ipv4Addr, cidr: Ipv4Net },
    #[error("--cluster-cidr {pods} and --service-cidr {services} overlap")]
    RangesOverlap { pods: Ipv4Net, services: Ipv4Net },
    #[error("--overlay {0:?}: expected vxlan, direct, auto or off")]
    Overlay(String),
    #[error("--vni {0}: a VXLAN network identifier is 1 to 16777215")]
    Vni(u32),
    #[error("{0} must not be 0")]
    ZeroPort(&'static str),
    #[error(
        "--namespace {0:?} is not a DNS label (lower case letters, digits and '-', at most 63)"
    )]
    Namespace(String),
    #[error("--image {0:?} is empty or holds spaces")]
    Image(String),
    #[error("--cluster-domain {0:?} is not a DNS name")]
    Domain(String),
    #[error("--node-port-range {0}-{1} is empty")]
    NodePorts(u16, u16),
    #[error("{0} {1:?} is not an absolute path")]
    Directory(&'static str, String),
}

impl InstallValues {
    /// Refuses values the cluster would reject or the agent could not run with.
    pub fn check(&self) -> Result<(), ValuesError> {
        if !self.service_cidr.contains(&self.cluster_dns_ip) {
            return Err(ValuesError::DnsOutsideServices {
                ip: self.cluster_dns_ip,
                cidr: self.service_cidr,
            });
        }
        if self.cluster_cidr.contains(&self.service_cidr.network())
            || self.service_cidr.contains(&self.cluster_cidr.network())
        {
            return Err(ValuesError::RangesOverlap {
                pods: self.cluster_cidr,
                services: self.service_cidr,
            });
        }
        if !["vxlan", "direct", "auto", "off"].contains(&self.overlay.as_str()) {
            return Err(ValuesError::Overlay(self.overlay.clone()));
        }
        if self.vni == 0 || self.vni > 0x00ff_ffff {
            return Err(ValuesError::Vni(self.vni));
        }
        if self.vxlan_port == 0 {
            return Err(ValuesError::ZeroPort("--vxlan-port"));
        }
        if self.agent_port == 0 {
            return Err(ValuesError::ZeroPort("--agent-port"));
        }
        if validate::dns1123_label(&self.namespace).is_err() {
            return Err(ValuesError::Namespace(self.namespace.clone()));
        }
        if self.image.is_empty() || self.image.chars().any(char::is_whitespace) {
            return Err(ValuesError::Image(self.image.clone()));
        }
        if validate::dns1123_subdomain(&self.cluster_domain).is_err() {
            return Err(ValuesError::Domain(self.cluster_domain.clone()));
        }
        for (flag, dir) in [
            ("--cni-bin-dir", &self.cni_bin_dir),
            ("--cni-conf-dir", &self.cni_conf_dir),
        ] {
            if !dir.starts_with('/') || dir.contains("..") {
                return Err(ValuesError::Directory(flag, dir.clone()));
            }
        }
        let (first, last) = self.node_port_range;
        if first == 0 || first > last {
            return Err(ValuesError::NodePorts(first, last));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_and_each_mistake_is_named() {
        InstallValues::default().check().unwrap();
        let with = |change: fn(&mut InstallValues)| {
            let mut values = InstallValues::default();
            change(&mut values);
            values.check().unwrap_err().to_string()
        };
        assert!(with(|v| v.cluster_dns_ip = Ipv4Addr::new(10, 43, 0, 10)).contains("outside"));
        let overlapping = with(|v| {
            v.service_cidr = "10.244.128.0/20".parse().unwrap();
            v.cluster_dns_ip = Ipv4Addr::new(10, 244, 128, 10);
        });
        assert!(overlapping.contains("overlap"), "{overlapping}");
        assert!(with(|v| v.overlay = "geneve".into()).contains("vxlan, direct"));
        assert!(with(|v| v.vni = 1 << 24).contains("16777215"));
        assert!(with(|v| v.agent_port = 0).contains("--agent-port"));
        assert!(with(|v| v.namespace = "Strait".into()).contains("DNS label"));
        assert!(with(|v| v.image = "a b".into()).contains("--image"));
        assert!(with(|v| v.cluster_domain = "cluster..local".into()).contains("DNS name"));
        assert!(with(|v| v.node_port_range = (32_767, 30_000)).contains("empty"));
        assert!(with(|v| v.cni_conf_dir = "etc/cni".into()).contains("absolute"));
    }
}
