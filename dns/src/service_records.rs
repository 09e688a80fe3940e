//! The records one Service contributes to the zone, from the Service and its EndpointSlices:
//! ClusterIP A/AAAA, SRV and PTR; headless endpoint A/AAAA, SRV and PTR; ExternalName CNAME
//! (specification §2.3-2.5). Each Service is built on its own, so a change rebuilds only its part.

use std::net::IpAddr;

use hickory_proto::rr::{Name, Record};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use strait_k8s::DEFAULT_NAMESPACE;
use strait_k8s::service::protocol;

use crate::addressing::{Addressing, ServiceKind, addressing};
use crate::config::ZoneConfig;
use crate::endpoints::{PublishedEndpoint, published_endpoints};
use crate::issue::RecordIssue;
use crate::names::{self, ServiceNames};
use crate::records;

/// The records one Service contributes: forward records under `<svc>.<ns>.svc.<zone>` (canonical
/// owners, canonical order, no duplicates) and PTR records under `in-addr.arpa.`/`ip6.arpa.`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRecords {
    kind: ServiceKind,
    names: Option<ServiceNames>,
    records: Vec<Record>,
    reverse: Vec<Record>,
    issues: Vec<RecordIssue>,
}

impl ServiceRecords {
    /// The records of `service`, with the endpoints of those `slices` labelled
    /// `kubernetes.io/service-name=<svc>` in its namespace (other slices are ignored).
    pub fn build(config: &ZoneConfig, service: &Service, slices: &[&EndpointSlice]) -> Self {
        let mut issues = Vec::new();
        let Some(service_name) = service.metadata.name.as_deref() else {
            return Self::unnamed(RecordIssue::MissingServiceName);
        };
        let namespace = service
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE);
        let names = match ServiceNames::new(&config.canonical_domain(), namespace, service_name) {
            Ok(names) => names,
            Err(issue) => return Self::unnamed(issue),
        };
        let addressing = addressing(service, &mut issues);
        let mut builder = Builder {
            names: &names,
            ttl: config.ttl,
            records: Vec::new(),
            reverse: Vec::new(),
            issues,
        };
        match &addressing {
            Addressing::ClusterIps(addresses) => builder.cluster_ip(service, addresses),
            Addressing::Headless => {
                let endpoints = published_endpoints(service, slices, &mut builder.issues);
                builder.headless(&endpoints);
            }
            Addressing::ExternalName(target) => builder.external_name(target),
            Addressing::Unaddressed => {}
        }
        let Builder {
            mut records,
            mut reverse,
            mut issues,
            ..
        } = builder;
        records::normalise(&mut records);
        records::normalise(&mut reverse);
        dedup_unordered(&mut issues);
        Self {
            kind: addressing.kind(),
            names: Some(names),
            records,
            reverse,
            issues,
        }
    }

    fn unnamed(issue: RecordIssue) -> Self {
        Self {
            kind: ServiceKind::Unaddressed,
            names: None,
            records: Vec::new(),
            reverse: Vec::new(),
            issues: vec![issue],
        }
    }

    pub fn kind(&self) -> ServiceKind {
        self.kind
    }

    /// `<svc>.<ns>.svc.<zone>` (canonical), if the Service could be named.
    pub fn name(&self) -> Option<&Name> {
        self.names.as_ref().map(|names| &names.service)
    }

    /// `<ns>.svc.<zone>` (canonical), which exists in the zone once any Service lives there.
    pub fn namespace_name(&self) -> Option<&Name> {
        self.names.as_ref().map(|names| &names.namespace)
    }

    /// The records under the cluster zone.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The PTR records of the Service's cluster IPs or published endpoints.
    pub fn reverse_records(&self) -> &[Record] {
        &self.reverse
    }

    /// What the build skipped, and why.
    pub fn issues(&self) -> &[RecordIssue] {
        &self.issues
    }
}

/// Collects one Service's records.
struct Builder<'a> {
    names: &'a ServiceNames,
    ttl: u32,
    records: Vec<Record>,
    reverse: Vec<Record>,
    issues: Vec<RecordIssue>,
}

impl Builder<'_> {
    /// `<svc>` A/AAAA per cluster IP, PTR back to `<svc>`, SRV per port targeting `<svc>`.
    fn cluster_ip(&mut self, service: &Service, addresses: &[IpAddr]) {
        let service_name = &self.names.service;
        for address in addresses {
            self.records
                .push(records::address(service_name.clone(), *address, self.ttl));
            self.reverse.push(records::ptr(
                names::reverse(*address),
                service_name.clone(),
                self.ttl,
            ));
        }
        let ports = service
            .spec
            .iter()
            .flat_map(|spec| spec.ports.iter().flatten());
        for port in ports {
            let Some(number) = u16::try_from(port.port).ok().filter(|n| *n != 0) else {
                self.issues.push(RecordIssue::InvalidPort(port.port));
                continue;
            };
            let name = port.name.as_deref().filter(|name| !name.is_empty());
            self.srv(name, protocol(port), number, service_name.clone());
        }
    }

    /// `<svc>` A/AAAA per published address, `<label>.<svc>` A/AAAA and PTR per endpoint, SRV per
    /// endpoint and port targeting `<label>.<svc>`.
    fn headless(&mut self, endpoints: &[PublishedEndpoint]) {
        let service_name = &self.names.service;
        for endpoint in endpoints {
            let Some(endpoint_name) = self.names.endpoint(&endpoint.label) else {
                self.issues.push(RecordIssue::NameTooLong {
                    what: "endpoint",
                    value: endpoint.address.to_string(),
                });
                continue;
            };
            self.records.push(records::address(
                service_name.clone(),
                endpoint.address,
                self.ttl,
            ));
            self.records.push(records::address(
                endpoint_name.clone(),
                endpoint.address,
                self.ttl,
            ));
            self.reverse.push(records::ptr(
                names::reverse(endpoint.address),
                endpoint_name.clone(),
                self.ttl,
            ));
            for port in &endpoint.ports {
                self.srv(
                    port.name.as_deref(),
                    &port.protocol,
                    port.port,
                    endpoint_name.clone(),
                );
            }
        }
    }

    /// `<svc>` CNAME `<externalName>.`.
    fn external_name(&mut self, target: &Name) {
        self.records.push(records::cname(
            self.names.service.clone(),
            target.clone(),
            self.ttl,
        ));
    }

    /// The SRV at `<svc>` (every port, as CoreDNS answers it) and, for a named port, the one at
    /// `_<port>._<proto>.<svc>`.
    fn srv(&mut self, port_name: Option<&str>, protocol: &str, port: u16, target: Name) {
        let service_name = &self.names.service;
        self.records.push(records::srv(
            service_name.clone(),
            port,
            target.clone(),
            self.ttl,
        ));
        let Some(port_name) = port_name else {
            return;
        };
        match self.names.srv(port_name, protocol) {
            Ok(owner) => self
                .records
                .push(records::srv(owner, port, target, self.ttl)),
            Err(issue) => self.issues.push(issue),
        }
    }
}

/// Drops repeated issues (the same bad port name on every endpoint), keeping first occurrences.
fn dedup_unordered(issues: &mut Vec<RecordIssue>) {
    let mut seen: Vec<RecordIssue> = Vec::with_capacity(issues.len());
    issues.retain(|issue| {
        if seen.contains(issue) {
            false
        } else {
            seen.push(issue.clone());
            true
        }
    });
}
