//! The clients of a DNS run, started inside the client pod: `dnsperf` (queries per second at
//! saturation: 4 clients, 64 queries outstanding), netbench's own latency client (one query in
//! flight at a time, every answer timed: the percentiles dnsperf does not give), and `dig` to
//! check each server's answer before anything is measured.

use std::{
    net::{SocketAddr, UdpSocket},
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use strait_lab::process::{self as lab_process, Placement};

use crate::netbench::{crossnode::CrossError, wiring};

/// dnsperf's clients (source ports) and queries outstanding in all.
pub const DNSPERF_CLIENTS: usize = 4;
pub const DNSPERF_OUTSTANDING: usize = 64;
/// dnsperf's threads: one per CPU (at most its clients), so the client is not what limits a
/// target that answers in the kernel.
pub fn dnsperf_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(DNSPERF_CLIENTS))
}

/// How long the latency client waits for one answer before it counts the query as lost.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// What dnsperf reports of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub queries_per_second: f64,
    pub sent: u64,
    pub completed: u64,
    pub lost: u64,
    /// dnsperf's mean latency, microseconds (at saturation: mostly queueing).
    pub mean_latency_us: f64,
}

/// What the latency client measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub answered: u64,
    pub lost: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

fn failed(what: String) -> CrossError {
    CrossError::Invalid(what)
}

fn run_in(placement: &Placement, command: &mut Command, what: &str) -> Result<Output, CrossError> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = lab_process::spawn_in(placement, command, false).map_err(
        crate::netbench::crossnode::error::lab(format!("starting {what}")),
    )?;
    let output = child
        .wait_with_output()
        .map_err(|e| failed(format!("waiting for {what}: {e}")))?;
    if !output.status.success() {
        return Err(failed(format!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output)
}

/// dnsperf against `server` for `seconds`, the names of `queries` (a dnsperf input file) in turn.
pub fn dnsperf(
    placement: &Placement,
    server: SocketAddr,
    queries: &Path,
    seconds: f64,
) -> Result<Throughput, CrossError> {
    let mut command = Command::new("dnsperf");
    command
        .args([
            "-s",
            &server.ip().to_string(),
            "-p",
            &server.port().to_string(),
        ])
        .arg("-d")
        .arg(queries)
        .args(["-l", &format!("{seconds}")])
        .args(["-T", &dnsperf_threads().to_string()])
        .args(["-c", &DNSPERF_CLIENTS.to_string()])
        .args(["-q", &DNSPERF_OUTSTANDING.to_string()])
        .args(["-t", "2"]);
    let output = run_in(placement, &mut command, &format!("dnsperf to {server}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_dnsperf(&text)
        .ok_or_else(|| failed(format!("dnsperf to {server}: unreadable report:\n{text}")))
}

/// The figures of dnsperf's report (`Queries sent:`, `Queries completed:`, `Queries lost:`,
/// `Queries per second:`, `Average Latency (s):`).
pub fn parse_dnsperf(text: &str) -> Option<Throughput> {
    let first = |label: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
    };
    let value = |label: &str| first(label)?.parse::<f64>().ok();
    let count = |label: &str| first(label)?.parse::<u64>().ok();
    Some(Throughput {
        queries_per_second: value("Queries per second:")?,
        sent: count("Queries sent:")?,
        completed: count("Queries completed:")?,
        lost: count("Queries lost:")?,
        mean_latency_us: value("Average Latency (s):")? * 1e6,
    })
}

/// netbench's latency client against `server` for `seconds` (`netbench dns-latency`, run in the
/// client pod), the names of `names` (one per line) in turn.
pub fn latency_in(
    placement: &Placement,
    server: SocketAddr,
    names: &Path,
    seconds: f64,
) -> Result<Latency, CrossError> {
    netbench_in(
        placement,
        "dns-latency",
        server,
        names,
        seconds,
        "the latency client",
    )
}

/// The batching client against `server` for `seconds` (`netbench dns-load`, run in the client pod).
pub fn batch_load_in(
    placement: &Placement,
    server: SocketAddr,
    names: &Path,
    seconds: f64,
) -> Result<super::batch_client::BatchThroughput, CrossError> {
    netbench_in(
        placement,
        "dns-load",
        server,
        names,
        seconds,
        "the batching client",
    )
}

/// Runs `netbench SUBCOMMAND --server --names --seconds` in `placement` and reads its JSON line.
fn netbench_in<T: serde::de::DeserializeOwned>(
    placement: &Placement,
    subcommand: &str,
    server: SocketAddr,
    names: &Path,
    seconds: f64,
    what: &str,
) -> Result<T, CrossError> {
    let exe = wiring::current_exe().map_err(crate::netbench::crossnode::error::run("netbench"))?;
    let mut command = Command::new(exe);
    command
        .arg(subcommand)
        .args(["--server", &server.to_string()])
        .arg("--names")
        .arg(names)
        .args(["--seconds", &format!("{seconds}")]);
    let output = run_in(placement, &mut command, &format!("{what} to {server}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim()).map_err(|e| failed(format!("{what}'s answer {text:?}: {e}")))
}

/// A query for `name`, type A, class IN, recursion desired, no EDNS (as glibc asks).
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut bytes = id.to_be_bytes().to_vec();
    bytes.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        bytes.push(u8::try_from(label.len()).unwrap_or(63).min(63));
        bytes.extend(label.bytes().take(63));
    }
    bytes.extend([0, 0, 1, 0, 1]);
    bytes
}

/// Asks `server` the `names` in turn, one query in flight, for `duration`; times every answer (a
/// reply with the query's id and the response bit). No answer within a second counts as lost.
pub fn measure_latency(
    server: SocketAddr,
    names: &[String],
    duration: Duration,
) -> std::io::Result<Latency> {
    let socket = UdpSocket::bind(if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })?;
    socket.connect(server)?;
    socket.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let queries: Vec<Vec<u8>> = names.iter().map(|name| query(0, name)).collect();
    if queries.is_empty() {
        return Err(std::io::Error::other("no names to ask"));
    }
    let mut samples: Vec<u32> = Vec::with_capacity(200_000);
    let mut lost = 0;
    let mut buffer = [0u8; 1500];
    let started = Instant::now();
    let mut id: u16 = 0;
    while started.elapsed() < duration {
        id = id.wrapping_add(1);
        let mut asked = queries[usize::from(id) % queries.len()].clone();
        asked[..2].copy_from_slice(&id.to_be_bytes());
        let sent = Instant::now();
        socket.send(&asked)?;
        loop {
            match socket.recv(&mut buffer) {
                Ok(n) if n >= 12 && buffer[..2] == id.to_be_bytes() && buffer[2] & 0x80 != 0 => {
                    let took = sent.elapsed().as_nanos();
                    samples.push(u32::try_from(took).unwrap_or(u32::MAX));
                    break;
                }
                Ok(_) => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    lost += 1;
                    break;
                }
                Err(error) => return Err(error),
            }
        }
    }
    samples.sort_unstable();
    // The sample below which `per_mille` of them lie.
    let at = |per_mille: usize| {
        samples
            .get((samples.len() * per_mille / 1000).min(samples.len().saturating_sub(1)))
            .map_or(0.0, |ns| f64::from(*ns) / 1000.0)
    };
    Ok(Latency {
        answered: samples.len() as u64,
        lost,
        p50_us: at(500),
        p90_us: at(900),
        p99_us: at(990),
        max_us: samples.last().map_or(0.0, |ns| f64::from(*ns) / 1000.0),
    })
}

