//! What strait reads off a Service the same way everywhere: its IPv4 cluster IP, its external
//! addresses (externalIPs and LoadBalancer ingress IPs), a port's protocol and target, named target
//! ports resolved against a pod's container ports (Kubernetes' `FindPort`), and the label that ties an
//! EndpointSlice to its Service.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The Service an EndpointSlice belongs to (its `kubernetes.io/service-name` label).
pub fn slice_service(slice: &EndpointSlice) -> Option<&str> {
    slice
        .metadata
        .labels
        .as_ref()?
        .get(SERVICE_NAME_LABEL)
        .map(String::as_str)
}

/// The Service's IPv4 cluster IP, or `None` for headless, ExternalName and IPv6-only Services: the
/// primary address (`spec.clusterIP`, else the first of `spec.clusterIPs`) decides whether there is
/// one; a dual-stack Service whose primary address is IPv6 uses its IPv4 one.
pub fn cluster_ipv4(service: &Service) -> Option<Ipv4Addr> {
    let spec: &ServiceSpec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    let primary = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .or_else(|| spec.cluster_ips.as_ref()?.first().map(String::as_str))?;
    if primary.is_empty() || primary == "None" {
        return None;
    }
    std::iter::once(primary)
        .chain(spec.cluster_ips.iter().flatten().map(String::as_str))
        .find_map(|ip| ip.parse::<Ipv4Addr>().ok())
}

/// A Service's external addresses (IPv4), each list sorted and deduplicated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExternalAddresses {
    /// `spec.externalIPs`.
    pub external_ips: Vec<Ipv4Addr>,
    /// `status.loadBalancer.ingress[].ip`.
    pub load_balancer_ips: Vec<Ipv4Addr>,
}

impl ExternalAddresses {
    /// Both lists together, sorted and deduplicated.
    pub fn all(&self) -> Vec<Ipv4Addr> {
        let mut out: Vec<Ipv4Addr> = self
            .external_ips
            .iter()
            .chain(&self.load_balancer_ips)
            .copied()
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// The Service's externalIPs and LoadBalancer ingress IPs (entries that are not IPv4 are skipped).
pub fn external_addresses(service: &Service) -> ExternalAddresses {
    let spec_ips = service
        .spec
        .iter()
        .flat_map(|s| s.external_ips.iter().flatten());
    let lb_ips = service
        .status
        .iter()
        .flat_map(|s| s.load_balancer.iter())
        .flat_map(|lb| lb.ingress.iter().flatten())
        .filter_map(|i| i.ip.as_ref());
    ExternalAddresses {
        external_ips: parsed_sorted(spec_ips),
        load_balancer_ips: parsed_sorted(lb_ips),
    }
}

fn parsed_sorted<'a>(ips: impl Iterator<Item = &'a String>) -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = ips.filter_map(|ip| ip.parse().ok()).collect();
    out.sort();
    out.dedup();
    out
}

/// A service port's protocol (`TCP` when unset).
pub fn protocol(port: &ServicePort) -> &str {
    port.protocol.as_deref().unwrap_or("TCP")
}

/// Where a service port sends traffic on its endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetPort<'a> {
    Number(i32),
    /// A container port name, resolved per pod.
    Name(&'a str),
}

/// The service port's `targetPort`, defaulted to `port` as the API server does.
pub fn target_port(port: &ServicePort) -> TargetPort<'_> {
    match &port.target_port {
        Some(IntOrString::Int(number)) if *number != 0 => TargetPort::Number(*number),
        Some(IntOrString::String(name)) if !name.is_empty() => TargetPort::Name(name),
        _ => TargetPort::Number(port.port),
    }
}

/// One container port of a pod: name, protocol, number.
pub type ContainerPortRef<'a> = (Option<&'a str>, &'a str, i32);

