//! The stand-in API server, in a process of its own so the agent side's heap and RSS are the agent's
//! alone (the server holds every object as a JSON value: more than the agent does). kubescale starts
//! itself with `--serve` and the scale; the child builds the cluster, serves it paginated
//! ([`MockApiServer::start_paginated`]) and says `ready <url>`; then each `stream <first> <count>
//! <rate>` line makes it send changes `first..first+count` of [`cluster::change`] at `rate` per second
//! and answer `sent <events> <seconds>`. Closing its stdin (or killing it) ends it.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use strait_tests::stand_in_api::MockApiServer;

use crate::cluster::{self, Scale};

/// The child's side: serves until its stdin closes.
pub fn serve(scale: &Scale) -> anyhow::Result<()> {
    let server = MockApiServer::start_paginated(cluster::objects(scale)?)
        .context("starting the stand-in API server")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {}", server.url())?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["stream", first, count, rate] = words[..] else {
            bail!("unknown command {line:?}");
        };
        let (first, count, rate): (usize, usize, f64) =
            (first.parse()?, count.parse()?, rate.parse()?);
        let (events, seconds) = stream(&server, scale, first, count, rate)?;
        writeln!(out, "sent {events} {seconds}")?;
        out.flush()?;
    }
    Ok(())
}

/// Sends changes `first..first + count` at `rate` per second: the watch events sent, and how long
/// sending took.
fn stream(
    server: &MockApiServer,
    scale: &Scale,
    first: usize,
    count: usize,
    rate: f64,
) -> anyhow::Result<(usize, f64)> {
    ensure!(rate > 0.0, "the rate must be positive");
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut events = 0;
    for (n, k) in (first..first + count).enumerate() {
        let due = start + interval.mul_f64(crate::count_f64(n));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for (event_type, object) in cluster::change_events(k, scale)? {
            server.send(event_type, object);
            events += 1;
        }
    }
    Ok((events, start.elapsed().as_secs_f64()))
}

/// The parent's handle on the child; dropping it ends the child.
pub struct ServerProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The server's base URL.
    pub url: String,
}

impl ServerProcess {
    /// Starts this executable with `--serve` at `scale` and waits until it serves.
    pub fn start(scale: &Scale) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this executable")?;
        let mut child = Command::new(exe)
            .arg("--serve")
            .args(["--services", &scale.services.to_string()])
            .args(["--endpoints", &scale.endpoints_per_service.to_string()])
            .args(["--nodes", &scale.nodes.to_string()])
            .args(["--pods", &scale.pods.to_string()])
            .args(["--namespaces", &scale.namespaces.to_string()])
            .args(["--policies", &scale.policies.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the stand-in API server process")?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("the server process has no pipes");
        };
        let mut server = Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            url: String::new(),
        };
        let line = server.line()?;
        line.strip_prefix("ready ")
            .with_context(|| format!("the server process said {line:?}"))?
            .clone_into(&mut server.url);
        Ok(server)
    }

    /// Has the child send changes `first..first + count` at `rate` per second; the watch events it
    /// sent and how long sending took (s).
    pub fn stream(
        &mut self,
        first: usize,
        count: usize,
        rate: f64,
    ) -> anyhow::Result<(usize, f64)> {
        writeln!(self.stdin, "stream {first} {count} {rate}")?;
        self.stdin.flush()?;
        let line = self.line()?;
        let mut words = line.split_whitespace();
        let (Some("sent"), Some(events), Some(seconds)) =
            (words.next(), words.next(), words.next())
        else {
            bail!("the server process said {line:?}");
        };
        Ok((events.parse()?, seconds.parse()?))
    }

    fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        ensure!(
            self.stdout.read_line(&mut line)? > 0,
            "the server process ended"
        );
        Ok(line.trim_end().to_owned())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
