//! Services, EndpointSlices and zones built from k8s-openapi objects, and helpers that read answers
//! back as presentation-format text.

use std::collections::BTreeMap;

use hickory_proto::rr::{Name, Record, RecordType};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use strait_k8s::service::SERVICE_NAME_LABEL;

use crate::{Lookup, ServiceRecords, Zone, ZoneConfig};

/// The SOA serial of every test zone.
pub const SERIAL: u32 = 42;

/// A port: name (empty for unnamed), protocol, number.
pub type Port<'a> = (&'a str, &'a str, i32);

pub fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        ..ObjectMeta::default()
    }
}

fn service_ports(ports: &[Port<'_>]) -> Vec<ServicePort> {
    ports
        .iter()
        .map(|(name, protocol, port)| ServicePort {
            name: (!name.is_empty()).then(|| (*name).to_owned()),
            protocol: Some((*protocol).to_owned()),
            port: *port,
            ..ServicePort::default()
        })
        .collect()
}

/// A ClusterIP Service with these cluster IPs (the first is `spec.clusterIP`).
pub fn cluster_ip(namespace: &str, name: &str, ips: &[&str], ports: &[Port<'_>]) -> Service {
    Service {
        metadata: meta(namespace, name),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: ips.first().map(|ip| (*ip).to_owned()),
            cluster_ips: Some(ips.iter().map(|ip| (*ip).to_owned()).collect()),
            ports: Some(service_ports(ports)),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// A headless Service (`clusterIP: None`).
pub fn headless(namespace: &str, name: &str, ports: &[Port<'_>]) -> Service {
    cluster_ip(namespace, name, &["None"], ports)
}

/// A headless Service that publishes not-ready endpoints.
pub fn headless_publishing_not_ready(namespace: &str, name: &str, ports: &[Port<'_>]) -> Service {
    let mut service = headless(namespace, name, ports);
    if let Some(spec) = service.spec.as_mut() {
        spec.publish_not_ready_addresses = Some(true);
    }
    service
}

pub fn external_name(namespace: &str, name: &str, target: &str) -> Service {
    Service {
        metadata: meta(namespace, name),
        spec: Some(ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some(target.to_owned()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// An endpoint with one address; `ready: None` leaves the condition unset.
pub fn endpoint(address: &str, hostname: Option<&str>, ready: Option<bool>) -> Endpoint {
    Endpoint {
        addresses: vec![address.to_owned()],
        hostname: hostname.map(str::to_owned),
        conditions: Some(EndpointConditions {
            ready,
            ..EndpointConditions::default()
        }),
        ..Endpoint::default()
    }
}

/// An EndpointSlice of `service`, labelled as the EndpointSlice controller labels it.
pub fn slice(
    namespace: &str,
    service: &str,
    slice_name: &str,
    address_type: &str,
    endpoints: Vec<Endpoint>,
    ports: &[Port<'_>],
) -> EndpointSlice {
    let mut metadata = meta(namespace, slice_name);
    metadata.labels = Some(BTreeMap::from([(
        SERVICE_NAME_LABEL.to_owned(),
        service.to_owned(),
    )]));
    EndpointSlice {
        metadata,
        address_type: address_type.to_owned(),
        endpoints: Some(endpoints),
        ports: Some(
            ports
                .iter()
                .map(|(name, protocol, port)| EndpointPort {
                    name: (!name.is_empty()).then(|| (*name).to_owned()),
                    protocol: Some((*protocol).to_owned()),
                    port: Some(*port),
                    ..EndpointPort::default()
                })
                .collect(),
        ),
    }
}

/// One Service and its EndpointSlices.
pub type Input = (Service, Vec<EndpointSlice>);

pub fn records(config: &ZoneConfig, inputs: &[Input]) -> Vec<ServiceRecords> {
    inputs
        .iter()
        .map(|(service, slices)| {
            let slices: Vec<&EndpointSlice> = slices.iter().collect();
            ServiceRecords::build(config, service, &slices)
        })
        .collect()
}

pub fn zone_with(config: &ZoneConfig, inputs: &[Input]) -> Zone {
    Zone::with_serial(config.clone(), SERIAL, &records(config, inputs))
}

/// The specification's example cluster (§2.3-2.5): `kubernetes.default` (10.3.0.1, `https` 443),
/// `headless.default` (ready `my-pet` 10.3.0.100, `my-pet-2` 10.3.0.2 in two slices, unnamed
/// 10.3.0.3, not-ready 10.3.0.4), `foo.default` (ExternalName `www.example.com`).
pub fn spec_cluster() -> Vec<Input> {
    let https: &[Port<'_>] = &[("https", "TCP", 443)];
    let first = slice(
        "default",
        "headless",
        "headless-abc",
        "IPv4",
        vec![
            endpoint("10.3.0.100", Some("my-pet"), Some(true)),
            endpoint("10.3.0.2", Some("my-pet-2"), None),
            endpoint("10.3.0.4", Some("not-ready"), Some(false)),
        ],
        https,
    );
    let second = slice(
        "default",
        "headless",
        "headless-def",
        "IPv4",
        vec![
            endpoint("10.3.0.3", None, Some(true)),
            endpoint("10.3.0.2", Some("my-pet-2"), Some(true)),
        ],
        https,
    );
    vec![
        (
            cluster_ip("default", "kubernetes", &["10.3.0.1"], https),
            vec![],
        ),
        (headless("default", "headless", https), vec![first, second]),
        (external_name("default", "foo", "www.example.com"), vec![]),
    ]
}

pub fn spec_zone() -> Zone {
    zone_with(&ZoneConfig::default(), &spec_cluster())
}

pub fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("test names are valid")
}

pub fn ask(zone: &Zone, question: &str, qtype: RecordType) -> Lookup {
    zone.lookup(&name(question), qtype)
}

/// Records in presentation format (`owner ttl IN TYPE rdata`), sorted.
pub fn rendered(records: &[Record]) -> Vec<String> {
    let mut lines: Vec<String> = records.iter().map(ToString::to_string).collect();
    lines.sort();
    lines
}

/// The answer section rendered; panics unless the lookup is an answer.
pub fn answer_lines(lookup: &Lookup) -> Vec<String> {
    assert!(
        matches!(lookup, Lookup::Answer { .. }),
        "expected an answer, got {lookup:?}"
    );
    rendered(lookup.answers())
}

/// The expected SOA of a zone in presentation format.
pub fn soa_line(zone: &str, ttl: u32) -> String {
    format!("{zone} {ttl} IN SOA ns.dns.{zone} hostmaster.{zone} {SERIAL} 7200 1800 86400 {ttl}")
}

pub fn is_nx_domain(lookup: &Lookup) -> bool {
    matches!(lookup, Lookup::NxDomain { .. })
}

pub fn is_no_data(lookup: &Lookup) -> bool {
    matches!(lookup, Lookup::NoData { .. })
}

/// Expected lines, sorted as [`rendered`] sorts.
pub fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}
