//! The five dashboards: cluster network overview, Services, policy verdicts and drops, DNS, agent
//! health. Every query follows the `$node` variable; metrics without a `node` label (CoreDNS's names,
//! the process's) get it by joining `strait_build_info` on the scrape's `instance`.

use super::{
    Dashboard, Panel, Query, Row, Viz,
    Viz::{Stat, Timeseries},
};

fn panel(
    title: &'static str,
    description: &'static str,
    viz: Viz,
    unit: &'static str,
    width: u32,
    queries: &[(&'static str, &'static str)],
) -> Panel {
    Panel {
        title,
        description,
        viz,
        unit,
        width,
        queries: queries
            .iter()
            .map(|&(expr, legend)| Query { expr, legend })
            .collect(),
    }
}

/// Every dashboard, in the order the README lists them.
pub fn all() -> Vec<Dashboard> {
    vec![overview(), services(), policy(), dns(), agent()]
}

fn overview() -> Dashboard {
    Dashboard {
        uid: "strait-overview",
        title: "strait / Cluster network overview",
        description: "What every strait agent's data path carries, drops and decides, cluster-wide.",
        namespace_variable: true,
        rows: vec![overview_row_1(), overview_row_2(), overview_row_3()],
    }
}

fn services() -> Dashboard {
    Dashboard {
        uid: "strait-services",
        title: "strait / Services",
        description: "Services, frontends and backends in the kernel, the traffic they translate, conntrack, SNAT and how fast changes reach the data path.",
        namespace_variable: false,
        rows: vec![
            services_row_1(),
            services_row_2(),
            services_row_3(),
            services_row_4(),
        ],
    }
}

fn policy() -> Dashboard {
    Dashboard {
        uid: "strait-policy",
        title: "strait / Network policy verdicts and drops",
        description: "NetworkPolicy judgements by verdict, direction and namespace, what was dropped, and the policy maps' fill.",
        namespace_variable: true,
        rows: vec![policy_row_1(), policy_row_2()],
    }
}

fn dns() -> Dashboard {
    Dashboard {
        uid: "strait-dns",
        title: "strait / Cluster DNS",
        description: "Cluster DNS on every node under CoreDNS's metric names, and strait's kernel fast path beside it.",
        namespace_variable: false,
        rows: vec![dns_row_1(), dns_row_2()],
    }
}

fn agent() -> Dashboard {
    Dashboard {
        uid: "strait-agent",
        title: "strait / Agent health",
        description: "Each node's straitd: up, CPU, memory, descriptors, sync errors, attached programs and how full every eBPF map is.",
        namespace_variable: false,
        rows: vec![agent_row_1(), agent_row_2()],
    }
}

fn overview_row_1() -> Row {
    Row {
        title: "At a glance",
        panels: vec![
            panel(
                "Nodes reporting",
                "Agents Prometheus scrapes (one strait_build_info series each).",
                Stat,
                "short",
                6,
                &[("count(strait_build_info{node=~\"$node\"})", "nodes")],
            ),
            panel(
                "Pod endpoints",
                "Pods wired by strait's CNI, summed over nodes.",
                Stat,
                "short",
                6,
                &[("sum(strait_endpoints{node=~\"$node\"})", "pods")],
            ),
            panel(
                "Services",
                "Services in the cluster model (the largest any node holds).",
                Stat,
                "short",
                6,
                &[("max(strait_services{node=~\"$node\"})", "services")],
            ),
            panel(
                "Drops per second",
                "Packets the eBPF programs dropped, every reason, summed over nodes.",
                Stat,
                "pps",
                6,
                &[(
                    "sum(rate(strait_drops_total{node=~\"$node\"}[$__rate_interval]))",
                    "drops/s",
                )],
            ),
        ],
    }
}

