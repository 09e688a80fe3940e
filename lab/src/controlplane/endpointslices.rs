//! The EndpointSlice controller: the `discovery.k8s.io/v1` EndpointSlices kube-controller-manager
//! would keep for a Service, computed from the lab's pods.
//!
//! As in Kubernetes: only Services with a non-empty selector (and not of type ExternalName) get
//! slices; a Service selects the pods of its own namespace carrying every selector label; each
//! service port resolves per pod to its numeric `targetPort` (default: `port`) or to the pod's
//! container port of that name and protocol (a pod without one is left out of that port); pods
//! whose resolved port lists differ land in different slices; a slice holds at most
//! [`MAX_ENDPOINTS_PER_SLICE`] endpoints; terminating pods stay in with `ready: false` (unless
//! `publishNotReadyAddresses`), `serving: true`, `terminating: true`.
//!
//! Differences: slice names are `<service>-<5 characters>`, a hash of the slice's port list
//! (Kubernetes uses random `generateName` suffixes), so the same cluster always yields the same
//! slices; endpoints are sorted by IP; and a selected-but-empty Service's one placeholder slice
//! lists the ports whose `targetPort` is a number (Kubernetes' placeholder lists none), so
//! consumers can tell which ports exist. Pods have no readiness yet, so every pod not terminating
//! is ready. A pod whose `spec.subdomain` names the Service has its `spec.hostname` on its endpoint.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::{
        core::v1::{ObjectReference, Service, ServicePort},
        discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice},
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};

use strait_k8s::service::TargetPort;

use crate::{
    manifests::{DEFAULT_NAMESPACE, alphabet_digits},
    state::PodRecord,
};

/// Label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] on the lab's slices.
pub const MANAGED_BY: &str = "strait-lab";
/// Label (empty value) on the slices of headless Services.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// Kubernetes' default `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// Length of the hash suffix of slice names.
const NAME_HASH_LEN: usize = 5;

/// The backend port a service port resolves to for one pod, as it appears in a slice.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ResolvedPort {
    name: String,
    protocol: String,
    port: i32,
    app_protocol: Option<String>,
}

/// The EndpointSlices for `service` given all pods of the lab. `terminating` holds the ids
/// (`namespace/name`, see [`PodRecord::id`]) of pods being deleted. The result is sorted by
/// slice name and is the same for the same input, whatever the order of `pods`.
pub fn endpoint_slices(
    service: &Service,
    pods: &[PodRecord],
    terminating: &BTreeSet<String>,
) -> Vec<EndpointSlice> {
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let namespace = service
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(DEFAULT_NAMESPACE);
    let service_ports = spec.ports.as_deref().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);

    let mut groups: BTreeMap<Vec<ResolvedPort>, Vec<&PodRecord>> = BTreeMap::new();
    let selected = pods.iter().filter(|pod| {
        pod.namespace == namespace
            && selector
                .iter()
                .all(|(key, value)| pod.labels.get(key) == Some(value))
    });
    for pod in selected {
        let ports = service_ports
            .iter()
            .filter_map(|port| resolve(port, pod))
            .collect();
        groups.entry(ports).or_default().push(pod);
    }
    if groups.is_empty() {
        let ports = service_ports
            .iter()
            .filter_map(|port| match strait_k8s::service::target_port(port) {
                TargetPort::Number(number) => Some(resolved(port, number)),
                TargetPort::Name(_) => None,
            })
            .collect();
        groups.insert(ports, Vec::new());
    }

    let mut names = BTreeSet::new();
    let mut slices = Vec::new();
    for (ports, mut members) in groups {
        members.sort_by(|a, b| (a.ip, &a.namespace, &a.name).cmp(&(b.ip, &b.namespace, &b.name)));
        let endpoints: Vec<Endpoint> = members
            .iter()
            .map(|pod| {
                endpoint(
                    pod,
                    terminating.contains(&pod.id()),
                    publish_not_ready,
                    service_name(service),
                )
            })
            .collect();
        let chunks: Vec<&[Endpoint]> = if endpoints.is_empty() {
            vec![&[]]
        } else {
            endpoints.chunks(MAX_ENDPOINTS_PER_SLICE).collect()
        };
        for (index, chunk) in chunks.into_iter().enumerate() {
            let name = unique_name(service_name(service), &ports, index, &names);
            names.insert(name.clone());
            slices.push(EndpointSlice {
                address_type: "IPv4".to_owned(),
                endpoints: Some(chunk.to_vec()),
                metadata: slice_metadata(service, namespace, name),
                ports: Some(ports.iter().map(endpoint_port).collect()),
            });
        }
    }
    slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    slices
}

