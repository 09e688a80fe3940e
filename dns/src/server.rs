//! The node's DNS server: hickory-server on UDP and TCP, answering each question from the newest
//! [`Zone`] a [`ZoneSource`] hands out. Names outside the cluster zone (and reverse names the zone
//! does not hold) go to the [`Forwarder`] (REFUSED when it has no upstream); a request
//! that is not one standard query (zero or several questions, an update, a notify) gets FORMERR or
//! NOTIMP. TCP is hickory-server's; UDP is strait's own thread per socket (`udp`), which drops a
//! message shorter than a header and a response (QR=1), and answers FORMERR to one whose header
//! reads but whose body does not parse, as hickory-server does. The server runs on threads of its
//! own, apart from the agent's. [`answer_bytes`] runs raw bytes through the UDP path without a
//! socket.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use hickory_proto::op::{Edns, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::Record;
use hickory_server::{
    Server,
    net::{runtime::Time, xfer::Protocol},
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    zone_handler::MessageResponseBuilder,
};
use tokio::net::TcpListener;

use crate::{
    Lookup, Zone,
    forward::{Forwarded, Forwarder},
    metrics::{ServerCounters, Transport},
    udp,
};

/// How long a TCP connection may stay idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// The largest UDP answer offered to EDNS clients (the DNS flag day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;

/// Where the server gets the zone from, once per query.
pub trait ZoneSource: Send + Sync + Unpin + 'static {
    fn zone(&self) -> Arc<Zone>;

    /// A number that changes whenever [`ZoneSource::zone`] would hand out another zone, cheap to
    /// read from many threads; `None` when the source cannot tell (then the zone is fetched for
    /// every question).
    fn generation(&self) -> Option<u64> {
        None
    }
}

/// Answers cluster questions from the zone.
pub struct ClusterDnsHandler<S> {
    zones: S,
    forwarder: Arc<Forwarder>,
    counters: Arc<ServerCounters>,
}

impl<S: ZoneSource> ClusterDnsHandler<S> {
    pub fn new(zones: S, forwarder: Arc<Forwarder>, counters: Arc<ServerCounters>) -> Self {
        Self {
            zones,
            forwarder,
            counters,
        }
    }

    /// The zone questions are answered from now.
    pub(crate) fn zone(&self) -> Arc<Zone> {
        self.zones.zone()
    }

    /// The source's [`ZoneSource::generation`].
    pub(crate) fn generation(&self) -> Option<u64> {
        self.zones.generation()
    }

    /// What the handler counts.
    pub(crate) fn counters(&self) -> &ServerCounters {
        &self.counters
    }

    /// Counts the request and decides what it gets: an answer now (from the zone, or an error
    /// code), or a question for the upstreams.
    pub(crate) fn begin(&self, request: &Request) -> Step {
        let transport = match request.protocol() {
            Protocol::Tcp => Transport::Tcp,
            _ => Transport::Udp,
        };
        let info = request.request_info();
        self.counters
            .request(transport, info.as_ref().ok().map(|i| i.query.query_type()));
        if request.metadata.message_type != MessageType::Query {
            return Step::Ready(Answer::code(ResponseCode::FormErr));
        }
        if request.metadata.op_code != OpCode::Query {
            return Step::Ready(Answer::code(ResponseCode::NotImp));
        }
        // Not exactly one question.
        let Ok(info) = info else {
            return Step::Ready(Answer::code(ResponseCode::FormErr));
        };
        let query = info.query.original();
        // The cluster zone is class IN; any other class (CHAOS's `version.bind`, say) is not ours.
        if query.query_class() != hickory_proto::rr::DNSClass::IN {
            return Step::Forward(query.clone());
        }
        match self.zones.zone().lookup(query.name(), query.query_type()) {
            Lookup::NotInZone => Step::Forward(query.clone()),
            lookup => Step::Ready(answer_from(lookup)),
        }
    }

    /// Asks the upstreams if `step` says so, then sends the answer through `response_handle` and
    /// counts it (its code and the time since the request `arrived`).
    pub(crate) async fn finish<R: ResponseHandler>(
        &self,
        request: &Request,
        step: Step,
        arrived: Instant,
        mut response_handle: R,
    ) -> ResponseInfo {
        let answer = match step {
            Step::Ready(answer) => answer,
            Step::Forward(query) => self.forwarded(&query).await,
        };
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = answer.code;
        metadata.authoritative = answer.authoritative;
        metadata.recursion_available = self.forwarder.is_active();
        // The answer fits what the client said it takes (RFC 6891), at most our own 1232 bytes.
        let edns = request.edns.as_ref().map(|asked| {
            let mut edns = Edns::new();
            edns.set_max_payload(asked.max_payload().clamp(512, EDNS_PAYLOAD));
            edns
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &edns {
            builder.edns(edns);
        }
        let response = builder.build(
            metadata,
            answer.answers.iter(),
            std::iter::empty(),
            answer.soa.iter(),
            answer.additionals.iter(),
        );
        let code = answer.code;
        let sent = response_handle.send_response(response).await;
        self.counters.response(code, arrived.elapsed());
        match sent {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, src = %request.src(), "DNS answer not sent");
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(hickory_proto::op::Header {
                    metadata,
                    counts: hickory_proto::op::HeaderCounts::default(),
                })
            }
        }
    }

