//! `GET /flows` on the agent's HTTP server: the recent verdicts as newline-delimited JSON, oldest
//! first, and with `follow=1` then the live ones as they come, until the client closes the connection.
//! A follow answer's head says how many of its first lines are recent ones ([`RECENT_HEADER`]), so a
//! client merging several nodes can order their recent verdicts before printing live ones.
//! A follower holds one of [`MAX_FOLLOWERS`] places (more are answered 503) and is not bound by the
//! server's per-connection deadline; a follower that stops reading for [`WRITE_TIMEOUT`] is dropped,
//! and one that falls [`super::LIVE_BACKLOG`] verdicts behind misses those (logged).

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    sync::{OwnedSemaphorePermit, Semaphore, broadcast},
};

use super::{FlowFilter, FlowHub, FlowQuery, FlowRecord};

/// Followers served at once.
pub const MAX_FOLLOWERS: usize = 16;

/// How long a follower may take to accept one write.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The content type of the answer.
pub const NDJSON: &str = "application/x-ndjson";

/// The header of a follow answer giving the number of recent verdicts before the live ones.
pub const RECENT_HEADER: &str = "X-Strait-Recent";

/// What a node without verdicts answers.
pub const UNAVAILABLE: &str = "this agent reads no flow verdicts: its eBPF data path has no \
verdict ring buffer (see the agent's log)\n";

/// The lines of `records`.
pub fn lines(records: &[Arc<FlowRecord>]) -> String {
    let mut out = String::new();
    for record in records {
        // A record always serialises (plain strings and numbers).
        if let Ok(line) = serde_json::to_string(&**record) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// The answer to a `/flows` request that does not follow.
pub fn history(hub: &FlowHub, query: &FlowQuery) -> String {
    let (records, _) = hub.recent(query.since, &query.filter, query.limit);
    lines(&records)
}

/// A follower whose recent verdicts were written: next, the live ones.
pub struct Follower {
    stream: TcpStream,
    live: broadcast::Receiver<Arc<FlowRecord>>,
    /// The last sequence number written (or skipped as already sent).
    last: u64,
    filter: FlowFilter,
    _place: OwnedSemaphorePermit,
}

/// Starts following: takes a place among `places` (else answers 503), writes the answer's head and
/// the recent verdicts. `None` when the request was answered in full.
pub async fn start(
    mut stream: TcpStream,
    hub: &FlowHub,
    query: FlowQuery,
    places: &Arc<Semaphore>,
) -> std::io::Result<Option<Follower>> {
    let Ok(place) = Arc::clone(places).try_acquire_owned() else {
        let body = format!("{MAX_FOLLOWERS} followers already; try again later\n");
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        return Ok(None);
    };
    let (live, recent, last) = hub.follow(query.since, &query.filter, query.limit);
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {NDJSON}\r\n{RECENT_HEADER}: {}\r\nCache-Control: no-cache\r\n\
         Connection: close\r\n\r\n",
        recent.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(lines(&recent).as_bytes()).await?;
    Ok(Some(Follower {
        stream,
        live,
        last,
        filter: query.filter,
        _place: place,
    }))
}

impl Follower {
    /// Writes live verdicts until the client closes the connection, stops reading, or the feed ends.
    pub async fn run(mut self) -> std::io::Result<()> {
        let (mut reader, mut writer) = self.stream.split();
        let mut scratch = [0u8; 512];
        loop {
            let mut batch = Vec::new();
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(record) => batch.push(record),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "a /flows follower fell behind and missed verdicts");
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                read = reader.read(&mut scratch) => match read {
                    // The client left (or sent more, which is ignored).
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => {}
                },
            }
            // What else is waiting goes in the same write.
            while let Ok(record) = self.live.try_recv() {
                batch.push(record);
            }
            batch.retain(|r| r.seq > self.last && self.filter.matches(r));
            let Some(newest) = batch.last() else { continue };
            self.last = newest.seq;
            let text = lines(&batch);
            let write = writer.write_all(text.as_bytes());
            let Ok(written) = tokio::time::timeout(WRITE_TIMEOUT, write).await else {
                tracing::debug!("a /flows follower stopped reading; dropped");
                return Ok(());
            };
            written?;
        }
    }
}
