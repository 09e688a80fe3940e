//! Services on the Flannel stacks: the lab programs no Service on its Flannel reference nodes (they run
//! no strait), so the cross-node run loads kube-proxy's iptables-mode rules into the client node's
//! namespace itself, as kube-proxy would on that node: one frontend per protocol (ClusterIP
//! [`TARGET_VIP`] port 80, node port 30080, externalTrafficPolicy Cluster) whose only endpoint is the
//! server pod on the other node.

use std::{net::Ipv4Addr, path::Path};

use super::{CrossError, error};
use crate::netbench::{
    bridge_lab,
    catalog::{Catalog, Frontend, TargetPosition},
    kube_iptables::{self, KubeProxyConfig},
    wiring::TARGET_VIP,
};

/// The cluster's pod range in the lab (every node's pod CIDR, 10.244.<index>.0/24, is inside it):
/// kube-proxy's `--cluster-cidr`, so pod clients of a ClusterIP are not masqueraded.
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";

/// The frontends of the benchmark Service: TCP and UDP, both to `server`.
pub fn frontends(server: Ipv4Addr) -> Vec<Frontend> {
    Catalog::new(TARGET_VIP, &[server], 0, 1, TargetPosition::First).frontends()
}

/// Loads kube-proxy's rules for the benchmark Service, endpoint `server`, into the node namespace
/// `node` of lab `lab` (`iptables-restore` replaces its filter and nat tables); returns the ClusterIP.
pub fn load(lab: &str, node: &Path, server: Ipv4Addr) -> Result<Ipv4Addr, CrossError> {
    let config = KubeProxyConfig {
        cluster_cidr: CLUSTER_CIDR.to_owned(),
        ..KubeProxyConfig::default()
    };
    let rules = kube_iptables::iptables_restore(&frontends(server), &config);
    bridge_lab::run_in_netns(lab, node, &["iptables-restore"], &rules.text).map_err(error::lab(
        format!("loading kube-proxy's rules into {}", node.display()),
    ))?;
    Ok(TARGET_VIP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netbench::catalog::{Protocol, SERVER_PORT, TARGET_NODE_PORT, TARGET_PORT};

    #[test]
    fn the_service_has_a_tcp_and_a_udp_port_to_the_remote_server() {
        let server = Ipv4Addr::new(10, 244, 3, 2);
        let frontends = frontends(server);
        assert_eq!(frontends.len(), 2);
        for (frontend, protocol) in frontends.iter().zip([Protocol::Tcp, Protocol::Udp]) {
            assert_eq!(frontend.protocol, protocol);
            assert_eq!(frontend.cluster_ip, TARGET_VIP);
            assert_eq!(frontend.port, TARGET_PORT);
            assert_eq!(frontend.node_port, Some(TARGET_NODE_PORT));
            assert_eq!(frontend.backends.len(), 1);
            assert_eq!(frontend.backends[0].ip, server);
            assert_eq!(frontend.backends[0].port, SERVER_PORT);
        }
        let rules = kube_iptables::iptables_restore(
            &frontends,
            &KubeProxyConfig {
                cluster_cidr: CLUSTER_CIDR.to_owned(),
                ..KubeProxyConfig::default()
            },
        );
        assert!(rules.text.contains("10.244.3.2:5201"), "{}", rules.text);
        assert!(rules.text.contains("! -s 10.244.0.0/16"), "{}", rules.text);
    }
}