fn overview_row_2() -> Row {
    Row {
        title: "Traffic",
        panels: vec![
            panel(
                "Packets per second by node",
                "Every packet a strait program handled (delivered, translated, passed or dropped).",
                Timeseries,
                "pps",
                12,
                &[(
                    "sum by (node) (rate(strait_packets_total{node=~\"$node\"}[$__rate_interval]))",
                    "{{node}}",
                )],
            ),
            panel(
                "Bytes per second by node",
                "Bytes of the packets above.",
                Timeseries,
                "Bps",
                12,
                &[(
                    "sum by (node) (rate(strait_bytes_total{node=~\"$node\"}[$__rate_interval]))",
                    "{{node}}",
                )],
            ),
            panel(
                "Packets per second by program",
                "Which hook handled them: from-pod (tcx on pod veths), sock-lb (cgroup socket hooks), from-uplink, xdp-uplink, the overlay's, dns-fast.",
                Timeseries,
                "pps",
                12,
                &[(
                    "sum by (program) (rate(strait_packets_total{node=~\"$node\"}[$__rate_interval]))",
                    "{{program}}",
                )],
            ),
            panel(
                "Drops per second by reason",
                "Why packets were dropped (policy_denied, no_backend, spoofed_source, ...).",
                Timeseries,
                "pps",
                12,
                &[(
                    "sum by (reason) (rate(strait_drops_total{node=~\"$node\"}[$__rate_interval]))",
                    "{{reason}}",
                )],
            ),
        ],
    }
}

fn overview_row_3() -> Row {
    Row {
        title: "Decisions",
        panels: vec![
            panel(
                "Policy verdicts per second",
                "NetworkPolicy judgements of new flows in the chosen namespaces, by verdict.",
                Timeseries,
                "ops",
                12,
                &[(
                    "sum by (verdict) (rate(strait_policy_verdicts_total{node=~\"$node\", namespace=~\"$namespace\"}[$__rate_interval]))",
                    "{{verdict}}",
                )],
            ),
            panel(
                "DNS questions per second by path",
                "Cluster DNS questions answered in the kernel (dns-fast) and by the node's DNS server.",
                Timeseries,
                "ops",
                12,
                &[
                    (
                        "sum(rate(strait_packets_total{node=~\"$node\", program=\"dns-fast\", reason=\"dns_answered\"}[$__rate_interval]))",
                        "kernel fast path",
                    ),
                    (
                        "sum(rate(coredns_dns_requests_total[$__rate_interval]) * on (instance) group_left (node) strait_build_info{node=~\"$node\"})",
                        "DNS server",
                    ),
                ],
            ),
        ],
    }
}

fn services_row_1() -> Row {
    Row {
        title: "The model in the kernel",
        panels: vec![
            panel(
                "Services",
                "Services in each node's model (every kind).",
                Stat,
                "short",
                8,
                &[("max(strait_services{node=~\"$node\"})", "services")],
            ),
            panel(
                "Frontends",
                "Service frontends (address, port, protocol) in the SVC map, per node.",
                Stat,
                "short",
                8,
                &[(
                    "max(strait_service_frontends{node=~\"$node\"})",
                    "frontends",
                )],
            ),
            panel(
                "Backends",
                "Backends summed over the frontends, per node.",
                Stat,
                "short",
                8,
                &[("max(strait_service_backends{node=~\"$node\"})", "backends")],
            ),
        ],
    }
}

fn services_row_2() -> Row {
    Row {
        title: "Translated traffic",
        panels: vec![
            panel(
                "Service translations per second",
                "Connections balanced at the socket (sock-lb: service_translated) and packets translated per packet (service_nat, reverse_nat), by program and reason.",
                Timeseries,
                "ops",
                12,
                &[(
                    "sum by (program, reason) (rate(strait_packets_total{node=~\"$node\", reason=~\"service_translated|service_nat|reverse_nat\"}[$__rate_interval]))",
                    "{{program}} {{reason}}",
                )],
            ),
            panel(
                "Service drops per second",
                "Service traffic refused: no backend, no local backend (externalTrafficPolicy: Local), source ranges, NAT failures.",
                Timeseries,
                "pps",
                12,
                &[(
                    "sum by (reason) (rate(strait_drops_total{node=~\"$node\", reason=~\"no_backend|no_local_backend|source_range|nat_failed|rewrite_failed\"}[$__rate_interval]))",
                    "{{reason}}",
                )],
            ),
        ],
    }
}

