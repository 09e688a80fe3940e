//! ClusterIP allocation, as the Kubernetes API server does it when a Service is created: headless
//! and ExternalName Services get none, an explicitly requested `spec.clusterIP` is honoured if it
//! lies in the service CIDR and is free, and otherwise the lowest free address from `.10` up is
//! taken (the API server picks at random; the lab prefers stable, predictable addresses).
//!
//! The service CIDR is [`SERVICE_CIDR`]; `.1` is left for the `kubernetes` Service by convention
//! and addresses `.2`–`.9` can only be had by asking for them explicitly. NodePorts are not
//! allocated here.

use std::{collections::BTreeSet, net::Ipv4Addr};

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};

use crate::manifests::DEFAULT_NAMESPACE;

/// The lab's service CIDR (the API server's `--service-cluster-ip-range`).
pub const SERVICE_CIDR: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 96, 0, 0), 16);

/// Offset in the CIDR of the first address handed out automatically.
const FIRST_DYNAMIC_OFFSET: u32 = 10;

/// Why a Service cannot get the ClusterIP it asks for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterIpError {
    #[error(
        "service {service}: spec.clusterIP {value:?} is not an IPv4 address (the lab is IPv4-only)"
    )]
    Invalid { service: String, value: String },
    #[error(
        "service {service}: spec.clusterIPs {ips:?} asks for more than one address (the lab is IPv4 single-stack)"
    )]
    DualStack { service: String, ips: Vec<String> },
    #[error(
        "service {service}: spec.clusterIP {cluster_ip:?} and spec.clusterIPs[0] {first:?} must be equal"
    )]
    Mismatch {
        service: String,
        cluster_ip: String,
        first: String,
    },
    #[error("service {service}: spec.clusterIP {ip} is not in the service CIDR {cidr}")]
    OutOfRange {
        service: String,
        ip: Ipv4Addr,
        cidr: Ipv4Net,
    },
    #[error(
        "service {service}: spec.clusterIP {ip} is the {what} address of the service CIDR {cidr}"
    )]
    Reserved {
        service: String,
        ip: Ipv4Addr,
        what: &'static str,
        cidr: Ipv4Net,
    },
    #[error("service {service}: spec.clusterIP {ip} is already allocated to another service")]
    InUse { service: String, ip: Ipv4Addr },
    #[error("service {service}: no free ClusterIP left in the service CIDR {cidr}")]
    Exhausted { service: String, cidr: Ipv4Net },
}

/// Hands out ClusterIPs from a service CIDR, never the same one twice.
#[derive(Debug, Clone)]
pub struct ClusterIpAllocator {
    cidr: Ipv4Net,
    used: BTreeSet<Ipv4Addr>,
}

/// What a Service's spec asks for.
enum Request {
    /// `clusterIP: None`.
    Headless,
    /// A specific address.
    Ip(Ipv4Addr),
    /// Nothing in particular.
    Any,
}

impl ClusterIpAllocator {
    /// An allocator over [`SERVICE_CIDR`] where the addresses in `used` are taken.
    pub fn new(used: impl IntoIterator<Item = Ipv4Addr>) -> Self {
        Self::with_cidr(SERVICE_CIDR, used)
    }

    /// An allocator over `cidr` (host bits are ignored) where the addresses in `used` are taken.
    pub fn with_cidr(cidr: Ipv4Net, used: impl IntoIterator<Item = Ipv4Addr>) -> Self {
        Self {
            cidr: cidr.trunc(),
            used: used.into_iter().collect(),
        }
    }

