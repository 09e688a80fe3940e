//! What [`ServiceRecords::build`] keeps, skips and reports for odd or hostile Kubernetes data:
//! never a panic, always an issue saying what was left out.

use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::fixtures::*;
use crate::{RecordIssue, ServiceKind, ServiceRecords, ZoneConfig};

fn build(service: &Service, slices: &[EndpointSlice]) -> ServiceRecords {
    let slices: Vec<&EndpointSlice> = slices.iter().collect();
    ServiceRecords::build(&ZoneConfig::default(), service, &slices)
}

#[test]
fn kinds_and_names() {
    let https: &[Port<'_>] = &[("https", "TCP", 443)];
    let cases = [
        (
            cluster_ip("default", "a", &["10.0.0.1"], https),
            ServiceKind::ClusterIp,
        ),
        (headless("default", "b", https), ServiceKind::Headless),
        (
            external_name("default", "c", "example.com"),
            ServiceKind::ExternalName,
        ),
        (
            cluster_ip("default", "d", &[], https),
            ServiceKind::Unaddressed,
        ),
    ];
    for (service, kind) in cases {
        let built = build(&service, &[]);
        assert_eq!(built.kind(), kind);
        let name = service.metadata.name.clone().unwrap_or_default();
        assert_eq!(
            built.name().map(Name::to_ascii),
            Some(format!("{name}.default.svc.cluster.local."))
        );
        assert_eq!(
            built.namespace_name().map(Name::to_ascii),
            Some("default.svc.cluster.local.".to_owned())
        );
    }
}

#[test]
fn unnamed_and_unlabelable_services_have_no_records() {
    let mut unnamed = cluster_ip("default", "x", &["10.0.0.1"], &[]);
    unnamed.metadata.name = None;
    let built = build(&unnamed, &[]);
    assert!(built.records().is_empty() && built.name().is_none());
    assert_eq!(built.issues(), [RecordIssue::MissingServiceName]);

    let dotted = cluster_ip("default", "a.b", &["10.0.0.1"], &[]);
    let built = build(&dotted, &[]);
    assert!(built.records().is_empty());
    assert!(matches!(built.issues(), [RecordIssue::InvalidLabel { .. }]));
}

#[test]
fn long_names_are_skipped_not_panicked() {
    let long = "a".repeat(63);
    let config = ZoneConfig::for_domain(&format!("{long}.{long}.{long}")).expect("valid domain");
    let service = cluster_ip(&long, &long, &["10.0.0.1"], &[]);
    let built = ServiceRecords::build(&config, &service, &[]);
    assert!(built.records().is_empty());
    assert!(matches!(built.issues(), [RecordIssue::NameTooLong { .. }]));
}

#[test]
fn slices_of_other_services_or_namespaces_are_ignored() {
    let ports: &[Port<'_>] = &[("http", "TCP", 80)];
    let endpoints = || vec![endpoint("10.0.0.5", None, Some(true))];
    let own = slice("default", "hdls", "own", "IPv4", endpoints(), ports);
    let other_service = slice("default", "other", "other", "IPv4", endpoints(), ports);
    let other_namespace = slice("elsewhere", "hdls", "far", "IPv4", endpoints(), ports);
    let service = headless("default", "hdls", ports);
    let with_own = build(&service, std::slice::from_ref(&own));
    let with_all = build(&service, &[own, other_service, other_namespace]);
    assert_eq!(with_own.records(), with_all.records());
    let without = build(
        &service,
        &[
            slice("default", "other", "o", "IPv4", endpoints(), ports),
            slice("elsewhere", "hdls", "f", "IPv4", endpoints(), ports),
        ],
    );
    assert!(without.records().is_empty());
}

#[test]
fn bad_endpoint_data_falls_back_or_is_reported() {
    let ports: &[Port<'_>] = &[
        ("http", "TCP", 80),
        ("bad_name", "TCP", 81),
        ("big", "TCP", 70000),
    ];
    let messy = slice(
        "default",
        "hdls",
        "hdls-1",
        "IPv4",
        vec![
            endpoint("10.0.0.5", Some("Bad_Host"), Some(true)),
            endpoint("not-an-ip", None, Some(true)),
        ],
        ports,
    );
    let zone = zone_with(
        &ZoneConfig::default(),
        &[(headless("default", "hdls", ports), vec![messy.clone()])],
    );
    // The invalid hostname falls back to the dashed address.
    let dashed = ask(
        &zone,
        "10-0-0-5.hdls.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(dashed.answers().len(), 1);
    // The valid port still has its SRV; the bad name and number do not.
    let srv = ask(
        &zone,
        "_http._tcp.hdls.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(srv.answers().len(), 1);
    let bare = ask(&zone, "hdls.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        bare.answers().len(),
        2,
        "ports 80 and 81 on the one endpoint"
    );

    let built = build(&headless("default", "hdls", ports), &[messy]);
    let issues = built.issues();
    assert!(issues.contains(&RecordIssue::InvalidEndpointAddress("not-an-ip".into())));
    assert!(issues.contains(&RecordIssue::InvalidPort(70000)));
    assert!(issues.iter().any(|issue| matches!(
        issue,
        RecordIssue::InvalidLabel {
            what: "endpoint hostname",
            ..
        }
    )));
    assert!(issues.iter().any(|issue| matches!(
        issue,
        RecordIssue::InvalidLabel {
            what: "port name",
            ..
        }
    )));
    let distinct = issues
        .iter()
        .filter(|i| matches!(i, RecordIssue::InvalidPort(_)))
        .count();
    assert_eq!(distinct, 1, "each issue reported once");
}

#[test]
fn external_name_that_is_an_address_has_no_record() {
    let built = build(&external_name("default", "ip", "192.0.2.10"), &[]);
    assert!(built.records().is_empty());
    assert_eq!(built.kind(), ServiceKind::Unaddressed);
    assert_eq!(
        built.issues(),
        [RecordIssue::InvalidExternalName("192.0.2.10".into())]
    );
}

#[test]
fn cluster_ip_reverse_records_cover_every_cluster_ip() {
    let built = build(
        &cluster_ip("default", "dual", &["10.0.0.3", "fd00::3"], &[]),
        &[],
    );
    let owners: Vec<String> = built
        .reverse_records()
        .iter()
        .map(|r| r.name.to_ascii())
        .collect();
    assert_eq!(owners.len(), 2);
    assert!(owners.contains(&"3.0.0.10.in-addr.arpa.".to_owned()));
    assert!(owners.iter().any(|o| o.ends_with(".d.f.ip6.arpa.")));
}
