//! The agent's small HTTP server: `/healthz` (200 once the data path is loaded and restored),
//! `/readyz` (200 once the first sync of the cluster's objects has reached the data path),
//! `/syncz` (when the services were last synced), `/metrics` (Prometheus text or OpenMetrics),
//! `/services` (the frontends in the kernel, see [`crate::service_list`]), `/policies` (the policies
//! this node enforces and the local pods each isolates), `/maps`
//! (the latest census of the eBPF maps and program links, JSON), `/conntrack` (the CT table,
//! filtered, JSON; see [`crate::ct_query`]), `/dns/records` (the cluster zone, see
//! [`crate::dns_records`]) and `/flows` (policy
//! verdicts as newline-delimited JSON, see [`crate::flows::serve`]). GET only.
//! At most [`MAX_CONNECTIONS`] connections are served at once (more are closed at once), and each
//! gets [`CONNECTION_DEADLINE`] in all, so slow or idle clients cannot pile up; a `/flows?follow=1`
//! stream is the exception once its head is written: it leaves the connection count for one of
//! [`flows::serve::MAX_FOLLOWERS`] places of its own, so followers never starve `/syncz`. Nothing
//! here waits for the endpoint manager (whose lock serialises CNI calls): `/metrics` reads the counts
//! it publishes and the counters through a STATS map handle of its own. The node's attachment list
//! (pods' container ids and netns paths) is not served here but on the root-only agent socket.

use std::{sync::Arc, time::Duration};

use strait_dataplane::{DataplaneError, stats::StatsReader, stats::StatsSample};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};

use crate::{
    census::CensusBoard,
    conntrack_gc::ConntrackStats,
    flows::{self, FlowHub, FlowQuery, serve::Follower},
    gauges::EndpointGauges,
    metrics::{
        AgentGauges, openmetrics, process, render, render_build_info, render_census,
        render_policy_lost, render_policy_verdicts,
    },
    services::SyncClock,
};

const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Connections served at once; one more is closed as soon as it is accepted.
pub const MAX_CONNECTIONS: usize = 64;

/// How long one connection may take in all (reading the request, writing the answer).
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

/// What `/endpoints` over HTTP answers: where the list is served instead.
pub const ENDPOINTS_MOVED: &str = "the endpoint list names every pod's container and network \
namespace, so it is served only on the agent's unix socket (root only): send {\"op\":\"attachments\"} \
there, or run `strait lab endpoints` in a lab\n";

/// Where `/metrics` reads the data path's counters: the STATS map, or a stand-in in tests.
pub trait Counters: Send + Sync {
    /// Every counter, summed over CPUs.
    fn read(&self) -> Result<Vec<StatsSample>, DataplaneError>;
}

impl Counters for StatsReader {
    fn read(&self) -> Result<Vec<StatsSample>, DataplaneError> {
        StatsReader::read(self)
    }
}

/// Shared state the handlers read; none of it is the endpoint manager.
#[derive(Clone)]
pub struct HttpState {
    pub node: String,
    pub endpoint_capacity: u32,
    pub endpoints: EndpointGauges,
    pub counters: Arc<dyn Counters>,
    pub sync_clock: SyncClock,
    pub conntrack: ConntrackStats,
    pub conntrack_capacity: u32,
    /// The policy verdicts read on this node; `None` when its data path reports none.
    pub flows: Option<FlowHub>,
    /// The node's DNS server; `None` when it serves none.
    pub dns: Option<crate::dns::DnsObserved>,
    /// The latest census of maps and program links.
    pub census: CensusBoard,
    /// The names of this node's policy tables, for `/policies`; `None` when it enforces none.
    pub policy_names: Option<crate::flows::FlowNames>,
    /// The CT map on a descriptor of its own, for `/conntrack`; `None` in tests without a kernel.
    pub conntrack_reader: Option<Arc<strait_dataplane::conntrack_view::ConntrackReader>>,
}

/// Serves HTTP until the task is dropped.
pub async fn serve(listener: TcpListener, state: HttpState) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let followers = Arc::new(Semaphore::new(flows::serve::MAX_FOLLOWERS));
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%peer, "http connection closed: {MAX_CONNECTIONS} already open");
            drop(stream);
            continue;
        };
        let state = state.clone();
        let followers = Arc::clone(&followers);
        tokio::spawn(async move {
            let handled =
                tokio::time::timeout(CONNECTION_DEADLINE, handle(stream, &state, &followers)).await;
            drop(slot);
            match handled {
                Ok(Err(error)) => tracing::debug!(%error, "http connection failed"),
                Err(_) => tracing::debug!(%peer, "http connection closed: past its deadline"),
                Ok(Ok(None)) => {}
                Ok(Ok(Some(follower))) => {
                    if let Err(error) = follower.run().await {
                        tracing::debug!(%peer, %error, "/flows follower gone");
                    }
                }
            }
        });
    }
}

