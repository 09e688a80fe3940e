//! NetworkPolicy (networking.k8s.io/v1) as the specification defines it, independent of any data path:
//! [`rules`] parses a policy into what decides traffic, [`evaluate`] gives the verdict on one flow
//! between pods or outside addresses, [`explain`] tells that verdict in words; [`upstream`] is the
//! upstream e2e suite's x/y/z model. It is the oracle the data path is tested against and the
//! reasoning `strait policy explain` reports; [`audit`] is what `strait policy audit` finds in a set of
//! policies (pods left open, policies selecting nothing, shadowed rules, unresolved named ports,
//! `ipBlock`s over the cluster's own ranges, namespaces open to everything).
//!
//! The flow is judged as the backend sees it: after any Service translation, destination pod and port.

pub mod audit;
pub mod evaluate;
pub mod explain;
pub mod propose;
pub mod rules;
#[cfg(test)]
mod tests;
pub mod upstream;

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Pod;

pub use evaluate::{Decision, Evaluator, RuleRef, Verdict};
pub use rules::{Policy, PolicyError};

use crate::selector::Labels;

/// A transport protocol a policy port can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// As Kubernetes spells it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// A container port of a pod: what a named policy port resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPort {
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
}

/// What policies see of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyPod {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    /// `None` where the address is not known (a pod in a manifest not yet scheduled): no `ipBlock`
    /// covers it.
    pub ip: Option<Ipv4Addr>,
    pub ports: Vec<ContainerPort>,
}

impl PolicyPod {
    /// A Pod object with its address (`None`: `status.podIP`, if the object has one).
    pub fn from_pod(pod: &Pod, ip: Option<Ipv4Addr>) -> Self {
        let ip = ip.or_else(|| {
            pod.status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok())
        });
        let ports = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let name = p.name.clone()?;
                let port = u16::try_from(p.container_port).ok()?;
                let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
                    "TCP" => Protocol::Tcp,
                    "UDP" => Protocol::Udp,
                    "SCTP" => Protocol::Sctp,
                    _ => return None,
                };
                Some(ContainerPort {
                    name,
                    port,
                    protocol,
                })
            })
            .collect();
        Self {
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| crate::DEFAULT_NAMESPACE.to_owned()),
            name: pod.metadata.name.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            ip,
            ports,
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One end of a flow.
#[derive(Clone, Copy, Debug)]
pub enum Party<'a> {
    Pod(&'a PolicyPod),
    /// An address that is no pod of the cluster.
    External(Ipv4Addr),
}

impl Party<'_> {
    pub fn ip(&self) -> Option<Ipv4Addr> {
        match self {
            Party::Pod(pod) => pod.ip,
            Party::External(ip) => Some(*ip),
        }
    }

    /// `namespace/name` of a pod, the address of anything else.
    pub fn describe(&self) -> String {
        match self {
            Party::Pod(pod) => pod.key(),
            Party::External(ip) => ip.to_string(),
        }
    }
}

/// A connection (or datagram) as the destination receives it.
#[derive(Clone, Copy, Debug)]
pub struct Flow<'a> {
    pub from: Party<'a>,
    pub to: Party<'a>,
    pub port: u16,
    pub protocol: Protocol,
}