/// Kubernetes' `FindPort`: the number the service port reaches on a pod with these container ports,
/// or `None` when its named target port is not among them (with the same protocol).
pub fn find_port<'a>(
    port: &ServicePort,
    pod_ports: impl IntoIterator<Item = ContainerPortRef<'a>>,
) -> Option<i32> {
    match target_port(port) {
        TargetPort::Number(number) => Some(number),
        TargetPort::Name(name) => {
            let protocol = protocol(port);
            pod_ports
                .into_iter()
                .find(|(n, p, _)| *n == Some(name) && *p == protocol)
                .map(|(_, _, number)| number)
        }
    }
}

/// Every container port of a pod, as [`find_port`] takes them.
pub fn container_ports(pod: &Pod) -> Vec<ContainerPortRef<'_>> {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| {
            (
                p.name.as_deref(),
                p.protocol.as_deref().unwrap_or("TCP"),
                p.container_port,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, LoadBalancerIngress, LoadBalancerStatus, PodSpec, ServiceStatus,
    };

    use super::*;

    fn service(spec: ServiceSpec) -> Service {
        Service {
            spec: Some(spec),
            ..Service::default()
        }
    }

    #[test]
    fn cluster_ip_rules() {
        let ip = |cluster_ip: Option<&str>, ips: &[&str], type_: Option<&str>| {
            cluster_ipv4(&service(ServiceSpec {
                cluster_ip: cluster_ip.map(str::to_owned),
                cluster_ips: (!ips.is_empty())
                    .then(|| ips.iter().map(|s| (*s).to_owned()).collect()),
                type_: type_.map(str::to_owned),
                ..ServiceSpec::default()
            }))
        };
        let v4: Ipv4Addr = "10.96.0.10".parse().unwrap();
        assert_eq!(ip(Some("10.96.0.10"), &[], None), Some(v4));
        assert_eq!(ip(None, &["fd00::1", "10.96.0.10"], None), Some(v4));
        assert_eq!(ip(Some("None"), &[], None), None);
        assert_eq!(ip(Some("10.96.0.10"), &[], Some("ExternalName")), None);
        assert_eq!(ip(Some("fd00::1"), &[], None), None);
    }

    #[test]
    fn external_addresses_are_sorted_deduplicated_ipv4() {
        let mut svc = service(ServiceSpec {
            external_ips: Some(vec![
                "192.0.2.9".into(),
                "192.0.2.1".into(),
                "2001:db8::1".into(),
            ]),
            ..ServiceSpec::default()
        });
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![
                    LoadBalancerIngress {
                        ip: Some("192.0.2.1".into()),
                        ..LoadBalancerIngress::default()
                    },
                    LoadBalancerIngress {
                        hostname: Some("lb.example".into()),
                        ..LoadBalancerIngress::default()
                    },
                ]),
            }),
            ..ServiceStatus::default()
        });
        let found = external_addresses(&svc);
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(found.external_ips, [ip("192.0.2.1"), ip("192.0.2.9")]);
        assert_eq!(found.load_balancer_ips, [ip("192.0.2.1")]);
        assert_eq!(found.all(), [ip("192.0.2.1"), ip("192.0.2.9")]);
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_protocol() {
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![
                        ContainerPort {
                            name: Some("http".into()),
                            container_port: 8080,
                            ..ContainerPort::default()
                        },
                        ContainerPort {
                            name: Some("dns".into()),
                            container_port: 53,
                            protocol: Some("UDP".into()),
                            ..ContainerPort::default()
                        },
                    ]),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        let port = |target: IntOrString, protocol: &str| ServicePort {
            port: 80,
            target_port: Some(target),
            protocol: Some(protocol.into()),
            ..ServicePort::default()
        };
        let ports = container_ports(&pod);
        let named = |n: &str| IntOrString::String(n.into());
        assert_eq!(
            find_port(&port(named("http"), "TCP"), ports.clone()),
            Some(8080)
        );
        assert_eq!(
            find_port(&port(named("dns"), "UDP"), ports.clone()),
            Some(53)
        );
        assert_eq!(find_port(&port(named("dns"), "TCP"), ports.clone()), None);
        assert_eq!(
            find_port(&port(IntOrString::Int(9), "TCP"), ports.clone()),
            Some(9)
        );
        assert_eq!(
            find_port(&port(IntOrString::Int(0), "TCP"), ports),
            Some(80)
        );
    }
}
