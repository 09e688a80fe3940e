//! Connection latency from inside a pod: `strait lab connect-bench` makes N sequential TCP connections to
//! one target (connect, read the answering pod's one-line name, close) and reports the distribution of
//! the whole exchange. It runs in the pod's network namespace *and* cgroup, because service translation
//! happens in cgroup socket hooks: a client outside the pod's cgroup would bypass them.
//! [`Lab::connect_bench`] places the client and parses its one-line JSON report.

use std::{
    net::SocketAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::{LabError, cluster::Lab, process};

/// Default time allowed for each connection (connect and read), in ms.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;

/// The outcome of a connection benchmark. Latencies are over the successful connections only; each
/// covers connect + reading the answer line + close.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnStats {
    /// Connections attempted.
    pub count: usize,
    /// Connections that failed (refused, timed out, closed without an answer).
    pub failures: usize,
    pub p50_us: u64,
    pub p99_us: u64,
    pub mean_us: u64,
    /// The slowest successful connection.
    #[serde(default)]
    pub max_us: u64,
}

/// One connection: connect, read the answer, close (the probe's exchange). Returns how long it took.
fn one(target: SocketAddr, timeout: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    crate::probe::ask(target, false, timeout)?;
    Ok(started.elapsed())
}

/// Makes `count` sequential connections to `target` from the current namespace and cgroup. The first
/// error message is returned alongside the statistics, for diagnosis.
pub fn run(target: SocketAddr, count: usize, timeout: Duration) -> (ConnStats, Option<String>) {
    let mut samples: Vec<u64> = Vec::with_capacity(count);
    let mut failures = 0;
    let mut first_error = None;
    for _ in 0..count {
        match one(target, timeout) {
            Ok(took) => samples.push(u64::try_from(took.as_micros()).unwrap_or(u64::MAX)),
            Err(error) => {
                failures += 1;
                first_error.get_or_insert(error);
            }
        }
    }
    (summarize(count, failures, samples), first_error)
}

/// Percentiles (nearest rank), mean and maximum of `samples` in µs.
fn summarize(count: usize, failures: usize, mut samples: Vec<u64>) -> ConnStats {
    samples.sort_unstable();
    let rank = |p: usize| -> u64 {
        if samples.is_empty() {
            return 0;
        }
        // Nearest rank: the smallest sample with at least p% of the samples at or below it.
        let index = (samples.len() * p).div_ceil(100).max(1) - 1;
        samples[index.min(samples.len() - 1)]
    };
    let mean = if samples.is_empty() {
        0
    } else {
        samples.iter().sum::<u64>() / samples.len() as u64
    };
    ConnStats {
        count,
        failures,
        p50_us: rank(50),
        p99_us: rank(99),
        mean_us: mean,
        max_us: samples.last().copied().unwrap_or(0),
    }
}

impl Lab {
    /// Runs `count` sequential connections from `from` (`NS/POD`, `node/NAME` or `external`) to `target`
    /// (`IP:PORT` or `NS/POD:PORT`) with `strait lab connect-bench`, placed in `from`'s namespace and
    /// cgroup. Fails when the client cannot run or every connection failed.
    pub fn connect_bench(
        &self,
        from: &str,
        target: &str,
        count: usize,
    ) -> Result<ConnStats, LabError> {
        let addr = self.resolve_target(target)?;
        let placement = self.placement(from)?;
        let mut command = Command::new(self.bin_dir.join("strait"));
        command
            .args(["lab", "connect-bench", "--target"])
            .arg(addr.to_string())
            .arg("--count")
            .arg(count.to_string())
            .arg("--timeout-ms")
            .arg(DEFAULT_TIMEOUT_MS.to_string())
            .env("STRAIT_LAB", &self.names.lab)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = process::spawn_in(&placement, &mut command, false)?;
        let output = child
            .wait_with_output()
            .map_err(|e| LabError::io("waiting for connect-bench", e))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(LabError::Environment(format!(
                "connect-bench from {from} to {addr} failed ({}): {}",
                output.status,
                stderr.trim()
            )));
        }
        let stats: ConnStats = stdout
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str(line).ok())
            .ok_or_else(|| {
                LabError::Environment(format!(
                    "connect-bench from {from} to {addr} printed no report: {}",
                    stdout.trim()
                ))
            })?;
        if count > 0 && stats.failures == stats.count {
            return Err(LabError::Environment(format!(
                "every connection from {from} to {addr} failed: {}",
                stderr.trim()
            )));
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use std::{io::Write, net::TcpListener, thread};

    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let stats = summarize(101, 1, (1..=100).collect());
        assert_eq!(stats.p50_us, 50);
        assert_eq!(stats.p99_us, 99);
        assert_eq!(stats.mean_us, 50);
        assert_eq!(stats.max_us, 100);
        assert_eq!(stats.failures, 1);
        assert_eq!(summarize(3, 3, Vec::new()).p99_us, 0);
    }

    #[test]
    fn counts_answers_and_failures() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let mut stream = stream.unwrap();
                // Every third connection is closed without an answer.
                if n % 3 != 2 {
                    stream.write_all(b"ns/pod\n").unwrap();
                }
            }
        });
        let (stats, error) = run(addr, 6, Duration::from_secs(2));
        assert_eq!((stats.count, stats.failures), (6, 2), "{error:?}");
        assert!(error.unwrap().contains("without answering"));
        assert!(stats.p50_us > 0 && stats.p50_us <= stats.p99_us);
    }
}
