//! The figures a netbench run produces, as plain serializable data: what was measured (dataplane,
//! scenario, number of services), the load generator's results, the cost of programming the services,
//! and the machine it ran on. The report and chart modules only read these.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::{
    catalog::TargetPosition,
    spin::{Calibration, Condition},
    stats::{Interval, Range, RatioEstimate},
};

/// A dataplane under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dataplane {
    /// strait's eBPF programs (the lab's CNI plugin and agent).
    Strait,
    /// Pods on a Linux bridge, services in kube-proxy's iptables-mode rules.
    KubeProxyIptables,
    /// Pods on a Linux bridge, services in kube-proxy's nftables-mode rules.
    KubeProxyNftables,
    /// Pods on a Linux bridge, no service rules: the client talks to the pod's address.
    Direct,
}

impl Dataplane {
    pub const ALL: [Dataplane; 4] = [
        Self::Strait,
        Self::KubeProxyIptables,
        Self::KubeProxyNftables,
        Self::Direct,
    ];

    /// The name used on the command line, in tables and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Strait => "strait",
            Self::KubeProxyIptables => "kube-proxy-iptables",
            Self::KubeProxyNftables => "kube-proxy-nftables",
            Self::Direct => "direct",
        }
    }
}

/// Where the client is and what it connects to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// A client pod to the server pod's address, both on one node.
    PodToPod,
    /// A client pod to the target Service's ClusterIP (server on the same node).
    PodToClusterIp,
    /// A client outside the cluster to the target Service's NodePort on the node's address.
    ExternalToNodePort,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [
        Self::PodToPod,
        Self::PodToClusterIp,
        Self::ExternalToNodePort,
    ];

    /// The name used on the command line, in tables and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::PodToPod => "pod-to-pod",
            Self::PodToClusterIp => "pod-to-clusterip",
            Self::ExternalToNodePort => "external-to-nodeport",
        }
    }
}

/// Latency percentiles of one request/response or connection test, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
}

/// A bulk TCP transfer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    /// Bytes the server acknowledged having received.
    pub bytes: u64,
    pub seconds: f64,
    pub gbit_per_s: f64,
}

/// A request/response test (TCP RR, TCP CRR or UDP RR): completed transactions per second and the
/// latency of each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Transactions (or connections) completed.
    pub completed: u64,
    /// Transactions that failed (refused, reset, timed out, lost datagrams).
    pub errors: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub latency: Latency,
}

/// Which load test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Test {
    /// One TCP connection sending as fast as it can for the duration.
    TcpStream,
    /// One TCP connection, one-byte request and response, back to back.
    TcpRr,
    /// Connect, one-byte request and response, close; back to back.
    TcpCrr,
    /// One-byte UDP request and response, back to back.
    UdpRr,
}

impl Test {
    pub const ALL: [Test; 4] = [Self::TcpStream, Self::TcpRr, Self::TcpCrr, Self::UdpRr];

    pub fn name(self) -> &'static str {
        match self {
            Self::TcpStream => "tcp-stream",
            Self::TcpRr => "tcp-rr",
            Self::TcpCrr => "tcp-crr",
            Self::UdpRr => "udp-rr",
        }
    }
}

/// The results of the load tests of one cell; a test not run is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub tcp_stream: Option<Stream>,
    pub tcp_rr: Option<Rate>,
    pub tcp_crr: Option<Rate>,
    pub udp_rr: Option<Rate>,
}

/// A headline figure of a [`Measurement`]: what the tables, spreads and ratios are about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    StreamGbitPerS,
    RrPerSecond,
    RrP99Us,
    CrrPerSecond,
    CrrP99Us,
    UdpPerSecond,
    UdpP99Us,
}

impl Metric {
    /// Table column order.
    pub const ALL: [Metric; 7] = [
        Self::StreamGbitPerS,
        Self::RrPerSecond,
        Self::RrP99Us,
        Self::CrrPerSecond,
        Self::CrrP99Us,
        Self::UdpPerSecond,
        Self::UdpP99Us,
    ];

    /// The figure in `m`, if its test ran.
    pub fn value(self, m: &Measurement) -> Option<f64> {
        match self {
            Self::StreamGbitPerS => m.tcp_stream.map(|s| s.gbit_per_s),
            Self::RrPerSecond => m.tcp_rr.map(|r| r.per_second),
            Self::RrP99Us => m.tcp_rr.map(|r| r.latency.p99_us),
            Self::CrrPerSecond => m.tcp_crr.map(|r| r.per_second),
            Self::CrrP99Us => m.tcp_crr.map(|r| r.latency.p99_us),
            Self::UdpPerSecond => m.udp_rr.map(|r| r.per_second),
            Self::UdpP99Us => m.udp_rr.map(|r| r.latency.p99_us),
        }
    }

    /// The test the figure comes from.
    pub fn test(self) -> Test {
        match self {
            Self::StreamGbitPerS => Test::TcpStream,
            Self::RrPerSecond | Self::RrP99Us => Test::TcpRr,
            Self::CrrPerSecond | Self::CrrP99Us => Test::TcpCrr,
            Self::UdpPerSecond | Self::UdpP99Us => Test::UdpRr,
        }
    }

