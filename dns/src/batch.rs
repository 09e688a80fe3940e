//! Datagrams read and written many per system call on a UDP thread's socket: [`Inbox`] is
//! `recvmmsg` (waits for the first datagram, then takes whatever else is queued), [`Outbox`] is
//! `sendmmsg` (the answers of one batch sent together, without waiting; what the socket cannot take
//! is dropped, as a router drops, and the client asks again).

use std::{
    io, mem,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket},
    os::fd::AsRawFd,
    ptr,
};

use socket2::SockAddr;

/// The largest datagram read (an EDNS query is far smaller; the rest of a longer one is cut).
pub const DATAGRAM: usize = 4096;

/// Datagrams received by one `recvmmsg`.
pub struct Inbox {
    data: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    received: usize,
}

impl Inbox {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            data: vec![0; capacity * DATAGRAM],
            // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs for which all-zero
            // bytes are valid values (null pointers, zero lengths).
            addrs: vec![unsafe { mem::zeroed() }; capacity],
            iovecs: vec![unsafe { mem::zeroed() }; capacity],
            headers: vec![unsafe { mem::zeroed() }; capacity],
            received: 0,
        }
    }

    /// Waits for datagrams on `socket` (up to its read timeout) and returns how many arrived.
    pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.received = 0;
        let data = self.data.as_mut_ptr();
        for (i, ((iovec, header), addr)) in self
            .iovecs
            .iter_mut()
            .zip(&mut self.headers)
            .zip(&mut self.addrs)
            .enumerate()
        {
            // SAFETY: `i * DATAGRAM` is within `data`, which holds `capacity * DATAGRAM` bytes.
            iovec.iov_base = unsafe { data.add(i * DATAGRAM) }.cast();
            iovec.iov_len = DATAGRAM;
            // SAFETY: all-zero is a valid msghdr.
            header.msg_hdr = unsafe { mem::zeroed() };
            header.msg_hdr.msg_name = ptr::from_mut(addr).cast();
            header.msg_hdr.msg_namelen = socklen(mem::size_of::<libc::sockaddr_storage>());
            header.msg_hdr.msg_iov = ptr::from_mut(iovec);
            header.msg_hdr.msg_iovlen = 1;
            header.msg_len = 0;
        }
        let capacity = u32::try_from(self.headers.len()).unwrap_or(u32::MAX);
        // SAFETY: every header points at an iovec and an address of this inbox, which outlive the
        // call; the kernel writes at most `capacity` headers.
        let count = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                capacity,
                libc::MSG_WAITFORONE,
                ptr::null_mut(),
            )
        };
        if count < 0 {
            return Err(io::Error::last_os_error());
        }
        self.received = usize::try_from(count).unwrap_or(0).min(self.headers.len());
        Ok(self.received)
    }

    /// Datagram `i` of the last receive and who sent it; `None` past the count or for an address
    /// that is not IP.
    pub fn datagram(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.received {
            return None;
        }
        let header = &self.headers[i];
        let length = usize::try_from(header.msg_len).ok()?.min(DATAGRAM);
        let from = socket_addr(&self.addrs[i])?;
        Some((&self.data[i * DATAGRAM..i * DATAGRAM + length], from))
    }
}

fn socklen(size: usize) -> libc::socklen_t {
    libc::socklen_t::try_from(size).unwrap_or(libc::socklen_t::MAX)
}

