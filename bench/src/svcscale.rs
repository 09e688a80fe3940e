//! The testable parts of the `svcscale` benchmark: the synthetic Services and EndpointSlices it publishes
//! (as one multi-document YAML file or one file of concatenated JSON values), and the readers for what
//! it observes — the agent's `services synced` log lines and `/proc/<pid>/status` memory fields.
//!
//! Synthetic objects live in their own namespace, with ClusterIPs counted upward from 10.97.0.1 (the lab
//! allocates from 10.96.0.0/16, so they never collide with a real Service) and endpoint addresses from
//! 10.250.0.1 upward (nothing answers there; the benchmark never connects to them).

use std::{collections::BTreeMap, fmt, net::Ipv4Addr};

use k8s_openapi::{
    api::{
        core::v1::{Service, ServicePort, ServiceSpec},
        discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice},
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};

/// Namespace of the synthetic objects.
pub const NAMESPACE: &str = "svcscale";
/// First synthetic ClusterIP.
pub const FIRST_VIP: Ipv4Addr = Ipv4Addr::new(10, 97, 0, 1);
/// First synthetic endpoint address.
pub const FIRST_ENDPOINT: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);
/// First endpoint address of the service changed by [`Variant::Changed`].
pub const FIRST_CHANGED_ENDPOINT: Ipv4Addr = Ipv4Addr::new(10, 249, 0, 1);
/// Service port of every synthetic service.
pub const SERVICE_PORT: i32 = 80;
/// Endpoint port of every synthetic endpoint.
pub const ENDPOINT_PORT: i32 = 8080;
/// Most synthetic services (their VIPs stay inside 10.97.0.0/16, and the data path's service map holds
/// 65,536 frontends).
pub const MAX_SERVICES: usize = 60_000;
/// Most synthetic backends in all (the data path's slot map holds 262,144).
pub const MAX_BACKENDS: usize = 200_000;

/// The file format the objects are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One multi-document YAML file (`---` separators).
    Yaml,
    /// One file of concatenated JSON values, one per line.
    Json,
    /// One JSON file per object, as the lab's control plane writes them.
    Files,
}

impl Format {
    /// The file name the benchmark publishes under.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Yaml => "bench-services.yaml",
            Self::Json | Self::Files => "bench-services.json",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Yaml => "yaml",
            Self::Json => "json",
            Self::Files => "files",
        })
    }
}

/// Which version of the object set to produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Every service with its original endpoints.
    Original,
    /// Service `index` with every endpoint address replaced; all others as in [`Variant::Original`].
    Changed(usize),
}

fn offset(base: Ipv4Addr, by: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base).wrapping_add(u32::try_from(by).unwrap_or(u32::MAX)))
}

/// ClusterIP of synthetic service `index` (0-based).
pub fn vip(index: usize) -> Ipv4Addr {
    offset(FIRST_VIP, index)
}

/// Address of endpoint `endpoint` of synthetic service `index`, `per_service` endpoints each.
pub fn endpoint_ip(
    index: usize,
    endpoint: usize,
    per_service: usize,
    variant: Variant,
) -> Ipv4Addr {
    let base = match variant {
        Variant::Changed(changed) if changed == index => FIRST_CHANGED_ENDPOINT,
        _ => FIRST_ENDPOINT,
    };
    offset(base, index * per_service + endpoint)
}

/// Name of synthetic service `index`.
pub fn service_name(index: usize) -> String {
    format!("svc-{index:05}")
}

