//! What the specification leaves open, answered as CoreDNS's kubernetes plugin answers it
//! (`plugin/kubernetes/handler_test.go`, `handler_case_test.go`, `handler_pod_*_test.go`,
//! `reverse_test.go`), plus strait's own guarantees (case, custom domain, fast-path index).

use hickory_proto::rr::{RData, Record, RecordType};

use super::fixtures::*;
use crate::{Lookup, PodRecords, ServiceRecords, Zone, ZoneConfig};

const TTL: u32 = crate::config::DEFAULT_TTL;

fn cluster_soa() -> String {
    soa_line("cluster.local.", TTL)
}

fn srv_weights(lookup: &Lookup) -> Vec<u16> {
    lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => Some(srv.weight),
            _ => None,
        })
        .collect()
}

#[test]
fn missing_service_and_namespace_are_nxdomain_with_soa() {
    let zone = spec_zone();
    for missing in [
        "svc0.default.svc.cluster.local.",
        "svc0.nons.svc.cluster.local.",
        "nons.svc.cluster.local.",
        "foo.cluster.local.",
        "bogus.kubernetes.default.svc.cluster.local.",
        "bogusendpoint.headless.default.svc.cluster.local.",
        "_http._tcp.kubernetes.default.svc.cluster.local.",
    ] {
        let lookup = ask(&zone, missing, RecordType::A);
        assert!(is_nx_domain(&lookup), "{missing}: {lookup:?}");
        let soa = lookup.soa().expect("negative answers carry the SOA");
        assert_eq!(soa.to_string(), cluster_soa(), "{missing}");
    }
}

#[test]
fn existing_names_without_the_type_are_nodata() {
    let zone = spec_zone();
    for (question, qtype) in [
        ("kubernetes.default.svc.cluster.local.", RecordType::AAAA),
        ("kubernetes.default.svc.cluster.local.", RecordType::TXT),
        ("kubernetes.default.svc.cluster.local.", RecordType::SOA),
        ("kubernetes.default.svc.cluster.local.", RecordType::PTR),
        (
            "my-pet.headless.default.svc.cluster.local.",
            RecordType::SRV,
        ),
        ("dns-version.cluster.local.", RecordType::A),
    ] {
        let lookup = ask(&zone, question, qtype);
        assert!(is_no_data(&lookup), "{question} {qtype}: {lookup:?}");
        let soa = lookup.soa().expect("NODATA carries the SOA");
        assert_eq!(soa.to_string(), cluster_soa());
    }
}

#[test]
fn empty_non_terminals_are_nodata() {
    let zone = spec_zone();
    for question in [
        "cluster.local.",
        "svc.cluster.local.",
        "pod.cluster.local.",
        "default.svc.cluster.local.",
        "_tcp.kubernetes.default.svc.cluster.local.",
        "_tcp.headless.default.svc.cluster.local.",
    ] {
        for qtype in [RecordType::A, RecordType::NS] {
            if question == "cluster.local." && qtype == RecordType::NS {
                continue;
            }
            let lookup = ask(&zone, question, qtype);
            assert!(is_no_data(&lookup), "{question} {qtype}: {lookup:?}");
        }
    }
    let empty = zone_with(&ZoneConfig::default(), &[]);
    assert!(is_no_data(&ask(
        &empty,
        "svc.cluster.local.",
        RecordType::A
    )));
    assert!(is_nx_domain(&ask(
        &empty,
        "default.svc.cluster.local.",
        RecordType::A
    )));
}

#[test]
fn apex_answers_soa_and_ns() {
    let zone = spec_zone();
    let soa = ask(&zone, "Cluster.Local.", RecordType::SOA);
    assert_eq!(
        answer_lines(&soa),
        [soa_line("cluster.local.", TTL).replacen("cluster.local.", "Cluster.Local.", 1)]
    );
    let ns = ask(&zone, "cluster.local.", RecordType::NS);
    assert_eq!(
        answer_lines(&ns),
        [format!("cluster.local. {TTL} IN NS ns.dns.cluster.local.")]
    );
}

