//! The node's end of the overlay, set up at start: the VXLAN device (collect-metadata mode, Flannel's
//! VNI, port and MTU rule, this node's VTEP MAC, its pod CIDR's `.0` as its overlay address, the
//! cluster's pod range routed through it), the overlay programs on it, and OVERLAY_V1. Which prefixes
//! lead to which node (REMOTE_V1) follows the Node objects in the sync loop ([`crate::services`]).

use std::net::Ipv4Addr;

use crate::model::nodes::Routing;
use anyhow::Context as _;
use ipnet::Ipv4Net;
use strait_dataplane::{
    Dataplane,
    netlink::{
        Netlink,
        vxlan::{VXLAN_OVERHEAD, VxlanSpec, vtep_mac},
    },
    overlay::RemoteMode,
};

/// How pods reach pods on other nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlayMode {
    /// Not at all: a one-node network (or another CNI routes between nodes).
    Off,
    /// Through VXLAN tunnels, Flannel's wire format.
    Vxlan,
    /// Straight to the other node's address, unencapsulated (every node on one L2 segment).
    Direct,
    /// Directly to nodes on this node's underlay subnet, through VXLAN to the others (Flannel's
    /// `DirectRouting`).
    Auto,
}

/// The overlay's settings (see `straitd --help`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlaySettings {
    pub mode: OverlayMode,
    /// VXLAN network identifier (Flannel's default: 1).
    pub vni: u32,
    /// UDP port of the tunnels (Flannel's and the kernel's default: 8472).
    pub port: u16,
}

impl Default for OverlaySettings {
    fn default() -> Self {
        Self {
            mode: OverlayMode::Vxlan,
            vni: 1,
            port: 8472,
        }
    }
}

/// The VXLAN device's name: `strait.<VNI>`, as Flannel's is `flannel.<VNI>`.
pub fn device_name(vni: u32) -> String {
    format!("strait.{vni}")
}

/// What the overlay needs from the rest of the agent's configuration.
pub struct OverlayNode<'a> {
    pub uplink: &'a str,
    pub node_ip: Ipv4Addr,
    pub pod_cidr: Ipv4Net,
    pub cluster_cidr: Ipv4Net,
}

/// The overlay once set up: how other nodes are reached, and the pods' MTU (`None`: the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overlay {
    pub routing: Routing,
    pub pod_mtu: Option<u32>,
}

/// Sets up this node's end of the overlay; `None` when it is off. Pods get the uplink's MTU minus
/// VXLAN's 50 bytes wherever a tunnel may carry them (`vxlan`, `auto`).
pub async fn setup(
    settings: &OverlaySettings,
    node: &OverlayNode<'_>,
    dataplane: &mut Dataplane,
    netlink: &Netlink,
) -> anyhow::Result<Option<Overlay>> {
    let routing = match settings.mode {
        OverlayMode::Off => {
            tracing::info!("overlay off: pods reach pods on this node only");
            return Ok(None);
        }
        OverlayMode::Vxlan => Routing::all(RemoteMode::Vxlan),
        OverlayMode::Direct => Routing::all(RemoteMode::Direct),
        OverlayMode::Auto => Routing {
            mode: RemoteMode::Vxlan,
            direct_subnet: Some(underlay_subnet(node, netlink).await?),
        },
    };
    let uplink_mtu = netlink
        .link_mtu(node.uplink)
        .await
        .with_context(|| format!("reading the MTU of the uplink {}", node.uplink))?;
    let mtu = uplink_mtu.saturating_sub(VXLAN_OVERHEAD);
    let spec = VxlanSpec {
        name: device_name(settings.vni),
        vni: settings.vni,
        port: settings.port,
        mac: vtep_mac(node.node_ip),
        mtu,
        address: node.pod_cidr.network(),
        cluster_cidr: (node.cluster_cidr.network(), node.cluster_cidr.prefix_len()),
    };
    let ifindex = netlink
        .ensure_vxlan(&spec)
        .await
        .with_context(|| format!("setting up the VXLAN device {}", spec.name))?;
    dataplane
        .attach_overlay(&spec.name)
        .with_context(|| format!("attaching the overlay programs to {}", spec.name))?;
    dataplane
        .set_overlay(ifindex, settings.vni, spec.mac)
        .context("writing the overlay map")?;
    tracing::info!(
        device = %spec.name,
        ifindex,
        vni = settings.vni,
        port = settings.port,
        vtep_mac = %strait_k8s::flannel::format_mac(spec.mac),
        mtu,
        mode = ?settings.mode,
        direct_subnet = ?routing.direct_subnet,
        "overlay set up"
    );
    Ok(Some(Overlay {
        routing,
        pod_mtu: (settings.mode != OverlayMode::Direct).then_some(mtu),
    }))
}

/// The subnet of the node's address on its uplink: the nodes in it are on-link.
async fn underlay_subnet(node: &OverlayNode<'_>, netlink: &Netlink) -> anyhow::Result<Ipv4Net> {
    let index = netlink.require_link(node.uplink).await?;
    let prefix = netlink
        .ipv4_prefix(index, node.node_ip)
        .await?
        .with_context(|| {
            format!(
                "--overlay auto: the uplink {} does not hold the node address {}",
                node.uplink, node.node_ip
            )
        })?;
    Ok(Ipv4Net::new(node.node_ip, prefix)?.trunc())
}
