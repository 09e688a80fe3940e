//! The probe client: connects to TARGET:PORT over TCP (or sends one UDP datagram) and returns what the
//! answering pod sent: its name on the first line, the client address it saw on the second. Runs inside
//! the prober's namespace and cgroup (see `lab probe`). [`ask_many`] runs many probes at once from one
//! process (`lab probe-batch`, what `lab reachability` starts once per probing pod).

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpStream, UdpSocket},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

/// One probe of a batch: where to, over UDP or TCP, and (UDP only) from which source port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub udp: bool,
    /// The UDP source port to bind (`None`: an ephemeral one). A port that cannot be bound falls back
    /// to an ephemeral one. TCP probes always use ephemeral ports.
    pub src_port: Option<u16>,
}

impl std::fmt::Display for Target {
    /// `tcp IP:PORT`, `udp IP:PORT` or `udp IP:PORT from SRCPORT`: one line of `lab probe-batch`'s
    /// input.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = if self.udp { "udp" } else { "tcp" };
        write!(f, "{proto} {}", self.addr)?;
        match self.src_port {
            Some(port) => write!(f, " from {port}"),
            None => Ok(()),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(line: &str) -> Result<Self, String> {
        let usage = || format!("{line:?}: expected `tcp IP:PORT` or `udp IP:PORT [from SRCPORT]`");
        let words: Vec<&str> = line.split_whitespace().collect();
        let (proto, addr, src_port) = match words[..] {
            [proto, addr] => (proto, addr, None),
            [proto, addr, "from", port] => (proto, addr, Some(port)),
            _ => return Err(usage()),
        };
        let udp = match proto {
            "tcp" => false,
            "udp" => true,
            _ => return Err(format!("{line:?}: protocol must be tcp or udp")),
        };
        let addr = addr
            .parse()
            .map_err(|_| format!("{line:?}: {addr:?} is not IP:PORT"))?;
        let src_port = match src_port {
            None => None,
            Some(_) if !udp => {
                return Err(format!(
                    "{line:?}: only UDP probes take a source port (TCP ones use ephemeral ports)"
                ));
            }
            Some(port) => Some(
                port.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| format!("{line:?}: {port:?} is not a source port (1-65535)"))?,
            ),
        };
        Ok(Self {
            addr,
            udp,
            src_port,
        })
    }
}

/// Runs every probe of `targets` on up to `parallel` threads; the answers (as [`ask`] gives them) in
/// the order of `targets`.
pub fn ask_many(
    targets: &[Target],
    timeout: Duration,
    parallel: usize,
) -> Vec<Result<String, String>> {
    let next = AtomicUsize::new(0);
    let answers: Mutex<Vec<Option<Result<String, String>>>> = Mutex::new(vec![None; targets.len()]);
    thread::scope(|scope| {
        for _ in 0..parallel.clamp(1, targets.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(target) = targets.get(i) else { break };
                    let answer = ask_target(target, timeout);
                    if let Ok(mut answers) = answers.lock() {
                        answers[i] = Some(answer);
                    }
                }
            });
        }
    });
    answers
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err("not probed".to_owned())))
        .collect()
}

