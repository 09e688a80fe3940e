//! Pod names `a-b-c-d.<ns>.pod.<zone>`: what a question below `pod.<zone>` asks for, and the
//! address a dashed label spells (CoreDNS's rule, so IPv6 `fd00--1` works as well as IPv4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A question below `pod.<zone>`, from the labels left of `pod`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PodQuestion {
    /// `<ns>.pod.<zone>`: a namespace, an empty non-terminal when pod names resolve.
    Namespace,
    /// `<dashed-address>.<ns>.pod.<zone>`.
    Address(IpAddr),
    /// Anything else: no such name.
    Nothing,
}

/// Classifies the labels between the question's first label and `pod` (leftmost first).
pub(crate) fn pod_question(labels: &[&[u8]]) -> PodQuestion {
    match labels {
        [_namespace] => PodQuestion::Namespace,
        [dashed, _namespace] => {
            dashed_address(dashed).map_or(PodQuestion::Nothing, PodQuestion::Address)
        }
        _ => PodQuestion::Nothing,
    }
}

/// The address a dashed label spells: three dashes and no `--` make IPv4 (`10-3-0-1`), anything
/// else is read as IPv6 with `-` for `:` (`5678-abcd--1`).
pub(crate) fn dashed_address(label: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(label).ok()?;
    let dashes = text.bytes().filter(|b| *b == b'-').count();
    if dashes == 3 && !text.contains("--") {
        text.replace('-', ".")
            .parse::<Ipv4Addr>()
            .ok()
            .map(IpAddr::V4)
    } else {
        text.replace('-', ":")
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashed_labels_round_trip_addresses() {
        for address in ["10.240.0.1", "172.0.0.2", "5678:abcd::1", "fd00::a"] {
            let ip: IpAddr = address.parse().expect("ip");
            let dashed = address.replace(['.', ':'], "-");
            assert_eq!(dashed_address(dashed.as_bytes()), Some(ip), "{dashed}");
        }
    }

    #[test]
    fn non_addresses_are_rejected() {
        for label in [
            "blah",
            "1-2-3",
            "256-0-0-1",
            "01-2-3-4",
            "1-2-3-4-5",
            "1-2-3-4-5-6-7-8-9",
        ] {
            assert_eq!(dashed_address(label.as_bytes()), None, "{label}");
        }
        assert_eq!(dashed_address(&[0xff, b'-']), None);
    }

    #[test]
    fn questions_by_depth() {
        assert_eq!(pod_question(&[b"default"]), PodQuestion::Namespace);
        assert_eq!(
            pod_question(&[b"10-0-0-1", b"default"]),
            PodQuestion::Address("10.0.0.1".parse().expect("ip"))
        );
        assert_eq!(pod_question(&[b"x", b"default"]), PodQuestion::Nothing);
        assert_eq!(
            pod_question(&[b"a", b"10-0-0-1", b"default"]),
            PodQuestion::Nothing
        );
    }
}
