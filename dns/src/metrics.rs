//! What the DNS server counts, and its Prometheus text under CoreDNS's metric names
//! (`coredns_dns_requests_total`, `coredns_dns_responses_total`,
//! `coredns_dns_request_duration_seconds`, `coredns_cache_hits_total`, `coredns_cache_misses_total`,
//! `coredns_forward_max_concurrent_rejects_total`), so dashboards made for CoreDNS work; strait's own
//! additions are `strait_dns_*`.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use hickory_proto::{op::ResponseCode, rr::RecordType};

use crate::forward::ForwardCounters;

/// The query types CoreDNS labels by name; anything else is `other`.
const TYPES: [RecordType; 8] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::SRV,
    RecordType::PTR,
    RecordType::TXT,
    RecordType::CNAME,
    RecordType::SOA,
    RecordType::NS,
];
const OTHER: usize = TYPES.len();

/// The response codes counted by name, in order; anything else is counted as `other`.
const RCODES: [ResponseCode; 6] = [
    ResponseCode::NoError,
    ResponseCode::FormErr,
    ResponseCode::ServFail,
    ResponseCode::NXDomain,
    ResponseCode::NotImp,
    ResponseCode::Refused,
];
const RCODE_LABELS: [&str; 7] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other",
];

/// CoreDNS's request duration buckets: 0.25 ms doubling to 8.192 s.
const BUCKETS: usize = 16;

fn bucket_bound(i: usize) -> f64 {
    0.000_25 * f64::from(1_u32 << i)
}

/// The transports a request arrives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Counters of the server, updated per request.
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// [transport][type].
    requests: [[AtomicU64; OTHER + 1]; 2],
    responses: [AtomicU64; RCODE_LABELS.len()],
    /// Responses per bucket alone (the first bound at or above the time), summed when rendered:
    /// one increment per response.
    duration_buckets: [AtomicU64; BUCKETS],
    duration_count: AtomicU64,
    duration_sum_ns: AtomicU64,
}

impl ServerCounters {
    /// A request of type `qtype` arrived over `transport` (`None`: no single question).
    pub fn request(&self, transport: Transport, qtype: Option<RecordType>) {
        let t = qtype
            .and_then(|q| TYPES.iter().position(|known| *known == q))
            .unwrap_or(OTHER);
        self.requests[transport as usize][t].fetch_add(1, Ordering::Relaxed);
    }

