//! NodePort allocation like the API server's: every port of a NodePort or LoadBalancer Service gets a
//! node port from the range 30000-32767 (the Kubernetes default); a requested one must be in the range and
//! not taken by another service port of the same protocol.

use std::{collections::BTreeSet, ops::RangeInclusive};

use k8s_openapi::api::core::v1::Service;

/// The default `--service-node-port-range`.
pub const NODE_PORT_RANGE: RangeInclusive<u16> = 30000..=32767;

/// Why a node port could not be given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodePortError {
    #[error("service {service}: nodePort {port} is outside the range {}-{}", NODE_PORT_RANGE.start(), NODE_PORT_RANGE.end())]
    OutOfRange { service: String, port: i32 },
    #[error(
        "service {service}: nodePort {port}/{protocol} is already allocated to another service"
    )]
    InUse {
        service: String,
        port: i32,
        protocol: String,
    },
    #[error("service {service}: no free node port left in {}-{}", NODE_PORT_RANGE.start(), NODE_PORT_RANGE.end())]
    Exhausted { service: String },
}

fn wants_node_ports(service: &Service) -> bool {
    matches!(
        service.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("NodePort" | "LoadBalancer")
    )
}

fn protocol(port: &k8s_openapi::api::core::v1::ServicePort) -> String {
    port.protocol.clone().unwrap_or_else(|| "TCP".into())
}

/// Gives every port of `service` that needs one a node port, avoiding the ones `others` hold.
pub fn assign_node_ports<'a>(
    service: &mut Service,
    key: &str,
    others: impl IntoIterator<Item = &'a Service>,
) -> Result<(), NodePortError> {
    if !wants_node_ports(service) {
        return Ok(());
    }
    let mut used: BTreeSet<(i32, String)> = others
        .into_iter()
        .flat_map(|s| s.spec.iter().flat_map(|spec| spec.ports.iter().flatten()))
        .filter_map(|p| p.node_port.map(|n| (n, protocol(p))))
        .collect();
    let ports = service
        .spec
        .iter_mut()
        .flat_map(|s| s.ports.iter_mut().flatten());
    let mut missing = Vec::new();
    for port in ports {
        let proto = protocol(port);
        match port.node_port {
            Some(n) if !NODE_PORT_RANGE.contains(&u16::try_from(n).unwrap_or(0)) => {
                return Err(NodePortError::OutOfRange {
                    service: key.to_owned(),
                    port: n,
                });
            }
            Some(n) => {
                if !used.insert((n, proto.clone())) {
                    return Err(NodePortError::InUse {
                        service: key.to_owned(),
                        port: n,
                        protocol: proto,
                    });
                }
            }
            None => missing.push(port),
        }
    }
    for port in missing {
        let proto = protocol(port);
        let free = NODE_PORT_RANGE
            .map(i32::from)
            .find(|n| !used.contains(&(*n, proto.clone())))
            .ok_or_else(|| NodePortError::Exhausted {
                service: key.to_owned(),
            })?;
        used.insert((free, proto));
        port.node_port = Some(free);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};

    use super::*;

    fn service(kind: &str, ports: &[(i32, Option<i32>, &str)]) -> Service {
        Service {
            spec: Some(ServiceSpec {
                type_: Some(kind.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(port, node_port, proto)| ServicePort {
                            port: *port,
                            node_port: *node_port,
                            protocol: Some((*proto).into()),
                            ..ServicePort::default()
                        })
                        .collect(),
                ),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn node_ports(service: &Service) -> Vec<Option<i32>> {
        service
            .spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.node_port)
            .collect()
    }

    #[test]
    fn ports_get_the_lowest_free_node_ports_per_protocol() {
        let taken = service("NodePort", &[(80, Some(30000), "TCP")]);
        let mut svc = service(
            "LoadBalancer",
            &[
                (80, None, "TCP"),
                (53, None, "UDP"),
                (443, Some(30005), "TCP"),
            ],
        );
        assign_node_ports(&mut svc, "default/web", [&taken]).unwrap();
        assert_eq!(
            node_ports(&svc),
            vec![Some(30001), Some(30000), Some(30005)]
        );
    }

    #[test]
    fn cluster_ip_services_get_none() {
        let mut svc = service("ClusterIP", &[(80, None, "TCP")]);
        assign_node_ports(&mut svc, "default/web", []).unwrap();
        assert_eq!(node_ports(&svc), vec![None]);
    }

    #[test]
    fn requested_ports_are_validated() {
        let mut low = service("NodePort", &[(80, Some(8080), "TCP")]);
        assert_eq!(
            assign_node_ports(&mut low, "default/a", []),
            Err(NodePortError::OutOfRange {
                service: "default/a".into(),
                port: 8080
            })
        );
        let taken = service("NodePort", &[(80, Some(30080), "TCP")]);
        let mut dup = service("NodePort", &[(81, Some(30080), "TCP")]);
        assert!(matches!(
            assign_node_ports(&mut dup, "default/b", [&taken]),
            Err(NodePortError::InUse { port: 30080, .. })
        ));
        let mut udp = service("NodePort", &[(81, Some(30080), "UDP")]);
        assign_node_ports(&mut udp, "default/c", [&taken])
            .expect("the same number over UDP is free");
    }
}
