//! How the zone names things: canonical (lowercase, fully qualified) names, labels taken from
//! Kubernetes data, and the owner names of namespaces, Services, endpoints, SRV ports and reverse
//! lookups.

use std::net::IpAddr;

use hickory_proto::rr::Name;
use hickory_proto::rr::domain::Label;

use crate::issue::RecordIssue;

/// The label under the zone that holds Services (`<svc>.<ns>.svc.<zone>`).
pub(crate) const SERVICES_LABEL: &str = "svc";
/// The label under the zone that holds pod names (`a-b-c-d.<ns>.pod.<zone>`).
pub(crate) const PODS_LABEL: &str = "pod";

/// The name lowercased and fully qualified, as the zone's maps key it.
pub(crate) fn canonical(name: &Name) -> Name {
    let mut canonical = name.to_lowercase();
    canonical.set_fqdn(true);
    canonical
}

/// A label from Kubernetes data, lowercased, if it is one the API server admits for Service,
/// namespace, hostname and port names: 1-63 ASCII letters, digits and inner hyphens.
pub(crate) fn kubernetes_label(text: &str) -> Option<Label> {
    let bytes = text.as_bytes();
    let well_formed = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-');
    if !well_formed {
        return None;
    }
    Label::from_raw_bytes(text.to_ascii_lowercase().as_bytes()).ok()
}

/// `<label>.<parent>`, or `None` past the 255-byte name limit.
pub(crate) fn child(parent: &Name, label: &Label) -> Option<Name> {
    parent.prepend_label(label).ok()
}

/// `<text>.<parent>` for a constant label of this crate.
pub(crate) fn fixed_child(parent: &Name, text: &str) -> Option<Name> {
    let label = Label::from_ascii(text).ok()?;
    child(parent, &label)
}

/// The label CoreDNS gives an endpoint without a hostname: its address with `.` and `:` turned into
/// `-` (`10-3-0-1`, `5678-abcd--1`).
pub(crate) fn dashed_address(address: IpAddr) -> Option<Label> {
    let dashed = address.to_string().replace(['.', ':'], "-");
    Label::from_raw_bytes(dashed.as_bytes()).ok()
}

/// The reverse-lookup name of an address: `d.c.b.a.in-addr.arpa.`, or the 32 nibbles of an IPv6
/// address under `ip6.arpa.` (no `::` shortening, specification §2.3.3).
pub(crate) fn reverse(address: IpAddr) -> Name {
    canonical(&Name::from(address))
}

/// The names one Service owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServiceNames {
    /// `<ns>.svc.<zone>`, an empty non-terminal once any Service lives in the namespace.
    pub namespace: Name,
    /// `<svc>.<ns>.svc.<zone>`.
    pub service: Name,
}

impl ServiceNames {
    pub(crate) fn new(zone: &Name, namespace: &str, service: &str) -> Result<Self, RecordIssue> {
        let too_long = || RecordIssue::NameTooLong {
            what: "Service",
            value: format!("{namespace}/{service}"),
        };
        let namespace_label = kubernetes_label(namespace).ok_or(RecordIssue::InvalidLabel {
            what: "namespace",
            value: namespace.to_owned(),
            consequence: "its Services have no records",
        })?;
        let service_label = kubernetes_label(service).ok_or(RecordIssue::InvalidLabel {
            what: "Service name",
            value: service.to_owned(),
            consequence: "the Service has no records",
        })?;
        let namespace = fixed_child(zone, SERVICES_LABEL)
            .and_then(|services| child(&services, &namespace_label))
            .ok_or_else(too_long)?;
        let service = child(&namespace, &service_label).ok_or_else(too_long)?;
        Ok(Self { namespace, service })
    }