fn services_row_3() -> Row {
    Row {
        title: "Conntrack and SNAT",
        panels: vec![
            panel(
                "Conntrack entries",
                "Tracked flow directions of the per-packet service path at the last sweep, against the CT map's capacity.",
                Timeseries,
                "short",
                8,
                &[
                    (
                        "sum by (node) (strait_conntrack_entries{node=~\"$node\"})",
                        "{{node}} entries",
                    ),
                    (
                        "sum by (node) (strait_conntrack_capacity{node=~\"$node\"})",
                        "{{node}} capacity",
                    ),
                ],
            ),
            panel(
                "Conntrack expiries per second",
                "Entries the agent's sweeper removed after their state's timeout.",
                Timeseries,
                "ops",
                8,
                &[(
                    "sum by (node) (rate(strait_conntrack_expired_total{node=~\"$node\"}[$__rate_interval]))",
                    "{{node}}",
                )],
            ),
            panel(
                "SNAT port use",
                "SNAT ports held towards the busiest destination over the ports one destination can have (61000-65535).",
                Timeseries,
                "percentunit",
                8,
                &[(
                    "max by (node) (strait_snat_ports_busiest_destination{node=~\"$node\"} / strait_snat_ports_per_destination{node=~\"$node\"})",
                    "{{node}}",
                )],
            ),
        ],
    }
}

fn services_row_4() -> Row {
    Row {
        title: "Sync",
        panels: vec![
            panel(
                "Sync latency",
                "From the object source hearing of a change to the last map write: median and 99th percentile of the syncs in the window.",
                Timeseries,
                "s",
                12,
                &[
                    (
                        "histogram_quantile(0.5, sum by (le) (rate(strait_sync_duration_seconds_bucket{node=~\"$node\"}[$__rate_interval])))",
                        "p50",
                    ),
                    (
                        "histogram_quantile(0.99, sum by (le) (rate(strait_sync_duration_seconds_bucket{node=~\"$node\"}[$__rate_interval])))",
                        "p99",
                    ),
                ],
            ),
            panel(
                "Syncs per second",
                "Service syncs that wrote to the kernel, by node.",
                Timeseries,
                "ops",
                12,
                &[(
                    "sum by (node) (rate(strait_sync_duration_seconds_count{node=~\"$node\"}[$__rate_interval]))",
                    "{{node}}",
                )],
            ),
        ],
    }
}

