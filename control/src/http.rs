//! The agent's small HTTP server: `/healthz` (200 once the data path is loaded and restored),
//! `/syncz` (when the services were last synced) and `/metrics` (Prometheus text). GET only.
//! At most [`MAX_CONNECTIONS`] connections are served at once (more are closed at once), and each
//! gets [`CONNECTION_DEADLINE`] in all, so slow or idle clients cannot pile up. Nothing here waits
//! for the endpoint manager (whose lock serialises CNI calls): `/metrics` reads the counts it
//! publishes and the counters through a STATS map handle of its own. The node's attachment list
//! (pods' container ids and netns paths) is not served here but on the root-only agent socket.

use std::{sync::Arc, time::Duration};

use strait_dataplane::{DataplaneError, stats::StatsReader, stats::StatsSample};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::{
    conntrack_gc::ConntrackStats,
    gauges::EndpointGauges,
    metrics::{AgentGauges, render},
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
}

/// Serves HTTP until the task is dropped.
pub async fn serve(listener: TcpListener, state: HttpState) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
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
        tokio::spawn(async move {
            match tokio::time::timeout(CONNECTION_DEADLINE, handle(stream, &state)).await {
                Ok(Err(error)) => tracing::debug!(%error, "http connection failed"),
                Err(_) => tracing::debug!(%peer, "http connection closed: past its deadline"),
                Ok(Ok(())) => {}
            }
            drop(slot);
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

async fn handle(mut stream: TcpStream, state: &HttpState) -> std::io::Result<()> {
    let head = read_head(&mut stream, Duration::from_secs(5)).await?;
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (status, content_type, body) = if method == "GET" {
        route(path, state)
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
    stream.shutdown().await
}

fn route(path: &str, state: &HttpState) -> (&'static str, &'static str, String) {
    match path.split('?').next().unwrap_or_default() {
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_owned()),
        "/syncz" => (
            "200 OK",
            "text/plain",
            format!("{}\n", state.sync_clock.last_ms()),
        ),
        "/metrics" => metrics(state),
        "/endpoints" => ("404 Not Found", "text/plain", ENDPOINTS_MOVED.to_owned()),
        _ => (
            "404 Not Found",
            "text/plain",
            "not found; try /healthz, /syncz or /metrics\n".to_owned(),
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
    };
    match state.counters.read() {
        Ok(stats) => (
            "200 OK",
            "text/plain; version=0.0.4",
            render(&state.node, &stats, &gauges),
        ),
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
        }
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

    #[test]
    fn the_endpoint_list_is_not_served_over_http() {
        let state = state();
        let (status, _, body) = route("/endpoints", &state);
        assert_eq!(status, "404 Not Found");
        assert!(body.contains("unix socket"), "{body}");
        assert!(!body.contains("container_id"), "{body}");
    }
}
