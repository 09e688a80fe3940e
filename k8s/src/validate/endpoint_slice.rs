//! An EndpointSlice checked as the API server's discovery validation does, for the fields a proxy
//! reads: the address type, each endpoint's addresses (1 to 100, of that type), the ports (names
//! unique DNS-1123 labels, numbers 1-65535, TCP/UDP/SCTP) and the size limits (1,000 endpoints, 100
//! ports). SCTP is accepted here, as Kubernetes does; the data path skips it.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::{Checked, NameRule, dns1123_label, dns1123_subdomain, invalid, metadata, port_number};

const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 100;

pub(super) fn validate_endpoint_slice(slice: &EndpointSlice) -> Checked {
    metadata(&slice.metadata, NameRule::Subdomain, true)?;
    let address_ok: fn(&str) -> bool = match slice.address_type.as_str() {
        "IPv4" => |a| a.parse::<Ipv4Addr>().is_ok(),
        "IPv6" => |a| a.parse::<Ipv6Addr>().is_ok(),
        "FQDN" => |a| dns1123_subdomain(a).is_ok(),
        "" => return Err(invalid("addressType", "is required")),
        other => {
            return Err(invalid(
                "addressType",
                format!("must be IPv4, IPv6 or FQDN, got {other:?}"),
            ));
        }
    };
    let endpoints = slice.endpoints.as_deref().unwrap_or_default();
    if endpoints.len() > MAX_ENDPOINTS {
        return Err(invalid(
            "endpoints",
            format!("must have at most {MAX_ENDPOINTS} items"),
        ));
    }
    for (i, endpoint) in endpoints.iter().enumerate() {
        let field = format!("endpoints[{i}].addresses");
        if endpoint.addresses.is_empty() || endpoint.addresses.len() > MAX_ADDRESSES {
            return Err(invalid(
                field,
                format!("must have 1 to {MAX_ADDRESSES} items"),
            ));
        }
        for (j, address) in endpoint.addresses.iter().enumerate() {
            if !address_ok(address) {
                return Err(invalid(
                    format!("{field}[{j}]"),
                    format!("{address:?} is no {} address", slice.address_type),
                ));
            }
        }
    }
    let ports = slice.ports.as_deref().unwrap_or_default();
    if ports.len() > MAX_PORTS {
        return Err(invalid(
            "ports",
            format!("must have at most {MAX_PORTS} items"),
        ));
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let field = format!("ports[{i}]");
        let name = port.name.as_deref().unwrap_or_default();
        if !name.is_empty() {
            dns1123_label(name).map_err(|why| invalid(format!("{field}.name"), why))?;
        }
        if !names.insert(name) {
            return Err(invalid(
                format!("{field}.name"),
                format!("{name:?} is a duplicate"),
            ));
        }
        if let Some(number) = port.port {
            port_number(number, &format!("{field}.port"))?;
        }
        match port.protocol.as_deref() {
            None | Some("TCP" | "UDP" | "SCTP") => {}
            Some(other) => {
                return Err(invalid(
                    format!("{field}.protocol"),
                    format!("must be TCP, UDP or SCTP, got {other:?}"),
                ));
            }
        }
    }
    Ok(())
}
