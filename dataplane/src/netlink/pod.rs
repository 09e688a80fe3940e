//! Pod plumbing: one veth pair per pod, the host side in the node namespace and the pod side (renamed to
//! the runtime's interface name) in the pod namespace with a /32 address, a link-local gateway that has a
//! permanent neighbour entry pointing at the host side, and a default route through it. No bridge: the
//! node's eBPF programs deliver between pods. IPv6 is turned off on the host side.

use std::{fs::File, net::Ipv4Addr, os::fd::AsRawFd, path::PathBuf};

use super::Netlink;
use crate::DataplaneError;

/// What to build for one pod.
#[derive(Clone, Debug)]
pub struct PodLinkSpec {
    /// Name of the host-side veth (at most 15 bytes).
    pub host_ifname: String,
    /// Name of the interface inside the pod (the runtime's CNI_IFNAME).
    pub pod_ifname: String,
    /// Path of the pod's network namespace.
    pub netns: PathBuf,
    /// The pod's address (a /32).
    pub addr: Ipv4Addr,
    /// The link-local gateway the pod routes through.
    pub gateway: Ipv4Addr,
    /// The pod interface's MTU (under VXLAN the underlay's minus 50); `None` keeps the kernel's 1500.
    pub mtu: Option<u32>,
}

/// What was built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodLink {
    pub host_ifindex: u32,
    pub host_mac: [u8; 6],
    pub pod_mac: [u8; 6],
}

/// Creates the pod's veth pair and configures both ends. On failure everything made is removed.
pub async fn create(node: &Netlink, spec: &PodLinkSpec) -> Result<PodLink, DataplaneError> {
    let peer_tmp = format!("{}p", &spec.host_ifname[..spec.host_ifname.len().min(14)]);
    node.create_veth(&spec.host_ifname, &peer_tmp).await?;
    let result = configure(node, spec, &peer_tmp).await;
    if result.is_err()
        && let Ok(Some(index)) = node.link_index(&spec.host_ifname).await
    {
        let _ = node.delete_link(index).await;
    }
    result
}

async fn configure(
    node: &Netlink,
    spec: &PodLinkSpec,
    peer_tmp: &str,
) -> Result<PodLink, DataplaneError> {
    let host_ifindex = node.require_link(&spec.host_ifname).await?;
    let host_mac = node.link_mac(&spec.host_ifname).await?;
    let peer_index = node.require_link(peer_tmp).await?;
    let ns_file = File::open(&spec.netns).map_err(|source| DataplaneError::Netns {
        path: spec.netns.clone(),
        source,
    })?;
    node.move_to_netns(peer_index, ns_file.as_raw_fd()).await?;

    let pod = Netlink::connect_in(&spec.netns)?;
    let pod_index = pod.require_link(peer_tmp).await?;
    if let Some(mtu) = spec.mtu {
        pod.set_mtu(pod_index, mtu).await?;
    }
    pod.rename_up(pod_index, &spec.pod_ifname).await?;
    if let Some(lo) = pod.link_index("lo").await? {
        pod.set_up(lo).await?;
    }
    pod.add_address(pod_index, spec.addr, 32).await?;
    pod.add_permanent_neighbour(pod_index, spec.gateway, host_mac)
        .await?;
    pod.add_route(spec.gateway, 32, pod_index, None).await?;
    pod.add_route(Ipv4Addr::UNSPECIFIED, 0, pod_index, Some(spec.gateway))
        .await?;
    let pod_mac = pod.link_mac(&spec.pod_ifname).await?;

    // Before the link comes up, so it never gets an IPv6 address or hears a router advertisement: a
    // pod must not reach the node over IPv6 (the data path drops it too).
    crate::sysctl::disable_ipv6(&spec.host_ifname)?;
    node.set_up(host_ifindex).await?;
    node.add_permanent_neighbour(host_ifindex, spec.addr, pod_mac)
        .await?;
    node.add_route(spec.addr, 32, host_ifindex, None).await?;
    Ok(PodLink {
        host_ifindex,
        host_mac,
        pod_mac,
    })
}

/// Deletes the pod's veth pair by its host-side name; returns false if it was already gone.
pub async fn delete(node: &Netlink, host_ifname: &str) -> Result<bool, DataplaneError> {
    match node.link_index(host_ifname).await? {
        Some(index) => node.delete_link(index).await,
        None => Ok(false),
    }
}

/// Reads back the pod link if both ends exist as expected (for CNI CHECK).
pub async fn inspect(node: &Netlink, spec: &PodLinkSpec) -> Result<PodLink, DataplaneError> {
    let host_ifindex = node.require_link(&spec.host_ifname).await?;
    let host_mac = node.link_mac(&spec.host_ifname).await?;
    let pod = Netlink::connect_in(&spec.netns)?;
    let pod_mac = pod.link_mac(&spec.pod_ifname).await?;
    Ok(PodLink {
        host_ifindex,
        host_mac,
        pod_mac,
    })
}
