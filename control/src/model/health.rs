//! The health checks this node answers for load balancers, computed from the cluster's objects (pure):
//! one [`HealthCheck`] per `type: LoadBalancer` Service with `externalTrafficPolicy: Local` and a
//! `healthCheckNodePort`, with kube-proxy's count of the Service's endpoints on this node.
//! [`crate::healthcheck`] serves them.
//!
//! The count follows kube-proxy (`EndpointsMap.LocalReadyEndpoints`): endpoints of the Service's IPv4
//! EndpointSlices (labelled `kubernetes.io/service-name`, same namespace, with at least one valid port)
//! whose `nodeName` is this node and that are ready (`ready` unset or true), counted once per address
//! (an endpoint's first address, as kube-proxy takes it). Serving-but-terminating endpoints never count,
//! even when there is nothing else: a node with only terminating endpoints must fail its health check so
//! load balancers drain it. Headless Services and ones without a cluster IP are skipped, as kube-proxy
//! skips them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use strait_k8s::ObjectStore;

use super::translate::is_ready;

/// One health check node port to serve: the Service it answers for, the port, and how many of the
/// Service's ready endpoints are on this node (the answer is 200 when there is at least one, else 503).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HealthCheck {
    pub namespace: String,
    pub name: String,
    pub port: u16,
    pub local_endpoints: usize,
}

/// The health checks node `node_name` serves, sorted by (namespace, name).
pub fn health_checks(store: &ObjectStore, node_name: &str) -> Vec<HealthCheck> {
    let ports: BTreeMap<(String, String), u16> = store
        .services()
        .filter_map(|(key, service)| {
            let port = health_check_port(&service)?;
            Some(((key.namespace.clone(), key.name.clone()), port))
        })
        .collect();
    if ports.is_empty() {
        return Vec::new();
    }
    let mut local: BTreeMap<(String, String), BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for (slice_key, slice) in store.endpoint_slices() {
        let Some(service) = slice_service(&slice) else {
            continue;
        };
        let key = (slice_key.namespace.clone(), service.to_owned());
        if !ports.contains_key(&key) {
            continue;
        }
        let addresses = slice
            .endpoints
            .iter()
            .flatten()
            .filter(|e| e.node_name.as_deref() == Some(node_name) && is_ready(e))
            .filter_map(|e| e.addresses.first()?.parse::<Ipv4Addr>().ok());
        local.entry(key).or_default().extend(addresses);
    }
    ports
        .into_iter()
        .map(|((namespace, name), port)| HealthCheck {
            local_endpoints: local
                .get(&(namespace.clone(), name.clone()))
                .map_or(0, BTreeSet::len),
            namespace,
            name,
            port,
        })
        .collect()
}

/// The health check of one Service, given its EndpointSlices (those that do not count by the rules
/// above are skipped); `None` when it needs none.
pub fn health_check(
    namespace: &str,
    name: &str,
    service: &Service,
    slices: &[EndpointSlice],
    node_name: &str,
) -> Option<HealthCheck> {
    let port = health_check_port(service)?;
    let local: BTreeSet<Ipv4Addr> = slices
        .iter()
        .filter(|slice| slice_service(slice) == Some(name))
        .flat_map(|slice| slice.endpoints.iter().flatten())
        .filter(|e| e.node_name.as_deref() == Some(node_name) && is_ready(e))
        .filter_map(|e| e.addresses.first()?.parse::<Ipv4Addr>().ok())
        .collect();
    Some(HealthCheck {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        port,
        local_endpoints: local.len(),
    })
}

/// The Service's `healthCheckNodePort` when it needs one (LoadBalancer, externalTrafficPolicy Local,
/// a cluster IP) and it is a valid port number.
pub fn health_check_port(service: &Service) -> Option<u16> {
    let spec: &ServiceSpec = service.spec.as_ref()?;
    if spec.type_.as_deref() != Some("LoadBalancer")
        || spec.external_traffic_policy.as_deref() != Some("Local")
        || !has_cluster_ip(spec)
    {
        return None;
    }
    u16::try_from(spec.health_check_node_port?)
        .ok()
        .filter(|&p| p != 0)
}

