//! The client end of the load generator: runs one test against a [`Server`](super::Server) and turns
//! what it timed into the figures of [`results`](crate::netbench::results). Request/response tests
//! warm up first (5% of the duration, at most 200 ms, not counted), then keep one latency sample per
//! completed transaction (u32 nanoseconds) for nearest-rank percentiles.

use std::{
    io::{self, ErrorKind, Read, Write},
    net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream, UdpSocket},
    thread,
    time::{Duration, Instant},
};

use super::{Outcome, SINK_MODE};
use crate::netbench::results::{Latency, Rate, Stream, Test};

/// Connect timeout of tcp-stream and tcp-rr.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// tcp-stream: how long one write may block, and how long the server may take to answer its count.
const STREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// tcp-stream: bytes per write.
const STREAM_CHUNK: usize = 128 * 1024;
/// tcp-rr: how long one request or response may take before the test fails.
const RR_TIMEOUT: Duration = Duration::from_secs(5);
/// tcp-crr: connect timeout, and how long the response may take.
const CRR_TIMEOUT: Duration = Duration::from_secs(1);
/// udp-rr: how long to wait for a reply before counting the request as lost.
const UDP_TIMEOUT: Duration = Duration::from_millis(200);
/// Longest warm-up.
const WARMUP_MAX: Duration = Duration::from_millis(200);
/// Pause after a counted failure, so that a refusing target does not make the loop spin.
const FAILURE_BACKOFF: Duration = Duration::from_millis(1);
/// Latency samples reserved per millisecond of test (a generous loopback rate), and at most.
const SAMPLES_PER_MS: usize = 300;
const MAX_RESERVED_SAMPLES: usize = 1 << 24;
/// The request byte of tcp-rr and tcp-crr (anything but [`SINK_MODE`] makes the server echo).
const REQUEST: u8 = b'r';

/// Why a load test failed. Every message names the target.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: SocketAddr,
        source: io::Error,
    },
    /// `action` ends with a preposition: "reading a response from".
    #[error("{action} {target}: {source}")]
    Io {
        action: &'static str,
        target: SocketAddr,
        source: io::Error,
    },
    #[error("the server at {target} counted {received} bytes, but {sent} were sent")]
    Count {
        target: SocketAddr,
        sent: u64,
        received: u64,
    },
    #[error("{target} answered {reply:#04x} to the request {request:#04x}")]
    BadReply {
        target: SocketAddr,
        request: u8,
        reply: u8,
    },
    #[error("no reply from {target} to request {seq} within {timeout:?}")]
    Lost {
        target: SocketAddr,
        seq: u32,
        timeout: Duration,
    },
    #[error("{failed} of {attempts} connections to {target} failed; the first: {first}")]
    MostFailed {
        target: SocketAddr,
        failed: u64,
        attempts: u64,
        first: Box<LoadError>,
    },
    #[error("no reply from {target} to any of {attempts} requests; the first failure: {first}")]
    NoReply {
        target: SocketAddr,
        attempts: u64,
        first: String,
    },
}

/// Runs `test` against the server at `target` for `duration` (request/response tests warm up
/// before that).
///
/// - tcp-stream: one connection (Nagle on) sends 128 KiB writes for `duration`, then half-closes;
///   the figure is the bytes the server counted over the time from connect to its count.
/// - tcp-rr: one connection, one-byte request and response back to back; any failure ends the test.
/// - tcp-crr: connect, one-byte request and response, close, back to back; failures are counted, and
///   fail the test when they are more than half of the attempts.
/// - udp-rr: one connected socket; each request is a 4-byte big-endian sequence number, the server
///   echoes it, and replies with an older number (late replies to lost requests) are discarded. A
///   reply not back within 200 ms counts as an error; the test fails if none came back at all.
pub fn run(test: Test, target: SocketAddr, duration: Duration) -> Result<Outcome, LoadError> {
    match test {
        Test::TcpStream => tcp_stream(target, duration).map(Outcome::Stream),
        Test::TcpRr => tcp_rr(target, duration).map(Outcome::Rate),
        Test::TcpCrr => tcp_crr(target, duration).map(Outcome::Rate),
        Test::UdpRr => udp_rr(target, duration).map(Outcome::Rate),
    }
}

/// Maps an I/O error to [`LoadError::Io`] for `action` against `target`.
fn io_error(action: &'static str, target: SocketAddr) -> impl FnOnce(io::Error) -> LoadError {
    move |source| LoadError::Io {
        action,
        target,
        source,
    }
}

