//! NodePort allocation like the API server's: every port of a NodePort or LoadBalancer Service gets a
//! node port from the range 30000-32767 (the Kubernetes default); a requested one must be in the range and
//! not held by another service, whatever the protocol (the API server allocates node ports per number;
//! only ports of one service with the same port number, such as `53/TCP` and `53/UDP`, share one). A LoadBalancer Service with
//! `externalTrafficPolicy: Local` also gets a `healthCheckNodePort` from the same range, distinct from
//! every node port and health check port of every service (whatever the protocol, as it is one TCP
//! listener on every node); any other Service may not set one.

use std::{
    collections::{BTreeMap, BTreeSet},
    ops::RangeInclusive,
};

use k8s_openapi::api::core::v1::{Service, ServicePort};

/// The default `--service-node-port-range`.
pub const NODE_PORT_RANGE: RangeInclusive<u16> = 30000..=32767;

/// Why a node port could not be given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodePortError {
    #[error("service {service}: nodePort {port} is outside the range {}-{}", NODE_PORT_RANGE.start(), NODE_PORT_RANGE.end())]
    OutOfRange { service: String, port: i32 },
    #[error(
        "service {service}: spec.ports[{index}].nodePort: Invalid value: {port}: provided port is already allocated (node ports are allocated per number, whatever the protocol)"
    )]
    InUse {
        service: String,
        index: usize,
        port: i32,
    },
    #[error("service {service}: no free node port left in {}-{}", NODE_PORT_RANGE.start(), NODE_PORT_RANGE.end())]
    Exhausted { service: String },
    #[error("service {service}: healthCheckNodePort {port} is outside the range {}-{}", NODE_PORT_RANGE.start(), NODE_PORT_RANGE.end())]
    HealthCheckOutOfRange { service: String, port: i32 },
    #[error(
        "service {service}: healthCheckNodePort {port} is already allocated (a nodePort or healthCheckNodePort of this or another service)"
    )]
    HealthCheckInUse { service: String, port: i32 },
    #[error(
        "service {service}: healthCheckNodePort {port} may only be set when type is LoadBalancer and externalTrafficPolicy is Local"
    )]
    HealthCheckNotAllowed { service: String, port: i32 },
}

fn wants_node_ports(service: &Service) -> bool {
    matches!(
        service.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("NodePort" | "LoadBalancer")
    )
}

/// True for the Services that get a `healthCheckNodePort`: `type: LoadBalancer` with
/// `externalTrafficPolicy: Local`.
pub fn needs_health_check_node_port(service: &Service) -> bool {
    service.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() == Some("LoadBalancer")
            && s.external_traffic_policy.as_deref() == Some("Local")
    })
}

/// The Service's `healthCheckNodePort`; 0 means unset, as in the API.
fn health_check_node_port(service: &Service) -> Option<i32> {
    service
        .spec
        .as_ref()?
        .health_check_node_port
        .filter(|&p| p != 0)
}

fn ports(service: &Service) -> impl Iterator<Item = &ServicePort> {
    service.spec.iter().flat_map(|s| s.ports.iter().flatten())
}

/// A re-applied Service keeps the `healthCheckNodePort` it was given when it still needs one and the
/// manifest does not ask for another (the API server does the same on update).
pub fn keep_health_check_node_port(old: Option<&Service>, new: &mut Service) {
    if !old.is_some_and(needs_health_check_node_port)
        || !needs_health_check_node_port(new)
        || health_check_node_port(new).is_some()
    {
        return;
    }
    let kept = old.and_then(health_check_node_port);
    if let Some(spec) = new.spec.as_mut() {
        spec.health_check_node_port = kept;
    }
}

/// Gives every port of `service` that needs one a node port, and the service a `healthCheckNodePort` if
/// it needs one, avoiding the ones `others` hold. Requested ones are validated; a `healthCheckNodePort`
/// on a Service that does not need one is refused.
pub fn assign_node_ports<'a>(
    service: &mut Service,
    key: &str,
    others: impl IntoIterator<Item = &'a Service>,
) -> Result<(), NodePortError> {
    let others: Vec<&Service> = others.into_iter().collect();
    let health_ports: BTreeSet<i32> = others
        .iter()
        .filter_map(|s| health_check_node_port(s))
        .collect();
    let own_health = requested_health_check_node_port(service, key)?;
    if wants_node_ports(service) {
        assign_service_ports(service, key, &others, &health_ports, own_health)?;
    }
    if needs_health_check_node_port(service) {
        assign_health_check_node_port(service, key, &others, &health_ports, own_health)?;
    }
    Ok(())
}

