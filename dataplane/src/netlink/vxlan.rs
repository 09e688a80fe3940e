//! The node's VXLAN device: one per node, in collect-metadata ("external") mode, so the eBPF programs
//! choose each packet's tunnel; Flannel's port, VNI, MTU rule (the uplink's minus 50) and `.0/32`
//! address; ARP off (the programs write the inner MACs) and a route for the cluster's pod range through
//! it, so the node's own packets to remote pods enter the overlay from its pod CIDR's `.0`.

use std::net::Ipv4Addr;

use rtnetlink::{LinkUnspec, LinkVxlan, RouteMessageBuilder};

use super::{Netlink, is_errno, nl_error};
use crate::DataplaneError;

/// Bytes VXLAN adds to a packet: outer Ethernet 14, IPv4 20, UDP 8, VXLAN 8.
pub const VXLAN_OVERHEAD: u32 = 50;

/// What the VXLAN device is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanSpec {
    /// The device's name (e.g. `strait.1`, as Flannel's is `flannel.<VNI>`).
    pub name: String,
    /// The VXLAN network identifier (the programs set and check it per packet).
    pub vni: u32,
    /// The UDP port tunnels use (Flannel's and the kernel's default: 8472).
    pub port: u16,
    /// The MAC of the device: the VTEP MAC other nodes put in the inner Ethernet header.
    pub mac: [u8; 6],
    /// The device's MTU (the uplink's minus [`VXLAN_OVERHEAD`]).
    pub mtu: u32,
    /// The node's address on the overlay: its pod CIDR's `.0`, as a /32.
    pub address: Ipv4Addr,
    /// The cluster's pod range, routed through the device (`prefix`, length).
    pub cluster_cidr: (Ipv4Addr, u8),
}

impl Netlink {
    /// Creates the VXLAN device of `spec` (or takes over one of that name a previous agent left), sets
    /// its MAC, MTU, address and route, and brings it up; returns its index.
    pub async fn ensure_vxlan(&self, spec: &VxlanSpec) -> Result<u32, DataplaneError> {
        let index = if let Some(index) = self.link_index(&spec.name).await? {
            index
        } else {
            self.create_vxlan(spec).await?
        };
        let settings = LinkUnspec::new_with_index(index)
            .address(spec.mac.to_vec())
            .mtu(spec.mtu)
            .arp(false)
            .up()
            .build();
        self.handle
            .link()
            .set(settings)
            .execute()
            .await
            .map_err(nl_error(format!("setting up VXLAN device {}", spec.name)))?;
        self.add_address(index, spec.address, 32).await?;
        let (network, prefix) = spec.cluster_cidr;
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(network, prefix)
            .output_interface(index)
            .pref_source(spec.address)
            .scope(rtnetlink::packet_route::route::RouteScope::Link)
            .build();
        match self.handle.route().add(route).replace().execute().await {
            Ok(()) => Ok(index),
            Err(e) if is_errno(&e, libc::EEXIST) => Ok(index),
            Err(e) => Err(nl_error(format!(
                "routing {network}/{prefix} through {}",
                spec.name
            ))(e)),
        }
    }

    /// Creates the collect-metadata VXLAN device of `spec`; returns its index.
    async fn create_vxlan(&self, spec: &VxlanSpec) -> Result<u32, DataplaneError> {
        // A collect-metadata device takes no VNI of its own (the kernel files it under VNI 0 and hands
        // it every VNI on its port); each packet's VNI is in its tunnel key.
        let message = LinkVxlan::new(&spec.name, 0)
            .port(spec.port)
            .collect_metadata(true)
            .learning(false)
            .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(nl_error(format!("creating VXLAN device {}", spec.name)))?;
        self.require_link(&spec.name).await
    }

    /// The prefix length `addr` has on link `index`, if the link has that address.
    pub async fn ipv4_prefix(
        &self,
        index: u32,
        addr: Ipv4Addr,
    ) -> Result<Option<u8>, DataplaneError> {
        use futures::TryStreamExt as _;
        use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
        let mut addresses = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(message) = addresses
            .try_next()
            .await
            .map_err(nl_error(format!("listing the addresses of link {index}")))?
        {
            let message: AddressMessage = message;
            let matches = message.attributes.iter().any(
                |a| matches!(a, AddressAttribute::Address(std::net::IpAddr::V4(v4)) if *v4 == addr),
            );
            if matches {
                return Ok(Some(message.header.prefix_len));
            }
        }
        Ok(None)
    }

    /// Sets the MTU of link `index`.
    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), DataplaneError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).mtu(mtu).build())
            .execute()
            .await
            .map_err(nl_error(format!(
                "setting the MTU of link {index} to {mtu}"
            )))
    }

    /// The MTU of link `name`.
    pub async fn link_mtu(&self, name: &str) -> Result<u32, DataplaneError> {
        use rtnetlink::packet_route::link::LinkAttribute;
        self.link_attribute(name, "MTU", |a| match a {
            LinkAttribute::Mtu(mtu) => Some(*mtu),
            _ => None,
        })
        .await
    }
}