fn policy_row_1() -> Row {
    Row {
        title: "Verdicts",
        panels: vec![
            panel(
                "Denied flows in the window",
                "New flows denied by NetworkPolicy in the chosen namespaces over the dashboard's window.",
                Stat,
                "short",
                8,
                &[(
                    "sum(increase(strait_policy_verdicts_total{node=~\"$node\", namespace=~\"$namespace\", verdict=\"denied\"}[$__range]))",
                    "denied",
                )],
            ),
            panel(
                "Audit verdicts in the window",
                "Flows that would have been denied but passed because the pod's policies are in audit mode.",
                Stat,
                "short",
                8,
                &[(
                    "sum(increase(strait_policy_verdicts_total{node=~\"$node\", namespace=~\"$namespace\", verdict=\"audit\"}[$__range]))",
                    "audit",
                )],
            ),
            panel(
                "Verdicts lost",
                "Verdicts the data path could not report (ring buffer full); they are missing from the counts here.",
                Stat,
                "short",
                8,
                &[(
                    "sum(strait_policy_verdicts_lost_total{node=~\"$node\"})",
                    "lost",
                )],
            ),
            panel(
                "Verdicts per second by verdict",
                "allowed, denied, audit (would have been denied).",
                Timeseries,
                "ops",
                12,
                &[(
                    "sum by (verdict) (rate(strait_policy_verdicts_total{node=~\"$node\", namespace=~\"$namespace\"}[$__rate_interval]))",
                    "{{verdict}}",
                )],
            ),
            panel(
                "Verdicts per second by direction",
                "Ingress (judged on the destination's node) and egress (on the source's).",
                Timeseries,
                "ops",
                12,
                &[(
                    "sum by (direction, verdict) (rate(strait_policy_verdicts_total{node=~\"$node\", namespace=~\"$namespace\"}[$__rate_interval]))",
                    "{{direction}} {{verdict}}",
                )],
            ),
            panel(
                "Denied per second by namespace",
                "Which namespaces' pods are refusing or being refused (the judged pod's namespace).",
                Timeseries,
                "ops",
                24,
                &[(
                    "sum by (namespace) (rate(strait_policy_verdicts_total{node=~\"$node\", namespace=~\"$namespace\", verdict=\"denied\"}[$__rate_interval]))",
                    "{{namespace}}",
                )],
            ),
        ],
    }
}

fn policy_row_2() -> Row {
    Row {
        title: "Drops and maps",
        panels: vec![
            panel(
                "Policy drops per second",
                "Packets dropped because policy denied their flow, by program and direction.",
                Timeseries,
                "pps",
                12,
                &[(
                    "sum by (program, direction) (rate(strait_drops_total{node=~\"$node\", reason=\"policy_denied\"}[$__rate_interval]))",
                    "{{program}} {{direction}}",
                )],
            ),
            panel(
                "Policy map fill",
                "Entries over capacity of the policy maps (rules, CIDRs, the policy conntrack).",
                Timeseries,
                "percentunit",
                12,
                &[(
                    "max by (map) (strait_map_fill_ratio{node=~\"$node\", map=~\"POLICY.*\"})",
                    "{{map}}",
                )],
            ),
        ],
    }
}

fn dns_row_1() -> Row {
    Row {
        title: "Questions and answers",
        panels: vec![
            panel(
                "Zone records",
                "Records in the cluster zone each node answers.",
                Stat,
                "short",
                8,
                &[(
                    "max(strait_dns_zone_records * on (instance) group_left (node) strait_build_info{node=~\"$node\"})",
                    "records",
                )],
            ),
            panel(
                "Answered in the kernel",
                "Share of cluster-name questions the fast path answered before any socket (the rest reached the DNS server).",
                Stat,
                "percentunit",
                8,
                &[(
                    "sum(rate(strait_packets_total{node=~\"$node\", program=\"dns-fast\", reason=\"dns_answered\"}[$__rate_interval])) / (sum(rate(strait_packets_total{node=~\"$node\", program=\"dns-fast\", reason=\"dns_answered\"}[$__rate_interval])) + sum(rate(coredns_dns_requests_total[$__rate_interval]) * on (instance) group_left (node) strait_build_info{node=~\"$node\"}))",
                    "kernel",
                )],
            ),
            panel(
                "Forward cache entries",
                "Forwarded answers cached, summed over nodes.",
                Stat,
                "short",
                8,
                &[(
                    "sum(coredns_cache_entries * on (instance) group_left (node) strait_build_info{node=~\"$node\"})",
                    "entries",
                )],
            ),
            panel(
                "Server requests per second by type",
                "Questions that reached the node's DNS server, by query type (coredns_dns_requests_total).",
                Timeseries,
                "ops",
                12,
                &[(
                    "sum by (type) (rate(coredns_dns_requests_total[$__rate_interval]) * on (instance) group_left (node) strait_build_info{node=~\"$node\"})",
                    "{{type}}",
                )],
            ),
            panel(
                "Responses per second by rcode",
                "NOERROR, NXDOMAIN, SERVFAIL, ... (coredns_dns_responses_total).",
                Timeseries,
                "ops",
                12,
                &[(
                    "sum by (rcode) (rate(coredns_dns_responses_total[$__rate_interval]) * on (instance) group_left (node) strait_build_info{node=~\"$node\"})",
                    "{{rcode}}",
                )],
            ),
            panel(
                "Server response time",
                "Median and 99th percentile of the server's request duration (coredns_dns_request_duration_seconds).",
                Timeseries,
                "s",
                12,
                &[
                    (
                        "histogram_quantile(0.5, sum by (le) (rate(coredns_dns_request_duration_seconds_bucket[$__rate_interval]) * on (instance) group_left (node) strait_build_info{node=~\"$node\"}))",
                        "p50",
                    ),
                    (
                        "histogram_quantile(0.99, sum by (le) (rate(coredns_dns_request_duration_seconds_bucket[$__rate_interval]) * on (instance) group_left (node) strait_build_info{node=~\"$node\"}))",
                        "p99",
                    ),
                ],
            ),
            panel(
                "Kernel fast path per second",
                "Questions the fast path answered (dns_answered) and handed to the server (not held in the map, or not a question it answers).",
                Timeseries,
                "ops",
                12,
                &[(
                    "sum by (reason) (rate(strait_packets_total{node=~\"$node\", program=\"dns-fast\", reason=~\"dns_.*\"}[$__rate_interval]))",
                    "{{reason}}",
                )],
            ),
        ],
    }
}

