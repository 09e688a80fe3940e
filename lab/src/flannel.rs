//! The lab's Flannel reference node: a node set up exactly as flanneld (VXLAN backend, kube subnet
//! manager) and the `bridge` CNI plugin with host-local IPAM set one up, and no strait at all — a
//! kernel `flannel.1` (VNI 1, port 8472, learning off, MTU the underlay's minus 50, the subnet's `.0`
//! as a /32), and for every other node one on-link route, one permanent neighbour and one FDB entry;
//! pods on a `cni0` bridge (the subnet's `.1`) with addresses from the node's pod CIDR, IP forwarding on.
//! Its Node object carries the annotations flanneld publishes, with `flannel.1`'s own (random) MAC, so
//! strait nodes and this node find each other as a mixed cluster's nodes would.

use std::{net::Ipv4Addr, path::Path};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use strait_dataplane::{
    netlink::{
        Netlink,
        vxlan::{KernelVxlanSpec, VXLAN_OVERHEAD, vtep_mac},
    },
    netns, sysctl,
};

use crate::{LabError, state::NodeRecord};

/// flanneld's device name for VNI 1.
pub const DEVICE: &str = "flannel.1";
/// The bridge the `bridge` CNI plugin makes.
pub const BRIDGE: &str = "cni0";
/// Flannel's VNI and port defaults.
const VNI: u32 = 1;
const PORT: u16 = 8472;
/// The underlay's MTU in the lab.
const UNDERLAY_MTU: u32 = 1500;

/// What a Flannel node adds to its [`NodeRecord`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlannelNode {
    /// The MAC of its `flannel.1`, as published in its `backend-data` annotation.
    pub vtep_mac: [u8; 6],
}

/// The VTEP MAC of `node`: `flannel.1`'s for a Flannel node, the derived one for a strait node.
pub fn node_vtep_mac(node: &NodeRecord) -> [u8; 6] {
    node.flannel
        .as_ref()
        .map_or_else(|| vtep_mac(node.ip), |f| f.vtep_mac)
}

fn cidr(node: &NodeRecord) -> Result<Ipv4Net, LabError> {
    node.pod_cidr.parse().map_err(|_| {
        LabError::Environment(format!("node {} has pod CIDR {}", node.name, node.pod_cidr))
    })
}

/// Sets the node namespace at `path` up as flanneld and the bridge plugin would; returns `flannel.1`'s MAC.
pub async fn set_up_node(
    path: &Path,
    ip: Ipv4Addr,
    pod_cidr: Ipv4Net,
) -> Result<[u8; 6], LabError> {
    let nl = Netlink::connect_in(path)?;
    let underlay_index = nl.require_link("eth0").await?;
    let mtu = UNDERLAY_MTU - VXLAN_OVERHEAD;
    let device = nl
        .create_kernel_vxlan(&KernelVxlanSpec {
            name: DEVICE.to_owned(),
            vni: VNI,
            port: PORT,
            underlay_index,
            local: ip,
            mtu,
        })
        .await?;
    nl.add_address(device, pod_cidr.network(), 32).await?;
    nl.create_bridge(BRIDGE).await?;
    let bridge = nl.require_link(BRIDGE).await?;
    nl.set_mtu(bridge, mtu).await?;
    nl.add_address(bridge, gateway(pod_cidr), pod_cidr.prefix_len())
        .await?;
    nl.set_up(bridge).await?;
    netns::run_in(path, || sysctl::write("net.ipv4.ip_forward", "1"))??;
    Ok(nl.link_mac(DEVICE).await?)
}

/// flanneld's three entries on `flannel.1` for each other node: the neighbour of its subnet's `.0`
/// (its VTEP MAC), the FDB entry sending that MAC to its address, and the on-link route of its subnet.
pub async fn route_to_others(
    path: &Path,
    this: &str,
    nodes: &[NodeRecord],
) -> Result<(), LabError> {
    let nl = Netlink::connect_in(path)?;
    let device = nl.require_link(DEVICE).await?;
    for node in nodes.iter().filter(|n| n.name != this) {
        let subnet = cidr(node)?;
        let mac = node_vtep_mac(node);
        nl.add_permanent_neighbour(device, subnet.network(), mac)
            .await?;
        nl.add_fdb(device, mac, node.ip).await?;
        nl.add_onlink_route(
            subnet.network(),
            subnet.prefix_len(),
            subnet.network(),
            device,
        )
        .await?;
    }
    Ok(())
}