/// The VTEP MAC of the node with underlay address `node_ip`: locally administered, unicast, and the
/// same on every node that computes it (`0e:53:` and the address), so strait nodes know each other's
/// without asking; Flannel nodes read it from the Node annotation strait publishes.
pub fn vtep_mac(node_ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = node_ip.octets();
    [0x0e, 0x53, a, b, c, d]
}

/// What a classic (non-metadata) VXLAN device is made of, as flanneld makes `flannel.<VNI>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelVxlanSpec {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    /// The underlay link and address the tunnels leave from.
    pub underlay_index: u32,
    pub local: Ipv4Addr,
    pub mtu: u32,
}

impl Netlink {
    /// Creates a classic VXLAN device (one VNI, learning off, the kernel's own forwarding database),
    /// up with `spec.mtu`; returns its index. The lab's Flannel reference node uses it.
    pub async fn create_kernel_vxlan(&self, spec: &KernelVxlanSpec) -> Result<u32, DataplaneError> {
        let message = LinkVxlan::new(&spec.name, spec.vni)
            .port(spec.port)
            .dev(spec.underlay_index)
            .local(spec.local)
            .learning(false)
            .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(nl_error(format!("creating VXLAN device {}", spec.name)))?;
        let index = self.require_link(&spec.name).await?;
        self.set_mtu(index, spec.mtu).await?;
        self.set_up(index).await?;
        Ok(index)
    }

    /// Adds (or replaces) a forwarding database entry on VXLAN device `index`: frames for `mac` go
    /// to the tunnel endpoint `dst` (`bridge fdb append <mac> dst <dst> dev <device>`).
    pub async fn add_fdb(
        &self,
        index: u32,
        mac: [u8; 6],
        dst: Ipv4Addr,
    ) -> Result<(), DataplaneError> {
        self.handle
            .neighbours()
            .add_bridge(index, &mac)
            // NTF_SELF: the entry is the VXLAN device's own (as `bridge fdb` sets by default).
            .flags(rtnetlink::packet_route::neighbour::NeighbourFlags::Own)
            .destination(dst.into())
            .replace()
            .execute()
            .await
            .map_err(nl_error(format!(
                "adding FDB entry {mac:02x?} -> {dst} on link {index}"
            )))
    }

    /// Adds a route to `dst/prefix` via `gateway` on link `index`, marked on-link (the gateway needs no
    /// route of its own), as flanneld routes each remote subnet through `flannel.<VNI>`.
    pub async fn add_onlink_route(
        &self,
        dst: Ipv4Addr,
        prefix: u8,
        gateway: Ipv4Addr,
        index: u32,
    ) -> Result<(), DataplaneError> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dst, prefix)
            .gateway(gateway)
            .output_interface(index)
            .onlink()
            .build();
        match self.handle.route().add(route).replace().execute().await {
            Ok(()) => Ok(()),
            Err(e) => Err(nl_error(format!(
                "adding route {dst}/{prefix} via {gateway} onlink"
            ))(e)),
        }
    }

    /// Removes the three entries a kernel VXLAN device `index` holds for a remote node (flanneld's, as
    /// [`Self::add_fdb`], a permanent neighbour and [`Self::add_onlink_route`] wrote them): the route of its
    /// subnet `dst/prefix` via `gateway`, the neighbour of `gateway`, the FDB entry of `mac` to `node_ip`.
    /// Entries already gone are fine.
    pub async fn remove_remote_vtep(
        &self,
        index: u32,
        (dst, prefix, gateway): (Ipv4Addr, u8, Ipv4Addr),
        mac: [u8; 6],
        node_ip: Ipv4Addr,
    ) -> Result<(), DataplaneError> {
        let gone = |e: &rtnetlink::Error| is_errno(e, libc::ESRCH) || is_errno(e, libc::ENOENT);
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dst, prefix)
            .gateway(gateway)
            .output_interface(index)
            .build();
        match self.handle.route().del(route).execute().await {
            Err(e) if !gone(&e) => {
                return Err(nl_error(format!("removing route {dst}/{prefix}"))(e));
            }
            _ => {}
        }
        let mut neighbour = self.handle.neighbours().add(index, gateway.into());
        let message = neighbour.message_mut().clone();
        match self.handle.neighbours().del(message).execute().await {
            Err(e) if !gone(&e) => {
                return Err(nl_error(format!("removing neighbour {gateway}"))(e));
            }
            _ => {}
        }
        let mut fdb = self
            .handle
            .neighbours()
            .add_bridge(index, &mac)
            .flags(rtnetlink::packet_route::neighbour::NeighbourFlags::Own)
            .destination(node_ip.into());
        let message = fdb.message_mut().clone();
        match self.handle.neighbours().del(message).execute().await {
            Err(e) if !gone(&e) => Err(nl_error(format!(
                "removing FDB entry {mac:02x?} -> {node_ip}"
            ))(e)),
            _ => Ok(()),
        }
    }
}