/// Reads an HTTP request head (up to the blank line, at most `MAX_HEAD_BYTES`) within `timeout`.
pub(crate) async fn read_head(
    stream: &mut TcpStream,
    timeout: Duration,
) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD_BYTES {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| std::io::Error::other("request head timed out"))??;
    Ok(head)
}

/// Answers one request; a `/flows` follower, once its recent verdicts are written, is handed back to
/// be run outside the connection deadline.
async fn handle(
    mut stream: TcpStream,
    state: &HttpState,
    followers: &Arc<Semaphore>,
) -> std::io::Result<Option<Follower>> {
    let head = read_head(&mut stream, Duration::from_secs(5)).await?;
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if method == "GET"
        && let Some(("/flows", query)) = path.split_once('?')
        && let (Some(hub), Ok(query)) = (&state.flows, FlowQuery::parse(query))
        && query.follow
    {
        return flows::serve::start(stream, hub, query, followers).await;
    }
    let (status, content_type, body) = if method == "GET" {
        let (status, content_type, body) = route(path, state);
        if path.split('?').next() == Some("/metrics")
            && status.starts_with("200")
            && openmetrics::wanted(&text)
        {
            (
                status,
                openmetrics::CONTENT_TYPE,
                openmetrics::from_prometheus_text(&body),
            )
        } else {
            (status, content_type, body)
        }
    } else {
        (
            "405 Method Not Allowed",
            "text/plain",
            "only GET is served\n".to_owned(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(None)
}

fn route(path: &str, state: &HttpState) -> (&'static str, &'static str, String) {
    match path.split('?').next().unwrap_or_default() {
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_owned()),
        "/readyz" if state.sync_clock.has_synced() => ("200 OK", "text/plain", "ready\n".to_owned()),
        "/readyz" => (
            "503 Service Unavailable",
            "text/plain",
            "not ready: the Services have not been synced into the data path yet\n".to_owned(),
        ),
        "/syncz" => (
            "200 OK",
            "text/plain",
            format!("{}\n", state.sync_clock.last_ms()),
        ),
        "/metrics" => metrics(state),
        "/flows" => flows_history(path, state),
        "/conntrack" => match &state.conntrack_reader {
            Some(reader) => {
                let query = path.split_once('?').map_or("", |(_, q)| q);
                match crate::ct_query::answer(reader, query) {
                    Ok(json) => ("200 OK", "application/json", json),
                    Err(why) => (
                        "400 Bad Request",
                        "text/plain",
                        format!("/conntrack: {why}\n"),
                    ),
                }
            }
            None => (
                "503 Service Unavailable",
                "text/plain",
                "this agent has no CT map to read\n".to_owned(),
            ),
        },
        "/dns/records" => match &state.dns {
            Some(dns) => {
                let query = path.split_once('?').map_or("", |(_, q)| q);
                match crate::dns_records::RecordQuery::parse(query) {
                    Ok(query) => (
                        "200 OK",
                        "application/json",
                        format!(
                            "{}\n",
                            crate::dns_records::records_json(&dns.zone.current(), &query)
                        ),
                    ),
                    Err(why) => (
                        "400 Bad Request",
                        "text/plain",
                        format!("/dns/records: {why}\n"),
                    ),
                }
            }
            None => (
                "503 Service Unavailable",
                "text/plain",
                "this agent serves no cluster DNS\n".to_owned(),
            ),
        },
        "/policies" => match &state.policy_names {
            Some(names) => (
                "200 OK",
                "application/json",
                format!("{}\n", names.snapshot().listing()),
            ),
            None => (
                "503 Service Unavailable",
                "text/plain",
                "this agent enforces no NetworkPolicy (started without --network-policy)\n"
                    .to_owned(),
            ),
        },
        "/services" => match state.sync_clock.services().latest() {
            Some(list) => ("200 OK", "application/json", format!("{list}\n")),
            None => (
                "503 Service Unavailable",
                "text/plain",
                "the services have not been synced yet; try again in a moment\n".to_owned(),
            ),
        },
        "/maps" => match state.census.latest() {
            Some(census) => (
                "200 OK",
                "application/json",
                format!("{}\n", census.to_json(&state.node)),
            ),
            None => (
                "503 Service Unavailable",
                "text/plain",
                "the first census of the maps has not been taken yet; try again in a moment\n"
                    .to_owned(),
            ),
        },
        "/endpoints" => ("404 Not Found", "text/plain", ENDPOINTS_MOVED.to_owned()),
        _ => (
            "404 Not Found",
            "text/plain",
            "not found; try /healthz, /readyz, /syncz, /metrics, /services, /policies, /maps, /conntrack, /dns/records or /flows\n".to_owned(),
        ),
    }
}

/// `/flows` without `follow`: the recent verdicts the query asks for (a follower is served by
/// [`handle`]).
fn flows_history(path: &str, state: &HttpState) -> (&'static str, &'static str, String) {
    let Some(hub) = &state.flows else {
        return (
            "503 Service Unavailable",
            "text/plain",
            flows::serve::UNAVAILABLE.to_owned(),
        );
    };
    let query = path.split_once('?').map_or("", |(_, q)| q);
    match FlowQuery::parse(query) {
        Ok(query) => (
            "200 OK",
            flows::serve::NDJSON,
            flows::serve::history(hub, &query),
        ),
        Err(error) => (
            "400 Bad Request",
            "text/plain",
            format!("/flows: {error}\n"),
        ),
    }
}

/// `/metrics`: the published endpoint counts, the sweeper's conntrack figures and the data path's
/// counters; no lock the CNI path takes.
fn metrics(state: &HttpState) -> (&'static str, &'static str, String) {
    let counts = state.endpoints.read();
    let gauges = AgentGauges {
        endpoints: counts.endpoints,
        endpoints_deleting: counts.deleting,
        endpoint_capacity: state.endpoint_capacity,
        ipam_used: counts.ipam_used,
        ipam_capacity: counts.ipam_capacity,
        conntrack_entries: state.conntrack.live(),
        conntrack_capacity: state.conntrack_capacity,
        conntrack_expired_total: state.conntrack.expired_total(),
        snat_flows: state.conntrack.snat_flows(),
        snat_busiest: state.conntrack.snat_busiest(),
    };
    match state.counters.read() {
        Ok(stats) => {
            let mut text = render(&state.node, &stats, &gauges);
            let verdicts = state.flows.as_ref().map(FlowHub::counts);
            render_policy_verdicts(&mut text, &state.node, verdicts.as_deref().unwrap_or(&[]));
            render_policy_lost(
                &mut text,
                &state.node,
                state.flows.as_ref().and_then(FlowHub::lost),
            );
            if let Some(dns) = &state.dns {
                dns.render(&mut text);
            }
            state.sync_clock.metrics().render(&mut text, &state.node);
            render_census(&mut text, &state.node, state.census.latest().as_deref());
            render_build_info(&mut text, &state.node);
            if let Some(sample) = process::read() {
                process::render(&mut text, &sample);
            }
            ("200 OK", openmetrics::TEXT_CONTENT_TYPE, text)
        }
        Err(error) => (
            "500 Internal Server Error",
            "text/plain",
            format!("reading counters: {error}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use strait_dataplane::stats::{Direction, Program, Reason};

    use super::*;
    use crate::gauges::EndpointCounts;

    struct FixedCounters;

    impl Counters for FixedCounters {
        fn read(&self) -> Result<Vec<StatsSample>, DataplaneError> {
            Ok(vec![StatsSample {
                program: Program::FromPod,
                reason: Reason::DeliveredLocal,
                direction: Direction::Egress,
                packets: 7,
                bytes: 700,
            }])
        }
    }

    fn state() -> HttpState {
        HttpState {
            node: "n1".into(),
            endpoint_capacity: 100,
            endpoints: EndpointGauges::default(),
            counters: Arc::new(FixedCounters),
            sync_clock: SyncClock::default(),
            conntrack: ConntrackStats::default(),
            conntrack_capacity: 4096,
            flows: Some(FlowHub::new("n1")),
            dns: None,
            census: CensusBoard::default(),
            conntrack_reader: None,
            policy_names: None,
        }
    }

    /// `/readyz` waits for the first sync that reached the data path; `/healthz` does not.
    #[test]
    fn readiness_follows_the_first_sync_and_liveness_does_not() {
        let state = state();
        assert_eq!(route("/healthz", &state).0, "200 OK");
        let (status, _, body) = route("/readyz", &state);
        assert_eq!(status, "503 Service Unavailable");
        assert!(body.contains("not been synced"), "{body}");
        state.sync_clock.set_last_ms(1_700_000_000_000);
        assert_eq!(route("/readyz", &state).0, "200 OK");
    }

    /// `/metrics` is answered from the counts the endpoint manager published and the counters' own
    /// handle: the state it is served from holds no endpoint manager, so no lock a CNI call holds.
    #[test]
    fn metrics_are_served_from_published_counts_and_counters() {
        let state = state();
        state.endpoints.publish(EndpointCounts {
            endpoints: 2,
            deleting: 1,
            ipam_used: 3,
            ipam_capacity: 254,
        });
        let (status, _, body) = route("/metrics", &state);
        assert_eq!(status, "200 OK");
        for line in [
            "strait_endpoints{node=\"n1\"} 2",
            "strait_endpoints_deleting{node=\"n1\"} 1",
            "strait_ipam_allocated{node=\"n1\"} 3",
            "strait_ipam_capacity{node=\"n1\"} 254",
            "reason=\"delivered_local\",direction=\"egress\"} 7",
        ] {
            assert!(body.contains(line), "{line} missing from:\n{body}");
        }
    }

    fn denied_and_allowed(hub: &FlowHub) {
        use strait_dataplane::policy_events::{Decision, Direction};
        let example = crate::flows::record::example;
        hub.record([
            (
                Direction::Ingress,
                Decision::Denied,
                example(Some("x/a"), Some("y/b"), "denied", 80),
            ),
            (
                Direction::Ingress,
                Decision::Allowed,
                example(Some("x/a"), Some("y/b"), "allowed", 81),
            ),
        ]);
    }

    /// `/flows` without `follow` is the recent verdicts, filtered, one JSON object a line; mistakes
    /// are refused; `/metrics` counts verdicts.
    #[test]
    fn recent_flows_are_served_filtered_and_counted() {
        let mut state = state();
        denied_and_allowed(state.flows.as_ref().unwrap());
        let (status, content_type, body) = route("/flows?verdict=denied&pod=y%2Fb", &state);
        assert_eq!((status, content_type), ("200 OK", "application/x-ndjson"));
        let lines: Vec<serde_json::Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{body}");
        assert_eq!(lines[0]["seq"], 1);
        assert_eq!(lines[0]["to"]["port"], 80);
        assert_eq!(route("/flows", &state).2.lines().count(), 2);
        let (status, _, body) = route("/flows?verdict=dropped", &state);
        assert_eq!(status, "400 Bad Request");
        assert!(body.contains("allowed, denied, audit"), "{body}");
        let (_, _, metrics) = route("/metrics", &state);
        assert!(metrics.contains(
            "strait_policy_verdicts_total{node=\"n1\",direction=\"ingress\",verdict=\"denied\",namespace=\"y\"} 1"
        ));
        state.flows = None;
        assert_eq!(route("/flows", &state).0, "503 Service Unavailable");
    }

    /// A follower gets the recent verdicts, then live ones as they are recorded, filtered; it is not
    /// bound by the connection deadline's accounting (it leaves its connection place).
    #[tokio::test]
    async fn a_follower_gets_recent_then_live_verdicts() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = state();
        let hub = state.flows.clone().unwrap();
        denied_and_allowed(&hub);
        let server = tokio::spawn(serve(listener, state));
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /flows?follow=1&verdict=denied HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        let mut read_until = async |text: &mut String, lines: usize| {
            while text.split("\r\n\r\n").nth(1).unwrap_or("").lines().count() < lines {
                let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
                    .await
                    .expect("an answer in time")
                    .unwrap();
                assert!(n > 0, "closed early: {text}");
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        };
        read_until(&mut text, 1).await;
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("\r\nX-Strait-Recent: 1\r\n"), "{text}");
        denied_and_allowed(&hub);
        read_until(&mut text, 2).await;
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let seqs: Vec<u64> = body
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            seqs,
            [1, 3],
            "recent, then live; the allowed ones filtered out"
        );
        server.abort();
    }

    /// `/maps` is the latest census as JSON (503 before the first); `/metrics` shows it too, and in
    /// OpenMetrics when asked.
    #[test]
    fn maps_are_served_from_the_latest_census() {
        use strait_dataplane::census::{MapFill, MapKind, ProgramLinks};
        let state = state();
        assert_eq!(route("/maps", &state).0, "503 Service Unavailable");
        state.census.publish(crate::census::CensusSnapshot {
            maps: vec![MapFill {
                name: "SVC_V1".into(),
                kind: MapKind::Hash,
                capacity: 8,
                entries: 2,
            }],
            programs: vec![ProgramLinks {
                program: "from_pod".into(),
                links: 4,
            }],
            took: Duration::from_millis(1),
        });
        let (status, content_type, body) = route("/maps", &state);
        assert_eq!((status, content_type), ("200 OK", "application/json"));
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["node"], "n1");
        assert_eq!(json["maps"][0]["name"], "SVC_V1");
        assert_eq!(json["maps"][0]["fill"], 0.25);
        assert_eq!(json["programs"][0]["links"], 4);
        let (_, _, metrics) = route("/metrics", &state);
        assert!(
            metrics.contains("strait_map_entries{node=\"n1\",map=\"SVC_V1\",kind=\"hash\"} 2\n")
        );
        let open = openmetrics::from_prometheus_text(&metrics);
        assert!(open.contains("# TYPE strait_packets counter\n"));
        assert!(open.ends_with("# EOF\n"));
    }

    #[test]
    fn the_endpoint_list_is_not_served_over_http() {
        let state = state();
        let (status, _, body) = route("/endpoints", &state);
        assert_eq!(status, "404 Not Found");
        assert!(body.contains("unix socket"), "{body}");
        assert!(!body.contains("container_id"), "{body}");
    }
}