fn connect(target: SocketAddr, timeout: Duration) -> Result<TcpStream, LoadError> {
    TcpStream::connect_timeout(&target, timeout)
        .map_err(|source| LoadError::Connect { target, source })
}

fn tcp_stream(target: SocketAddr, duration: Duration) -> Result<Stream, LoadError> {
    let mut conn = connect(target, CONNECT_TIMEOUT)?;
    let start = Instant::now();
    conn.set_nodelay(false).map_err(io_error(
        "clearing TCP_NODELAY on the connection to",
        target,
    ))?;
    conn.set_write_timeout(Some(STREAM_TIMEOUT))
        .and_then(|()| conn.set_read_timeout(Some(STREAM_TIMEOUT)))
        .map_err(io_error("setting timeouts on the connection to", target))?;
    conn.write_all(&[SINK_MODE])
        .map_err(io_error("sending the mode byte to", target))?;
    let chunk = vec![0x5a_u8; STREAM_CHUNK];
    let mut sent = 0_u64;
    while start.elapsed() < duration {
        conn.write_all(&chunk)
            .map_err(io_error("sending to", target))?;
        sent += STREAM_CHUNK as u64;
    }
    conn.shutdown(Shutdown::Write)
        .map_err(io_error("half-closing the connection to", target))?;
    let mut count = [0_u8; 8];
    conn.read_exact(&mut count)
        .map_err(io_error("reading the byte count from", target))?;
    let seconds = start.elapsed().as_secs_f64();
    let received = u64::from_be_bytes(count);
    if received != sent {
        return Err(LoadError::Count {
            target,
            sent,
            received,
        });
    }
    Ok(Stream {
        bytes: received,
        seconds,
        gbit_per_s: per_second(received.saturating_mul(8), seconds) / 1e9,
    })
}

fn tcp_rr(target: SocketAddr, duration: Duration) -> Result<Rate, LoadError> {
    let mut conn = connect(target, CONNECT_TIMEOUT)?;
    conn.set_nodelay(true)
        .map_err(io_error("setting TCP_NODELAY on the connection to", target))?;
    conn.set_write_timeout(Some(RR_TIMEOUT))
        .and_then(|()| conn.set_read_timeout(Some(RR_TIMEOUT)))
        .map_err(io_error("setting timeouts on the connection to", target))?;
    let phase = measure(duration, || {
        exchange(&mut conn, target).map_err(Failure::Fatal)
    })?;
    Ok(phase.rate())
}

fn tcp_crr(target: SocketAddr, duration: Duration) -> Result<Rate, LoadError> {
    let mut phase = measure(duration, || crr_once(target).map_err(Failure::Counted))?;
    let attempts = phase.samples.len() as u64 + phase.errors;
    if phase.errors * 2 > attempts
        && let Some(first) = phase.first_failure.take()
    {
        return Err(LoadError::MostFailed {
            target,
            failed: phase.errors,
            attempts,
            first: Box::new(first),
        });
    }
    if let Some(first) = &phase.first_failure {
        // The run goes on; what failed is told once, on stderr (the JSON line on stdout stays one line).
        eprintln!(
            "netbench client: {} of {attempts} connections to {target} failed; the first: {first}",
            phase.errors
        );
    }
    Ok(phase.rate())
}

/// One tcp-crr transaction; the connection is closed normally (FIN) when dropped.
fn crr_once(target: SocketAddr) -> Result<(), LoadError> {
    let mut conn = connect(target, CRR_TIMEOUT)?;
    conn.set_nodelay(true)
        .map_err(io_error("setting TCP_NODELAY on the connection to", target))?;
    conn.set_read_timeout(Some(CRR_TIMEOUT))
        .map_err(io_error("setting a timeout on the connection to", target))?;
    exchange(&mut conn, target)
}

/// Writes the one-byte request and reads the one-byte response.
fn exchange(conn: &mut TcpStream, target: SocketAddr) -> Result<(), LoadError> {
    conn.write_all(&[REQUEST])
        .map_err(io_error("sending a request to", target))?;
    let mut reply = [0_u8];
    conn.read_exact(&mut reply)
        .map_err(io_error("reading a response from", target))?;
    if reply[0] != REQUEST {
        return Err(LoadError::BadReply {
            target,
            request: REQUEST,
            reply: reply[0],
        });
    }
    Ok(())
}

