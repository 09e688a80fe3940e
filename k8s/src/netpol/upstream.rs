//! The upstream NetworkPolicy e2e model (kubernetes/kubernetes `test/e2e/network/netpol`, also Cyclonus'):
//! namespaces x, y and z labelled `ns: <name>`, pods a, b and c in each labelled `pod: <name>`, each
//! serving 80 and 81 over TCP and UDP on ports named `serve-<port>-<proto>`. Pod addresses here are
//! placeholders (10.244.<namespace>.<pod>) for tests of the specification; a lab gives real ones.

use std::{collections::BTreeMap, net::Ipv4Addr};

use super::{ContainerPort, PolicyPod, Protocol};
use crate::selector::Labels;

pub const NAMESPACES: [&str; 3] = ["x", "y", "z"];
pub const PODS: [&str; 3] = ["a", "b", "c"];
pub const PORTS: [u16; 2] = [80, 81];

/// The container ports every model pod serves.
pub fn ports() -> Vec<ContainerPort> {
    PORTS
        .into_iter()
        .flat_map(|port| {
            [Protocol::Tcp, Protocol::Udp].map(|protocol| ContainerPort {
                name: format!("serve-{port}-{}", protocol.name().to_lowercase()),
                port,
                protocol,
            })
        })
        .collect()
}

/// The nine pods, in namespace then pod order, and each namespace's labels.
pub fn model() -> (Vec<PolicyPod>, BTreeMap<String, Labels>) {
    let mut pods = Vec::new();
    for (n, namespace) in (1u8..).zip(NAMESPACES) {
        for (p, name) in (2u8..).zip(PODS) {
            pods.push(PolicyPod {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                labels: Labels::from([("pod".to_owned(), name.to_owned())]),
                ip: Some(Ipv4Addr::new(10, 244, n, p)),
                ports: ports(),
            });
        }
    }
    let namespaces = NAMESPACES
        .iter()
        .map(|n| {
            (
                (*n).to_owned(),
                Labels::from([("ns".to_owned(), (*n).to_owned())]),
            )
        })
        .collect();
    (pods, namespaces)
}
