//! The lab's wiring: an underlay namespace holding one bridge (the lab's "physical" LAN), one veth per
//! node and one for the external client. Nothing is connected to the machine's own interfaces and no
//! namespace has a default route, so lab traffic cannot leave the lab.

use std::{fs::File, net::Ipv4Addr, os::fd::AsRawFd, path::Path};

use strait_dataplane::{netlink::Netlink, netns, sysctl};

use crate::LabError;

/// The underlay subnet's prefix length.
pub const UNDERLAY_PREFIX: u8 = 24;
/// The external client's address on the underlay.
pub const EXTERNAL_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 2);

/// Underlay address of node `index` (1-based).
pub fn node_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(172, 30, 0, 10 + u8::try_from(index).unwrap_or(u8::MAX - 10))
}

/// Pod CIDR of node `index` (1-based): 10.244.<index>.0/24.
pub fn pod_cidr(index: usize) -> String {
    format!("10.244.{index}.0/24")
}

/// Creates the underlay namespace with its bridge.
pub async fn create_underlay(underlay: &Path) -> Result<Netlink, LabError> {
    let nl = Netlink::connect_in(underlay)?;
    if let Some(lo) = nl.link_index("lo").await? {
        nl.set_up(lo).await?;
    }
    nl.create_bridge("br0").await?;
    Ok(nl)
}

/// Plugs the namespace `host` into the underlay bridge as `eth0` with `addr`.
pub async fn plug(
    underlay_nl: &Netlink,
    port: &str,
    host: &Path,
    addr: Ipv4Addr,
) -> Result<(), LabError> {
    let peer = format!("{port}p");
    underlay_nl.create_veth(port, &peer).await?;
    let bridge = underlay_nl.require_link("br0").await?;
    let port_index = underlay_nl.require_link(port).await?;
    underlay_nl.set_master(port_index, bridge).await?;
    underlay_nl.set_up(port_index).await?;
    let peer_index = underlay_nl.require_link(&peer).await?;
    let ns_file =
        File::open(host).map_err(|e| LabError::io(format!("opening {}", host.display()), e))?;
    underlay_nl
        .move_to_netns(peer_index, ns_file.as_raw_fd())
        .await?;

    let nl = Netlink::connect_in(host)?;
    let index = nl.require_link(&peer).await?;
    // The MAC follows the address, as a host keeps its NIC: a node removed and added again with the same
    // index is found at the MAC its neighbours still remember.
    nl.set_mac(index, host_mac(addr)).await?;
    nl.rename_up(index, "eth0").await?;
    nl.add_address(index, addr, UNDERLAY_PREFIX).await?;
    if let Some(lo) = nl.link_index("lo").await? {
        nl.set_up(lo).await?;
    }
    Ok(())
}

/// The underlay MAC of the host with address `addr`: locally administered, unicast, the address in its
/// last four bytes.
pub fn host_mac(addr: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = addr.octets();
    [0x02, 0x4c, a, b, c, d]
}

/// Node namespace settings: IP forwarding off, so only strait's eBPF programs can move pod traffic.
pub fn configure_node(node: &Path) -> Result<(), LabError> {
    netns::run_in(node, || sysctl::write("net.ipv4.ip_forward", "0"))??;
    Ok(())
}