#[test]
fn question_case_is_kept_in_owner_names_only() {
    let zone = spec_zone();
    let a = ask(
        &zone,
        "KuBeRnEtEs.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        answer_lines(&a),
        [format!(
            "KuBeRnEtEs.default.svc.cluster.local. {TTL} IN A 10.3.0.1"
        )]
    );
    let srv = ask(
        &zone,
        "_HtTpS._TcP.kubernetes.DEFAULT.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(
        answer_lines(&srv),
        [format!(
            "_HtTpS._TcP.kubernetes.DEFAULT.svc.cluster.local. {TTL} IN SRV 0 100 443 kubernetes.default.svc.cluster.local."
        )]
    );
    assert_eq!(
        rendered(srv.additionals()),
        [format!(
            "kubernetes.default.svc.cluster.local. {TTL} IN A 10.3.0.1"
        )]
    );
    let cname = ask(&zone, "FOO.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        answer_lines(&cname),
        [format!(
            "FOO.default.svc.cluster.local. {TTL} IN CNAME www.example.com."
        )]
    );
    let ptr = ask(&zone, "1.0.3.10.IN-ADDR.ARPA.", RecordType::PTR);
    assert_eq!(
        answer_lines(&ptr),
        [format!(
            "1.0.3.10.IN-ADDR.ARPA. {TTL} IN PTR kubernetes.default.svc.cluster.local."
        )]
    );
    let missing = ask(&zone, "Nope.default.svc.CLUSTER.local.", RecordType::A);
    assert_eq!(missing.soa().map(ToString::to_string), Some(cluster_soa()));
}

#[test]
fn relative_questions_are_read_as_fully_qualified() {
    let lookup = ask(
        &spec_zone(),
        "kubernetes.default.svc.cluster.local",
        RecordType::A,
    );
    assert_eq!(
        answer_lines(&lookup),
        [format!(
            "kubernetes.default.svc.cluster.local. {TTL} IN A 10.3.0.1"
        )]
    );
}