    /// The upstreams' answer to `query`.
    async fn forwarded(&self, query: &Query) -> Answer {
        let Forwarded {
            code,
            answers,
            authorities,
            additionals,
        } = self.forwarder.resolve(query).await;
        Answer {
            code,
            authoritative: false,
            answers,
            soa: authorities,
            additionals: additionals
                .into_iter()
                .filter(|r| r.record_type() != hickory_proto::rr::RecordType::OPT)
                .collect(),
        }
    }
}

/// What a request gets: an answer ready now, or the upstreams' answer to its question.
pub(crate) enum Step {
    Ready(Answer),
    Forward(Query),
}

/// A question answered: the response code, whether authoritative, and the sections.
pub(crate) struct Answer {
    pub(crate) code: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    soa: Vec<Record>,
    additionals: Vec<Record>,
}

impl Answer {
    fn code(code: ResponseCode) -> Self {
        Self {
            code,
            authoritative: false,
            answers: Vec::new(),
            soa: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

fn answer_from(lookup: Lookup) -> Answer {
    match lookup {
        Lookup::Answer {
            answers,
            additionals,
        } => Answer {
            authoritative: true,
            answers,
            additionals,
            ..Answer::code(ResponseCode::NoError)
        },
        Lookup::NoData { soa } => Answer {
            authoritative: true,
            soa: vec![soa],
            ..Answer::code(ResponseCode::NoError)
        },
        Lookup::NxDomain { soa } => Answer {
            authoritative: true,
            soa: vec![soa],
            ..Answer::code(ResponseCode::NXDomain)
        },
        Lookup::NotInZone => Answer::code(ResponseCode::Refused),
    }
}

#[async_trait::async_trait]
impl<S: ZoneSource> RequestHandler for ClusterDnsHandler<S> {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let arrived = Instant::now();
        let step = self.begin(request);
        self.finish(request, step, arrived, response_handle).await
    }
}

/// The handler shared by the UDP loops and hickory-server's TCP side.
struct Shared<S>(Arc<ClusterDnsHandler<S>>);

#[async_trait::async_trait]
impl<S: ZoneSource> RequestHandler for Shared<S> {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        self.0
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

/// The client [`answer_bytes`] answers (a UDP one; hickory-server answers nothing on port 0).
const CAPTURE_CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 53_000);

/// The answer the server's UDP side gives the datagram `raw`, as wire bytes, without a socket;
/// `None` when it sends nothing. As hickory-server does: a message shorter than a header is dropped;
/// one whose header reads but whose body does not gets FORMERR with no question; a response (QR=1)
/// that parses is dropped (no reflection); anything else goes through `handler`'s real path and its
/// response is encoded for a UDP client (512 bytes without EDNS). For tests and fuzzing.
pub async fn answer_bytes<S: ZoneSource>(
    handler: &ClusterDnsHandler<S>,
    raw: &[u8],
) -> Option<Vec<u8>> {
    udp::datagram_answer(handler, raw, CAPTURE_CLIENT).await
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding DNS on {addr} ({proto}): {source}")]
    Bind {
        addr: SocketAddr,
        proto: &'static str,
        source: std::io::Error,
    },
    #[error("starting the DNS server's {threads} thread(s): {source}")]
    Threads {
        threads: usize,
        source: std::io::Error,
    },
}

/// The UDP threads a server runs when not told: one per two CPUs, at least 1, at most 4. The
/// node's pods (the askers) need CPUs too: on a 2-CPU node a second server thread only adds
/// context switches (measured with `netbench dns`: 99-111k answers/s with one thread, 84-102k with
/// two).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 4))
}

/// A running server on threads of its own, apart from the caller's: `threads` UDP threads, each
/// with a socket of its own on the same port, and one `strait-dns` runtime thread for TCP and the
/// questions forwarded upstream. [`DnsServer::stop`] stops it; dropping it does too, without
/// waiting.
pub struct DnsServer<S: ZoneSource> {
    runtime: Option<tokio::runtime::Runtime>,
    tcp: Option<Server<Shared<S>>>,
    udp: Option<udp::UdpThreads>,
    pub local_addr: SocketAddr,
    pub threads: usize,
}

impl<S: ZoneSource> DnsServer<S> {
    /// Binds TCP and `threads` UDP sockets on `addr` (port 0: any free port, the same for all) and
    /// starts serving.
    pub fn start(
        addr: SocketAddr,
        zones: S,
        forwarder: Arc<Forwarder>,
        counters: Arc<ServerCounters>,
        threads: usize,
    ) -> Result<Self, ServerError> {
        let threads = threads.max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("strait-dns")
            .enable_all()
            .build()
            .map_err(|source| ServerError::Threads { threads, source })?;
        let handler = Arc::new(ClusterDnsHandler::new(zones, forwarder, counters));
        match Self::serve_on(&runtime, addr, &handler, threads) {
            Ok((tcp, udp, local_addr)) => Ok(Self {
                runtime: Some(runtime),
                tcp: Some(tcp),
                udp: Some(udp),
                local_addr,
                threads,
            }),
            Err(error) => {
                // Dropping a runtime blocks, which panics when the caller is itself inside one.
                runtime.shutdown_background();
                Err(error)
            }
        }
    }