/// The `healthCheckNodePort` the Service asks for, checked against its type and the range; an explicit
/// 0 is cleared (it means unset).
fn requested_health_check_node_port(
    service: &mut Service,
    key: &str,
) -> Result<Option<i32>, NodePortError> {
    let requested = health_check_node_port(service);
    if let Some(spec) = service.spec.as_mut() {
        spec.health_check_node_port = requested;
    }
    match requested {
        None => Ok(None),
        Some(port) if !needs_health_check_node_port(service) => {
            Err(NodePortError::HealthCheckNotAllowed {
                service: key.to_owned(),
                port,
            })
        }
        Some(port) if !NODE_PORT_RANGE.contains(&u16::try_from(port).unwrap_or(0)) => {
            Err(NodePortError::HealthCheckOutOfRange {
                service: key.to_owned(),
                port,
            })
        }
        Some(port) => Ok(Some(port)),
    }
}

/// Node ports for the service's ports, as the API server allocates them: one allocator for the range, so
/// a number held by any port of another service (whatever its protocol) or by a health check port is
/// taken. Within the service, ports with the same port number (`53/TCP` and `53/UDP`) share one node
/// port; other ports may not share one. Requested node ports are claimed first; each missing one is
/// then the lowest free number that is not this service's requested health check port either.
fn assign_service_ports(
    service: &mut Service,
    key: &str,
    others: &[&Service],
    health_ports: &BTreeSet<i32>,
    own_health: Option<i32>,
) -> Result<(), NodePortError> {
    let mut used: BTreeSet<i32> = others
        .iter()
        .flat_map(|s| ports(s))
        .filter_map(|p| p.node_port)
        .collect();
    used.extend(health_ports);
    // This service's node ports: node port -> the service port number that holds it.
    let mut own: BTreeMap<i32, i32> = BTreeMap::new();
    // Service port number -> its (first) node port, shared by ports of the same number.
    let mut by_port: BTreeMap<i32, i32> = BTreeMap::new();
    let ports: Vec<&mut ServicePort> = service
        .spec
        .iter_mut()
        .flat_map(|s| s.ports.iter_mut().flatten())
        .collect();
    for (index, port) in ports.iter().enumerate() {
        let Some(n) = port.node_port else { continue };
        if !NODE_PORT_RANGE.contains(&u16::try_from(n).unwrap_or(0)) {
            return Err(NodePortError::OutOfRange {
                service: key.to_owned(),
                port: n,
            });
        }
        let shared = own.get(&n).is_some_and(|holder| *holder == port.port);
        if !shared && (used.contains(&n) || own.contains_key(&n)) {
            return Err(NodePortError::InUse {
                service: key.to_owned(),
                index,
                port: n,
            });
        }
        own.insert(n, port.port);
        by_port.entry(port.port).or_insert(n);
    }
    for port in ports {
        if port.node_port.is_some() {
            continue;
        }
        let n = match by_port.get(&port.port) {
            Some(n) => *n,
            None => NODE_PORT_RANGE
                .map(i32::from)
                .find(|n| !used.contains(n) && !own.contains_key(n) && own_health != Some(*n))
                .ok_or_else(|| NodePortError::Exhausted {
                    service: key.to_owned(),
                })?,
        };
        own.insert(n, port.port);
        by_port.insert(port.port, n);
        port.node_port = Some(n);
    }
    Ok(())
}

