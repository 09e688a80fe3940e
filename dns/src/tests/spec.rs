//! The example questions of the Kubernetes DNS-Based Service Discovery specification 1.1.0, answered
//! from the example cluster (TTLs are the zone's; SRV priority 0 and weight 100/N as CoreDNS).

use hickory_proto::rr::RecordType;

use super::fixtures::*;
use crate::ZoneConfig;

const TTL: u32 = crate::config::DEFAULT_TTL;

#[test]
fn schema_version_txt() {
    // §2.2
    let lookup = ask(&spec_zone(), "dns-version.cluster.local.", RecordType::TXT);
    assert_eq!(
        answer_lines(&lookup),
        ["dns-version.cluster.local. 28800 IN TXT 1.1.0"]
    );
}

#[test]
fn cluster_ip_a() {
    // §2.3.1
    let lookup = ask(
        &spec_zone(),
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        answer_lines(&lookup),
        [format!(
            "kubernetes.default.svc.cluster.local. {TTL} IN A 10.3.0.1"
        )]
    );
    assert!(lookup.additionals().is_empty());
}

#[test]
fn cluster_ip_aaaa_and_v6_ptr() {
    // §2.3.1 AAAA, §2.3.3 PTR for an IPv6 VIP (full nibble form)
    let https: &[Port<'_>] = &[("https", "TCP", 443)];
    let dual = cluster_ip("default", "kubernetes", &["10.3.0.1", "2001:db8::1"], https);
    let zone = zone_with(&ZoneConfig::default(), &[(dual, vec![])]);
    let lookup = ask(
        &zone,
        "kubernetes.default.svc.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!(
        answer_lines(&lookup),
        [format!(
            "kubernetes.default.svc.cluster.local. {TTL} IN AAAA 2001:db8::1"
        )]
    );
    let reverse = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.";
    assert_eq!(
        answer_lines(&ask(&zone, reverse, RecordType::PTR)),
        [format!(
            "{reverse} {TTL} IN PTR kubernetes.default.svc.cluster.local."
        )]
    );
}

#[test]
fn cluster_ip_srv_with_additional_address() {
    // §2.3.2
    let lookup = ask(
        &spec_zone(),
        "_https._tcp.kubernetes.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(
        answer_lines(&lookup),
        [format!(
            "_https._tcp.kubernetes.default.svc.cluster.local. {TTL} IN SRV 0 100 443 kubernetes.default.svc.cluster.local."
        )]
    );
    assert_eq!(
        rendered(lookup.additionals()),
        [format!(
            "kubernetes.default.svc.cluster.local. {TTL} IN A 10.3.0.1"
        )]
    );
}

#[test]
fn cluster_ip_ptr() {
    // §2.3.3
    let lookup = ask(&spec_zone(), "1.0.3.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        answer_lines(&lookup),
        [format!(
            "1.0.3.10.in-addr.arpa. {TTL} IN PTR kubernetes.default.svc.cluster.local."
        )]
    );
}

#[test]
fn headless_a_has_every_ready_address_once() {
    // §2.4.1: one A per ready endpoint; 10.3.0.2 is in two slices, 10.3.0.4 is not ready.
    let lookup = ask(
        &spec_zone(),
        "headless.default.svc.cluster.local.",
        RecordType::A,
    );
    let expected: Vec<String> = ["10.3.0.100", "10.3.0.2", "10.3.0.3"]
        .iter()
        .map(|ip| format!("headless.default.svc.cluster.local. {TTL} IN A {ip}"))
        .collect();
    assert_eq!(answer_lines(&lookup), sorted(expected));
}

#[test]
fn headless_hostname_a() {
    // §2.4.1
    let lookup = ask(
        &spec_zone(),
        "my-pet.headless.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        answer_lines(&lookup),
        [format!(
            "my-pet.headless.default.svc.cluster.local. {TTL} IN A 10.3.0.100"
        )]
    );
}

#[test]
fn headless_aaaa() {
    // §2.4.1 with IPv6 endpoints
    let https: &[Port<'_>] = &[("https", "TCP", 443)];
    let v6 = slice(
        "default",
        "headless",
        "headless-v6",
        "IPv6",
        vec![
            endpoint("2001:db8::1", Some("my-pet"), Some(true)),
            endpoint("2001:db8::2", None, Some(true)),
            endpoint("2001:db8::3", None, None),
        ],
        https,
    );
    let zone = zone_with(
        &ZoneConfig::default(),
        &[(headless("default", "headless", https), vec![v6])],
    );
    let expected: Vec<String> = (1..=3)
        .map(|i| format!("headless.default.svc.cluster.local. {TTL} IN AAAA 2001:db8::{i}"))
        .collect();
    let lookup = ask(
        &zone,
        "headless.default.svc.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!(answer_lines(&lookup), sorted(expected));
    let pet = ask(
        &zone,
        "my-pet.headless.default.svc.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!(
        answer_lines(&pet),
        [format!(
            "my-pet.headless.default.svc.cluster.local. {TTL} IN AAAA 2001:db8::1"
        )]
    );
    assert!(is_no_data(&ask(
        &zone,
        "headless.default.svc.cluster.local.",
        RecordType::A
    )));
}

#[test]
fn headless_srv_one_per_ready_endpoint_and_port() {
    // §2.4.2: N endpoints × M named ports; the endpoint without hostname gets its dashed name.
    let lookup = ask(
        &spec_zone(),
        "_https._tcp.headless.default.svc.cluster.local.",
        RecordType::SRV,
    );
    let targets = ["10-3-0-3", "my-pet", "my-pet-2"];
    let weight = 100 / targets.len();
    let expected: Vec<String> = targets
        .iter()
        .map(|target| {
            format!(
                "_https._tcp.headless.default.svc.cluster.local. {TTL} IN SRV 0 {weight} 443 {target}.headless.default.svc.cluster.local."
            )
        })
        .collect();
    assert_eq!(answer_lines(&lookup), sorted(expected));
    let additionals: Vec<String> = [
        ("10-3-0-3", "10.3.0.3"),
        ("my-pet", "10.3.0.100"),
        ("my-pet-2", "10.3.0.2"),
    ]
    .iter()
    .map(|(label, ip)| format!("{label}.headless.default.svc.cluster.local. {TTL} IN A {ip}"))
    .collect();
    assert_eq!(rendered(lookup.additionals()), sorted(additionals));
}

#[test]
fn headless_ptr() {
    // §2.4.3
    let lookup = ask(&spec_zone(), "100.0.3.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        answer_lines(&lookup),
        [format!(
            "100.0.3.10.in-addr.arpa. {TTL} IN PTR my-pet.headless.default.svc.cluster.local."
        )]
    );
}

#[test]
fn external_name_cname_for_any_type() {
    // §2.5: the CNAME answers A and AAAA (the caller chases the target outside the zone).
    let zone = spec_zone();
    for qtype in [
        RecordType::A,
        RecordType::AAAA,
        RecordType::CNAME,
        RecordType::TXT,
    ] {
        let lookup = ask(&zone, "foo.default.svc.cluster.local.", qtype);
        assert_eq!(
            answer_lines(&lookup),
            [format!(
                "foo.default.svc.cluster.local. {TTL} IN CNAME www.example.com."
            )],
            "{qtype}"
        );
    }
}
