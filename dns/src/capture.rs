//! A [`ResponseHandler`] that keeps the response instead of sending it: the wire bytes
//! hickory-server's own `ResponseHandle` would put on the socket, encoded the same way (size limit
//! by transport, SERVFAIL header when the answer cannot be encoded). It lets
//! [`crate::server::answer_bytes`] run raw bytes through the real handler without a socket, for
//! tests and fuzzing.

use std::sync::{Arc, Mutex, PoisonError};

use hickory_proto::{
    ProtoError,
    op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode},
    rr::Record,
    serialize::binary::{BinDecoder, BinEncodable, BinEncoder},
};
use hickory_server::{
    net::{NetError, xfer::Protocol},
    server::{ResponseHandler, ResponseInfo},
    zone_handler::{MessageResponse, MessageResponseBuilder, Queries},
};

/// Keeps the last response sent through it (clones share it), encoded as for `protocol`.
#[derive(Clone)]
pub(crate) struct Capture {
    protocol: Protocol,
    sent: Arc<Mutex<Option<Vec<u8>>>>,
}

impl Capture {
    pub(crate) fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            sent: Arc::default(),
        }
    }

    /// The response bytes, if one was sent.
    pub(crate) fn take(&self) -> Option<Vec<u8>> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// What hickory-server answers itself when a message's header reads but its body does not:
    /// FORMERR, no question, no EDNS (the handler never sees such a message).
    pub(crate) async fn form_error(mut self, header: &Header) -> Option<Vec<u8>> {
        // `Queries::empty` is crate-private in hickory-server; reading none is the same.
        let queries = Queries::read(&mut BinDecoder::new(&[]), 0).ok()?;
        let response = MessageResponseBuilder::new(&queries, None)
            .error_msg(&header.metadata, ResponseCode::FormErr);
        self.send_response(response).await.ok()?;
        self.take()
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let id = response.metadata().id;
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        // As `MessageResponse::encode` (crate-private): UDP answers fit the response's EDNS payload,
        // or 512 bytes (RFC 1035 §4.2.1) without EDNS.
        encoder.set_max_size(match self.protocol {
            Protocol::Udp => response.edns().map_or(512, Edns::max_payload),
            _ => u16::MAX,
        });
        let info = match response.destructive_emit(&mut encoder) {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "DNS answer not encodable; SERVFAIL instead");
                bytes.clear();
                server_failure(id, &mut bytes)?
            }
        };
        *self.sent.lock().unwrap_or_else(PoisonError::into_inner) = Some(bytes);
        Ok(info)
    }
}

/// A bare SERVFAIL header, hickory-server's fallback when a response cannot be encoded.
fn server_failure(id: u16, bytes: &mut Vec<u8>) -> Result<ResponseInfo, ProtoError> {
    let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    let mut encoder = BinEncoder::new(bytes);
    encoder.set_max_size(512);
    header.emit(&mut encoder)?;
    Ok(ResponseInfo::from(header))
}
