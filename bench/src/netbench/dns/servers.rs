//! knot and unbound as the run's reference servers, started in a lab namespace (the node's) with
//! their configuration in a directory of the run, serving [`records`](super::records)' zone on a
//! port of their own; each is stopped (and its directory removed) when its guard drops.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use strait_lab::process::{self as lab_process, Placement};

use super::records;
use crate::netbench::crossnode::CrossError;

/// How long a server may take to answer its first question.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A reference implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reference {
    Knot,
    Unbound,
}

impl Reference {
    pub const ALL: [Reference; 2] = [Self::Knot, Self::Unbound];

    /// The program that must be installed, and its Debian package.
    pub fn program(self) -> (&'static str, &'static str) {
        match self {
            Self::Knot => ("knotd", "knot"),
            Self::Unbound => ("unbound", "unbound"),
        }
    }

    /// The worker threads it runs by default, which the run gives it: knot one UDP worker per
    /// online CPU (`udp-workers`), unbound one thread (`num-threads`).
    pub fn default_threads(self) -> usize {
        match self {
            Self::Knot => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            Self::Unbound => 1,
        }
    }

    /// The port it serves on (the node's address already has strait's server on 53).
    pub fn port(self) -> u16 {
        match self {
            Self::Knot => 5301,
            Self::Unbound => 5302,
        }
    }
}

/// A running reference server, stopped when dropped.
pub struct ReferenceServer {
    pub reference: Reference,
    pub addr: SocketAddr,
    pub threads: usize,
    child: Child,
    dir: PathBuf,
}

impl ReferenceServer {
    /// Writes `reference`'s configuration for `addresses` under `dir` and starts it in `placement`
    /// on `ip`, with its default number of threads.
    pub fn start(
        reference: Reference,
        placement: &Placement,
        ip: Ipv4Addr,
        addresses: &[Ipv4Addr],
        dir: &Path,
    ) -> Result<Self, CrossError> {
        let dir = dir.join(reference.program().1);
        fs::create_dir_all(&dir).map_err(|source| CrossError::Io {
            what: "creating",
            path: dir.clone(),
            source,
        })?;
        let addr = SocketAddr::from((ip, reference.port()));
        let threads = reference.default_threads();
        let (program, _) = reference.program();
        let mut command = Command::new(program);
        match reference {
            Reference::Knot => {
                let text = dir.display().to_string();
                write(
                    &dir.join(format!("{}.zone", records::DOMAIN)),
                    &records::knot_zone(addresses, ip),
                )?;
                let config = dir.join("knot.conf");
                write(&config, &records::knot_config(&text, addr, threads))?;
                command.arg("-c").arg(&config);
            }
            Reference::Unbound => {
                let config = dir.join("unbound.conf");
                write(&config, &records::unbound_config(addr, threads, addresses))?;
                command.arg("-d").arg("-c").arg(&config);
            }
        }
        let log = fs::File::create(dir.join("log")).map_err(|source| CrossError::Io {
            what: "creating",
            path: dir.join("log"),
            source,
        })?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = lab_process::spawn_in(placement, &mut command, false).map_err(
            crate::netbench::crossnode::error::lab(format!("starting {program}")),
        )?;
        Ok(Self {
            reference,
            addr,
            threads,
            child,
            dir,
        })
    }

    /// Waits until `answers` says the server answers (it is given the server's address), or fails
    /// with its log.
    pub fn wait_ready(
        &mut self,
        mut answers: impl FnMut(SocketAddr) -> bool,
    ) -> Result<(), CrossError> {
        let started = Instant::now();
        while started.elapsed() < READY_WITHIN {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failure(&format!("exited ({status})")));
            }
            if answers(self.addr) {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(200));
        }
        Err(self.failure(&format!("did not answer within {READY_WITHIN:?}")))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn ensure_alive(&mut self) -> Result<(), CrossError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            _ => Err(self.failure("stopped during the run")),
        }
    }

    fn failure(&self, what: &str) -> CrossError {
        let log = fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        CrossError::Invalid(format!(
            "{} on {} {what}: {}",
            self.reference.program().0,
            self.addr,
            log.trim()
        ))
    }
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn write(path: &Path, text: &str) -> Result<(), CrossError> {
    fs::write(path, text).map_err(|source| CrossError::Io {
        what: "writing",
        path: path.to_owned(),
        source,
    })
}