#[test]
fn headless_without_ready_endpoints_is_nxdomain() {
    let ports: &[Port<'_>] = &[("http", "TCP", 80)];
    let not_ready = slice(
        "default",
        "hdls",
        "hdls-1",
        "IPv4",
        vec![endpoint("10.0.0.9", Some("web-0"), Some(false))],
        ports,
    );
    let zone = zone_with(
        &ZoneConfig::default(),
        &[
            (headless("default", "hdls", ports), vec![not_ready]),
            (headless("empty", "nothing", ports), vec![]),
        ],
    );
    for question in [
        "hdls.default.svc.cluster.local.",
        "web-0.hdls.default.svc.cluster.local.",
        "_http._tcp.hdls.default.svc.cluster.local.",
        "nothing.empty.svc.cluster.local.",
    ] {
        assert!(
            is_nx_domain(&ask(&zone, question, RecordType::A)),
            "{question}"
        );
    }
    assert_eq!(
        ask(&zone, "9.0.0.10.in-addr.arpa.", RecordType::PTR),
        Lookup::NotInZone
    );
    assert!(is_no_data(&ask(
        &zone,
        "empty.svc.cluster.local.",
        RecordType::A
    )));
}

#[test]
fn publish_not_ready_addresses_is_honoured() {
    let ports: &[Port<'_>] = &[("http", "TCP", 80)];
    let endpoints = || {
        vec![slice(
            "default",
            "hdls",
            "hdls-1",
            "IPv4",
            vec![
                endpoint("10.0.0.8", Some("web-0"), Some(true)),
                endpoint("10.0.0.9", Some("web-1"), Some(false)),
            ],
            ports,
        )]
    };
    let count = |service| {
        let zone = zone_with(&ZoneConfig::default(), &[(service, endpoints())]);
        ask(&zone, "hdls.default.svc.cluster.local.", RecordType::A)
            .answers()
            .len()
    };
    assert_eq!(count(headless("default", "hdls", ports)), 1);
    assert_eq!(
        count(headless_publishing_not_ready("default", "hdls", ports)),
        2
    );
    let mut annotated = headless("default", "hdls", ports);
    annotated.metadata.annotations = Some(
        [(
            crate::endpoints::TOLERATE_UNREADY_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]
        .into(),
    );
    assert_eq!(count(annotated), 2);
}

#[test]
fn srv_weight_is_shared_between_two_targets() {
    let ports: &[Port<'_>] = &[("http", "TCP", 80)];
    let two = slice(
        "default",
        "hdls",
        "hdls-1",
        "IPv4",
        vec![
            endpoint("10.0.0.8", None, Some(true)),
            endpoint("10.0.0.9", None, Some(true)),
        ],
        ports,
    );
    let zone = zone_with(
        &ZoneConfig::default(),
        &[
            (headless("default", "hdls", ports), vec![two]),
            (
                cluster_ip(
                    "default",
                    "web",
                    &["10.96.0.7"],
                    &[("http", "TCP", 80), ("", "TCP", 8080)],
                ),
                vec![],
            ),
        ],
    );
    let named = ask(
        &zone,
        "_http._tcp.hdls.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(srv_weights(&named), [50, 50]);
    assert_eq!(named.additionals().len(), 2);
    // SRV on the Service name itself: one per port, named or not (CoreDNS).
    let bare = ask(&zone, "web.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        answer_lines(&bare),
        sorted(vec![
            format!(
                "web.default.svc.cluster.local. {TTL} IN SRV 0 50 80 web.default.svc.cluster.local."
            ),
            format!(
                "web.default.svc.cluster.local. {TTL} IN SRV 0 50 8080 web.default.svc.cluster.local."
            ),
        ])
    );
    assert_eq!(
        rendered(bare.additionals()),
        [format!(
            "web.default.svc.cluster.local. {TTL} IN A 10.96.0.7"
        )]
    );
    let only_named = ask(
        &zone,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(srv_weights(&only_named), [100]);
}

#[test]
fn dashed_endpoint_names_resolve() {
    let zone = spec_zone();
    let lookup = ask(
        &zone,
        "10-3-0-3.headless.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        answer_lines(&lookup),
        [format!(
            "10-3-0-3.headless.default.svc.cluster.local. {TTL} IN A 10.3.0.3"
        )]
    );
    let ptr = ask(&zone, "3.0.3.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        answer_lines(&ptr),
        [format!(
            "3.0.3.10.in-addr.arpa. {TTL} IN PTR 10-3-0-3.headless.default.svc.cluster.local."
        )]
    );
    assert_eq!(
        ask(&zone, "4.0.3.10.in-addr.arpa.", RecordType::PTR),
        Lookup::NotInZone,
        "not-ready endpoints have no PTR"
    );
}

#[test]
fn an_address_in_two_services_has_two_ptrs() {
    let ports: &[Port<'_>] = &[("http", "TCP", 80)];
    let shared = |service: &str| {
        vec![slice(
            "default",
            service,
            &format!("{service}-1"),
            "IPv4",
            vec![endpoint("10.0.0.99", Some("double-ep"), Some(true))],
            ports,
        )]
    };
    let zone = zone_with(
        &ZoneConfig::default(),
        &[
            (headless("default", "svc1", ports), shared("svc1")),
            (headless("default", "svc2", ports), shared("svc2")),
        ],
    );
    let lookup = ask(&zone, "99.0.0.10.in-addr.arpa.", RecordType::PTR);
    let expected: Vec<String> = ["svc1", "svc2"]
        .iter()
        .map(|svc| {
            format!(
                "99.0.0.10.in-addr.arpa. {TTL} IN PTR double-ep.{svc}.default.svc.cluster.local."
            )
        })
        .collect();
    assert_eq!(answer_lines(&lookup), sorted(expected));
}

#[test]
fn reverse_misses_and_outside_names_are_not_ours() {
    let zone = spec_zone();
    for (question, qtype) in [
        ("9.9.9.10.in-addr.arpa.", RecordType::PTR),
        ("0.3.10.in-addr.arpa.", RecordType::PTR),
        ("1.0.3.10.in-addr.arpa.", RecordType::A),
        ("www.example.com.", RecordType::A),
        ("notcluster.local.", RecordType::A),
        ("local.", RecordType::SOA),
        (".", RecordType::NS),
    ] {
        assert_eq!(
            ask(&zone, question, qtype),
            Lookup::NotInZone,
            "{question} {qtype}"
        );
    }
}

#[test]
fn external_name_has_nothing_below_it() {
    let zone = spec_zone();
    for question in [
        "endpoint.foo.default.svc.cluster.local.",
        "_https._tcp.foo.default.svc.cluster.local.",
    ] {
        assert!(
            is_nx_domain(&ask(&zone, question, RecordType::CNAME)),
            "{question}"
        );
    }
}

#[test]
fn pod_names_follow_the_pods_option() {
    let insecure = zone_with(&ZoneConfig::default(), &[]);
    let lookup = ask(
        &insecure,
        "10-240-0-1.podns.pod.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        answer_lines(&lookup),
        [format!(
            "10-240-0-1.podns.pod.cluster.local. {TTL} IN A 10.240.0.1"
        )]
    );
    let v6 = ask(
        &insecure,
        "fd00--a.podns.pod.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!(
        answer_lines(&v6),
        [format!(
            "fd00--a.podns.pod.cluster.local. {TTL} IN AAAA fd00::a"
        )]
    );
    assert!(is_no_data(&ask(
        &insecure,
        "10-240-0-1.podns.pod.cluster.local.",
        RecordType::AAAA
    )));
    assert!(is_no_data(&ask(
        &insecure,
        "podns.pod.cluster.local.",
        RecordType::A
    )));
    for missing in [
        "blah.podns.pod.cluster.local.",
        "256-0-0-1.podns.pod.cluster.local.",
        "x.10-240-0-1.podns.pod.cluster.local.",
    ] {
        assert!(
            is_nx_domain(&ask(&insecure, missing, RecordType::A)),
            "{missing}"
        );
    }

    let disabled_config = ZoneConfig {
        pods: PodRecords::Disabled,
        ..ZoneConfig::default()
    };
    let disabled = zone_with(&disabled_config, &[]);
    for missing in [
        "10-240-0-1.podns.pod.cluster.local.",
        "podns.pod.cluster.local.",
    ] {
        assert!(
            is_nx_domain(&ask(&disabled, missing, RecordType::A)),
            "{missing}"
        );
    }
    assert!(is_no_data(&ask(
        &disabled,
        "pod.cluster.local.",
        RecordType::A
    )));
}

#[test]
fn custom_domain_and_ttl_are_honoured() {
    let config = ZoneConfig {
        ttl: 5,
        ..ZoneConfig::for_domain("Example.Internal").expect("valid domain")
    };
    let zone = zone_with(&config, &spec_cluster());
    assert_eq!(zone.config().domain.to_ascii(), "example.internal.");
    let a = ask(
        &zone,
        "kubernetes.default.svc.example.internal.",
        RecordType::A,
    );
    assert_eq!(
        answer_lines(&a),
        ["kubernetes.default.svc.example.internal. 5 IN A 10.3.0.1"]
    );
    let srv = ask(
        &zone,
        "_https._tcp.kubernetes.default.svc.example.internal.",
        RecordType::SRV,
    );
    assert_eq!(
        answer_lines(&srv),
        [
            "_https._tcp.kubernetes.default.svc.example.internal. 5 IN SRV 0 100 443 kubernetes.default.svc.example.internal."
        ]
    );
    let ptr = ask(&zone, "1.0.3.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        answer_lines(&ptr),
        ["1.0.3.10.in-addr.arpa. 5 IN PTR kubernetes.default.svc.example.internal."]
    );
    let missing = ask(&zone, "nope.default.svc.example.internal.", RecordType::A);
    assert_eq!(
        missing.soa().map(ToString::to_string),
        Some(soa_line("example.internal.", 5))
    );
    assert_eq!(
        ask(
            &zone,
            "kubernetes.default.svc.cluster.local.",
            RecordType::A
        ),
        Lookup::NotInZone
    );
    assert_eq!(
        answer_lines(&ask(
            &zone,
            "dns-version.example.internal.",
            RecordType::TXT
        )),
        ["dns-version.example.internal. 28800 IN TXT 1.1.0"]
    );
}

#[test]
fn any_returns_every_rrset_of_the_name() {
    let https: &[Port<'_>] = &[("https", "TCP", 443)];
    let dual = cluster_ip("default", "kubernetes", &["10.3.0.1", "2001:db8::1"], https);
    let zone = zone_with(&ZoneConfig::default(), &[(dual, vec![])]);
    let lookup = ask(
        &zone,
        "kubernetes.default.svc.cluster.local.",
        RecordType::ANY,
    );
    let mut types: Vec<RecordType> = lookup.answers().iter().map(Record::record_type).collect();
    types.sort();
    types.dedup();
    let mut expected = vec![RecordType::A, RecordType::AAAA, RecordType::SRV];
    expected.sort();
    assert_eq!(types, expected);
}

#[test]
fn hot_a_records_index_cluster_ip_services_only() {
    let zone = spec_zone();
    let hot: Vec<(String, Vec<String>, u32)> = zone
        .hot_a_records()
        .map(|(name, addresses, ttl)| {
            (
                name.to_ascii(),
                addresses.iter().map(ToString::to_string).collect(),
                ttl,
            )
        })
        .collect();
    assert_eq!(
        hot,
        [(
            "kubernetes.default.svc.cluster.local.".to_owned(),
            vec!["10.3.0.1".to_owned()],
            TTL
        )]
    );
    // Every hot entry answers the same as a lookup.
    for (name, addresses, _) in zone.hot_a_records() {
        let lookup = zone.lookup(name, RecordType::A);
        let answered: Vec<RData> = lookup.answers().iter().map(|r| r.data.clone()).collect();
        let indexed: Vec<RData> = addresses.iter().map(|a| RData::A((*a).into())).collect();
        assert_eq!(answered, indexed);
    }
}

#[test]
fn record_count_sums_apex_and_services() {
    let config = ZoneConfig::default();
    let services = records(&config, &spec_cluster());
    let zone = Zone::with_serial(config.clone(), SERIAL, &services);
    let from_services: usize = services
        .iter()
        .map(|s| s.records().len() + s.reverse_records().len())
        .sum();
    let apex = ["SOA", "NS"].len() + 1; // + dns-version TXT
    assert_eq!(zone.record_count(), apex + from_services);
    // The same Service twice adds nothing and keeps SRV weights.
    let doubled: Vec<&ServiceRecords> = services.iter().chain(&services).collect();
    let twice = Zone::with_serial(config, SERIAL, doubled);
    assert_eq!(twice.record_count(), zone.record_count());
    let srv = "_https._tcp.headless.default.svc.cluster.local.";
    assert_eq!(
        ask(&twice, srv, RecordType::SRV),
        ask(&zone, srv, RecordType::SRV)
    );
}

#[test]
fn serial_is_given_or_taken_from_the_clock() {
    let given = Zone::with_serial(ZoneConfig::default(), 7, []);
    assert!(matches!(given.soa().data, RData::SOA(ref soa) if soa.serial == 7));
    let clocked = Zone::new(ZoneConfig::default(), []);
    assert!(matches!(clocked.soa().data, RData::SOA(ref soa) if soa.serial > 1_600_000_000));
}