    /// `_<port>._<protocol>.<svc>.<ns>.svc.<zone>` for a named port.
    pub(crate) fn srv(&self, port_name: &str, protocol: &str) -> Result<Name, RecordIssue> {
        let invalid = |what: &'static str, value: &str| RecordIssue::InvalidLabel {
            what,
            value: value.to_owned(),
            consequence: "the port has no SRV record",
        };
        kubernetes_label(port_name).ok_or_else(|| invalid("port name", port_name))?;
        kubernetes_label(protocol).ok_or_else(|| invalid("protocol", protocol))?;
        let underscored =
            |text: &str| Label::from_ascii(&format!("_{}", text.to_ascii_lowercase()));
        let port_label = underscored(port_name).map_err(|_| invalid("port name", port_name))?;
        let protocol_label = underscored(protocol).map_err(|_| invalid("protocol", protocol))?;
        child(&self.service, &protocol_label)
            .and_then(|under_protocol| child(&under_protocol, &port_label))
            .ok_or_else(|| RecordIssue::NameTooLong {
                what: "port",
                value: port_name.to_owned(),
            })
    }

    /// `<label>.<svc>.<ns>.svc.<zone>`, an endpoint's name.
    pub(crate) fn endpoint(&self, label: &Label) -> Option<Name> {
        child(&self.service, label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Name {
        Name::from_ascii("cluster.local.").expect("valid")
    }

    #[test]
    fn kubernetes_labels_are_lowercased_and_checked() {
        let label = kubernetes_label("My-Pet").expect("valid label");
        assert_eq!(label.as_bytes(), b"my-pet");
        for bad in ["", "-a", "a-", "a.b", "a_b", "é", &"a".repeat(64)] {
            assert!(kubernetes_label(bad).is_none(), "{bad:?} accepted");
        }
        assert!(kubernetes_label(&"a".repeat(63)).is_some());
    }

    #[test]
    fn dashed_addresses_follow_coredns() {
        let dashed = |ip: &str| {
            let label = dashed_address(ip.parse().expect("ip")).expect("label");
            String::from_utf8(label.as_bytes().to_vec()).expect("ascii")
        };
        assert_eq!(dashed("10.3.0.1"), "10-3-0-1");
        assert_eq!(dashed("5678:abcd::1"), "5678-abcd--1");
        assert_eq!(dashed("::1"), "--1");
    }

    #[test]
    fn reverse_names_are_full_length() {
        let v4 = reverse("10.3.0.1".parse().expect("ip"));
        assert_eq!(v4.to_ascii(), "1.0.3.10.in-addr.arpa.");
        let v6 = reverse("2001:db8::1".parse().expect("ip"));
        assert_eq!(
            v6.to_ascii(),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
    }

    #[test]
    fn service_names_and_srv_names() {
        let names = ServiceNames::new(&zone(), "Default", "Kubernetes").expect("valid");
        assert_eq!(names.namespace.to_ascii(), "default.svc.cluster.local.");
        assert_eq!(
            names.service.to_ascii(),
            "kubernetes.default.svc.cluster.local."
        );
        let srv = names.srv("HTTPS", "TCP").expect("valid port");
        assert_eq!(
            srv.to_ascii(),
            "_https._tcp.kubernetes.default.svc.cluster.local."
        );
        assert!(names.srv("bad_name", "TCP").is_err());
        assert!(matches!(
            ServiceNames::new(&zone(), "default", "bad.name"),
            Err(RecordIssue::InvalidLabel { .. })
        ));
    }

    #[test]
    fn names_past_the_limit_are_reported_not_panicked() {
        let long_label = "z".repeat(63);
        let long_zone = (0..3).fold(Name::root(), |name, _| {
            child(&name, &Label::from_ascii(&long_label).expect("label")).expect("fits")
        });
        assert!(ServiceNames::new(&long_zone, "default", "kubernetes").is_ok());
        assert!(matches!(
            ServiceNames::new(&long_zone, &long_label, "kubernetes"),
            Err(RecordIssue::NameTooLong { .. })
        ));
    }
}
