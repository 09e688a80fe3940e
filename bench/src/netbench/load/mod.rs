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
    use super::*;
    use crate::netbench::results::Latency;

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
