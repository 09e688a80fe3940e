//! The lab's stand-in for a cloud load balancer or a BGP/L2 announcement: every LoadBalancer ingress IP
//! and externalIP of a Service gets a /32 route in the external client's namespace via the first node,
//! so the external client reaches those addresses the way it would reach them through a real LB.
//! Routes are only added; one for an address no Service has any more leads to a node that drops it.

use std::net::Ipv4Addr;

use strait_dataplane::{netlink::Netlink, netns};

use crate::{LabError, cluster::Lab};

impl Lab {
    /// Routes every external service address from the external namespace to the first node.
    pub(crate) fn announce_external_addresses(&self) -> Result<(), LabError> {
        let Some(node) = self.state.nodes.first() else {
            return Ok(());
        };
        let addresses = external_addresses(self.state.services.values());
        if addresses.is_empty() {
            return Ok(());
        }
        let external = netns::path(&self.names.external_netns());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LabError::io("starting a runtime", e))?;
        runtime.block_on(async {
            let nl = Netlink::connect_in(&external)?;
            let eth0 = nl.require_link("eth0").await?;
            for addr in &addresses {
                nl.add_route(*addr, 32, eth0, Some(node.ip)).await?;
            }
            Ok::<_, LabError>(())
        })?;
        tracing::debug!(count = addresses.len(), via = %node.ip, "external service addresses routed");
        Ok(())
    }
}

/// The IPv4 externalIPs and LoadBalancer ingress IPs of `services`, sorted and deduplicated.
fn external_addresses<'a>(
    services: impl Iterator<Item = &'a k8s_openapi::api::core::v1::Service>,
) -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = services
        .flat_map(|service| strait_k8s::service::external_addresses(service).all())
        .collect();
    out.sort();
    out.dedup();
    out
}