fn dns_row_2() -> Row {
    Row {
        title: "Forwarding",
        panels: vec![
            panel(
                "Cache hits and misses per second",
                "Questions outside the cluster zone answered from the forwarder's cache, or not (coredns_cache_hits_total, coredns_cache_misses_total).",
                Timeseries,
                "ops",
                12,
                &[
                    (
                        "sum(rate(coredns_cache_hits_total[$__rate_interval]) * on (instance) group_left (node) strait_build_info{node=~\"$node\"})",
                        "hits",
                    ),
                    (
                        "sum(rate(coredns_cache_misses_total[$__rate_interval]) * on (instance) group_left (node) strait_build_info{node=~\"$node\"})",
                        "misses",
                    ),
                ],
            ),
            panel(
                "Upstream questions and failures per second",
                "Questions sent upstream, those that failed (timeout or garbage), and truncated answers asked again over TCP.",
                Timeseries,
                "ops",
                12,
                &[
                    (
                        "sum(rate(strait_dns_upstream_requests_total[$__rate_interval]) * on (instance) group_left (node) strait_build_info{node=~\"$node\"})",
                        "sent",
                    ),
                    (
                        "sum(rate(strait_dns_upstream_failures_total[$__rate_interval]) * on (instance) group_left (node) strait_build_info{node=~\"$node\"})",
                        "failed",
                    ),
                    (
                        "sum(rate(strait_dns_upstream_tcp_retries_total[$__rate_interval]) * on (instance) group_left (node) strait_build_info{node=~\"$node\"})",
                        "TCP retries",
                    ),
                ],
            ),
        ],
    }
}

