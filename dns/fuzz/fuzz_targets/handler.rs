//! Arbitrary bytes through the DNS server's real handler ([`answer_bytes`]) on a small fixed zone,
//! nothing to forward to: no panic, and any response parses, is a response with the query's id,
//! and fits a UDP answer (512 bytes without EDNS, else the 1232 the server offers).

#![no_main]

use std::sync::{Arc, LazyLock};

use hickory_proto::op::{Message, MessageType};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use libfuzzer_sys::fuzz_target;
use strait_dns::forward::{ForwardConfig, Forwarder};
use strait_dns::server::{ClusterDnsHandler, ZoneSource, answer_bytes};
use strait_dns::{ServiceRecords, Zone, ZoneConfig};

struct Fixed(Arc<Zone>);

impl ZoneSource for Fixed {
    fn zone(&self) -> Arc<Zone> {
        Arc::clone(&self.0)
    }
}

fn service(name: &str, cluster_ip: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some(cluster_ip.into()),
            cluster_ips: Some(vec![cluster_ip.into()]),
            ports: Some(vec![ServicePort {
                name: Some("https".into()),
                protocol: Some("TCP".into()),
                port: 443,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// `kubernetes.default` (10.96.0.1) and headless `db.default` with one ready endpoint `db-0`.
fn zone() -> Zone {
    let config = ZoneConfig::default();
    let slice = EndpointSlice {
        metadata: ObjectMeta {
            name: Some("db-abc".into()),
            namespace: Some("default".into()),
            labels: Some([("kubernetes.io/service-name".into(), "db".into())].into()),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: Some(vec![Endpoint {
            addresses: vec!["10.1.0.5".into()],
            hostname: Some("db-0".into()),
            ..Endpoint::default()
        }]),
        ports: Some(vec![EndpointPort {
            name: Some("https".into()),
            protocol: Some("TCP".into()),
            port: Some(443),
            ..EndpointPort::default()
        }]),
    };
    let records = [
        ServiceRecords::build(&config, &service("kubernetes", "10.96.0.1"), &[]),
        ServiceRecords::build(&config, &service("db", "None"), &[&slice]),
    ];
    Zone::with_serial(config, 1, &records)
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
});

static HANDLER: LazyLock<ClusterDnsHandler<Fixed>> = LazyLock::new(|| {
    ClusterDnsHandler::new(
        Fixed(Arc::new(zone())),
        Arc::new(Forwarder::new(ForwardConfig::default(), Arc::default())),
        Arc::default(),
    )
});

fuzz_target!(|raw: &[u8]| {
    let Some(bytes) = RUNTIME.block_on(answer_bytes(&HANDLER, raw)) else {
        return;
    };
    let response = Message::from_vec(&bytes)
        .unwrap_or_else(|e| panic!("answer {bytes:02x?} does not parse: {e}"));
    assert_eq!(response.metadata.message_type, MessageType::Response);
    assert_eq!(response.metadata.id, u16::from_be_bytes([raw[0], raw[1]]));
    let limit = if response.edns.is_some() { 1232 } else { 512 };
    assert!(bytes.len() <= limit, "{} bytes over {limit}", bytes.len());
});