fn udp_rr(target: SocketAddr, duration: Duration) -> Result<Rate, LoadError> {
    let local: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(io_error("binding a UDP socket for", target))?;
    socket
        .connect(target)
        .map_err(|source| LoadError::Connect { target, source })?;
    socket
        .set_read_timeout(Some(UDP_TIMEOUT))
        .map_err(io_error("setting a timeout on the socket for", target))?;
    let mut seq = 0_u32;
    let mut phase = measure(duration, || {
        seq = seq.wrapping_add(1);
        udp_once(&socket, seq, target)
    })?;
    if phase.samples.is_empty() {
        return Err(LoadError::NoReply {
            target,
            attempts: phase.errors,
            first: phase
                .first_failure
                .take()
                .map_or_else(|| "no request was sent".to_owned(), |e| e.to_string()),
        });
    }
    Ok(phase.rate())
}

/// One udp-rr transaction: sends `seq` and waits (at most [`UDP_TIMEOUT`] in all) for its echo,
/// discarding replies to earlier requests.
fn udp_once(socket: &UdpSocket, seq: u32, target: SocketAddr) -> Result<(), Failure> {
    socket
        .send(&seq.to_be_bytes())
        .map_err(|e| Failure::Counted(io_error("sending a request to", target)(e)))?;
    let deadline = Instant::now() + UDP_TIMEOUT;
    let lost = || {
        Failure::Counted(LoadError::Lost {
            target,
            seq,
            timeout: UDP_TIMEOUT,
        })
    };
    let mut shortened = false;
    let mut buf = [0_u8; 64];
    let result = loop {
        match socket.recv(&mut buf) {
            Ok(n) if classify_reply(&buf[..n], seq) == Reply::Current => break Ok(()),
            // A late or foreign reply: wait for ours, but only until the deadline.
            Ok(_) => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    break Err(lost());
                }
                if let Err(e) = socket.set_read_timeout(Some(remaining)) {
                    break Err(Failure::Fatal(io_error(
                        "setting a timeout on the socket for",
                        target,
                    )(e)));
                }
                shortened = true;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break Err(lost());
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // ICMP errors (port unreachable: connection refused) and the like.
            Err(e) => {
                break Err(Failure::Counted(
                    io_error("receiving a reply from", target)(e),
                ));
            }
        }
    };
    if shortened {
        socket.set_read_timeout(Some(UDP_TIMEOUT)).map_err(|e| {
            Failure::Fatal(io_error("setting a timeout on the socket for", target)(e))
        })?;
    }
    result
}

/// What a udp-rr datagram is, relative to the request in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    /// The echo of the request in flight.
    Current,
    /// The echo of an earlier request (one already counted as lost): discarded.
    Stale,
    /// Not an echo of any request sent yet (wrong length, or a later number): discarded.
    Foreign,
}

/// Classifies a udp-rr reply against the sequence number `expected` of the request in flight.
/// Sequence numbers wrap; "earlier" means less than 2³¹ behind.
fn classify_reply(reply: &[u8], expected: u32) -> Reply {
    let Ok(bytes) = <[u8; 4]>::try_from(reply) else {
        return Reply::Foreign;
    };
    let behind = expected.wrapping_sub(u32::from_be_bytes(bytes));
    match behind {
        0 => Reply::Current,
        1..0x8000_0000 => Reply::Stale,
        _ => Reply::Foreign,
    }
}

/// How one transaction failed.
enum Failure {
    /// Ends the test with this error.
    Fatal(LoadError),
    /// Counted in the errors; the test goes on.
    Counted(LoadError),
}

/// What one phase (warm-up or measurement) of a request/response test saw.
struct Phase {
    /// Latency of each completed transaction, nanoseconds.
    samples: Vec<u32>,
    errors: u64,
    first_failure: Option<LoadError>,
    seconds: f64,
}

impl Phase {
    fn rate(mut self) -> Rate {
        let completed = self.samples.len() as u64;
        Rate {
            completed,
            errors: self.errors,
            seconds: self.seconds,
            per_second: per_second(completed, self.seconds),
            latency: latency(&mut self.samples),
        }
    }
}

/// Warms up, then runs the measured phase.
fn measure(
    duration: Duration,
    mut transaction: impl FnMut() -> Result<(), Failure>,
) -> Result<Phase, LoadError> {
    let warmup = (duration / 20).min(WARMUP_MAX);
    run_phase(warmup, 0, &mut transaction)?;
    let capacity = usize::try_from(duration.as_millis())
        .unwrap_or(usize::MAX)
        .saturating_mul(SAMPLES_PER_MS)
        .min(MAX_RESERVED_SAMPLES);
    run_phase(duration, capacity, &mut transaction)
}

