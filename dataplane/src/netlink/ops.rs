//! The individual netlink operations (links, addresses, routes, neighbours) on a [`Netlink`] connection.

use std::{net::Ipv4Addr, os::fd::RawFd};

use futures::TryStreamExt;
use rtnetlink::packet_route::{
    link::{LinkAttribute, LinkMessage},
    neighbour::NeighbourState,
    route::RouteScope,
};
use rtnetlink::{LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::{Netlink, is_errno, nl_error};
use crate::DataplaneError;

impl Netlink {
    pub(super) async fn link_by_name(
        &self,
        name: &str,
    ) -> Result<Option<LinkMessage>, DataplaneError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        match links.try_next().await {
            Ok(link) => Ok(link),
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
            Err(e) => Err(nl_error(format!("looking up link {name}"))(e)),
        }
    }

    /// Index of the link `name`, if it exists.
    pub async fn link_index(&self, name: &str) -> Result<Option<u32>, DataplaneError> {
        Ok(self.link_by_name(name).await?.map(|l| l.header.index))
    }

    /// Index of the link `name`, or an error naming it.
    pub async fn require_link(&self, name: &str) -> Result<u32, DataplaneError> {
        self.link_index(name)
            .await?
            .ok_or_else(|| DataplaneError::InterfaceNotFound {
                name: name.to_owned(),
            })
    }

    /// The attribute of link `name` that `pick` finds (`what` names it in the error).
    pub(super) async fn link_attribute<T>(
        &self,
        name: &str,
        what: &str,
        pick: impl Fn(&LinkAttribute) -> Option<T>,
    ) -> Result<T, DataplaneError> {
        let link =
            self.link_by_name(name)
                .await?
                .ok_or_else(|| DataplaneError::InterfaceNotFound {
                    name: name.to_owned(),
                })?;
        link.attributes
            .iter()
            .find_map(pick)
            .ok_or_else(|| DataplaneError::InterfaceNotFound {
                name: format!("{name} (no {what})"),
            })
    }

    /// MAC address of the link `name`.
    pub async fn link_mac(&self, name: &str) -> Result<[u8; 6], DataplaneError> {
        self.link_attribute(name, "MAC address", |a| match a {
            LinkAttribute::Address(mac) if mac.len() == 6 => mac.as_slice().try_into().ok(),
            _ => None,
        })
        .await
    }

    /// The kind of the link `name` as `ip -d link` shows it (`veth`, `bridge`, `vxlan`, ...); `None` for
    /// a device a driver made for hardware (a NIC has no link kind).
    pub async fn link_kind(&self, name: &str) -> Result<Option<String>, DataplaneError> {
        use rtnetlink::packet_route::link::LinkInfo;
        let link =
            self.link_by_name(name)
                .await?
                .ok_or_else(|| DataplaneError::InterfaceNotFound {
                    name: name.to_owned(),
                })?;
        Ok(link.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|info| match info {
                LinkInfo::Kind(kind) => Some(kind.to_string()),
                _ => None,
            }),
            _ => None,
        }))
    }

    /// Creates a veth pair.
    pub async fn create_veth(&self, name: &str, peer: &str) -> Result<(), DataplaneError> {
        self.handle
            .link()
            .add(LinkVeth::new(name, peer).build())
            .execute()
            .await
            .map_err(nl_error(format!("creating veth {name} <-> {peer}")))
    }

    /// Creates a bridge.
    pub async fn create_bridge(&self, name: &str) -> Result<(), DataplaneError> {
        self.handle
            .link()
            .add(LinkBridge::new(name).build())
            .execute()
            .await
            .map_err(nl_error(format!("creating bridge {name}")))
    }

    /// Moves link `index` into the namespace open as `ns_fd`.
    pub async fn move_to_netns(&self, index: u32, ns_fd: RawFd) -> Result<(), DataplaneError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).setns_by_fd(ns_fd).build())
            .execute()
            .await
            .map_err(nl_error(format!(
                "moving link {index} to another namespace"
            )))
    }

    /// Renames link `index` and sets it up.
    pub async fn rename_up(&self, index: u32, name: &str) -> Result<(), DataplaneError> {
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .name(name.to_owned())
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(nl_error(format!("renaming link {index} to {name}")))
    }

    /// Sets the MAC address of link `index`.
    pub async fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), DataplaneError> {
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .address(mac.to_vec())
                    .build(),
            )
            .execute()
            .await
            .map_err(nl_error(format!("setting the MAC of link {index}")))
    }

    /// Sets link `index` up.
    pub async fn set_up(&self, index: u32) -> Result<(), DataplaneError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(nl_error(format!("setting link {index} up")))
    }

    /// Enslaves link `index` to bridge `bridge`.
    pub async fn set_master(&self, index: u32, bridge: u32) -> Result<(), DataplaneError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).controller(bridge).build())
            .execute()
            .await
            .map_err(nl_error(format!(
                "attaching link {index} to bridge {bridge}"
            )))
    }

    /// Deletes link `index`; returns false if it was already gone.
    pub async fn delete_link(&self, index: u32) -> Result<bool, DataplaneError> {
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(true),
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(false),
            Err(e) => Err(nl_error(format!("deleting link {index}"))(e)),
        }
    }

    /// Adds `addr/prefix` to link `index` (an existing identical address is fine).
    pub async fn add_address(
        &self,
        index: u32,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), DataplaneError> {
        match self
            .handle
            .address()
            .add(index, addr.into(), prefix)
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_errno(&e, libc::EEXIST) => Ok(()),
            Err(e) => Err(nl_error(format!("adding {addr}/{prefix} to link {index}"))(
                e,
            )),
        }
    }

    /// Adds a route to `dst/prefix` through link `index`, via `gateway` or directly (scope link).
    pub async fn add_route(
        &self,
        dst: Ipv4Addr,
        prefix: u8,
        index: u32,
        gateway: Option<Ipv4Addr>,
    ) -> Result<(), DataplaneError> {
        let mut builder = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dst, prefix)
            .output_interface(index);
        builder = match gateway {
            Some(gw) => builder.gateway(gw),
            None => builder.scope(RouteScope::Link),
        };
        match self.handle.route().add(builder.build()).execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_errno(&e, libc::EEXIST) => Ok(()),
            Err(e) => Err(nl_error(format!(
                "adding route {dst}/{prefix} on link {index}"
            ))(e)),
        }
    }

    /// Adds (or replaces) a permanent neighbour entry `addr -> mac` on link `index`.
    pub async fn add_permanent_neighbour(
        &self,
        index: u32,
        addr: Ipv4Addr,
        mac: [u8; 6],
    ) -> Result<(), DataplaneError> {
        self.handle
            .neighbours()
            .add(index, addr.into())
            .link_layer_address(&mac)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(nl_error(format!("adding neighbour {addr} on link {index}")))
    }
}