    /// An allocator over [`SERVICE_CIDR`] where the ClusterIPs already assigned to `services`
    /// are taken. When re-applying a Service, leave that Service itself out (or
    /// [`release`](Self::release) its address) so it can keep its own address.
    pub fn from_services<'a>(services: impl IntoIterator<Item = &'a Service>) -> Self {
        Self::new(services.into_iter().flat_map(assigned_ips))
    }

    /// The CIDR addresses come from.
    pub fn cidr(&self) -> Ipv4Net {
        self.cidr
    }

    /// Whether `ip` is taken.
    pub fn is_used(&self, ip: Ipv4Addr) -> bool {
        self.used.contains(&ip)
    }

    /// Makes `ip` free again (when its Service is deleted).
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&ip);
    }

    /// The ClusterIP for `service`, now taken: `None` for headless (`clusterIP: None`) and
    /// ExternalName Services; the requested `spec.clusterIP` (or `spec.clusterIPs[0]`) if set;
    /// else the lowest free address from `.10` up. Use [`assign`] to write it into the Service.
    pub fn allocate(&mut self, service: &Service) -> Result<Option<Ipv4Addr>, ClusterIpError> {
        let spec = service.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            return Ok(None);
        }
        let id = service_id(service);
        match request(spec, &id)? {
            Request::Headless => Ok(None),
            Request::Ip(ip) => {
                self.check_requested(ip, &id)?;
                self.used.insert(ip);
                Ok(Some(ip))
            }
            Request::Any => {
                let ip = self.lowest_free().ok_or(ClusterIpError::Exhausted {
                    service: id,
                    cidr: self.cidr,
                })?;
                self.used.insert(ip);
                Ok(Some(ip))
            }
        }
    }

    fn check_requested(&self, ip: Ipv4Addr, id: &str) -> Result<(), ClusterIpError> {
        let cidr = self.cidr;
        if !cidr.contains(&ip) {
            return Err(ClusterIpError::OutOfRange {
                service: id.to_owned(),
                ip,
                cidr,
            });
        }
        // /31 and /32 have neither (RFC 3021); the API server reserves them otherwise.
        if cidr.prefix_len() < 31 {
            let what = if ip == cidr.network() {
                Some("network")
            } else if ip == cidr.broadcast() {
                Some("broadcast")
            } else {
                None
            };
            if let Some(what) = what {
                return Err(ClusterIpError::Reserved {
                    service: id.to_owned(),
                    ip,
                    what,
                    cidr,
                });
            }
        }
        if self.used.contains(&ip) {
            return Err(ClusterIpError::InUse {
                service: id.to_owned(),
                ip,
            });
        }
        Ok(())
    }

    /// The lowest free address in `[network + 10, broadcast)`.
    fn lowest_free(&self) -> Option<Ipv4Addr> {
        let start = u32::from(self.cidr.network()).checked_add(FIRST_DYNAMIC_OFFSET)?;
        let end = u32::from(self.cidr.broadcast());
        (start..end)
            .map(Ipv4Addr::from)
            .find(|ip| !self.used.contains(ip))
    }
}

/// Writes `ip` into `service` as the API server does: `spec.clusterIP`, `spec.clusterIPs`, and,
/// when unset, `spec.ipFamilies: [IPv4]` and `spec.ipFamilyPolicy: SingleStack`.
pub fn assign(service: &mut Service, ip: Ipv4Addr) {
    let spec = service.spec.get_or_insert_with(ServiceSpec::default);
    spec.cluster_ip = Some(ip.to_string());
    spec.cluster_ips = Some(vec![ip.to_string()]);
    spec.ip_families
        .get_or_insert_with(|| vec!["IPv4".to_owned()]);
    spec.ip_family_policy
        .get_or_insert_with(|| "SingleStack".to_owned());
}