/// Runs `transaction` back to back until `length` has passed, timing each.
fn run_phase(
    length: Duration,
    capacity: usize,
    transaction: &mut impl FnMut() -> Result<(), Failure>,
) -> Result<Phase, LoadError> {
    let mut phase = Phase {
        samples: Vec::with_capacity(capacity),
        errors: 0,
        first_failure: None,
        seconds: 0.0,
    };
    let start = Instant::now();
    let deadline = start + length;
    let mut now = start;
    while now < deadline {
        let began = Instant::now();
        let result = transaction();
        now = Instant::now();
        match result {
            Ok(()) => phase
                .samples
                .push(u32::try_from((now - began).as_nanos()).unwrap_or(u32::MAX)),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Counted(e)) => {
                phase.errors += 1;
                phase.first_failure.get_or_insert(e);
                thread::sleep(FAILURE_BACKOFF);
                now = Instant::now();
            }
        }
    }
    phase.seconds = (now - start).as_secs_f64();
    Ok(phase)
}

/// p50 and p99 by nearest rank, and the mean, of latency samples in nanoseconds (sorts them).
#[allow(clippy::cast_precision_loss)] // sample counts stay far below 2^53
fn latency(samples: &mut [u32]) -> Latency {
    if samples.is_empty() {
        return Latency::default();
    }
    samples.sort_unstable();
    let sum: u64 = samples.iter().map(|&s| u64::from(s)).sum();
    Latency {
        p50_us: f64::from(nearest_rank(samples, 50)) / 1e3,
        p99_us: f64::from(nearest_rank(samples, 99)) / 1e3,
        mean_us: per_second(sum, samples.len() as f64) / 1e3,
    }
}

/// The `percent`th percentile of non-empty sorted `samples` by nearest rank: the smallest sample
/// with at least `percent`% of the samples at or below it.
fn nearest_rank(sorted: &[u32], percent: usize) -> u32 {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// `count / seconds`, 0 when no time passed (JSON has no infinity).
#[allow(clippy::cast_precision_loss)] // counts stay far below 2^53
fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_reply_tells_current_from_stale_and_foreign() {
        let seq = |n: u32| n.to_be_bytes();
        assert_eq!(classify_reply(&seq(7), 7), Reply::Current);
        // A late reply to an earlier (lost) request is not the current one.
        assert_eq!(classify_reply(&seq(6), 7), Reply::Stale);
        assert_eq!(classify_reply(&seq(1), 7), Reply::Stale);
        // Across the wrap.
        assert_eq!(classify_reply(&seq(u32::MAX), 0), Reply::Stale);
        assert_eq!(classify_reply(&seq(0), 0), Reply::Current);
        // Never sent yet, or not a request's echo at all.
        assert_eq!(classify_reply(&seq(8), 7), Reply::Foreign);
        assert_eq!(classify_reply(&[7], 7), Reply::Foreign);
        assert_eq!(classify_reply(&[0, 0, 0, 7, 0], 7), Reply::Foreign);
        assert_eq!(classify_reply(&[], 7), Reply::Foreign);
    }

    #[test]
    fn latency_uses_nearest_rank() {
        let mut samples: Vec<u32> = (1..=100).rev().map(|n| n * 1000).collect();
        let l = latency(&mut samples);
        assert!((l.p50_us - 50.0).abs() < 1e-9, "{l:?}");
        assert!((l.p99_us - 99.0).abs() < 1e-9, "{l:?}");
        assert!((l.mean_us - 50.5).abs() < 1e-9, "{l:?}");

        let mut one = vec![3000];
        let l = latency(&mut one);
        assert!((l.p50_us - 3.0).abs() < 1e-9 && (l.p99_us - 3.0).abs() < 1e-9);

        // 10 samples: p50 is the 5th, p99 the 10th.
        let ten: Vec<u32> = (1..=10).collect();
        assert_eq!(nearest_rank(&ten, 50), 5);
        assert_eq!(nearest_rank(&ten, 99), 10);

        assert_eq!(latency(&mut []), Latency::default());
    }

    #[test]
    fn per_second_is_finite_without_time() {
        assert!(per_second(10, 0.0).abs() < f64::EPSILON);
        assert!((per_second(10, 2.0) - 5.0).abs() < 1e-9);
    }
}
