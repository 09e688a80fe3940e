//! The built-in pod workload: answers every TCP connection and every UDP datagram on each declared port
//! with the pod's `NS/NAME` and a newline, then the client address it saw and a newline. It signals readiness by creating a file once all sockets are bound.

use std::{
    io::Write,
    net::{Ipv4Addr, TcpListener, UdpSocket},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{
    LabError,
    process::{self, Placement},
};

/// How to start a workload process: who it says it is, what it serves, where it runs and logs.
pub(crate) struct Start<'a> {
    pub bin_dir: &'a Path,
    pub lab: &'a str,
    pub identity: &'a str,
    pub listen: &'a [Listen],
    pub placement: Placement,
    pub ready_file: PathBuf,
    pub log_file: PathBuf,
    pub timeout: Duration,
}

/// Starts `strait lab workload` as `start` says (detached, with the lab's marker) and waits until it has
/// bound every port; returns its pid. A workload that dies or is not ready in time is stopped.
pub(crate) fn spawn(start: &Start<'_>) -> Result<i32, LabError> {
    let ready = &start.ready_file;
    let _ = std::fs::remove_file(ready);
    let log = process::log_file(&start.log_file)?;
    let log_err = log
        .try_clone()
        .map_err(|e| LabError::io("duplicating the log handle", e))?;
    let mut command = Command::new(start.bin_dir.join("strait"));
    command
        .args(["lab", "workload", "--identity", start.identity])
        .arg("--ready-file")
        .arg(ready);
    for listen in start.listen {
        command.arg("--listen").arg(listen.to_string());
    }
    command
        .env("STRAIT_LAB", start.lab)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    let child = process::spawn_in(&start.placement, &mut command, true)?;
    let pid = i32::try_from(child.id()).unwrap_or_default();
    let deadline = Instant::now() + start.timeout;
    while !ready.exists() {
        if !process::alive(pid) || Instant::now() > deadline {
            process::stop(pid, Duration::from_millis(100));
            return Err(LabError::Environment(format!(
                "workload {} did not become ready (log: {})",
                start.identity,
                start.log_file.display()
            )));
        }
        thread::sleep(Duration::from_millis(10));
    }
    Ok(pid)
}

/// One port to serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp(u16),
    Udp(u16),
}

impl std::fmt::Display for Listen {
    /// `tcp:PORT` or `udp:PORT`, as [`parse_listen`] reads it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(p) => write!(f, "tcp:{p}"),
            Listen::Udp(p) => write!(f, "udp:{p}"),
        }
    }
}

/// Binds every port, writes `ready_file`, then serves forever.
pub fn run(identity: &str, ports: &[Listen], ready_file: &Path) -> Result<(), LabError> {
    // Line 1 names the pod; line 2 is the client address as the pod sees it (SNAT shows here).
    let identity = identity.to_owned();
    let answer = move |peer: std::net::SocketAddr| format!("{identity}\n{peer}\n");
    let mut workers = Vec::new();
    for port in ports {
        match *port {
            Listen::Tcp(p) => {
                let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, p))
                    .map_err(|e| LabError::io(format!("binding TCP port {p}"), e))?;
                let answer = answer.clone();
                workers.push(thread::spawn(move || {
                    for mut stream in listener.incoming().flatten() {
                        if let Ok(peer) = stream.peer_addr() {
                            let _ = stream.write_all(answer(peer).as_bytes());
                        }
                    }
                }));
            }
            Listen::Udp(p) => {
                let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, p))
                    .map_err(|e| LabError::io(format!("binding UDP port {p}"), e))?;
                let answer = answer.clone();
                workers.push(thread::spawn(move || {
                    let mut buf = [0u8; 2048];
                    loop {
                        if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                            let _ = socket.send_to(answer(peer).as_bytes(), peer);
                        }
                    }
                }));
            }
        }
    }
    std::fs::write(ready_file, b"ready\n")
        .map_err(|e| LabError::io(format!("writing {}", ready_file.display()), e))?;
    for worker in workers {
        let _ = worker.join();
    }
    // A pod with no ports idles like a sleeping container.
    loop {
        thread::park();
    }
}

/// Parses `tcp:8080` / `udp:53`.
pub fn parse_listen(text: &str) -> Result<Listen, String> {
    let (proto, port) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected tcp:PORT or udp:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{text:?}: {port:?} is not a port number"))?;
    match proto.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Listen::Tcp(port)),
        "udp" => Ok(Listen::Udp(port)),
        _ => Err(format!("{text:?}: protocol must be tcp or udp")),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::Read,
        net::{TcpStream, UdpSocket},
        time::{Duration, Instant},
    };

    use super::*;

    #[test]
    fn listen_specs_parse_and_reject_garbage() {
        assert_eq!(parse_listen("tcp:8080"), Ok(Listen::Tcp(8080)));
        assert_eq!(parse_listen("UDP:53"), Ok(Listen::Udp(53)));
        assert_eq!(
            parse_listen(&Listen::Udp(53).to_string()),
            Ok(Listen::Udp(53))
        );
        assert!(parse_listen("sctp:1").is_err());
        assert!(parse_listen("tcp:99999").is_err());
        assert!(parse_listen("8080").is_err());
    }

    #[test]
    fn answers_tcp_and_udp_with_its_identity() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let tcp = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let udp = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ready_path = ready.clone();
        thread::spawn(move || {
            run(
                "default/web-1",
                &[Listen::Tcp(tcp), Listen::Udp(udp)],
                &ready_path,
            )
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "workload never became ready");
            thread::sleep(Duration::from_millis(10));
        }
        let mut reply = String::new();
        let mut stream = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
        let me = stream.local_addr().unwrap();
        stream.read_to_string(&mut reply).unwrap();
        assert_eq!(
            reply,
            format!("default/web-1\n{me}\n"),
            "name, then the client it saw"
        );
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        client.send_to(b"hi", ("127.0.0.1", udp)).unwrap();
        let mut buf = [0u8; 64];
        let n = client.recv(&mut buf).unwrap();
        let me = client.local_addr().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&buf[..n]),
            format!("default/web-1\n{me}\n")
        );
    }
}