fn agent_row_1() -> Row {
    Row {
        title: "Process",
        panels: vec![
            panel(
                "Agents up",
                "Agents whose last scrape succeeded, over those that report.",
                Stat,
                "short",
                6,
                &[(
                    "sum(up * on (instance) group_left (node) strait_build_info{node=~\"$node\"})",
                    "up",
                )],
            ),
            panel(
                "Uptime",
                "Time since the oldest chosen agent started.",
                Stat,
                "s",
                6,
                &[(
                    "max(time() - (process_start_time_seconds * on (instance) group_left (node) strait_build_info{node=~\"$node\"}))",
                    "uptime",
                )],
            ),
            panel(
                "Sync errors in the window",
                "Objects skipped, kernel writes failed and frontends refused over the dashboard's window.",
                Stat,
                "short",
                6,
                &[(
                    "sum(increase(strait_sync_errors_total{node=~\"$node\"}[$__range]))",
                    "errors",
                )],
            ),
            panel(
                "Fullest map",
                "The highest fill of any hash, LRU or LPM map on the chosen nodes.",
                Stat,
                "percentunit",
                6,
                &[(
                    "max(strait_map_fill_ratio{node=~\"$node\", kind!~\".*array\"})",
                    "fill",
                )],
            ),
            panel(
                "CPU",
                "CPU time the agent uses per second (cores).",
                Timeseries,
                "short",
                8,
                &[(
                    "rate(process_cpu_seconds_total[$__rate_interval]) * on (instance) group_left (node) strait_build_info{node=~\"$node\"}",
                    "{{node}}",
                )],
            ),
            panel(
                "Resident memory",
                "The agent's resident set size.",
                Timeseries,
                "bytes",
                8,
                &[(
                    "process_resident_memory_bytes * on (instance) group_left (node) strait_build_info{node=~\"$node\"}",
                    "{{node}}",
                )],
            ),
            panel(
                "Open file descriptors",
                "Descriptors the agent holds (maps, links, sockets) against its limit.",
                Timeseries,
                "short",
                8,
                &[
                    (
                        "process_open_fds * on (instance) group_left (node) strait_build_info{node=~\"$node\"}",
                        "{{node}} open",
                    ),
                    (
                        "process_max_fds * on (instance) group_left (node) strait_build_info{node=~\"$node\"}",
                        "{{node}} limit",
                    ),
                ],
            ),
        ],
    }
}

fn agent_row_2() -> Row {
    Row {
        title: "Data path",
        panels: vec![
            panel(
                "Program attachments",
                "Kernel links running each program: from-pod and dns-fast one per pod, the uplink's, the socket hooks on the node's cgroup.",
                Timeseries,
                "short",
                12,
                &[(
                    "sum by (program) (strait_program_links{node=~\"$node\"})",
                    "{{program}}",
                )],
            ),
            panel(
                "Map fill",
                "The ten fullest hash, LRU and LPM maps (entries over capacity) at the last census.",
                Timeseries,
                "percentunit",
                12,
                &[(
                    "topk(10, max by (map) (strait_map_fill_ratio{node=~\"$node\", kind!~\".*array\"}))",
                    "{{map}}",
                )],
            ),
            panel(
                "Endpoint and address use",
                "Pod addresses allocated over the pod CIDR's size, and endpoints whose removal is being retried.",
                Timeseries,
                "short",
                12,
                &[
                    (
                        "sum by (node) (strait_ipam_allocated{node=~\"$node\"})",
                        "{{node}} allocated",
                    ),
                    (
                        "sum by (node) (strait_endpoints_deleting{node=~\"$node\"})",
                        "{{node}} deleting",
                    ),
                ],
            ),
            panel(
                "Sync errors per second by kind",
                "source: objects that could not be read; write: kernel writes that failed (retried); refused: frontends the kernel refused (retried).",
                Timeseries,
                "ops",
                12,
                &[(
                    "sum by (kind) (rate(strait_sync_errors_total{node=~\"$node\"}[$__rate_interval]))",
                    "{{kind}}",
                )],
            ),
            panel(
                "Map writes per sync",
                "99th percentile of the time each sync spends writing maps, and how long the census of maps took.",
                Timeseries,
                "s",
                24,
                &[
                    (
                        "histogram_quantile(0.99, sum by (le) (rate(strait_sync_write_duration_seconds_bucket{node=~\"$node\"}[$__rate_interval])))",
                        "sync writes p99",
                    ),
                    (
                        "max(strait_census_duration_seconds{node=~\"$node\"})",
                        "census",
                    ),
                ],
            ),
        ],
    }
}