/// `namespace/name` of a Service, with the default namespace filled in.
fn service_id(service: &Service) -> String {
    format!(
        "{}/{}",
        service
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE),
        service.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The IPv4 ClusterIPs a Service already holds.
fn assigned_ips(service: &Service) -> Vec<Ipv4Addr> {
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    let mut ips: Vec<Ipv4Addr> = spec
        .cluster_ip
        .iter()
        .chain(spec.cluster_ips.iter().flatten())
        .filter_map(|s| s.parse().ok())
        .collect();
    ips.dedup();
    ips
}

fn request(spec: Option<&ServiceSpec>, id: &str) -> Result<Request, ClusterIpError> {
    let cluster_ip = spec
        .and_then(|s| s.cluster_ip.as_deref())
        .filter(|s| !s.is_empty());
    let ips = spec
        .and_then(|s| s.cluster_ips.as_deref())
        .unwrap_or_default();
    if ips.len() > 1 {
        return Err(ClusterIpError::DualStack {
            service: id.to_owned(),
            ips: ips.to_vec(),
        });
    }
    let first = ips.first().map(String::as_str).filter(|s| !s.is_empty());
    if let (Some(cluster_ip), Some(first)) = (cluster_ip, first)
        && cluster_ip != first
    {
        return Err(ClusterIpError::Mismatch {
            service: id.to_owned(),
            cluster_ip: cluster_ip.to_owned(),
            first: first.to_owned(),
        });
    }
    match cluster_ip.or(first) {
        None => Ok(Request::Any),
        Some("None") => Ok(Request::Headless),
        Some(value) => value
            .parse()
            .map(Request::Ip)
            .map_err(|_| ClusterIpError::Invalid {
                service: id.to_owned(),
                value: value.to_owned(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn service(name: &str, type_: Option<&str>, cluster_ip: Option<&str>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("shop".to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: type_.map(str::to_owned),
                cluster_ip: cluster_ip.map(str::to_owned),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_lowest_free_from_dot_ten() {
        let mut alloc = ClusterIpAllocator::new([ip("10.96.0.11"), ip("10.96.0.1")]);
        let a = alloc.allocate(&service("a", None, None)).unwrap();
        let b = alloc
            .allocate(&service("b", Some("NodePort"), None))
            .unwrap();
        let c = alloc
            .allocate(&service("c", Some("ClusterIP"), Some("")))
            .unwrap();
        assert_eq!(a, Some(ip("10.96.0.10")));
        assert_eq!(b, Some(ip("10.96.0.12")));
        assert_eq!(c, Some(ip("10.96.0.13")));
        alloc.release(ip("10.96.0.10"));
        assert!(!alloc.is_used(ip("10.96.0.10")));
        let d = alloc.allocate(&service("d", None, None)).unwrap();
        assert_eq!(d, Some(ip("10.96.0.10")));
    }

    #[test]
    fn never_hands_out_network_broadcast_or_low_addresses() {
        // 10.0.0.0/28: .10 .. .14 are dynamic; .15 is broadcast.
        let cidr: Ipv4Net = "10.0.0.0/28".parse().unwrap();
        let mut alloc = ClusterIpAllocator::with_cidr(cidr, []);
        let got: Vec<_> = (0..5)
            .map(|i| {
                alloc
                    .allocate(&service(&format!("s{i}"), None, None))
                    .unwrap()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            got,
            [
                "10.0.0.10",
                "10.0.0.11",
                "10.0.0.12",
                "10.0.0.13",
                "10.0.0.14"
            ]
            .map(ip)
        );
        let err = alloc.allocate(&service("full", None, None)).unwrap_err();
        assert_eq!(
            err,
            ClusterIpError::Exhausted {
                service: "shop/full".into(),
                cidr
            }
        );
        assert!(err.to_string().contains("shop/full"), "{err}");
        // The low band is still available on request.
        let low = alloc
            .allocate(&service("dns", None, Some("10.0.0.2")))
            .unwrap();
        assert_eq!(low, Some(ip("10.0.0.2")));
    }

    #[test]
    fn explicit_ip_in_range_is_honoured_and_taken() {
        let mut alloc = ClusterIpAllocator::new([]);
        let got = alloc
            .allocate(&service("dns", None, Some("10.96.0.10")))
            .unwrap();
        assert_eq!(got, Some(ip("10.96.0.10")));
        // The next dynamic allocation skips it.
        let next = alloc.allocate(&service("web", None, None)).unwrap();
        assert_eq!(next, Some(ip("10.96.0.11")));
        // .1 may be requested explicitly (the `kubernetes` Service).
        let k = alloc
            .allocate(&service("kubernetes", None, Some("10.96.0.1")))
            .unwrap();
        assert_eq!(k, Some(ip("10.96.0.1")));
    }

    #[test]
    fn explicit_ip_out_of_range_is_rejected() {
        let mut alloc = ClusterIpAllocator::new([]);
        let err = alloc
            .allocate(&service("web", None, Some("10.97.0.5")))
            .unwrap_err();
        assert!(matches!(err, ClusterIpError::OutOfRange { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("shop/web") && msg.contains("10.97.0.5") && msg.contains("10.96.0.0/16"),
            "{msg}"
        );
        assert!(!alloc.is_used(ip("10.97.0.5")));

        for (addr, what) in [("10.96.0.0", "network"), ("10.96.255.255", "broadcast")] {
            let err = alloc
                .allocate(&service("web", None, Some(addr)))
                .unwrap_err();
            assert!(
                matches!(err, ClusterIpError::Reserved { what: w, .. } if w == what),
                "{err:?}"
            );
        }
        let err = alloc
            .allocate(&service("web", None, Some("fd00::1")))
            .unwrap_err();
        assert!(matches!(err, ClusterIpError::Invalid { .. }), "{err:?}");
    }

    #[test]
    fn explicit_duplicate_is_rejected() {
        let mut alloc = ClusterIpAllocator::new([]);
        alloc
            .allocate(&service("a", None, Some("10.96.3.4")))
            .unwrap();
        let err = alloc
            .allocate(&service("b", None, Some("10.96.3.4")))
            .unwrap_err();
        assert_eq!(
            err,
            ClusterIpError::InUse {
                service: "shop/b".into(),
                ip: ip("10.96.3.4")
            }
        );
        assert!(err.to_string().contains("shop/b"), "{err}");
    }

    #[test]
    fn headless_and_external_name_get_none() {
        let mut alloc = ClusterIpAllocator::new([]);
        assert_eq!(
            alloc.allocate(&service("h", None, Some("None"))).unwrap(),
            None
        );
        assert_eq!(
            alloc
                .allocate(&service("x", Some("ExternalName"), None))
                .unwrap(),
            None
        );
        let mut headless = service("h2", None, None);
        headless.spec.as_mut().unwrap().cluster_ips = Some(vec!["None".into()]);
        assert_eq!(alloc.allocate(&headless).unwrap(), None);
        // Nothing was taken.
        assert_eq!(
            alloc.allocate(&service("a", None, None)).unwrap(),
            Some(ip("10.96.0.10"))
        );
    }

    #[test]
    fn cluster_ips_are_checked_against_cluster_ip() {
        let mut alloc = ClusterIpAllocator::new([]);
        let mut svc = service("a", None, None);
        svc.spec.as_mut().unwrap().cluster_ips = Some(vec!["10.96.1.1".into()]);
        assert_eq!(alloc.allocate(&svc).unwrap(), Some(ip("10.96.1.1")));

        let mut svc = service("b", None, Some("10.96.1.2"));
        svc.spec.as_mut().unwrap().cluster_ips = Some(vec!["10.96.1.3".into()]);
        let err = alloc.allocate(&svc).unwrap_err();
        assert!(matches!(err, ClusterIpError::Mismatch { .. }), "{err:?}");

        let mut svc = service("c", None, None);
        svc.spec.as_mut().unwrap().cluster_ips = Some(vec!["10.96.1.4".into(), "fd00::4".into()]);
        let err = alloc.allocate(&svc).unwrap_err();
        assert!(matches!(err, ClusterIpError::DualStack { .. }), "{err:?}");
    }

    #[test]
    fn assign_sets_cluster_ip_fields() {
        let mut svc = service("a", None, None);
        assign(&mut svc, ip("10.96.0.10"));
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
        assert_eq!(spec.cluster_ips, Some(vec!["10.96.0.10".to_owned()]));
        assert_eq!(spec.ip_families, Some(vec!["IPv4".to_owned()]));
        assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));

        let mut bare = Service::default();
        assign(&mut bare, ip("10.96.0.11"));
        assert_eq!(bare.spec.unwrap().cluster_ip.as_deref(), Some("10.96.0.11"));
    }

    #[test]
    fn from_services_takes_assigned_addresses() {
        let mut a = service("a", None, None);
        assign(&mut a, ip("10.96.0.10"));
        let headless = service("h", None, Some("None"));
        let mut alloc = ClusterIpAllocator::from_services([&a, &headless]);
        assert!(alloc.is_used(ip("10.96.0.10")));
        assert_eq!(
            alloc.allocate(&service("b", None, None)).unwrap(),
            Some(ip("10.96.0.11"))
        );
        assert_eq!(alloc.cidr(), SERVICE_CIDR);
    }
}
