//! What the agent learns about its node when it runs in a cluster rather than from flags: the pod
//! CIDR the controller manager gave its Node (`spec.podCIDR`), and the uplink, the interface that
//! holds the node's address. A DaemonSet can hand the agent its node's name and address through the
//! downward API, but not these two.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client};

/// Why the node's settings could not be found.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("reading Node {node}: {source}")]
    Api {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("Node {node} has spec.podCIDR {value:?}, which is no IPv4 network: {reason}")]
    BadPodCidr {
        node: String,
        value: String,
        reason: String,
    },
    #[error("listing the node's interfaces: {0}")]
    Interfaces(#[source] nix::Error),
    #[error("no interface of this node holds {0} (--node-ip); name the uplink with --uplink")]
    NoUplink(Ipv4Addr),
}

/// The IPv4 pod CIDR assigned to `node` (the first IPv4 one of `spec.podCIDRs`, else
/// `spec.podCIDR`, read as the overlay reads every Node's); `Ok(None)` while none is assigned, an error
/// when only ranges that are no IPv4 network are (strait's pods are IPv4).
pub fn pod_cidr_of(node: &Node) -> Result<Option<Ipv4Net>, DiscoveryError> {
    if let Some(net) = crate::model::nodes::pod_cidrs(node).into_iter().next() {
        return Ok(Some(net));
    }
    match crate::model::nodes::assigned_pod_ranges(node)
        .into_iter()
        .next()
    {
        Some(value) => Err(DiscoveryError::BadPodCidr {
            node: node.metadata.name.clone().unwrap_or_default(),
            reason: "strait's pods need an IPv4 range".into(),
            value,
        }),
        None => Ok(None),
    }
}

/// Waits until the controller manager has given Node `node` a pod CIDR (kubeadm's
/// `--pod-network-cidr`, k3s' `--cluster-cidr`), asking every `every`; logs while it waits.
pub async fn wait_for_pod_cidr(
    client: Client,
    node: &str,
    every: Duration,
) -> Result<Ipv4Net, DiscoveryError> {
    let nodes: Api<Node> = Api::all(client);
    let mut asked = 0_u32;
    loop {
        let found = nodes.get(node).await.map_err(|source| DiscoveryError::Api {
            node: node.to_owned(),
            source,
        });
        match found {
            Ok(object) => {
                if let Some(net) = pod_cidr_of(&object)? {
                    tracing::info!(node, pod_cidr = %net, "pod CIDR read from the Node");
                    return Ok(net);
                }
                tracing::warn!(
                    node,
                    "the Node has no spec.podCIDR yet (is the controller manager run with \
                     --allocate-node-cidrs and --cluster-cidr?); waiting"
                );
            }
            // The API server may still be starting on a control-plane node; not found is also
            // worth waiting out (the kubelet registers the Node).
            Err(error) if asked < 3 || is_transient(&error) => {
                tracing::warn!(node, %error, "reading the Node's pod CIDR failed; retrying");
            }
            Err(error) => return Err(error),
        }
        asked += 1;
        tokio::time::sleep(every).await;
    }
}

/// Errors worth retrying: the server not reached, the Node not registered yet, the server busy.
fn is_transient(error: &DiscoveryError) -> bool {
    match error {
        DiscoveryError::Api { source, .. } => match source {
            kube::Error::Api(status) => matches!(status.code, 404 | 429 | 500..=599),
            _ => true,
        },
        _ => false,
    }
}

/// The interface holding `address` in the calling thread's network namespace.
pub fn interface_with(address: Ipv4Addr) -> Result<String, DiscoveryError> {
    let addresses = nix::ifaddrs::getifaddrs().map_err(DiscoveryError::Interfaces)?;
    for entry in addresses {
        let held = entry
            .address
            .as_ref()
            .and_then(|a| a.as_sockaddr_in())
            .map(|sin| IpAddr::V4(sin.ip()));
        if held == Some(IpAddr::V4(address)) {
            return Ok(entry.interface_name);
        }
    }
    Err(DiscoveryError::NoUplink(address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(pod_cidr: Option<&str>, pod_cidrs: &[&str]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: pod_cidr.map(str::to_owned),
                pod_cidrs: (!pod_cidrs.is_empty())
                    .then(|| pod_cidrs.iter().map(|s| (*s).to_owned()).collect()),
                ..NodeSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn the_first_ipv4_range_of_a_dual_stack_node_is_taken() {
        let found = pod_cidr_of(&node(
            Some("fd00:10::/64"),
            &["fd00:10::/64", "10.244.3.0/24"],
        ));
        assert_eq!(found.unwrap(), Some("10.244.3.0/24".parse().unwrap()));
        let single = pod_cidr_of(&node(Some("10.42.0.0/24"), &[]));
        assert_eq!(single.unwrap(), Some("10.42.0.0/24".parse().unwrap()));
    }

    #[test]
    fn a_node_without_a_range_waits_and_an_ipv6_only_node_is_refused() {
        assert_eq!(pod_cidr_of(&node(None, &[])).unwrap(), None);
        let error = pod_cidr_of(&node(Some("fd00:10::/64"), &[])).unwrap_err();
        assert!(error.to_string().contains("no IPv4 network"), "{error}");
    }

    #[test]
    fn loopback_is_found_by_its_address_and_an_unheld_address_is_refused() {
        assert_eq!(interface_with(Ipv4Addr::LOCALHOST).unwrap(), "lo");
        let error = interface_with(Ipv4Addr::new(192, 0, 2, 77)).unwrap_err();
        assert!(error.to_string().contains("--uplink"), "{error}");
    }
}
