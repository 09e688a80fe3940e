//! What a Service's own name resolves to: its cluster IPs, its ready endpoints (headless), or an
//! alias (ExternalName). The IPv4 cluster IP is read with strait-k8s's rule.

use std::net::{IpAddr, Ipv6Addr};

use hickory_proto::rr::Name;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use strait_k8s::service::cluster_ipv4;

use crate::issue::RecordIssue;
use crate::names;

/// The `clusterIP` of a headless Service.
const HEADLESS_CLUSTER_IP: &str = "None";

/// Which records a Service has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// `<svc>` holds the cluster IPs (A/AAAA), an SRV per port, a PTR per cluster IP.
    ClusterIp,
    /// `clusterIP: None`: `<svc>` holds the ready endpoints' addresses, each endpoint its own name.
    Headless,
    /// `<svc>` is a CNAME to `spec.externalName`.
    ExternalName,
    /// Nothing to publish yet: no cluster IP allocated, or its addresses or external name unusable.
    Unaddressed,
}

/// A Service's kind with the data its records are built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Addressing {
    /// At most one address per family, IPv4 first.
    ClusterIps(Vec<IpAddr>),
    Headless,
    /// Canonical (lowercase, fully qualified).
    ExternalName(Name),
    Unaddressed,
}

impl Addressing {
    pub(crate) fn kind(&self) -> ServiceKind {
        match self {
            Self::ClusterIps(_) => ServiceKind::ClusterIp,
            Self::Headless => ServiceKind::Headless,
            Self::ExternalName(_) => ServiceKind::ExternalName,
            Self::Unaddressed => ServiceKind::Unaddressed,
        }
    }
}

/// How the Service is addressed; what cannot be used is reported in `issues`.
pub(crate) fn addressing(service: &Service, issues: &mut Vec<RecordIssue>) -> Addressing {
    let Some(spec) = service.spec.as_ref() else {
        return Addressing::Unaddressed;
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return external_name(spec, issues);
    }
    let Some(primary) = primary_cluster_ip(spec) else {
        return Addressing::Unaddressed;
    };
    if primary == HEADLESS_CLUSTER_IP {
        return Addressing::Headless;
    }
    let listed =
        || std::iter::once(primary).chain(spec.cluster_ips.iter().flatten().map(String::as_str));
    let mut invalid: Vec<&str> = listed()
        .filter(|ip| ip.parse::<IpAddr>().is_err())
        .collect();
    invalid.dedup();
    issues.extend(
        invalid
            .into_iter()
            .map(|ip| RecordIssue::InvalidClusterIp(ip.to_owned())),
    );
    let ipv6 = listed().find_map(|ip| ip.parse::<Ipv6Addr>().ok());
    let addresses: Vec<IpAddr> = cluster_ipv4(service)
        .map(IpAddr::V4)
        .into_iter()
        .chain(ipv6.map(IpAddr::V6))
        .collect();
    if addresses.is_empty() {
        Addressing::Unaddressed
    } else {
        Addressing::ClusterIps(addresses)
    }
}

/// `spec.clusterIP`, else the first of `spec.clusterIPs`: the address that decides whether the
/// Service is headless.
fn primary_cluster_ip(spec: &ServiceSpec) -> Option<&str> {
    spec.cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .or_else(|| spec.cluster_ips.as_ref()?.first().map(String::as_str))
        .filter(|ip| !ip.is_empty())
}

/// An ExternalName that is a domain name (CoreDNS publishes nothing for an address or garbage).
fn external_name(spec: &ServiceSpec, issues: &mut Vec<RecordIssue>) -> Addressing {
    let text = spec.external_name.as_deref().unwrap_or_default();
    let parsed = Name::from_ascii(text)
        .ok()
        .filter(|name| !name.is_root() && text.parse::<IpAddr>().is_err());
    if let Some(name) = parsed {
        Addressing::ExternalName(names::canonical(&name))
    } else {
        issues.push(RecordIssue::InvalidExternalName(text.to_owned()));
        Addressing::Unaddressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(spec: ServiceSpec) -> Service {
        Service {
            spec: Some(spec),
            ..Service::default()
        }
    }

    fn of(spec: ServiceSpec) -> (Addressing, Vec<RecordIssue>) {
        let mut issues = Vec::new();
        let addressing = addressing(&service(spec), &mut issues);
        (addressing, issues)
    }

    fn cluster_ips(ips: &[&str]) -> ServiceSpec {
        ServiceSpec {
            cluster_ip: ips.first().map(|ip| (*ip).to_owned()),
            cluster_ips: Some(ips.iter().map(|ip| (*ip).to_owned()).collect()),
            ..ServiceSpec::default()
        }
    }

    #[test]
    fn dual_stack_keeps_one_address_per_family_ipv4_first() {
        let (found, issues) = of(cluster_ips(&["fd00::1", "10.0.0.3"]));
        let expected: Vec<IpAddr> = vec![
            "10.0.0.3".parse().expect("ip"),
            "fd00::1".parse().expect("ip"),
        ];
        assert_eq!(found, Addressing::ClusterIps(expected));
        assert!(issues.is_empty());
    }

    #[test]
    fn headless_external_and_unallocated() {
        assert_eq!(of(cluster_ips(&["None"])).0, Addressing::Headless);
        assert_eq!(of(ServiceSpec::default()).0, Addressing::Unaddressed);
        let external = |name: &str| {
            of(ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some(name.into()),
                ..ServiceSpec::default()
            })
        };
        let (found, _) = external("WWW.Example.com");
        let expected = Name::from_ascii("www.example.com.").expect("name");
        assert_eq!(found, Addressing::ExternalName(expected));
        let (found, issues) = external("192.0.2.1");
        assert_eq!(found, Addressing::Unaddressed);
        assert_eq!(issues.len(), 1);
    }

    #[test]
    fn garbage_cluster_ips_are_reported() {
        let (found, issues) = of(cluster_ips(&["not-an-ip"]));
        assert_eq!(found, Addressing::Unaddressed);
        assert_eq!(issues, [RecordIssue::InvalidClusterIp("not-an-ip".into())]);
    }
}