/// The IP address and port in `storage`, as the kernel wrote it.
fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large enough for.
            let v4: &libc::sockaddr_in = unsafe { &*ptr::from_ref(storage).cast() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6: &libc::sockaddr_in6 = unsafe { &*ptr::from_ref(storage).cast() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr.s6_addr),
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Answers waiting to go out with one `sendmmsg`; their buffers are kept for the next batch.
#[derive(Default)]
pub struct Outbox {
    replies: Vec<Vec<u8>>,
    to: Vec<SockAddr>,
    used: usize,
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty buffer for the next answer, which goes to `to` unless [`Outbox::take_back`]
    /// withdraws it.
    pub fn next(&mut self, to: SocketAddr) -> &mut Vec<u8> {
        if self.used == self.replies.len() {
            self.replies.push(Vec::with_capacity(512));
            self.to.push(SockAddr::from(to));
        } else {
            self.to[self.used] = SockAddr::from(to);
        }
        self.used += 1;
        let buffer = &mut self.replies[self.used - 1];
        buffer.clear();
        buffer
    }

    /// Withdraws the answer [`Outbox::next`] just handed out.
    pub fn take_back(&mut self) {
        self.used = self.used.saturating_sub(1);
    }

    /// Queues `bytes` for `to`.
    pub fn push(&mut self, bytes: &[u8], to: SocketAddr) {
        self.next(to).extend_from_slice(bytes);
    }

    /// Sends every queued answer on `socket` and empties the box.
    pub fn flush(&mut self, socket: &UdpSocket) {
        let count = mem::take(&mut self.used);
        if count == 0 {
            return;
        }
        let mut iovecs: Vec<libc::iovec> = self.replies[..count]
            .iter_mut()
            .map(|bytes| libc::iovec {
                iov_base: bytes.as_mut_ptr().cast(),
                iov_len: bytes.len(),
            })
            .collect();
        let mut headers: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .zip(&self.to)
            .map(|(iovec, to)| {
                // SAFETY: all-zero is a valid mmsghdr.
                let mut header: libc::mmsghdr = unsafe { mem::zeroed() };
                header.msg_hdr.msg_name = to.as_ptr().cast_mut().cast();
                header.msg_hdr.msg_namelen = to.len();
                header.msg_hdr.msg_iov = ptr::from_mut(iovec);
                header.msg_hdr.msg_iovlen = 1;
                header
            })
            .collect();
        let mut sent = 0;
        while sent < headers.len() {
            let rest = u32::try_from(headers.len() - sent).unwrap_or(u32::MAX);
            // SAFETY: the headers point at iovecs, buffers and addresses that outlive the call.
            let result = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    headers[sent..].as_mut_ptr(),
                    rest,
                    libc::MSG_DONTWAIT,
                )
            };
            match usize::try_from(result) {
                Ok(n) if n > 0 => sent += n,
                _ => {
                    let error = io::Error::last_os_error();
                    tracing::debug!(%error, dropped = headers.len() - sent, "DNS answers not sent");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_batch_in_and_out_over_loopback() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        for n in 0..5u8 {
            client
                .send_to(&[n; 3], server.local_addr().unwrap())
                .unwrap();
        }
        let mut inbox = Inbox::new(8);
        let mut got = Vec::new();
        while got.len() < 5 {
            let count = inbox.receive(&server).unwrap();
            assert!(count >= 1);
            for i in 0..count {
                let (bytes, from) = inbox.datagram(i).unwrap();
                assert_eq!(from, client.local_addr().unwrap());
                got.push(bytes.to_vec());
            }
            assert!(inbox.datagram(count).is_none());
        }
        assert_eq!(got, (0..5u8).map(|n| vec![n; 3]).collect::<Vec<_>>());

        let mut outbox = Outbox::new();
        let to = client.local_addr().unwrap();
        outbox.push(b"one", to);
        outbox.next(to).extend_from_slice(b"withdrawn");
        outbox.take_back();
        outbox.push(b"two", to);
        outbox.flush(&server);
        let mut buffer = [0u8; 64];
        for expected in [&b"one"[..], b"two"] {
            let (n, from) = client.recv_from(&mut buffer).unwrap();
            assert_eq!(
                (&buffer[..n], from),
                (expected, server.local_addr().unwrap())
            );
        }
        outbox.flush(&server);
        client
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        assert!(client.recv_from(&mut buffer).is_err(), "nothing sent twice");
    }
}