/// `dig`'s short answer for `name` from `server`, asked in `placement` (one try, one second).
pub fn dig(placement: &Placement, server: SocketAddr, name: &str) -> Result<String, CrossError> {
    let mut command = Command::new("dig");
    command
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .args(["+short", "+time=1", "+tries=1", name, "A"]);
    let output = run_in(placement, &mut command, &format!("dig {name} @{server}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsperf_reports_are_read() {
        let text = "Statistics:\n\n  Queries sent:         431840\n  Queries completed:    431830 (100.00%)\n  \
                    Queries lost:         10 (0.00%)\n\n  Response codes:       NOERROR 431830 (100.00%)\n  \
                    Average packet size:  request 47, response 92\n  Run time (s):         3.000119\n  \
                    Queries per second:   143938.379644\n\n  Average Latency (s):  0.000019 (min 0.000004, max 0.003294)\n";
        let figures = parse_dnsperf(text).unwrap();
        assert_eq!(
            (figures.sent, figures.completed, figures.lost),
            (431_840, 431_830, 10)
        );
        assert!((figures.queries_per_second - 143_938.379_644).abs() < 1e-6);
        assert!((figures.mean_latency_us - 19.0).abs() < 1e-6);
        assert_eq!(parse_dnsperf("Queries sent: 1\n"), None);
    }

    #[test]
    fn the_latency_client_times_answers_and_counts_the_lost() {
        // A responder on loopback that answers every other query (flips QR, keeps the id).
        let responder = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = responder.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 512];
            let mut n = 0;
            while let Ok((length, from)) = responder.recv_from(&mut buffer) {
                n += 1;
                if n % 2 == 0 {
                    continue;
                }
                buffer[2] |= 0x80;
                let _ = responder.send_to(&buffer[..length], from);
            }
        });
        let figures = measure_latency(
            server,
            &["a.example".to_owned()],
            Duration::from_millis(1500),
        )
        .unwrap();
        assert!(figures.answered >= 1 && figures.lost >= 1, "{figures:?}");
        assert!(figures.p50_us > 0.0 && figures.p50_us <= figures.p99_us);
        assert!(figures.p99_us <= figures.max_us);
        assert_eq!(
            query(7, "ab.c"),
            [
                0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, b'a', b'b', 1, b'c', 0, 0, 1, 0, 1
            ]
        );
    }
}
