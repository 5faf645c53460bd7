//! Client sockets, and requests written as raw bytes: the tests that check framing and
//! connection handling must see exactly what crossed the wire, and how the connection ended.

use std::io::{BufReader, Cursor, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};

use sse_progress::client::{self, Reply};

use super::{HEALTH, TIMEOUT, request};

/// The head of a chunked `POST /tasks`; the chunked body follows it.
pub const CHUNKED_CREATE: &str = "POST /api/brand-monitor/tasks HTTP/1.1\r\nHost: localhost\r\n\
                                  Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";

/// A connected socket with read and write timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// A connection to `addr` whose source address is `source` (any of 127.0.0.0/8 is local on
/// Linux), so the server counts it as another client.
pub fn connect_from(source: IpAddr, addr: SocketAddr) -> TcpStream {
    socket_to(addr, Some(source), None)
}

/// A connection with a small receive buffer, so a client that never reads stops taking data
/// soon, and the test does not park megabytes in the kernel.
pub fn connect_small_window(addr: SocketAddr) -> TcpStream {
    socket_to(addr, None, Some(16 * 1024))
}

/// A socket set up before it connects, which std cannot do and rustix can: bound to `source`,
/// with a receive buffer of `recv_buffer` bytes. Close-on-exec like std's, so a binary another
/// test starts meanwhile does not inherit it.
fn socket_to(addr: SocketAddr, source: Option<IpAddr>, recv_buffer: Option<usize>) -> TcpStream {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let fd = rustix::net::socket_with(AddressFamily::INET, SocketType::STREAM, SocketFlags::CLOEXEC, None)
        .expect("a socket");
    if let Some(source) = source {
        rustix::net::bind(&fd, &SocketAddr::new(source, 0)).unwrap_or_else(|e| panic!("bind {source}: {e}"));
    }
    if let Some(size) = recv_buffer {
        sockopt::set_socket_recv_buffer_size(&fd, size).expect("SO_RCVBUF");
    }
    rustix::net::connect(&fd, &addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// A connection that has sent half a request head and stops there, certainly accepted by now (a
/// later connection to the same listener was answered): the server waits for the rest of it up
/// to its header timeout, and a drain waits for it up to the drain's end.
pub fn half_sent_head(addr: SocketAddr) -> TcpStream {
    let mut stuck = connect(addr);
    stuck.write_all(format!("GET {HEALTH} HTTP/1.1\r\nHo").as_bytes()).unwrap();
    assert_eq!(request(addr, "GET", HEALTH, &[], None).status, 200, "health answers");
    stuck
}

/// Sends one whole request (`head`) on a kept-alive `stream` and reads its reply.
pub fn ask(stream: &TcpStream, head: &str) -> Reply {
    (&*stream).write_all(head.as_bytes()).unwrap();
    client::read_reply(&mut BufReader::new(stream), false).expect("an answer")
}

/// What a connection sent back until it ended: the bytes, and how the read ended (Ok at EOF, the
/// error of a reset or of the support TIMEOUT otherwise).
pub struct Exchange {
    pub bytes: Vec<u8>,
    pub end: std::io::Result<()>,
}

impl Exchange {
    /// Whether the server ended the connection (EOF, or a reset: a server that closes with
    /// unread input resets it) rather than the client giving up at its timeout.
    pub fn closed(&self) -> bool {
        match &self.end {
            Ok(()) => true,
            Err(e) => e.kind() == ErrorKind::ConnectionReset,
        }
    }

    /// The bytes as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The single reply in the bytes; fails if anything follows it.
    pub fn only_reply(&self, head_only: bool) -> Reply {
        replies_in(&self.bytes, &[head_only]).into_iter().next().unwrap()
    }
}

/// Reads `stream` to its end (bounded by the support TIMEOUT on each read).
pub fn read_until_close(stream: &mut TcpStream) -> Exchange {
    let mut bytes = Vec::new();
    let end = stream.read_to_end(&mut bytes).map(drop);
    Exchange { bytes, end }
}

/// Sends `bytes` on a new connection and reads until the server closes it.
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Exchange {
    let mut stream = connect(addr);
    stream.write_all(bytes).unwrap();
    read_until_close(&mut stream)
}

/// Sends raw bytes on a new connection; the text read until the server closes it (or TIMEOUT).
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    exchange(addr, bytes).text()
}

/// Splits `bytes` into exactly `head_only.len()` replies (Content-Length framed), nothing after.
pub fn replies_in(bytes: &[u8], head_only: &[bool]) -> Vec<Reply> {
    let mut cursor = Cursor::new(bytes);
    let replies = head_only
        .iter()
        .enumerate()
        .map(|(i, &head)| {
            client::read_reply(&mut cursor, head)
                .unwrap_or_else(|e| panic!("reply {i}: {e}: {:?}", String::from_utf8_lossy(bytes)))
        })
        .collect();
    let rest = &bytes[cursor.position() as usize..];
    assert!(rest.is_empty(), "bytes after the replies: {:?}", String::from_utf8_lossy(rest));
    replies
}
