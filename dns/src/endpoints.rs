//! The endpoints a headless Service publishes: the ready addresses of its EndpointSlices (every
//! address when the Service publishes not-ready ones), deduplicated across slices, each with its DNS
//! label (hostname, else the dashed address) and the ports of the slices it appears in.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hickory_proto::rr::domain::Label;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use strait_k8s::DEFAULT_NAMESPACE;
use strait_k8s::service::slice_service;

use crate::issue::RecordIssue;
use crate::names;

/// The legacy annotation the specification still names for publishing not-ready endpoints.
pub(crate) const TOLERATE_UNREADY_ANNOTATION: &str =
    "service.alpha.kubernetes.io/tolerate-unready-endpoints";

/// One port of an EndpointSlice, as its endpoints serve it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SlicePort {
    /// `None` for an unnamed port (no `_<port>._<proto>` record).
    pub name: Option<String>,
    /// As the slice spells it (`TCP` when unset).
    pub protocol: String,
    pub port: u16,
}

/// One address a headless Service publishes under `<label>.<svc>.<ns>.svc.<zone>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PublishedEndpoint {
    pub label: Label,
    pub address: IpAddr,
    pub ports: Vec<SlicePort>,
}

/// The endpoints the Service publishes, ordered by label then address. Slices not labelled with the
/// Service's name or in another namespace are ignored.
pub(crate) fn published_endpoints(
    service: &Service,
    slices: &[&EndpointSlice],
    issues: &mut Vec<RecordIssue>,
) -> Vec<PublishedEndpoint> {
    let include_not_ready = publishes_not_ready(service);
    let mut published: BTreeMap<(Vec<u8>, IpAddr), PublishedEndpoint> = BTreeMap::new();
    for slice in slices.iter().filter(|slice| belongs_to(slice, service)) {
        let ports = slice_ports(slice, issues);
        let ready = slice
            .endpoints
            .iter()
            .flatten()
            .filter(|endpoint| include_not_ready || is_ready(endpoint));
        for endpoint in ready {
            for address in &endpoint.addresses {
                let Ok(address) = address.parse::<IpAddr>() else {
                    issues.push(RecordIssue::InvalidEndpointAddress(address.clone()));
                    continue;
                };
                let Some(label) = endpoint_label(endpoint, address, issues) else {
                    continue;
                };
                let entry = published
                    .entry((label.as_bytes().to_vec(), address))
                    .or_insert_with(|| PublishedEndpoint {
                        label,
                        address,
                        ports: Vec::new(),
                    });
                entry.ports.extend(ports.iter().cloned());
            }
        }
    }
    published
        .into_values()
        .map(|mut endpoint| {
            endpoint.ports.sort();
            endpoint.ports.dedup();
            endpoint
        })
        .collect()
}

/// `spec.publishNotReadyAddresses`, or the legacy tolerate-unready annotation.
fn publishes_not_ready(service: &Service) -> bool {
    let by_spec = service
        .spec
        .as_ref()
        .and_then(|spec| spec.publish_not_ready_addresses)
        .unwrap_or(false);
    let by_annotation = service
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(TOLERATE_UNREADY_ANNOTATION))
        .is_some_and(|value| matches!(value.to_ascii_lowercase().as_str(), "true" | "t" | "1"));
    by_spec || by_annotation
}

/// `conditions.ready` true, or unset (the API says to read an unset condition as ready).
fn is_ready(endpoint: &Endpoint) -> bool {
    endpoint
        .conditions
        .as_ref()
        .and_then(|conditions| conditions.ready)
        .unwrap_or(true)
}

fn belongs_to(slice: &EndpointSlice, service: &Service) -> bool {
    let namespace_of = |namespace: Option<&String>| {
        namespace
            .map_or(DEFAULT_NAMESPACE, String::as_str)
            .to_owned()
    };
    service.metadata.name.is_some()
        && slice_service(slice) == service.metadata.name.as_deref()
        && namespace_of(slice.metadata.namespace.as_ref())
            == namespace_of(service.metadata.namespace.as_ref())
}

/// The endpoint's hostname as a label, else its dashed address.
fn endpoint_label(
    endpoint: &Endpoint,
    address: IpAddr,
    issues: &mut Vec<RecordIssue>,
) -> Option<Label> {
    if let Some(hostname) = endpoint.hostname.as_deref().filter(|h| !h.is_empty()) {
        if let Some(label) = names::kubernetes_label(hostname) {
            return Some(label);
        }
        issues.push(RecordIssue::InvalidLabel {
            what: "endpoint hostname",
            value: hostname.to_owned(),
            consequence: "the endpoint is named by its dashed address",
        });
    }
    names::dashed_address(address)
}

/// The slice's ports with a usable number (an unset port means "all ports" and names no SRV).
fn slice_ports(slice: &EndpointSlice, issues: &mut Vec<RecordIssue>) -> Vec<SlicePort> {
    slice
        .ports
        .iter()
        .flatten()
        .filter_map(|port| slice_port(port, issues))
        .collect()
}

fn slice_port(port: &EndpointPort, issues: &mut Vec<RecordIssue>) -> Option<SlicePort> {
    let number = port.port?;
    let Some(number) = u16::try_from(number).ok().filter(|n| *n != 0) else {
        issues.push(RecordIssue::InvalidPort(number));
        return None;
    };
    Some(SlicePort {
        name: port.name.clone().filter(|name| !name.is_empty()),
        protocol: port.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
        port: number,
    })
}