    /// Column header: ↑ higher is better (rates), ↓ lower is better (latency).
    pub fn header(self) -> &'static str {
        match self {
            Self::StreamGbitPerS => "stream ↑",
            Self::RrPerSecond => "rr tps ↑",
            Self::RrP99Us => "rr p99 ↓",
            Self::CrrPerSecond => "crr/s ↑",
            Self::CrrP99Us => "crr p99 ↓",
            Self::UdpPerSecond => "udp tps ↑",
            Self::UdpP99Us => "udp p99 ↓",
        }
    }
}

/// What programming the services cost a dataplane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Programming {
    /// From handing the services to the dataplane until they are in the kernel: strait's agent sync
    /// (file rename to `/syncz`), `iptables-restore` or `nft -f` (whole command).
    pub wall_ms: f64,
    /// Change of the kernel's unreclaimable slab, vmalloc and per-CPU memory (KiB) across programming;
    /// noisy (other activity on the machine moves it too), meaningful at thousands of services.
    pub kernel_kib: i64,
    /// Resident memory of the userspace agent after programming (strait's `straitd`), KiB. kube-proxy
    /// itself is not run, so its dataplanes have none.
    pub agent_rss_kib: Option<u64>,
    /// Memory locked by the agent's BPF maps (KiB; preallocated at start, so independent of the
    /// number of services).
    pub bpf_map_kib: Option<u64>,
    /// Rules (iptables lines, nftables rules and map elements) or frontends (strait) programmed.
    pub objects: u64,
}

/// One cell of the matrix: a dataplane, a scenario and a number of services.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub dataplane: Dataplane,
    pub scenario: Scenario,
    /// Services present (the target plus fillers). `direct` programs none; its cell carries the count of
    /// the group it was measured with (side by side with the other dataplanes).
    pub services: usize,
    /// Per test, the round with the median headline figure (its latencies too, so a reported p50/p99
    /// is one real round's).
    pub measurement: Measurement,
    /// Every round in the order measured; round `r` of each dataplane of a group was measured back to
    /// back with the others' round `r`. Empty in runs saved before rounds were kept.
    #[serde(default)]
    pub rounds: Vec<Measurement>,
    /// The smallest and largest value of each headline figure over the rounds.
    #[serde(default)]
    pub spread: BTreeMap<Metric, Range>,
    pub programming: Option<Programming>,
}

impl Cell {
    /// Each round's value of `metric` (`None` for a round where its test did not run).
    pub fn round_values(&self, metric: Metric) -> Vec<Option<f64>> {
        self.rounds.iter().map(|m| metric.value(m)).collect()
    }

    /// The min–max spread of every headline figure over [`Cell::rounds`].
    pub fn spread_of(rounds: &[Measurement]) -> BTreeMap<Metric, Range> {
        Metric::ALL
            .into_iter()
            .filter_map(|metric| {
                let values: Vec<f64> = rounds.iter().filter_map(|m| metric.value(m)).collect();
                Range::of(&values).map(|range| (metric, range))
            })
            .collect()
    }
}

/// ns/packet of one eBPF program path (BPF_PROG_TEST_RUN with repeat), from `pktcost`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PacketCost {
    pub path: String,
    pub ns_per_packet: f64,
}

/// The machine a run was made on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub iptables_version: String,
    pub nft_version: String,
}

/// How the run was configured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub quick: bool,
    /// Seconds each load test ran.
    pub test_seconds: f64,
    /// Rounds of every test per dataplane (0: not recorded, runs before rounds were kept).
    #[serde(default)]
    pub rounds: usize,
    /// Where the target Service stood among the fillers (runs before the option put it first).
    #[serde(default = "first")]
    pub target_position: TargetPosition,
    /// The condition of the CPUs each test ran in (empty: not recorded).
    #[serde(default)]
    pub conditions: BTreeMap<Test, Condition>,
    /// What the start of the run measured to choose the round-trip tests' condition (`--spin auto`).
    #[serde(default)]
    pub calibration: Option<Calibration>,
    /// The service counts swept.
    pub services: Vec<usize>,
    pub endpoints_per_service: usize,
    pub started_at: String,
    pub duration_s: f64,
}

fn first() -> TargetPosition {
    TargetPosition::First
}

/// Everything a run produced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub machine: Machine,
    pub config: RunConfig,
    pub cells: Vec<Cell>,
    pub packet_costs: Vec<PacketCost>,
    /// strait ÷ each baseline, per scenario, service count and headline figure, as the report shows
    /// them (derived from the cells; written for readers of the JSON, recomputed on every render).
    #[serde(default)]
    pub ratios: Vec<RatioRecord>,
}

/// One ratio of the report, as written to JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatioRecord {
    pub scenario: Scenario,
    pub services: usize,
    pub baseline: Dataplane,
    pub metric: Metric,
    #[serde(flatten)]
    pub estimate: RatioEstimate,
    /// Whether the interval includes 1 (strait and the baseline cannot be told apart in this run);
    /// `null` without an interval (fewer than 2 rounds).
    pub within_noise: Option<bool>,
}

impl RunReport {
    /// The cell for (dataplane, scenario, services). A `direct` cell measured with that count is preferred;
    /// failing that, any `direct` cell of the scenario matches (runs that measured it once).
    pub fn cell(&self, dataplane: Dataplane, scenario: Scenario, services: usize) -> Option<&Cell> {
        let matches = |c: &&Cell| c.dataplane == dataplane && c.scenario == scenario;
        self.cells
            .iter()
            .filter(matches)
            .find(|c| c.services == services)
            .or_else(|| {
                (dataplane == Dataplane::Direct)
                    .then(|| self.cells.iter().find(matches))
                    .flatten()
            })
    }
}
