//! The agent's small HTTP server: `/healthz` (200 once the data path is loaded and restored),
//! `/metrics` (Prometheus text) and `/endpoints` (JSON list of this node's attachments). GET only.
//! At most [`MAX_CONNECTIONS`] connections are served at once (more are closed at once), and each
//! gets [`CONNECTION_DEADLINE`] in all, so slow or idle clients cannot pile up.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Mutex,
};

use crate::{
    conntrack_gc::ConntrackStats,
    endpoints::EndpointManager,
    metrics::{AgentGauges, render},
    services::SyncClock,
};

const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Connections served at once; one more is closed as soon as it is accepted.
pub const MAX_CONNECTIONS: usize = 64;

/// How long one connection may take in all (reading the request, writing the answer).
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

/// Shared state the handlers read.
#[derive(Clone)]
pub struct HttpState {
    pub node: String,
    pub endpoint_capacity: u32,
    pub manager: Arc<Mutex<EndpointManager>>,
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
        route(path, state).await
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

async fn route(path: &str, state: &HttpState) -> (&'static str, &'static str, String) {
    match path.split('?').next().unwrap_or_default() {
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_owned()),
        "/syncz" => (
            "200 OK",
            "text/plain",
            format!("{}\n", state.sync_clock.last_ms()),
        ),
        "/metrics" => {
            let manager = state.manager.lock().await;
            let (ipam_used, ipam_capacity) = manager.ipam_usage();
            let gauges = AgentGauges {
                endpoints: manager.attachments().len(),
                endpoint_capacity: state.endpoint_capacity,
                ipam_used,
                ipam_capacity,
                conntrack_entries: state.conntrack.live(),
                conntrack_capacity: state.conntrack_capacity,
                conntrack_expired_total: state.conntrack.expired_total(),
            };
            match manager.dataplane().stats() {
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
        "/endpoints" => {
            let attachments = state.manager.lock().await.attachments();
            match serde_json::to_string_pretty(&attachments) {
                Ok(json) => ("200 OK", "application/json", json + "\n"),
                Err(error) => (
                    "500 Internal Server Error",
                    "text/plain",
                    format!("{error}\n"),
                ),
            }
        }
        _ => (
            "404 Not Found",
            "text/plain",
            "not found; try /healthz, /metrics or /endpoints\n".to_owned(),
        ),
    }
}