/// Asks `target` who it is. Errors describe why nobody answered.
/// `IP:PORT` as it is, or `NAME:PORT` through the system resolver (in a pod: its resolv.conf, so
/// cluster DNS); the first IPv4 address.
pub fn resolve(target: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = target.parse() {
        return Ok(addr);
    }
    std::net::ToSocketAddrs::to_socket_addrs(target)
        .map_err(|e| format!("resolving {target}: {e}"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("resolving {target}: no IPv4 address"))
}

pub fn ask(target: SocketAddr, udp: bool, timeout: Duration) -> Result<String, String> {
    ask_target(
        &Target {
            addr: target,
            udp,
            src_port: None,
        },
        timeout,
    )
}

/// [`ask`] for one probe of a batch, from its source port if it names one.
pub fn ask_target(target: &Target, timeout: Duration) -> Result<String, String> {
    if target.udp {
        ask_udp(target.addr, target.src_port, timeout)
    } else {
        ask_tcp(target.addr, timeout)
    }
}

fn ask_tcp(target: SocketAddr, timeout: Duration) -> Result<String, String> {
    let stream = TcpStream::connect_timeout(&target, timeout)
        .map_err(|e| format!("connect {target}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("read from {target}: {e}"))?;
    let name = line.trim().to_owned();
    let mut peer = String::new();
    // The second line is optional: a peer that sends only a name is still an answer.
    let _ = reader.read_line(&mut peer);
    let peer = peer.trim();
    if !name.is_empty() && !peer.is_empty() {
        Ok(format!("{name}\n{peer}"))
    } else if name.is_empty() {
        Err(format!("{target} closed without answering"))
    } else {
        Ok(name)
    }
}

/// A UDP probe from `src_port` (ephemeral when `None` or when it cannot be bound; the error of a
/// failed probe then says so).
fn ask_udp(target: SocketAddr, src_port: Option<u16>, timeout: Duration) -> Result<String, String> {
    let (socket, fallback) = match src_port {
        None => (UdpSocket::bind(("0.0.0.0", 0)), None),
        Some(port) => match UdpSocket::bind(("0.0.0.0", port)) {
            Ok(socket) => (Ok(socket), None),
            Err(e) => (
                UdpSocket::bind(("0.0.0.0", 0)),
                Some(format!(
                    " (source port {port} could not be bound: {e}; probed from an ephemeral port)"
                )),
            ),
        },
    };
    let fallback = fallback.unwrap_or_default();
    let socket = socket.map_err(|e| format!("bind: {e}{fallback}"))?;
    socket
        .connect(target)
        .map_err(|e| format!("connect {target}: {e}{fallback}"))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 512];
    // Datagrams can be lost: ask a few times within the timeout.
    let attempt = timeout / 3;
    while Instant::now() < deadline {
        socket
            .send(b"who\n")
            .map_err(|e| format!("send to {target}: {e}{fallback}"))?;
        let wait = attempt
            .min(deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(1));
        socket
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        match socket.recv(&mut buf) {
            Ok(n) => {
                let name = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
                if !name.is_empty() {
                    return Ok(name);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("receive from {target}: {e}{fallback}")),
        }
    }
    Err(format!(
        "no UDP answer from {target} within {} ms{fallback}",
        timeout.as_millis()
    ))
}

#[cfg(test)]
mod tests {
    use std::{io::Write, net::TcpListener, thread};

    use super::*;

    #[test]
    fn tcp_probe_returns_the_answer_and_reports_refusal() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"ns/pod-a\n").unwrap();
        });
        assert_eq!(
            ask(addr, false, Duration::from_secs(2)).unwrap(),
            "ns/pod-a"
        );
        // Nothing listens on the port any more.
        assert!(ask(addr, false, Duration::from_millis(300)).is_err());
    }

    #[test]
    fn a_batch_answers_in_order_and_in_parallel() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = listener.local_addr().unwrap();
        thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let _ = s.write_all(b"ns/a\n");
            }
        });
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp = silent.local_addr().unwrap();
        let mut targets = vec![
            Target {
                addr: udp,
                udp: true,
                src_port: None,
            };
            8
        ];
        targets.insert(
            3,
            Target {
                addr: tcp,
                udp: false,
                src_port: None,
            },
        );
        let started = Instant::now();
        let answers = ask_many(&targets, Duration::from_millis(300), 16);
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "probes ran in parallel: {:?}",
            started.elapsed()
        );
        assert_eq!(answers.len(), 9);
        assert_eq!(answers[3], Ok("ns/a".to_owned()));
        assert!(
            answers
                .iter()
                .enumerate()
                .all(|(i, a)| (i == 3) == a.is_ok())
        );
        let line = targets[3].to_string();
        assert_eq!(line.parse::<Target>(), Ok(targets[3]));
        assert!("sctp 1.2.3.4:5".parse::<Target>().is_err());
        let from = "udp 1.2.3.4:81 from 20017".parse::<Target>().unwrap();
        assert_eq!(from.src_port, Some(20017));
        assert_eq!(from.to_string(), "udp 1.2.3.4:81 from 20017");
        for wrong in [
            "tcp 1.2.3.4:80 from 20017",
            "udp 1.2.3.4:81 from 0",
            "udp 1.2.3.4:81 from",
            "udp 1.2.3.4:81 20017",
        ] {
            assert!(wrong.parse::<Target>().is_err(), "{wrong}");
        }
        assert!("tcp nowhere".parse::<Target>().is_err());
        assert!(ask_many(&[], Duration::from_millis(10), 4).is_empty());
    }

    #[test]
    fn udp_probe_times_out_without_an_answer() {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = ask(
            silent.local_addr().unwrap(),
            true,
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(err.contains("no UDP answer"), "{err}");
    }

    /// A UDP server that answers each datagram with the source port it came from.
    fn port_echo() -> SocketAddr {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok((_, peer)) = server.recv_from(&mut buf) {
                let _ = server.send_to(peer.port().to_string().as_bytes(), peer);
            }
        });
        addr
    }

    #[test]
    fn udp_probes_use_their_source_port_or_fall_back_to_an_ephemeral_one() {
        let server = port_echo();
        let timeout = Duration::from_secs(2);
        let free = UdpSocket::bind("0.0.0.0:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target = |src_port| Target {
            addr: server,
            udp: true,
            src_port,
        };
        assert_eq!(
            ask_target(&target(Some(free)), timeout),
            Ok(free.to_string())
        );
        // Its port is taken: the probe still runs, from another port.
        let holder = UdpSocket::bind("0.0.0.0:0").unwrap();
        let taken = holder.local_addr().unwrap().port();
        let answer = ask_target(&target(Some(taken)), timeout).unwrap();
        assert_ne!(answer, taken.to_string());
        // ... and a failed probe says so.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = ask_target(
            &Target {
                addr: silent.local_addr().unwrap(),
                udp: true,
                src_port: Some(taken),
            },
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(
            err.contains("no UDP answer") && err.contains(&format!("source port {taken}")),
            "{err}"
        );
    }
}