/// False for headless Services (`clusterIP: None`) and ones with no cluster IP yet.
fn has_cluster_ip(spec: &ServiceSpec) -> bool {
    spec.cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .or_else(|| spec.cluster_ips.as_ref()?.first().map(String::as_str))
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// The Service an IPv4 slice with at least one valid port belongs to.
fn slice_service(slice: &EndpointSlice) -> Option<&str> {
    let has_port = slice
        .ports
        .iter()
        .flatten()
        .any(|p| p.port.is_some_and(|n| (1..=65_535).contains(&n)));
    if slice.address_type != "IPv4" || !has_port {
        return None;
    }
    strait_k8s::service::slice_service(slice)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ServicePort;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use strait_k8s::{Change, Object};

    use crate::model::translate::SERVICE_NAME_LABEL;

    use super::*;

    fn meta(namespace: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            ..ObjectMeta::default()
        }
    }

    fn service(kind: &str, policy: &str, health_port: Option<i32>) -> Service {
        Service {
            metadata: meta("shop", "web"),
            spec: Some(ServiceSpec {
                type_: Some(kind.into()),
                cluster_ip: Some("10.96.0.10".into()),
                external_traffic_policy: Some(policy.into()),
                health_check_node_port: health_port,
                ports: Some(vec![ServicePort {
                    port: 80,
                    node_port: Some(30080),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    /// An endpoint at `address` on `node` with the given (ready, serving, terminating) conditions.
    fn endpoint(address: &str, node: Option<&str>, conditions: [Option<bool>; 3]) -> Endpoint {
        let [ready, serving, terminating] = conditions;
        Endpoint {
            addresses: vec![address.into()],
            node_name: node.map(Into::into),
            conditions: Some(EndpointConditions {
                ready,
                serving,
                terminating,
            }),
            ..Endpoint::default()
        }
    }

    fn slice(
        namespace: &str,
        service: &str,
        family: &str,
        endpoints: Vec<Endpoint>,
    ) -> EndpointSlice {
        let mut metadata = meta(namespace, &format!("{service}-{}", endpoints.len()));
        metadata.labels = Some([(SERVICE_NAME_LABEL.to_owned(), service.to_owned())].into());
        EndpointSlice {
            metadata,
            address_type: family.into(),
            ports: Some(vec![EndpointPort {
                port: Some(8080),
                ..EndpointPort::default()
            }]),
            endpoints: Some(endpoints),
        }
    }

    /// An IPv4 slice in namespace `shop`.
    fn v4(service: &str, endpoints: Vec<Endpoint>) -> EndpointSlice {
        slice("shop", service, "IPv4", endpoints)
    }

    fn objects(services: Vec<(&str, &str, Service)>, slices: Vec<EndpointSlice>) -> ObjectStore {
        let mut objects = ObjectStore::new();
        for (namespace, name, mut service) in services {
            service.metadata.namespace = Some(namespace.into());
            service.metadata.name = Some(name.into());
            objects.apply(Change::Upsert(Object::from(service)));
        }
        for (index, mut slice) in slices.into_iter().enumerate() {
            slice.metadata.name = Some(format!("slice-{index}"));
            objects.apply(Change::Upsert(Object::from(slice)));
        }
        objects
    }

    fn check(name: &str, port: u16, local_endpoints: usize) -> HealthCheck {
        HealthCheck {
            namespace: "shop".into(),
            name: name.into(),
            port,
            local_endpoints,
        }
    }

    const READY: [Option<bool>; 3] = [Some(true), Some(true), Some(false)];
    const UNSET: [Option<bool>; 3] = [None, None, None];
    const NOT_READY: [Option<bool>; 3] = [Some(false), Some(false), Some(false)];
    const TERMINATING: [Option<bool>; 3] = [Some(false), Some(true), Some(true)];

    #[test]
    fn counts_ready_endpoints_on_this_node_once_per_address() {
        let node = Some("node-1");
        let objects = objects(
            vec![("shop", "web", service("LoadBalancer", "Local", Some(31000)))],
            vec![
                v4(
                    "web",
                    vec![
                        endpoint("10.244.1.5", node, READY),
                        endpoint("10.244.1.6", node, UNSET),
                        endpoint("10.244.1.7", node, NOT_READY),
                        endpoint("10.244.1.8", node, TERMINATING),
                        endpoint("10.244.2.5", Some("node-2"), READY),
                        endpoint("10.244.3.5", None, READY),
                    ],
                ),
                // The same endpoint again (a slice migration) counts once.
                v4("web", vec![endpoint("10.244.1.5", node, READY)]),
                // Other families, namespaces and services do not count.
                slice(
                    "shop",
                    "web",
                    "IPv6",
                    vec![endpoint("fd00::5", node, READY)],
                ),
                slice(
                    "other",
                    "web",
                    "IPv4",
                    vec![endpoint("10.244.1.9", node, READY)],
                ),
                v4("api", vec![endpoint("10.244.1.10", node, READY)]),
            ],
        );
        assert_eq!(
            health_checks(&objects, "node-1"),
            vec![check("web", 31000, 2)]
        );
        assert_eq!(
            health_checks(&objects, "node-2"),
            vec![check("web", 31000, 1)]
        );
        assert_eq!(
            health_checks(&objects, "node-3"),
            vec![check("web", 31000, 0)]
        );
    }

    #[test]
    fn terminating_endpoints_never_count() {
        let objects = objects(
            vec![("shop", "web", service("LoadBalancer", "Local", Some(31000)))],
            vec![v4(
                "web",
                vec![endpoint("10.244.1.8", Some("node-1"), TERMINATING)],
            )],
        );
        assert_eq!(
            health_checks(&objects, "node-1"),
            vec![check("web", 31000, 0)]
        );
    }

    #[test]
    fn slices_without_ports_do_not_count() {
        let mut portless = v4("web", vec![endpoint("10.244.1.5", Some("node-1"), READY)]);
        portless.ports = None;
        let objects = objects(
            vec![("shop", "web", service("LoadBalancer", "Local", Some(31000)))],
            vec![portless],
        );
        assert_eq!(
            health_checks(&objects, "node-1"),
            vec![check("web", 31000, 0)]
        );
    }

    #[test]
    fn only_local_load_balancers_with_a_port_are_checked() {
        let mut headless = service("LoadBalancer", "Local", Some(31005));
        headless.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        let objects = objects(
            vec![
                ("shop", "a", service("LoadBalancer", "Local", Some(31001))),
                ("shop", "b", service("LoadBalancer", "Cluster", Some(31002))),
                ("shop", "c", service("NodePort", "Local", Some(31003))),
                ("shop", "d", service("LoadBalancer", "Local", None)),
                ("shop", "e", service("LoadBalancer", "Local", Some(0))),
                ("shop", "f", service("LoadBalancer", "Local", Some(70_000))),
                ("shop", "g", headless),
                ("shop", "h", service("LoadBalancer", "Local", Some(31000))),
            ],
            vec![],
        );
        assert_eq!(
            health_checks(&objects, "node-1"),
            vec![check("a", 31001, 0), check("h", 31000, 0)]
        );
    }
}
