//! The node's end of the overlay, set up at start: the VXLAN device (collect-metadata mode, Flannel's
//! VNI, port and MTU rule, this node's VTEP MAC, its pod CIDR's `.0` as its overlay address, the
//! cluster's pod range routed through it), the overlay programs on it, and OVERLAY_V1. Which prefixes
//! lead to which node (REMOTE_V1) follows the Node objects in the sync loop ([`crate::services`]).

use std::net::Ipv4Addr;

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
}

impl OverlayMode {
    /// How remote nodes are reached in this mode; `None` when the overlay is off.
    pub fn remote_mode(self) -> Option<RemoteMode> {
        match self {
            OverlayMode::Off => None,
            OverlayMode::Vxlan => Some(RemoteMode::Vxlan),
            OverlayMode::Direct => Some(RemoteMode::Direct),
        }
    }
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

/// Sets up this node's end of the overlay; returns the MTU pods get (the uplink's minus VXLAN's 50
/// bytes), or `None` when pods keep the default (the overlay is off or adds no header).
pub async fn setup(
    settings: &OverlaySettings,
    node: &OverlayNode<'_>,
    dataplane: &mut Dataplane,
    netlink: &Netlink,
) -> anyhow::Result<Option<u32>> {
    if settings.mode == OverlayMode::Off {
        tracing::info!("overlay off: pods reach pods on this node only");
        return Ok(None);
    }
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
        "overlay set up"
    );
    Ok((settings.mode == OverlayMode::Vxlan).then_some(mtu))
}
