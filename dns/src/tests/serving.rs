//! The server over real sockets on loopback: answers come back on every one of its UDP sockets
//! (several clients, spread by the kernel), over TCP, and for names it must forward (REFUSED with no
//! upstream); a repeated question gets its own id and a new zone's answer; stopping it frees the
//! port.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use hickory_proto::{
    op::{Message, MessageType, Query, ResponseCode},
    rr::{Name, RData, RecordType, rdata::A},
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpStream, UdpSocket},
    time::timeout,
};

use super::fixtures::spec_zone;
use crate::{
    Zone,
    forward::{ForwardConfig, Forwarder},
    metrics::ServerCounters,
    server::{DnsServer, ZoneSource},
};

struct Fixed(Arc<Zone>);

impl ZoneSource for Fixed {
    fn zone(&self) -> Arc<Zone> {
        Arc::clone(&self.0)
    }
}

const WAIT: Duration = Duration::from_secs(5);

fn start(threads: usize, counters: Arc<ServerCounters>) -> DnsServer<Fixed> {
    DnsServer::start(
        (Ipv4Addr::LOCALHOST, 0).into(),
        Fixed(Arc::new(spec_zone())),
        Arc::new(Forwarder::new(ForwardConfig::default(), Arc::default())),
        counters,
        threads,
    )
    .expect("the server starts on loopback")
}

fn question(id: u16, name: &str) -> Message {
    let mut message = Message::query();
    message.metadata.id = id;
    message.add_query(Query::query(
        Name::from_ascii(name).expect("valid name"),
        RecordType::A,
    ));
    message
}

async fn ask_udp(server: SocketAddr, id: u16, name: &str) -> Message {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    socket
        .send_to(&question(id, name).to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buffer = [0u8; 1500];
    let (length, from) = timeout(WAIT, socket.recv_from(&mut buffer))
        .await
        .unwrap_or_else(|_| panic!("no UDP answer to {name}"))
        .unwrap();
    assert_eq!(from, server, "the answer comes from the server's address");
    let answer = Message::from_vec(&buffer[..length]).expect("the answer parses");
    assert_eq!(answer.metadata.id, id);
    assert_eq!(answer.metadata.message_type, MessageType::Response);
    answer
}

fn only_a(answer: &Message) -> RData {
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer.answers.len(), 1, "{answer:?}");
    answer.answers[0].data.clone()
}

#[tokio::test]
async fn answers_on_every_socket_over_tcp_and_refuses_outside_the_zone() {
    let counters = Arc::new(ServerCounters::default());
    let server = start(2, counters.clone());
    assert_eq!(server.threads, 2);
    let addr = server.local_addr;
    // 32 clients on 32 source ports, which the kernel spreads over both sockets.
    let clients = (0..32u16).map(|id| async move {
        only_a(&ask_udp(addr, id, "kubernetes.default.svc.cluster.local").await)
    });
    for data in futures_join_all(clients).await {
        assert_eq!(data, RData::A(A::new(10, 3, 0, 1)));
    }
    let refused = ask_udp(addr, 99, "example.org").await;
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    assert!(!refused.metadata.authoritative);

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let bytes = question(7, "kubernetes.default.svc.cluster.local")
        .to_vec()
        .unwrap();
    tcp.write_all(&u16::try_from(bytes.len()).unwrap().to_be_bytes())
        .await
        .unwrap();
    tcp.write_all(&bytes).await.unwrap();
    let length = timeout(WAIT, tcp.read_u16()).await.unwrap().unwrap();
    let mut body = vec![0u8; usize::from(length)];
    tcp.read_exact(&mut body).await.unwrap();
    let answer = Message::from_vec(&body).unwrap();
    assert_eq!(answer.metadata.id, 7);
    assert_eq!(only_a(&answer), RData::A(A::new(10, 3, 0, 1)));

    assert_eq!(counters.responses(ResponseCode::NoError), 33);
    assert_eq!(counters.responses(ResponseCode::Refused), 1);

    server.stop().await;
    // Every socket is closed: the port can be bound again without SO_REUSEPORT.
    let mut freed = false;
    for _ in 0..50 {
        if std::net::UdpSocket::bind(addr).is_ok() && std::net::TcpListener::bind(addr).is_ok() {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "the server's port {addr} is still in use after stop");
}

/// Awaits every future, in order (the crate has no `futures` dependency).
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("the client task ends"));
    }
    outputs
}

/// A zone that can be replaced while the server runs, with its generation.
struct Swappable(Arc<std::sync::Mutex<(u64, Arc<Zone>)>>);

impl ZoneSource for Swappable {
    fn zone(&self) -> Arc<Zone> {
        self.0.lock().unwrap().1.clone()
    }

    fn generation(&self) -> Option<u64> {
        Some(self.0.lock().unwrap().0)
    }
}

#[tokio::test]
async fn a_new_zone_is_answered_at_once_even_for_a_question_asked_before() {
    let current = Arc::new(std::sync::Mutex::new((0, Arc::new(spec_zone()))));
    let server = DnsServer::start(
        (Ipv4Addr::LOCALHOST, 0).into(),
        Swappable(current.clone()),
        Arc::new(Forwarder::new(ForwardConfig::default(), Arc::default())),
        Arc::default(),
        1,
    )
    .unwrap();
    let name = "kubernetes.default.svc.cluster.local";
    // Asked twice: the second is answered from the thread's memo of the first.
    for id in [1, 2] {
        assert_eq!(
            only_a(&ask_udp(server.local_addr, id, name).await),
            RData::A(A::new(10, 3, 0, 1))
        );
    }
    *current.lock().unwrap() = (1, Arc::new(Zone::new(crate::ZoneConfig::default(), [])));
    let gone = ask_udp(server.local_addr, 3, name).await;
    assert_eq!(gone.metadata.response_code, ResponseCode::NXDomain);
    server.stop().await;
}

#[test]
fn dropping_a_running_server_inside_another_runtime_does_not_panic() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = start(1, Arc::default());
        let addr = server.local_addr;
        only_a(&ask_udp(addr, 1, "kubernetes.default.svc.cluster.local").await);
        drop(server);
    });
}

#[test]
fn a_taken_tcp_port_is_an_error_even_inside_another_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let holder = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let taken = holder.local_addr().unwrap();
        let started = DnsServer::start(
            taken,
            Fixed(Arc::new(spec_zone())),
            Arc::new(Forwarder::new(ForwardConfig::default(), Arc::default())),
            Arc::default(),
            1,
        );
        let Err(error) = started else {
            panic!("a server started on a TCP port another socket holds");
        };
        let message = error.to_string();
        assert!(
            message.contains("(tcp)") && message.contains(&taken.to_string()),
            "the error names the protocol and address: {message}"
        );
    });
}