/// What flanneld does when a Node is deleted: removes `gone`'s three entries from `flannel.1` in the
/// Flannel node namespace at `path`.
pub async fn forget(path: &Path, gone: &NodeRecord) -> Result<(), LabError> {
    let nl = Netlink::connect_in(path)?;
    let device = nl.require_link(DEVICE).await?;
    let subnet = cidr(gone)?;
    nl.remove_remote_vtep(
        device,
        (subnet.network(), subnet.prefix_len(), subnet.network()),
        node_vtep_mac(gone),
        gone.ip,
    )
    .await?;
    Ok(())
}

/// The bridge's address: the subnet's `.1`, the pods' gateway.
fn gateway(pod_cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(pod_cidr.network()) + 1)
}

/// The next free pod address of a Flannel node (host-local style: from `.2` up), given the taken ones.
pub fn next_address(node: &NodeRecord, taken: &[Ipv4Addr]) -> Result<Ipv4Addr, LabError> {
    let subnet = cidr(node)?;
    subnet
        .hosts()
        .skip(1)
        .find(|ip| !taken.contains(ip))
        .ok_or_else(|| LabError::Environment(format!("node {} has no free pod address", node.name)))
}

/// The host-side veth name of a pod on a Flannel node (the bridge plugin names them `veth<hash>`).
pub fn host_veth(container_id: &str) -> String {
    format!("veth{}", &container_id[..8.min(container_id.len())])
}

/// Plumbs a pod as the bridge plugin does: a veth with its host side on `cni0`, the pod side `eth0`
/// with `ip` in the node's subnet and a default route via the bridge.
pub async fn plumb_pod(
    node: &NodeRecord,
    pod_netns: &Path,
    container_id: &str,
    ip: Ipv4Addr,
) -> Result<(), LabError> {
    let subnet = cidr(node)?;
    let nl = Netlink::connect_in(&netns::path(&node.netns))?;
    let host = host_veth(container_id);
    let peer = format!("{host}p");
    nl.create_veth(&host, &peer).await?;
    let host_index = nl.require_link(&host).await?;
    let bridge = nl.require_link(BRIDGE).await?;
    nl.set_master(host_index, bridge).await?;
    nl.set_mtu(host_index, UNDERLAY_MTU - VXLAN_OVERHEAD)
        .await?;
    nl.set_up(host_index).await?;
    let peer_index = nl.require_link(&peer).await?;
    let ns_file = std::fs::File::open(pod_netns)
        .map_err(|e| LabError::io(format!("opening {}", pod_netns.display()), e))?;
    nl.move_to_netns(peer_index, std::os::fd::AsRawFd::as_raw_fd(&ns_file))
        .await?;
    let pod = Netlink::connect_in(pod_netns)?;
    let index = pod.require_link(&peer).await?;
    pod.set_mtu(index, UNDERLAY_MTU - VXLAN_OVERHEAD).await?;
    pod.rename_up(index, "eth0").await?;
    if let Some(lo) = pod.link_index("lo").await? {
        pod.set_up(lo).await?;
    }
    pod.add_address(index, ip, subnet.prefix_len()).await?;
    pod.add_route(Ipv4Addr::UNSPECIFIED, 0, index, Some(gateway(subnet)))
        .await?;
    Ok(())
}

/// Removes a pod's veth from a Flannel node (its peer goes with it).
pub async fn unplumb_pod(node: &NodeRecord, container_id: &str) -> Result<(), LabError> {
    let nl = Netlink::connect_in(&netns::path(&node.netns))?;
    if let Some(index) = nl.link_index(&host_veth(container_id)).await? {
        nl.delete_link(index).await?;
    }
    Ok(())
}