    /// A response with `code` was sent after `took`.
    pub fn response(&self, code: ResponseCode, took: Duration) {
        let r = RCODES
            .iter()
            .position(|known| *known == code)
            .unwrap_or(RCODES.len());
        self.responses[r].fetch_add(1, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        if let Some(bucket) = (0..BUCKETS).find(|&i| seconds <= bucket_bound(i)) {
            self.duration_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.duration_sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Responses sent with `code` so far.
    pub fn responses(&self, code: ResponseCode) -> u64 {
        let r = RCODES
            .iter()
            .position(|known| *known == code)
            .unwrap_or(RCODES.len());
        self.responses[r].load(Ordering::Relaxed)
    }
}

/// What a scrape shows of the DNS server: its counters, the forwarder's and the zone's size.
pub struct DnsScrape<'a> {
    /// CoreDNS's `server` label, `dns://IP:PORT`.
    pub server: &'a str,
    pub counters: &'a ServerCounters,
    pub forward: &'a ForwardCounters,
    pub zone_records: usize,
    pub cache_entries: usize,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

impl DnsScrape<'_> {
    /// Appends the Prometheus text.
    pub fn render(&self, out: &mut String) {
        let server = self.server;
        family(
            out,
            "coredns_dns_requests_total",
            "counter",
            "DNS requests received by the node's cluster DNS server, by transport and query type.",
        );
        for (transport, proto) in [(0, "udp"), (1, "tcp")] {
            for (t, counter) in self.counters.requests[transport].iter().enumerate() {
                let qtype = TYPES.get(t).map_or("other".to_owned(), ToString::to_string);
                let _ = writeln!(
                    out,
                    "coredns_dns_requests_total{{server=\"{server}\",zone=\".\",view=\"\",proto=\"{proto}\",family=\"1\",type=\"{qtype}\"}} {}",
                    counter.load(Ordering::Relaxed)
                );
            }
        }
        family(
            out,
            "coredns_dns_responses_total",
            "counter",
            "DNS responses sent, by response code.",
        );
        for (label, counter) in RCODE_LABELS.iter().zip(&self.counters.responses) {
            let _ = writeln!(
                out,
                "coredns_dns_responses_total{{server=\"{server}\",zone=\".\",view=\"\",rcode=\"{label}\",plugin=\"\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        self.render_duration(out);
        self.render_forward(out);
    }

    fn render_duration(&self, out: &mut String) {
        let server = self.server;
        let name = "coredns_dns_request_duration_seconds";
        family(
            out,
            name,
            "histogram",
            "Time from a request's arrival to its response being ready to send (UDP answers leave in the batch's one sendmmsg), seconds.",
        );
        let labels = format!("server=\"{server}\",zone=\".\",view=\"\",type=\"all\"");
        let mut cumulative = 0;
        for (i, bucket) in self.counters.duration_buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{}\"}} {cumulative}",
                bucket_bound(i),
            );
        }
        let count = self.counters.duration_count.load(Ordering::Relaxed);
        let sum = Duration::from_nanos(self.counters.duration_sum_ns.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", sum.as_secs_f64());
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }

    fn render_forward(&self, out: &mut String) {
        let server = self.server;
        let f = self.forward;
        let counters: [(&str, &str, &str, &AtomicU64); 6] = [
            (
                "coredns_cache_hits_total",
                "counter",
                "Forwarded questions answered from the cache.",
                &f.cache_hits,
            ),
            (
                "coredns_cache_misses_total",
                "counter",
                "Forwarded questions the cache could not answer.",
                &f.cache_misses,
            ),
            (
                "coredns_forward_max_concurrent_rejects_total",
                "counter",
                "Questions refused because the most allowed were in flight upstream.",
                &f.max_concurrent_rejects,
            ),
            (
                "strait_dns_upstream_requests_total",
                "counter",
                "Questions sent to an upstream server.",
                &f.upstream_requests,
            ),
            (
                "strait_dns_upstream_failures_total",
                "counter",
                "Questions an upstream did not answer in time (or answered with garbage).",
                &f.upstream_failures,
            ),
            (
                "strait_dns_upstream_tcp_retries_total",
                "counter",
                "Truncated upstream answers asked again over TCP.",
                &f.tcp_retries,
            ),
        ];
        for (name, kind, help, counter) in counters {
            family(out, name, kind, help);
            let _ = writeln!(
                out,
                "{name}{{server=\"{server}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        for (name, help, value) in [
            (
                "coredns_cache_entries",
                "Forwarded answers in the cache.",
                self.cache_entries,
            ),
            (
                "strait_dns_zone_records",
                "Records in the cluster zone this node answers.",
                self.zone_records,
            ),
        ] {
            family(out, name, "gauge", help);
            let _ = writeln!(out, "{name}{{server=\"{server}\"}} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_responses_and_durations_are_rendered_under_coredns_names() {
        let counters = ServerCounters::default();
        counters.request(Transport::Udp, Some(RecordType::A));
        counters.request(Transport::Tcp, Some(RecordType::MX));
        counters.response(ResponseCode::NXDomain, Duration::from_micros(300));
        counters.response(ResponseCode::Unknown(11), Duration::from_secs(20));
        let forward = ForwardCounters::default();
        forward.cache_hits.fetch_add(3, Ordering::Relaxed);
        let mut out = String::new();
        DnsScrape {
            server: "dns://10.0.0.1:53",
            counters: &counters,
            forward: &forward,
            zone_records: 7,
            cache_entries: 2,
        }
        .render(&mut out);
        let has = |line: &str| out.lines().any(|l| l == line);
        assert!(
            has(
                "coredns_dns_requests_total{server=\"dns://10.0.0.1:53\",zone=\".\",view=\"\",proto=\"udp\",family=\"1\",type=\"A\"} 1"
            ),
            "{out}"
        );
        assert!(
            has(
                "coredns_dns_requests_total{server=\"dns://10.0.0.1:53\",zone=\".\",view=\"\",proto=\"tcp\",family=\"1\",type=\"other\"} 1"
            ),
            "{out}"
        );
        assert!(
            has(
                "coredns_dns_responses_total{server=\"dns://10.0.0.1:53\",zone=\".\",view=\"\",rcode=\"NXDOMAIN\",plugin=\"\"} 1"
            ),
            "{out}"
        );
        assert!(
            has(
                "coredns_dns_responses_total{server=\"dns://10.0.0.1:53\",zone=\".\",view=\"\",rcode=\"other\",plugin=\"\"} 1"
            ),
            "{out}"
        );
        // 300 µs is above the first bucket (250 µs) and within the second; 20 s only in +Inf.
        assert!(
            has(
                "coredns_dns_request_duration_seconds_bucket{server=\"dns://10.0.0.1:53\",zone=\".\",view=\"\",type=\"all\",le=\"0.00025\"} 0"
            ),
            "{out}"
        );
        assert!(
            has(
                "coredns_dns_request_duration_seconds_bucket{server=\"dns://10.0.0.1:53\",zone=\".\",view=\"\",type=\"all\",le=\"0.0005\"} 1"
            ),
            "{out}"
        );
        assert!(
            has(
                "coredns_dns_request_duration_seconds_bucket{server=\"dns://10.0.0.1:53\",zone=\".\",view=\"\",type=\"all\",le=\"+Inf\"} 2"
            ),
            "{out}"
        );
        assert!(
            has("coredns_cache_hits_total{server=\"dns://10.0.0.1:53\"} 3"),
            "{out}"
        );
        assert!(
            has("strait_dns_zone_records{server=\"dns://10.0.0.1:53\"} 7"),
            "{out}"
        );
        // Every family has HELP and TYPE.
        let helps = out.lines().filter(|l| l.starts_with("# HELP")).count();
        let types = out.lines().filter(|l| l.starts_with("# TYPE")).count();
        assert_eq!(helps, types);
        assert_eq!(helps, 11);
    }
}