/// The service's `healthCheckNodePort`: the requested one if no node port (of any protocol) or health
/// check port holds it, else the lowest such free one.
fn assign_health_check_node_port(
    service: &mut Service,
    key: &str,
    others: &[&Service],
    health_ports: &BTreeSet<i32>,
    own_health: Option<i32>,
) -> Result<(), NodePortError> {
    let mut taken: BTreeSet<i32> = others
        .iter()
        .copied()
        .chain(std::iter::once(&*service))
        .flat_map(ports)
        .filter_map(|p| p.node_port)
        .collect();
    taken.extend(health_ports);
    let port = match own_health {
        Some(port) if taken.contains(&port) => {
            return Err(NodePortError::HealthCheckInUse {
                service: key.to_owned(),
                port,
            });
        }
        Some(port) => port,
        None => NODE_PORT_RANGE
            .map(i32::from)
            .find(|n| !taken.contains(n))
            .ok_or_else(|| NodePortError::Exhausted {
                service: key.to_owned(),
            })?,
    };
    if let Some(spec) = service.spec.as_mut() {
        spec.health_check_node_port = Some(port);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ServiceSpec;

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
    fn ports_get_the_lowest_free_node_ports_whatever_the_protocol() {
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
        // 30000 is held over TCP, which takes the number for UDP too.
        assert_eq!(
            node_ports(&svc),
            vec![Some(30001), Some(30002), Some(30005)]
        );
    }

    #[test]
    fn ports_of_one_service_with_the_same_number_share_a_node_port() {
        let mut dns = service(
            "NodePort",
            &[(53, None, "TCP"), (53, None, "UDP"), (54, None, "UDP")],
        );
        assign_node_ports(&mut dns, "default/dns", []).unwrap();
        assert_eq!(
            node_ports(&dns),
            vec![Some(30000), Some(30000), Some(30001)]
        );
        // A requested one is shared with the other protocol's port of the same number, even after it.
        let mut asked = service("NodePort", &[(53, None, "TCP"), (53, Some(30100), "UDP")]);
        assign_node_ports(&mut asked, "default/dns", [&dns]).unwrap();
        assert_eq!(node_ports(&asked), vec![Some(30100), Some(30100)]);
        // Ports of different numbers may not share one; a missing one never takes a requested one.
        let mut clash = service(
            "NodePort",
            &[(80, Some(30200), "TCP"), (81, Some(30200), "UDP")],
        );
        assert_eq!(
            assign_node_ports(&mut clash, "default/web", []),
            Err(NodePortError::InUse {
                service: "default/web".into(),
                index: 1,
                port: 30200
            })
        );
        let mut order = service("NodePort", &[(80, None, "TCP"), (81, Some(30000), "TCP")]);
        assign_node_ports(&mut order, "default/web", []).unwrap();
        assert_eq!(node_ports(&order), vec![Some(30001), Some(30000)]);
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
        // The API server allocates node ports per number: the same number over UDP is taken too.
        let mut udp = service("NodePort", &[(81, Some(30080), "UDP")]);
        let error = assign_node_ports(&mut udp, "default/c", [&taken]).unwrap_err();
        assert_eq!(
            error,
            NodePortError::InUse {
                service: "default/c".into(),
                index: 0,
                port: 30080
            }
        );
        assert!(
            error
                .to_string()
                .contains("provided port is already allocated"),
            "{error}"
        );
    }

    /// A LoadBalancer Service with `externalTrafficPolicy: Local` and the given health check port.
    fn local_lb(ports: &[(i32, Option<i32>, &str)], health: Option<i32>) -> Service {
        let mut svc = service("LoadBalancer", ports);
        let spec = svc.spec.as_mut().unwrap();
        spec.external_traffic_policy = Some("Local".into());
        spec.health_check_node_port = health;
        svc
    }

    fn health(service: &Service) -> Option<i32> {
        service.spec.as_ref().unwrap().health_check_node_port
    }

    #[test]
    fn local_load_balancers_get_a_health_check_port_no_one_else_holds() {
        // 30000 is another service's UDP node port, 30001 another's health check port; this service's
        // own TCP port takes 30002 (node ports are per number) and the health check port must avoid
        // all of them.
        let udp = service("NodePort", &[(53, Some(30000), "UDP")]);
        let checked = local_lb(&[(80, Some(30005), "TCP")], Some(30001));
        let mut svc = local_lb(&[(80, None, "TCP")], None);
        assign_node_ports(&mut svc, "default/web", [&udp, &checked]).unwrap();
        assert_eq!(node_ports(&svc), vec![Some(30002)]);
        assert_eq!(health(&svc), Some(30003));
    }

    #[test]
    fn node_ports_avoid_health_check_ports() {
        let checked = local_lb(&[(80, Some(30005), "TCP")], Some(30000));
        let mut svc = service("NodePort", &[(53, None, "UDP")]);
        assign_node_ports(&mut svc, "default/dns", [&checked]).unwrap();
        assert_eq!(node_ports(&svc), vec![Some(30001)]);
        assert_eq!(health(&svc), None);
        let mut taken = service("NodePort", &[(53, Some(30000), "UDP")]);
        assert!(matches!(
            assign_node_ports(&mut taken, "default/dns", [&checked]),
            Err(NodePortError::InUse { port: 30000, .. })
        ));
        // The service's own requested health check port is skipped too.
        let mut own = local_lb(&[(80, None, "TCP")], Some(30000));
        assign_node_ports(&mut own, "default/own", []).unwrap();
        assert_eq!(node_ports(&own), vec![Some(30001)]);
        assert_eq!(health(&own), Some(30000));
    }

    #[test]
    fn requested_health_check_ports_are_validated() {
        let mut low = local_lb(&[(80, None, "TCP")], Some(10256));
        assert_eq!(
            assign_node_ports(&mut low, "default/a", []),
            Err(NodePortError::HealthCheckOutOfRange {
                service: "default/a".into(),
                port: 10256
            })
        );
        let udp = service("NodePort", &[(53, Some(30100), "UDP")]);
        let mut clash = local_lb(&[(80, None, "TCP")], Some(30100));
        assert_eq!(
            assign_node_ports(&mut clash, "default/b", [&udp]),
            Err(NodePortError::HealthCheckInUse {
                service: "default/b".into(),
                port: 30100
            })
        );
        let mut own = local_lb(&[(80, Some(30200), "TCP")], Some(30200));
        assert!(matches!(
            assign_node_ports(&mut own, "default/c", []),
            Err(NodePortError::HealthCheckInUse { port: 30200, .. })
        ));
        let mut fine = local_lb(&[(80, None, "TCP")], Some(32767));
        assign_node_ports(&mut fine, "default/d", [&udp]).unwrap();
        assert_eq!(health(&fine), Some(32767));
    }

    #[test]
    fn only_local_load_balancers_may_have_a_health_check_port() {
        let mut cluster_lb = service("LoadBalancer", &[(80, None, "TCP")]);
        cluster_lb.spec.as_mut().unwrap().health_check_node_port = Some(30500);
        let mut local_node_port = service("NodePort", &[(80, None, "TCP")]);
        let spec = local_node_port.spec.as_mut().unwrap();
        spec.external_traffic_policy = Some("Local".into());
        spec.health_check_node_port = Some(30500);
        for mut svc in [cluster_lb, local_node_port] {
            assert_eq!(
                assign_node_ports(&mut svc, "default/a", []),
                Err(NodePortError::HealthCheckNotAllowed {
                    service: "default/a".into(),
                    port: 30500
                })
            );
        }
        let mut plain = service("LoadBalancer", &[(80, None, "TCP")]);
        assign_node_ports(&mut plain, "default/a", []).unwrap();
        assert_eq!(health(&plain), None);
        // 0 is the API's "unset".
        let mut zero = service("ClusterIP", &[(80, None, "TCP")]);
        zero.spec.as_mut().unwrap().health_check_node_port = Some(0);
        assign_node_ports(&mut zero, "default/a", []).unwrap();
        assert_eq!(health(&zero), None);
    }

    #[test]
    fn a_reapplied_service_keeps_its_health_check_port() {
        let old = local_lb(&[(80, Some(30000), "TCP")], Some(30500));
        let mut again = local_lb(&[(80, Some(30000), "TCP")], None);
        keep_health_check_node_port(Some(&old), &mut again);
        assign_node_ports(&mut again, "default/web", []).unwrap();
        assert_eq!(health(&again), Some(30500));
        // Asking for another one wins; one that no longer needs a port does not keep it.
        let mut moved = local_lb(&[(80, Some(30000), "TCP")], Some(30600));
        keep_health_check_node_port(Some(&old), &mut moved);
        assert_eq!(health(&moved), Some(30600));
        let mut cluster = service("LoadBalancer", &[(80, Some(30000), "TCP")]);
        keep_health_check_node_port(Some(&old), &mut cluster);
        assign_node_ports(&mut cluster, "default/web", []).unwrap();
        assert_eq!(health(&cluster), None);
        let mut fresh = local_lb(&[(80, Some(30000), "TCP")], None);
        keep_health_check_node_port(None, &mut fresh);
        assign_node_ports(&mut fresh, "default/web", []).unwrap();
        assert_eq!(health(&fresh), Some(30001));
    }
}