/// Synthetic ClusterIP Service `index`: one TCP port 80 -> 8080 named `http`.
pub fn service(index: usize) -> Service {
    let name = service_name(index);
    let ip = vip(index).to_string();
    Service {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(NAMESPACE.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            cluster_ip: Some(ip.clone()),
            cluster_ips: Some(vec![ip]),
            selector: Some(BTreeMap::from([("app".to_owned(), name)])),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: SERVICE_PORT,
                target_port: Some(IntOrString::Int(ENDPOINT_PORT)),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The EndpointSlice of synthetic service `index`: `per_service` ready endpoints on port 8080.
pub fn endpoint_slice(index: usize, per_service: usize, variant: Variant) -> EndpointSlice {
    let name = service_name(index);
    let endpoints = (0..per_service)
        .map(|e| Endpoint {
            addresses: vec![endpoint_ip(index, e, per_service, variant).to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            ..Endpoint::default()
        })
        .collect();
    EndpointSlice {
        address_type: "IPv4".to_owned(),
        endpoints: Some(endpoints),
        metadata: ObjectMeta {
            name: Some(format!("{name}-bench")),
            namespace: Some(NAMESPACE.to_owned()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/service-name".to_owned(), name),
                (
                    "endpointslice.kubernetes.io/managed-by".to_owned(),
                    "svcscale".to_owned(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        ports: Some(vec![EndpointPort {
            name: Some("http".to_owned()),
            port: Some(ENDPOINT_PORT),
            protocol: Some("TCP".to_owned()),
            ..EndpointPort::default()
        }]),
    }
}

/// The whole file: `services` Services, each followed by its EndpointSlice.
pub fn manifest(
    services: usize,
    per_service: usize,
    variant: Variant,
    format: Format,
) -> Result<String, String> {
    let mut out = String::with_capacity(services * 900);
    for index in 0..services {
        let service = service(index);
        let slice = endpoint_slice(index, per_service, variant);
        match format {
            Format::Yaml => {
                for document in [
                    serde_yaml_ng::to_string(&service),
                    serde_yaml_ng::to_string(&slice),
                ] {
                    out.push_str("---\n");
                    out.push_str(&document.map_err(|e| e.to_string())?);
                }
            }
            Format::Json | Format::Files => {
                for document in [
                    serde_json::to_string(&service),
                    serde_json::to_string(&slice),
                ] {
                    out.push_str(&document.map_err(|e| e.to_string())?);
                    out.push('\n');
                }
            }
        }
    }
    Ok(out)
}

/// The objects as one JSON file each: (file name, contents), a Service and its EndpointSlice per index.
/// With `only` set, just the files of that service index.
pub fn object_files(
    services: usize,
    per_service: usize,
    variant: Variant,
    only: Option<usize>,
) -> Result<Vec<(String, String)>, String> {
    let indices = match only {
        Some(index) => index..index + 1,
        None => 0..services,
    };
    let mut out = Vec::with_capacity(indices.len() * 2);
    for index in indices {
        let name = service_name(index);
        let service = serde_json::to_string(&service(index)).map_err(|e| e.to_string())?;
        let slice = serde_json::to_string(&endpoint_slice(index, per_service, variant))
            .map_err(|e| e.to_string())?;
        out.push((format!("bench-svc-{name}.json"), service));
        out.push((format!("bench-slice-{name}.json"), slice));
    }
    Ok(out)
}

/// One `services synced` line of the agent's log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncLine {
    /// When the line was logged (the sync had just finished), in ms since the epoch.
    pub at_ms: Option<u64>,
    pub frontends: u64,
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
    pub unchanged: u64,
    /// How long the agent's kernel-map sync took (the diff and map writes; not reading or parsing).
    pub took_ms: u64,
    /// From the agent hearing of the change (inotify, watch event) to its last map write, µs.
    pub latency_us: u64,
}

/// Every `services synced` line of the agent's log `log` written after `offset` (none when it cannot
/// be read).
pub fn sync_lines(log: &std::path::Path, offset: u64) -> Vec<SyncLine> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let Ok(mut file) = std::fs::File::open(log) else {
        return Vec::new();
    };
    if file.seek(SeekFrom::Start(offset)).is_err() {
        return Vec::new();
    }
    let mut text = String::new();
    if file.read_to_string(&mut text).is_err() {
        return Vec::new();
    }
    text.lines().filter_map(parse_sync_line).collect()
}

/// Parses a `services synced` line of the agent's text log (`<RFC 3339 time>  INFO target: services
/// synced frontends=.. added=.. updated=.. removed=.. unchanged=.. took_ms=..`).
pub fn parse_sync_line(line: &str) -> Option<SyncLine> {
    if !line.contains("services synced") {
        return None;
    }
    let fields: BTreeMap<&str, u64> = line
        .split_whitespace()
        .filter_map(|word| {
            let (key, value) = word.split_once('=')?;
            Some((key, value.parse().ok()?))
        })
        .collect();
    let field = |name: &str| fields.get(name).copied();
    Some(SyncLine {
        at_ms: line.split_whitespace().next().and_then(rfc3339_utc_ms),
        frontends: field("frontends")?,
        added: field("added").unwrap_or_default(),
        updated: field("updated").unwrap_or_default(),
        removed: field("removed").unwrap_or_default(),
        unchanged: field("unchanged").unwrap_or_default(),
        took_ms: field("took_ms")?,
        latency_us: field("latency_us").unwrap_or_default(),
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` as ms since the epoch.
pub fn rfc3339_utc_ms(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock = clock.splitn(3, ':').map(str::parse::<i64>);
    let (hour, minute, second) = (
        clock.next()?.ok()?,
        clock.next()?.ok()?,
        clock.next()?.ok()?,
    );
    let millis: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<3}")[..3].parse().ok()?
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis;
    u64::try_from(ms).ok()
}

/// A `kB` field of `/proc/<pid>/status` (e.g. `VmRSS`), in KiB.
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_count_upward_and_only_the_changed_service_moves() {
        assert_eq!(vip(0), Ipv4Addr::new(10, 97, 0, 1));
        assert_eq!(vip(9_999), Ipv4Addr::new(10, 97, 39, 16));
        assert_eq!(vip(MAX_SERVICES), Ipv4Addr::new(10, 97, 234, 97));
        assert_eq!(
            endpoint_ip(2, 1, 3, Variant::Original),
            Ipv4Addr::new(10, 250, 0, 8)
        );
        assert_eq!(
            endpoint_ip(2, 1, 3, Variant::Changed(2)),
            Ipv4Addr::new(10, 249, 0, 8)
        );
        assert_eq!(
            endpoint_ip(3, 1, 3, Variant::Changed(2)),
            Ipv4Addr::new(10, 250, 0, 11)
        );
    }

    #[test]
    fn manifests_in_both_formats_hold_a_service_and_a_slice_per_index() {
        let yaml = manifest(2, 3, Variant::Original, Format::Yaml).unwrap();
        assert_eq!(yaml.matches("---\n").count(), 4);
        assert_eq!(yaml.matches("kind: Service\n").count(), 2);
        assert_eq!(yaml.matches("kind: EndpointSlice\n").count(), 2);
        assert!(yaml.contains("clusterIP: 10.97.0.2"));
        assert!(yaml.contains("10.250.0.6"));
        let json = manifest(2, 3, Variant::Changed(1), Format::Json).unwrap();
        let values: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(values.len(), 4);
        assert_eq!(values[1]["kind"], "EndpointSlice");
        assert_eq!(
            values[1]["metadata"]["labels"]["kubernetes.io/service-name"],
            "svc-00000"
        );
        assert_eq!(values[3]["endpoints"][2]["addresses"][0], "10.249.0.6");
        assert_eq!(values[2]["spec"]["ports"][0]["targetPort"], 8080);
    }

    #[test]
    fn object_files_hold_one_object_each_and_only_the_changed_service_when_asked() {
        let all = object_files(3, 2, Variant::Original, None).unwrap();
        assert_eq!(all.len(), 6);
        assert!(all.iter().all(|(name, text)| {
            name.starts_with("bench-")
                && std::path::Path::new(name).extension() == Some("json".as_ref())
                && text.starts_with('{')
        }));
        let names: std::collections::BTreeSet<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.len(), 6, "names are unique");
        let one = object_files(3, 2, Variant::Changed(1), Some(1)).unwrap();
        assert_eq!(one.len(), 2);
        assert_eq!(one[0], all[2], "the Service itself is unchanged");
        assert_eq!(one[1].0, all[3].0);
        assert_ne!(one[1].1, all[3].1, "its slice has new addresses");
    }

    #[test]
    fn reads_the_agents_sync_line() {
        let line = "2025-03-01T12:00:01.234567Z  INFO strait_control::services: services synced \
                    frontends=10001 added=10000 updated=0 removed=0 unchanged=1 events=20002 \
                    services=10000 took_ms=812 latency_us=431250";
        assert_eq!(
            parse_sync_line(line),
            Some(SyncLine {
                at_ms: Some(1_740_830_401_234),
                frontends: 10_001,
                added: 10_000,
                updated: 0,
                removed: 0,
                unchanged: 1,
                took_ms: 812,
                latency_us: 431_250,
            })
        );
        assert_eq!(
            parse_sync_line("2025-03-01T12:00:01Z  INFO agent started"),
            None
        );
        assert_eq!(rfc3339_utc_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_utc_ms("2000-02-29T00:00:00.5Z"),
            Some(951_782_400_500)
        );
        assert_eq!(rfc3339_utc_ms("yesterday"), None);
    }

    #[test]
    fn reads_status_fields() {
        let status = "Name:\tstraitd\nVmHWM:\t   20480 kB\nVmRSS:\t   12345 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(12_345));
        assert_eq!(status_kib(status, "VmHWM"), Some(20_480));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }
}
