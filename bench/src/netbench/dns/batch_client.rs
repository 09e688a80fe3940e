//! A second load generator, cheaper per query than dnsperf: one thread per CPU, each with its own
//! socket keeping `window` queries outstanding and moving them in `sendmmsg`/`recvmmsg` batches
//! (strait-dns's [`batch`](strait_dns::batch)), so less of the machine goes to the asking and more
//! is left to the answering. It checks dnsperf's figures with a different client, and it is the
//! one that can tell whether a target is faster than the client.

use std::{
    net::{SocketAddr, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use strait_dns::batch::{Inbox, Outbox};

use super::client::query;

/// Queries outstanding per thread.
pub const WINDOW: usize = 64;
/// Queries sent or received per system call at most.
const BATCH: usize = 32;
/// How long a thread waits for answers before it counts its outstanding queries as lost and
/// sends a new window.
const STALL: Duration = Duration::from_millis(200);

/// What the batching client measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchThroughput {
    pub queries_per_second: f64,
    pub answered: u64,
    /// Queries given up on after a stall.
    pub lost: u64,
    pub threads: usize,
}

/// Asks `server` the `names` in turn from `threads` threads for `duration`, `WINDOW` queries
/// outstanding on each; counts the answers (replies with the response bit).
pub fn measure(
    server: SocketAddr,
    names: &[String],
    duration: Duration,
    threads: usize,
) -> std::io::Result<BatchThroughput> {
    if names.is_empty() {
        return Err(std::io::Error::other("no names to ask"));
    }
    let queries: Arc<Vec<Vec<u8>>> = Arc::new(names.iter().map(|name| query(0, name)).collect());
    let answered = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads = threads.max(1);
    let started = Instant::now();
    let mut handles = Vec::with_capacity(threads);
    for _ in 0..threads {
        let socket = UdpSocket::bind(if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        })?;
        socket.set_read_timeout(Some(STALL))?;
        let (queries, answered, lost, stop) = (
            queries.clone(),
            answered.clone(),
            lost.clone(),
            stop.clone(),
        );
        handles.push(std::thread::spawn(move || {
            ask(&socket, server, &queries, &answered, &lost, &stop);
        }));
    }
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    for handle in handles {
        let _ = handle.join();
    }
    let answered = answered.load(Ordering::Relaxed);
    Ok(BatchThroughput {
        queries_per_second: f64::from(u32::try_from(answered).unwrap_or(u32::MAX))
            / elapsed.as_secs_f64(),
        answered,
        lost: lost.load(Ordering::Relaxed),
        threads,
    })
}

/// One thread: keeps a window of queries outstanding until `stop`.
fn ask(
    socket: &UdpSocket,
    server: SocketAddr,
    queries: &[Vec<u8>],
    answered: &AtomicU64,
    lost: &AtomicU64,
    stop: &AtomicBool,
) {
    let mut inbox = Inbox::new(BATCH);
    let mut outbox = Outbox::new();
    let mut next: usize = 0;
    let mut outstanding = 0;
    while !stop.load(Ordering::Relaxed) {
        if outstanding < WINDOW {
            let more = (WINDOW - outstanding).min(BATCH);
            for _ in 0..more {
                let buffer = outbox.next(server);
                buffer.extend_from_slice(&queries[next % queries.len()]);
                // The id: the query's number (the answer is counted by its response bit).
                buffer[..2]
                    .copy_from_slice(&u16::try_from(next % 65_536).unwrap_or(0).to_be_bytes());
                next += 1;
            }
            outbox.flush(socket);
            outstanding += more;
        }
        if let Ok(count) = inbox.receive(socket) {
            let replies = (0..count)
                .filter_map(|i| inbox.datagram(i))
                .filter(|(bytes, _)| bytes.len() >= 12 && bytes[2] & 0x80 != 0)
                .count();
            answered.fetch_add(replies as u64, Ordering::Relaxed);
            outstanding = outstanding.saturating_sub(replies);
        } else {
            // A stall (or a receive error): what is outstanding is not coming back.
            lost.fetch_add(outstanding as u64, Ordering::Relaxed);
            outstanding = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_and_a_silent_server_loses_its_window() {
        // A responder on loopback that flips QR on every query it gets.
        let responder = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = responder.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 512];
            while let Ok((length, from)) = responder.recv_from(&mut buffer) {
                buffer[2] |= 0x80;
                let _ = responder.send_to(&buffer[..length], from);
            }
        });
        let names = ["a.example".to_owned(), "b.example".to_owned()];
        let load = measure(server, &names, Duration::from_millis(300), 2).unwrap();
        assert_eq!(load.threads, 2);
        assert!(
            load.answered > 0 && load.queries_per_second > 0.0,
            "{load:?}"
        );

        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let load = measure(
            silent.local_addr().unwrap(),
            &names,
            Duration::from_millis(500),
            1,
        )
        .unwrap();
        assert_eq!(load.answered, 0);
        assert!(load.lost >= WINDOW as u64, "{load:?}");
    }
}
