//! `GET /services`: the frontends this node's kernel holds, as the sync loop last wrote them (like
//! `cilium service list`): each frontend's address, port and protocol, the Service it belongs to,
//! whether it is reached from outside (the per-packet path, Maglev) or only by pods, its traffic
//! policy's effect, affinity and its backends in slot order. Published after every sync that wrote.

use std::sync::{Arc, RwLock};

use serde_json::{Value, json};
use strait_dataplane::services::{L4Proto, ServiceEntry};

/// The last published list, shared between the sync loop and the HTTP server.
#[derive(Clone, Debug, Default)]
pub struct ServiceBoard {
    latest: Arc<RwLock<Option<Arc<Value>>>>,
}

impl ServiceBoard {
    /// The list as JSON; `None` before the first sync.
    pub fn latest(&self) -> Option<Arc<Value>> {
        self.latest
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Publishes `entries`, each with its owner (`namespace/name`).
    pub fn publish<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a ServiceEntry, Option<String>)>,
    ) {
        let list: Vec<Value> = entries
            .into_iter()
            .map(|(entry, owner)| entry_json(entry, owner.as_deref()))
            .collect();
        *self
            .latest
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Arc::new(Value::Array(list)));
    }
}

fn entry_json(entry: &ServiceEntry, owner: Option<&str>) -> Value {
    let proto = match entry.key.proto {
        L4Proto::Tcp => "TCP",
        L4Proto::Udp => "UDP",
    };
    let backends: Vec<String> = entry
        .backends
        .iter()
        .map(|b| format!("{}:{}", b.addr, b.port))
        .collect();
    json!({
        "service": owner,
        "frontend": format!("{}:{}", entry.key.vip, entry.key.port),
        "protocol": proto,
        "external": entry.external.is_some(),
        "local_only": entry.external.as_ref().is_some_and(|e| e.local),
        "endpoints_elsewhere": entry.endpoints_elsewhere,
        "affinity_timeout_s": entry.affinity_timeout_s,
        "backends": backends,
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use strait_dataplane::services::{Backend, ServiceKey};

    use super::*;

    #[test]
    fn entries_are_published_with_their_service() {
        let board = ServiceBoard::default();
        assert!(board.latest().is_none());
        let entry = ServiceEntry {
            key: ServiceKey {
                vip: Ipv4Addr::new(10, 96, 0, 20),
                port: 80,
                proto: L4Proto::Tcp,
            },
            backends: vec![Backend {
                addr: Ipv4Addr::new(10, 244, 2, 7),
                port: 8080,
            }],
            affinity_timeout_s: None,
            external: None,
            endpoints_elsewhere: false,
        };
        board.publish([(&entry, Some("y/web".to_owned()))]);
        let list = board.latest().unwrap();
        assert_eq!(list[0]["service"], "y/web");
        assert_eq!(list[0]["frontend"], "10.96.0.20:80");
        assert_eq!(list[0]["backends"][0], "10.244.2.7:8080");
        assert_eq!(list[0]["external"], false);
    }
}
