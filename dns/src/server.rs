//! The node's DNS server: hickory-server on UDP and TCP, answering each question from the newest
//! [`Zone`] a [`ZoneSource`] hands out. Names outside the cluster zone (and reverse names the zone
//! does not hold) go to the [`Forwarder`] (REFUSED when it has no upstream); a request
//! that is not one standard query (zero or several questions, an update, a notify) gets FORMERR or
//! NOTIMP. hickory-server itself drops a message shorter than a header and a response (QR=1), and
//! answers FORMERR to one whose header reads but whose body does not parse. [`answer_bytes`] runs
//! raw bytes through the same path without a socket.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use hickory_proto::op::{Edns, Header, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use hickory_server::{
    Server,
    net::{
        runtime::{Time, TokioTime},
        xfer::Protocol,
    },
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    zone_handler::MessageResponseBuilder,
};
use tokio::net::{TcpListener, UdpSocket};

use crate::{
    Lookup, Zone,
    capture::Capture,
    forward::{Forwarded, Forwarder},
    metrics::{ServerCounters, Transport},
};

/// How long a TCP connection may stay idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// The largest UDP answer offered to EDNS clients (the DNS flag day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;

/// Where the server gets the zone from, once per query.
pub trait ZoneSource: Send + Sync + Unpin + 'static {
    fn zone(&self) -> Arc<Zone>;
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

    /// The answer to one question: from the zone, or forwarded.
    async fn answer(&self, query: &hickory_proto::op::Query) -> Answer {
        // The cluster zone is class IN; any other class (CHAOS's `version.bind`, say) is not ours.
        let lookup = if query.query_class() == hickory_proto::rr::DNSClass::IN {
            self.zones.zone().lookup(query.name(), query.query_type())
        } else {
            Lookup::NotInZone
        };
        match lookup {
            Lookup::NotInZone => {
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
            lookup => answer_from(lookup),
        }
    }
}

/// A question answered: the response code, whether authoritative, and the sections.
struct Answer {
    code: ResponseCode,
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
        mut response_handle: R,
    ) -> ResponseInfo {
        let arrived = Instant::now();
        let transport = match request.protocol() {
            hickory_server::net::xfer::Protocol::Tcp => Transport::Tcp,
            _ => Transport::Udp,
        };
        let qtype = request.request_info().ok().map(|i| i.query.query_type());
        self.counters.request(transport, qtype);
        let answer = if request.metadata.message_type != MessageType::Query {
            Answer::code(ResponseCode::FormErr)
        } else if request.metadata.op_code != OpCode::Query {
            Answer::code(ResponseCode::NotImp)
        } else {
            match request.request_info() {
                Ok(info) => self.answer(info.query.original()).await,
                // Not exactly one question.
                Err(_) => Answer::code(ResponseCode::FormErr),
            }
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
}

/// The client [`answer_bytes`] answers (a UDP one; hickory-server answers nothing on port 0).
const CAPTURE_CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 53_000);

/// The answer hickory-server's UDP path gives the datagram `raw`, as wire bytes, without a socket;
/// `None` when it sends nothing. As `Server` does: a message shorter than a header is dropped; one
/// whose header reads but whose body does not gets FORMERR with no question (from hickory-server
/// itself, not the handler); a response (QR=1) that parses is dropped (no reflection); anything else
/// goes through `handler`'s real `handle_request` and its response is encoded for a UDP client
/// (512 bytes without EDNS). For tests and fuzzing.
pub async fn answer_bytes<S: ZoneSource>(
    handler: &ClusterDnsHandler<S>,
    raw: &[u8],
) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(raw)).ok()?;
    let capture = Capture::new(Protocol::Udp);
    let Ok(request) = Request::from_bytes(raw.to_vec(), CAPTURE_CLIENT, Protocol::Udp) else {
        return capture.form_error(&header).await;
    };
    if request.metadata.message_type == MessageType::Response {
        return None;
    }
    handler
        .handle_request::<_, TokioTime>(&request, capture.clone())
        .await;
    capture.take()
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
}

/// A running server; dropping it does not stop it ([`DnsServer::stop`] does).
pub struct DnsServer<S: ZoneSource> {
    server: Server<ClusterDnsHandler<S>>,
    pub local_addr: SocketAddr,
}

impl<S: ZoneSource> DnsServer<S> {
    /// Binds UDP and TCP on `addr` (port 0: any free port, the same for both) and starts serving.
    pub async fn start(
        addr: SocketAddr,
        zones: S,
        forwarder: Arc<Forwarder>,
        counters: Arc<ServerCounters>,
    ) -> Result<Self, ServerError> {
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr,
                proto: "tcp",
                source,
            })?;
        let local_addr = tcp.local_addr().map_err(|source| ServerError::Bind {
            addr,
            proto: "tcp",
            source,
        })?;
        let udp = UdpSocket::bind(local_addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: local_addr,
                proto: "udp",
                source,
            })?;
        let mut server = Server::new(ClusterDnsHandler::new(zones, forwarder, counters));
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE, 64 * 1024);
        Ok(Self { server, local_addr })
    }

    /// Stops serving and waits for the listeners to end.
    pub async fn stop(mut self) {
        if let Err(error) = self.server.shutdown_gracefully().await {
            tracing::debug!(%error, "DNS server stopped with an error");
        }
    }
}