fn service_name(service: &Service) -> &str {
    service.metadata.name.as_deref().unwrap_or_default()
}

fn protocol(port: &ServicePort) -> &str {
    strait_k8s::service::protocol(port)
}

fn resolved(port: &ServicePort, number: i32) -> ResolvedPort {
    ResolvedPort {
        name: port.name.clone().unwrap_or_default(),
        protocol: protocol(port).to_owned(),
        port: number,
        app_protocol: port.app_protocol.clone(),
    }
}

/// Kubernetes' `FindPort`: the number `port` reaches on `pod`, if any.
fn resolve(port: &ServicePort, pod: &PodRecord) -> Option<ResolvedPort> {
    let pod_ports = pod
        .ports
        .iter()
        .map(|p| (p.name.as_deref(), p.protocol.as_str(), i32::from(p.port)));
    strait_k8s::service::find_port(port, pod_ports).map(|number| resolved(port, number))
}

/// The endpoint of `pod` in a slice of the Service `service`. As Kubernetes' EndpointSlice
/// controller: the endpoint carries the pod's `spec.hostname` when the pod's `spec.subdomain` names
/// this Service, which gives the pod its `<hostname>.<service>.<ns>.svc` DNS name.
fn endpoint(
    pod: &PodRecord,
    terminating: bool,
    publish_not_ready: bool,
    service: &str,
) -> Endpoint {
    let hostname = pod
        .dns
        .hostname
        .clone()
        .filter(|_| pod.dns.subdomain.as_deref() == Some(service));
    Endpoint {
        addresses: vec![pod.ip.to_string()],
        hostname,
        conditions: Some(EndpointConditions {
            ready: Some(publish_not_ready || !terminating),
            serving: Some(true),
            terminating: Some(terminating),
        }),
        node_name: Some(pod.node.clone()).filter(|n| !n.is_empty()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".to_owned()),
            namespace: Some(pod.namespace.clone()),
            name: Some(pod.name.clone()),
            ..ObjectReference::default()
        }),
        ..Endpoint::default()
    }
}

fn endpoint_port(port: &ResolvedPort) -> EndpointPort {
    EndpointPort {
        app_protocol: port.app_protocol.clone(),
        name: Some(port.name.clone()),
        port: Some(port.port),
        protocol: Some(port.protocol.clone()),
    }
}

/// Labels as Kubernetes' `setEndpointSliceLabels`: the Service's own labels (but not the two
/// reserved keys), the headless marker, the service name and the managing controller; plus an
/// owner reference to the Service when it has a UID.
fn slice_metadata(service: &Service, namespace: &str, name: String) -> ObjectMeta {
    let mut labels: BTreeMap<String, String> = service
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(key, _)| *key != SERVICE_NAME_LABEL && *key != MANAGED_BY_LABEL)
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let headless = service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None");
    if headless {
        labels.insert(HEADLESS_LABEL.to_owned(), String::new());
    }
    labels.insert(
        SERVICE_NAME_LABEL.to_owned(),
        service_name(service).to_owned(),
    );
    labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned());
    let owner_references = service.metadata.uid.as_ref().map(|uid| {
        vec![OwnerReference {
            api_version: "v1".to_owned(),
            kind: "Service".to_owned(),
            name: service_name(service).to_owned(),
            uid: uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]
    });
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels),
        owner_references,
        ..ObjectMeta::default()
    }
}

/// `<service>-<hash>`, the hash over the port list and the chunk index, re-salted in the
/// (unlikely) case it collides with a name already used for this Service.
fn unique_name(
    service: &str,
    ports: &[ResolvedPort],
    index: usize,
    taken: &BTreeSet<String>,
) -> String {
    let mut key = String::new();
    for port in ports {
        for field in [
            port.name.as_str(),
            port.protocol.as_str(),
            &port.port.to_string(),
            port.app_protocol.as_deref().unwrap_or("-"),
        ] {
            key.push_str(&field.len().to_string());
            key.push(':');
            key.push_str(field);
        }
    }
    if index > 0 {
        key.push('#');
        key.push_str(&index.to_string());
    }
    let mut salt = 0_u32;
    loop {
        let salted = if salt == 0 {
            key.clone()
        } else {
            format!("{key}~{salt}")
        };
        let name = format!("{service}-{}", short_hash(&salted));
        if !taken.contains(&name) {
            return name;
        }
        salt += 1;
    }
}

/// FNV-1a 64 of `key`, written as [`NAME_HASH_LEN`] characters of Kubernetes' safe alphabet.
fn short_hash(key: &str) -> String {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    alphabet_digits(hash, NAME_HASH_LEN)
}

#[cfg(test)]
mod tests;
