//! The services a netbench run programs into every dataplane: the target Service (in front of the
//! benchmark's server pod) plus N-1 filler Services, all as real k8s-openapi `Service` and
//! `EndpointSlice` objects, and their flattening into kube-proxy's unit of work, one [`Frontend`] per
//! service port (kube-proxy's `ServicePortName`). strait reads the objects; the kube-proxy rule
//! generators read the frontends, so both dataplanes program exactly the same set.
//!
//! Where the target stands among the fillers is a [`TargetPosition`]. kube-proxy's iptables mode
//! writes one `KUBE-SERVICES` rule per service port in an order it does not control, and a packet
//! walks that chain until its rule matches, so an average Service sits in the middle; netbench
//! measures there by default. The order does not matter to strait (hash maps) nor to kube-proxy's
//! nftables mode (`service-ips` is a verdict map, one hash lookup), but every dataplane gets the same
//! order all the same.

use std::{collections::BTreeMap, fmt, net::Ipv4Addr};

use serde::{Deserialize, Serialize};

use k8s_openapi::{
    api::{
        core::v1::{Service, ServicePort, ServiceSpec},
        discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice},
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};

use crate::svcscale;

/// Namespace of the target Service and the benchmark's pods.
pub const TARGET_NAMESPACE: &str = "netbench";
/// Name of the target Service; its selector is `app: <this>`.
pub const TARGET_NAME: &str = "server";
/// The target Service's port (TCP and UDP).
pub const TARGET_PORT: u16 = 80;
/// The port the benchmark server listens on in its pod (TCP and UDP).
pub const SERVER_PORT: u16 = 5201;
/// The target Service's node port (TCP and UDP).
pub const TARGET_NODE_PORT: u16 = 30080;

/// Where the target Service stands among the filler Services, in the objects and so in the rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetPosition {
    /// Before every filler: iptables' best case (its `KUBE-SERVICES` rules come first).
    First,
    /// After half of the fillers (rounded down): where an average Service sits.
    #[default]
    Middle,
    /// After every filler: iptables' worst case.
    Last,
}

impl TargetPosition {
    pub const ALL: [TargetPosition; 3] = [Self::First, Self::Middle, Self::Last];

    /// The name used on the command line, in reports and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::First => "first",
            Self::Middle => "middle",
            Self::Last => "last",
        }
    }

    /// How many of `fillers` filler Services come before the target.
    pub fn fillers_before(self, fillers: usize) -> usize {
        match self {
            Self::First => 0,
            Self::Middle => fillers / 2,
            Self::Last => fillers,
        }
    }
}

/// A transport protocol of a service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// Kubernetes' spelling (`TCP`, `UDP`), as in `ServicePort.protocol`.
    pub fn kube_name(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
        }
    }

    /// The lower-case spelling iptables and nftables use (`tcp`, `udp`).
    pub fn lower(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kube_name())
    }
}

/// One ready endpoint of a frontend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Backend {
    pub ip: Ipv4Addr,
    pub port: u16,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ip, self.port)
    }
}

/// One service port with its ready endpoints: what kube-proxy programs as one `KUBE-SVC-*` chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontend {
    pub namespace: String,
    pub name: String,
    /// The port's name; empty for a single unnamed port.
    pub port_name: String,
    pub protocol: Protocol,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub node_port: Option<u16>,
    /// Ready endpoints, in EndpointSlice order.
    pub backends: Vec<Backend>,
}

impl Frontend {
    /// kube-proxy's `ServicePortName.String()`: `NS/NAME:PORT` (or `NS/NAME` for an unnamed port).
    pub fn service_port_name(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            format!("{}/{}:{}", self.namespace, self.name, self.port_name)
        }
    }
}

/// The objects of one run: Services and their EndpointSlices.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub services: Vec<Service>,
    pub slices: Vec<EndpointSlice>,
}