    /// Binds the sockets and starts the UDP threads and the TCP listener on `runtime`. With port 0
    /// the kernel picks the UDP port; TCP's half of that port can be held by another socket, so a
    /// few other ports are tried before giving up.
    fn serve_on(
        runtime: &tokio::runtime::Runtime,
        addr: SocketAddr,
        handler: &Arc<ClusterDnsHandler<S>>,
        threads: usize,
    ) -> Result<(Server<Shared<S>>, udp::UdpThreads, SocketAddr), ServerError> {
        const ANY_PORT_TRIES: usize = 8;
        let tries = if addr.port() == 0 { ANY_PORT_TRIES } else { 1 };
        let mut attempt = 0;
        let (sockets, tcp, local_addr) = loop {
            attempt += 1;
            match bind_pair(addr, threads) {
                Err(ServerError::Bind { source, .. })
                    if attempt < tries && source.kind() == std::io::ErrorKind::AddrInUse =>
                {
                    tracing::debug!(
                        attempt,
                        "the TCP half of a free UDP port was taken; another port"
                    );
                }
                other => break other?,
            }
        };
        let tcp = {
            let _context = runtime.enter();
            TcpListener::from_std(tcp).map_err(|source| ServerError::Bind {
                addr: local_addr,
                proto: "tcp",
                source,
            })?
        };
        let mut server = Server::new(Shared(handler.clone()));
        {
            let _context = runtime.enter();
            server.register_listener(tcp, TCP_IDLE, 64 * 1024);
        }
        let udp = udp::UdpThreads::start(sockets, handler, runtime.handle())
            .map_err(|source| ServerError::Threads { threads, source })?;
        Ok((server, udp, local_addr))
    }

    /// Stops serving and waits until every socket is closed: the UDP threads end, TCP connections
    /// are closed gracefully, the runtime's thread ends.
    pub async fn stop(mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        if let Some(mut server) = self.tcp.take() {
            let stopped = runtime.spawn(async move {
                if let Err(error) = server.shutdown_gracefully().await {
                    tracing::debug!(%error, "DNS server stopped with an error");
                }
            });
            let _ = stopped.await;
        }
        if let Some(udp) = self.udp.take() {
            let joined = runtime.spawn_blocking(move || udp.stop_and_wait());
            let _ = joined.await;
        }
        // Not a blocking shutdown: the caller is inside a runtime of its own.
        runtime.shutdown_background();
    }
}

/// `threads` UDP sockets and a TCP listener (non-blocking, not yet on a runtime) on one port.
fn bind_pair(
    addr: SocketAddr,
    threads: usize,
) -> Result<(Vec<std::net::UdpSocket>, std::net::TcpListener, SocketAddr), ServerError> {
    let bind_error = |addr, proto| {
        move |source| ServerError::Bind {
            addr,
            proto,
            source,
        }
    };
    let socket = udp::bind(addr).map_err(bind_error(addr, "udp"))?;
    let local_addr = socket.local_addr().map_err(bind_error(addr, "udp"))?;
    let mut sockets = Vec::with_capacity(threads);
    for _ in 1..threads {
        sockets.push(socket.try_clone().map_err(bind_error(local_addr, "udp"))?);
    }
    sockets.push(socket);
    let tcp = std::net::TcpListener::bind(local_addr)
        .and_then(|listener| {
            listener.set_nonblocking(true)?;
            Ok(listener)
        })
        .map_err(bind_error(local_addr, "tcp"))?;
    Ok((sockets, tcp, local_addr))
}

impl<S: ZoneSource> Drop for DnsServer<S> {
    fn drop(&mut self) {
        if let Some(udp) = self.udp.take() {
            udp.stop_now();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
