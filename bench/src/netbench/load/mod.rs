//! netbench's built-in load generator: a [`Server`] (TCP echo or sink, UDP echo, on one port number)
//! and a client that runs one [`Test`](crate::netbench::results::Test) against it ([`run`]). The run
//! starts each end as a subprocess inside a lab namespace; the client's [`Outcome`] crosses back as one
//! JSON line ([`outcome_json`], [`parse_outcome`]).

mod client;
mod server;

use serde::{Deserialize, Serialize};

pub use client::{LoadError, run};
pub use server::Server;

use crate::netbench::results::{Rate, Stream};

/// The first byte of a TCP connection that makes the server a sink; any other makes it an echo.
pub const SINK_MODE: u8 = b'S';

/// What one test measured.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Outcome {
    /// tcp-stream.
    Stream(Stream),
    /// tcp-rr, tcp-crr, udp-rr.
    Rate(Rate),
}

/// `outcome` as one line of JSON.
pub fn outcome_json(outcome: &Outcome) -> String {
    serde_json::to_string(outcome).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Parses a line written by [`outcome_json`].
pub fn parse_outcome(line: &str) -> Result<Outcome, serde_json::Error> {
    serde_json::from_str(line)
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
        thread,
        time::Duration,
    };

    use super::*;
    use crate::netbench::results::{Latency, Test};

    const SHORT: Duration = Duration::from_millis(300);

    /// Starts a server on an ephemeral port, serving until the test process ends.
    fn start_server() -> SocketAddr {
        let server = Server::bind(0).unwrap();
        let port = server.port();
        assert_ne!(port, 0);
        thread::spawn(move || server.run());
        (Ipv4Addr::LOCALHOST, port).into()
    }

    fn rate(test: Test, target: SocketAddr, duration: Duration) -> Rate {
        match run(test, target, duration).unwrap() {
            Outcome::Rate(r) => r,
            other @ Outcome::Stream(_) => panic!("{} returned {other:?}", test.name()),
        }
    }

    /// The figures of a successful request/response test hang together.
    #[allow(clippy::cast_precision_loss)]
    fn check_rate(r: &Rate, duration: Duration) {
        assert!(r.completed > 0, "{r:?}");
        assert!(r.seconds >= duration.as_secs_f64(), "{r:?}");
        assert!(r.seconds < duration.as_secs_f64() + 1.0, "{r:?}");
        assert!(
            (r.per_second - r.completed as f64 / r.seconds).abs() < 1e-6,
            "{r:?}"
        );
        let l = r.latency;
        assert!(l.p50_us > 0.0 && l.p50_us <= l.p99_us, "{r:?}");
        assert!(l.mean_us > 0.0, "{r:?}");
    }

    #[test]
    fn server_sinks_echoes_and_answers_udp_on_one_port() {
        let target = start_server();

        // Sink: counts the bytes after the mode byte, answers at EOF.
        let mut sink = TcpStream::connect(target).unwrap();
        sink.write_all(b"S").unwrap();
        let payload = vec![7_u8; 300_001];
        sink.write_all(&payload).unwrap();
        sink.shutdown(Shutdown::Write).unwrap();
        let mut count = [0_u8; 8];
        sink.read_exact(&mut count).unwrap();
        assert_eq!(u64::from_be_bytes(count), 300_001);
        assert_eq!(sink.read(&mut count).unwrap(), 0, "closed after the count");

        // Echo: everything comes back, the first byte included.
        let mut echo = TcpStream::connect(target).unwrap();
        echo.write_all(b"hello").unwrap();
        echo.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        echo.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"hello");

        // UDP on the same port number.
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        udp.connect(target).unwrap();
        udp.send(b"ping").unwrap();
        let mut buf = [0_u8; 16];
        let n = udp.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
    }

    #[test]
    #[allow(clippy::cast_precision_loss)]
    fn tcp_stream_moves_bytes_the_server_counted() {
        let target = start_server();
        let Outcome::Stream(s) = run(Test::TcpStream, target, SHORT).unwrap() else {
            panic!("tcp-stream returned a rate");
        };
        // The client fails the test unless the server's count equals what it sent, which is whole
        // 128 KiB writes.
        assert!(s.bytes > 0 && s.bytes % (128 * 1024) == 0, "{s:?}");
        assert!(s.seconds >= SHORT.as_secs_f64(), "{s:?}");
        assert!(s.gbit_per_s > 0.0, "{s:?}");
        let expected = s.bytes as f64 * 8.0 / s.seconds / 1e9;
        assert!((s.gbit_per_s - expected).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn tcp_rr_completes_transactions() {
        let target = start_server();
        let r = rate(Test::TcpRr, target, SHORT);
        check_rate(&r, SHORT);
        assert_eq!(r.errors, 0, "{r:?}");
    }

    #[test]
    fn tcp_crr_completes_connections() {
        let target = start_server();
        let r = rate(Test::TcpCrr, target, SHORT);
        check_rate(&r, SHORT);
        assert_eq!(r.errors, 0, "{r:?}");
    }

    #[test]
    fn udp_rr_completes_transactions() {
        let target = start_server();
        let r = rate(Test::UdpRr, target, SHORT);
        check_rate(&r, SHORT);
    }

    #[test]
    fn tcp_crr_against_a_closed_port_names_the_target() {
        let closed = {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            listener.local_addr().unwrap()
        };
        let error = run(Test::TcpCrr, closed, Duration::from_millis(100)).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, LoadError::MostFailed { .. }), "{message}");
        assert!(
            message.contains(&format!("cannot connect to {closed}")),
            "{message}"
        );
    }

    #[test]
    fn tcp_rr_against_a_closed_port_names_the_target() {
        let closed = {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            listener.local_addr().unwrap()
        };
        let message = run(Test::TcpRr, closed, SHORT).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("cannot connect to {closed}: ")),
            "{message}"
        );
    }

    #[test]
    fn udp_rr_without_an_answer_is_an_error() {
        // Bound, so no ICMP error comes back, but never read: every request times out.
        let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let target = silent.local_addr().unwrap();
        let error = run(Test::UdpRr, target, Duration::from_millis(100)).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, LoadError::NoReply { .. }), "{message}");
        assert!(message.contains(&target.to_string()), "{message}");
        drop(silent);
    }

    #[test]
    fn udp_rr_discards_stale_replies() {
        // Answers each request at once with the echo of the previous one (as if that had arrived
        // late), and only 5 ms later with the real echo. Taking the stale reply for the current one
        // would make transactions look instant; discarding it makes each last the 5 ms.
        let peer = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let target = peer.local_addr().unwrap();
        thread::spawn(move || {
            let mut buf = [0_u8; 16];
            while let Ok((n, from)) = peer.recv_from(&mut buf) {
                let seq = u32::from_be_bytes(buf[..n].try_into().unwrap());
                let _ = peer.send_to(&seq.wrapping_sub(1).to_be_bytes(), from);
                thread::sleep(Duration::from_millis(5));
                let _ = peer.send_to(&buf[..n], from);
            }
        });
        let duration = Duration::from_millis(200);
        let r = rate(Test::UdpRr, target, duration);
        check_rate(&r, duration);
        assert_eq!(r.errors, 0, "{r:?}");
        assert!(r.latency.p50_us >= 5000.0, "a stale reply was taken: {r:?}");
        assert!(r.completed <= 40, "a stale reply was taken: {r:?}");
    }

    #[test]
    fn outcomes_survive_their_json_line() {
        let rate = Outcome::Rate(Rate {
            completed: 10,
            errors: 1,
            seconds: 0.5,
            per_second: 20.0,
            latency: Latency {
                p50_us: 1.5,
                p99_us: 9.0,
                mean_us: 2.0,
            },
        });
        let stream = Outcome::Stream(Stream {
            bytes: 1 << 20,
            seconds: 1.0,
            gbit_per_s: 0.008,
        });
        for outcome in [rate, stream] {
            let line = outcome_json(&outcome);
            assert!(!line.contains('\n'));
            assert_eq!(parse_outcome(&line).unwrap(), outcome);
        }
        assert!(parse_outcome("{\"kind\":\"nonsense\"}").is_err());
    }
}