/// The target Service: NodePort, TCP and UDP port 80 (node port 30080) to the server's port 5201,
/// selecting `app: server` in namespace `netbench`.
pub fn target_service() -> Service {
    let port = |protocol: Protocol| ServicePort {
        name: Some(protocol.lower().to_owned()),
        port: i32::from(TARGET_PORT),
        target_port: Some(IntOrString::Int(i32::from(SERVER_PORT))),
        node_port: Some(i32::from(TARGET_NODE_PORT)),
        protocol: Some(protocol.kube_name().to_owned()),
        ..ServicePort::default()
    };
    Service {
        metadata: ObjectMeta {
            name: Some(TARGET_NAME.to_owned()),
            namespace: Some(TARGET_NAMESPACE.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("NodePort".to_owned()),
            selector: Some(BTreeMap::from([("app".to_owned(), TARGET_NAME.to_owned())])),
            ports: Some(vec![port(Protocol::Tcp), port(Protocol::Udp)]),
            external_traffic_policy: Some("Cluster".to_owned()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The target Service's EndpointSlice: `servers` ready, port 5201 TCP and UDP.
pub fn target_slice(servers: &[Ipv4Addr]) -> EndpointSlice {
    let port = |protocol: Protocol| EndpointPort {
        name: Some(protocol.lower().to_owned()),
        port: Some(i32::from(SERVER_PORT)),
        protocol: Some(protocol.kube_name().to_owned()),
        ..EndpointPort::default()
    };
    EndpointSlice {
        address_type: "IPv4".to_owned(),
        endpoints: Some(
            servers
                .iter()
                .map(|ip| Endpoint {
                    addresses: vec![ip.to_string()],
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        serving: Some(true),
                        terminating: Some(false),
                    }),
                    ..Endpoint::default()
                })
                .collect(),
        ),
        metadata: ObjectMeta {
            name: Some(format!("{TARGET_NAME}-netbench")),
            namespace: Some(TARGET_NAMESPACE.to_owned()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/service-name".to_owned(),
                TARGET_NAME.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        ports: Some(vec![port(Protocol::Tcp), port(Protocol::Udp)]),
    }
}

impl Catalog {
    /// The target Service with ClusterIP `cluster_ip` in front of `servers`, plus `fillers` synthetic
    /// ClusterIP Services of `per_filler` endpoints each — the same objects `svcscale` publishes
    /// (ClusterIPs from 10.97.0.1, endpoints from 10.250.0.1, where nothing answers) — with the target
    /// at `position` among them.
    pub fn new(
        cluster_ip: Ipv4Addr,
        servers: &[Ipv4Addr],
        fillers: usize,
        per_filler: usize,
        position: TargetPosition,
    ) -> Self {
        let mut target = target_service();
        if let Some(spec) = target.spec.as_mut() {
            spec.cluster_ip = Some(cluster_ip.to_string());
            spec.cluster_ips = Some(vec![cluster_ip.to_string()]);
        }
        let mut services = Vec::with_capacity(fillers + 1);
        let mut slices = Vec::with_capacity(fillers + 1);
        let before = position.fillers_before(fillers);
        for index in 0..fillers {
            if index == before {
                services.push(target.clone());
                slices.push(target_slice(servers));
            }
            services.push(svcscale::service(index));
            slices.push(svcscale::endpoint_slice(
                index,
                per_filler,
                svcscale::Variant::Original,
            ));
        }
        if before == fillers {
            services.push(target);
            slices.push(target_slice(servers));
        }
        Self { services, slices }
    }

    /// Every service port with its ready endpoints, in service order then port order.
    pub fn frontends(&self) -> Vec<Frontend> {
        let mut out = Vec::new();
        for service in &self.services {
            let namespace = service.metadata.namespace.clone().unwrap_or_default();
            let name = service.metadata.name.clone().unwrap_or_default();
            let Some(spec) = &service.spec else { continue };
            let Some(cluster_ip) = spec
                .cluster_ip
                .as_deref()
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let slices: Vec<&EndpointSlice> = self
                .slices
                .iter()
                .filter(|s| {
                    s.metadata.namespace.as_deref() == Some(namespace.as_str())
                        && s.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get("kubernetes.io/service-name"))
                            == Some(&name)
                })
                .collect();
            for port in spec.ports.iter().flatten() {
                let protocol = match port.protocol.as_deref() {
                    Some("UDP") => Protocol::Udp,
                    _ => Protocol::Tcp,
                };
                let port_name = port.name.clone().unwrap_or_default();
                let backends = slices
                    .iter()
                    .flat_map(|slice| ready_backends(slice, &port_name, protocol))
                    .collect();
                out.push(Frontend {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    port_name,
                    protocol,
                    cluster_ip,
                    port: u16::try_from(port.port).unwrap_or_default(),
                    node_port: port.node_port.and_then(|p| u16::try_from(p).ok()),
                    backends,
                });
            }
        }
        out
    }
}

/// The ready endpoints of `slice` for the port named `port_name` with `protocol`.
fn ready_backends(slice: &EndpointSlice, port_name: &str, protocol: Protocol) -> Vec<Backend> {
    let Some(port) = slice.ports.iter().flatten().find(|p| {
        p.name.as_deref().unwrap_or_default() == port_name
            && p.protocol.as_deref().unwrap_or("TCP") == protocol.kube_name()
    }) else {
        return Vec::new();
    };
    let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else {
        return Vec::new();
    };
    slice
        .endpoints
        .iter()
        .flatten()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .filter_map(|e| e.addresses.first()?.parse::<Ipv4Addr>().ok())
        .map(|ip| Backend { ip, port: number })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_and_fillers_flatten_to_one_frontend_per_port() {
        let server = Ipv4Addr::new(10, 244, 1, 3);
        let catalog = Catalog::new(
            Ipv4Addr::new(10, 96, 0, 10),
            &[server],
            2,
            3,
            TargetPosition::First,
        );
        let frontends = catalog.frontends();
        assert_eq!(frontends.len(), 4, "{frontends:#?}");
        let tcp = &frontends[0];
        assert_eq!(tcp.service_port_name(), "netbench/server:tcp");
        assert_eq!(tcp.protocol, Protocol::Tcp);
        assert_eq!(tcp.node_port, Some(TARGET_NODE_PORT));
        assert_eq!(
            tcp.backends,
            vec![Backend {
                ip: server,
                port: SERVER_PORT
            }]
        );
        assert_eq!(frontends[1].protocol, Protocol::Udp);
        let filler = &frontends[3];
        assert_eq!(filler.service_port_name(), "svcscale/svc-00001:http");
        assert_eq!(filler.cluster_ip, svcscale::vip(1));
        assert_eq!(filler.node_port, None);
        assert_eq!(filler.backends.len(), 3);
        assert_eq!(filler.backends[0].port, 8080);
    }

    #[test]
    fn unready_endpoints_are_left_out() {
        let mut catalog = Catalog::new(
            Ipv4Addr::new(10, 96, 0, 10),
            &[],
            1,
            2,
            TargetPosition::First,
        );
        let endpoints = catalog.slices[1].endpoints.as_mut().unwrap();
        endpoints[0].conditions.as_mut().unwrap().ready = Some(false);
        let frontends = catalog.frontends();
        assert!(frontends[0].backends.is_empty());
        assert_eq!(frontends[2].backends.len(), 1);
    }

    #[test]
    fn the_target_stands_where_asked_and_every_filler_stays() {
        let names = |position| {
            Catalog::new(Ipv4Addr::new(10, 96, 0, 10), &[], 5, 1, position)
                .services
                .iter()
                .map(|s| s.metadata.name.clone().unwrap())
                .collect::<Vec<_>>()
        };
        for (position, index) in [
            (TargetPosition::First, 0),
            (TargetPosition::Middle, 2),
            (TargetPosition::Last, 5),
        ] {
            let names = names(position);
            assert_eq!(names.len(), 6, "{names:?}");
            assert_eq!(names[index], TARGET_NAME, "{position:?}: {names:?}");
            let fillers: Vec<&String> = names.iter().filter(|n| *n != TARGET_NAME).collect();
            assert_eq!(fillers.len(), 5);
            assert!(fillers.windows(2).all(|w| w[0] < w[1]), "{fillers:?}");
        }
        // The slices follow their Services.
        let catalog = Catalog::new(
            Ipv4Addr::new(10, 96, 0, 10),
            &[],
            5,
            1,
            TargetPosition::Last,
        );
        assert_eq!(
            catalog.slices[5].metadata.name.as_deref(),
            Some("server-netbench")
        );
        // No fillers: the target alone, wherever it is asked to stand.
        for position in TargetPosition::ALL {
            let alone = Catalog::new(Ipv4Addr::new(10, 96, 0, 10), &[], 0, 1, position);
            assert_eq!(alone.services.len(), 1);
        }
    }
}
