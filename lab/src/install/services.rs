//! The Services installed with the agent: `kube-system/kube-dns` at the cluster DNS address, which
//! every node's agent answers itself (no selector, no endpoints: its port-53 frontends lead to the
//! local agent), and the agents' metrics Service that Prometheus discovers them by.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::agent::pod_labels;
use super::config::DNS_SERVICE;
use super::{InstallValues, namespaced};

/// The metrics Service's name.
pub const METRICS_SERVICE: &str = "strait-agent-metrics";

fn port(name: &str, protocol: &str, number: u16) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        protocol: Some(protocol.into()),
        port: i32::from(number),
        target_port: Some(IntOrString::Int(i32::from(number))),
        ..ServicePort::default()
    }
}

/// kubeadm's DNS Service name and address, so kubelets' `clusterDNS` needs no change; the labels
/// tools look it up by.
pub fn kube_dns(values: &InstallValues) -> Service {
    let mut metadata = namespaced(DNS_SERVICE.1, DNS_SERVICE.0);
    metadata.labels = Some(BTreeMap::from([
        ("k8s-app".to_owned(), "kube-dns".to_owned()),
        ("kubernetes.io/name".to_owned(), "strait-dns".to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "strait".to_owned(),
        ),
    ]));
    Service {
        metadata,
        spec: Some(ServiceSpec {
            cluster_ip: Some(values.cluster_dns_ip.to_string()),
            ports: Some(vec![port("dns", "UDP", 53), port("dns-tcp", "TCP", 53)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// A headless Service over the agents' metrics port: one endpoint per node (the agents run on the
/// host network), for Prometheus' Kubernetes service discovery or a ServiceMonitor.
pub fn metrics(values: &InstallValues) -> Service {
    let mut metadata = namespaced(METRICS_SERVICE, &values.namespace);
    metadata.labels = Some(pod_labels());
    metadata.annotations = Some(BTreeMap::from([
        ("prometheus.io/scrape".to_owned(), "true".to_owned()),
        (
            "prometheus.io/port".to_owned(),
            values.agent_port.to_string(),
        ),
    ]));
    Service {
        metadata,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(pod_labels()),
            ports: Some(vec![ServicePort {
                target_port: Some(IntOrString::String("metrics".into())),
                ..port("metrics", "TCP", values.agent_port)
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
