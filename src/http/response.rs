//! Responses the server builds: a status, a few headers, and a body that is either bytes or
//! pieces written as the socket takes them.
//!
//! Pieces exist for answers that carry tasks' results (up to 1 MiB each, 256 MiB in all): built
//! whole, every request of them would copy the results it carries, and a client that asks many
//! times without reading could make the server hold a copy per request. A [`Pieces`] body
//! borrows the large parts from data the server keeps anyway and builds only the small ones, one
//! at a time; for HEAD it is only measured.
//!
//! Every head the server writes is built here (the interim `100 Continue` is the constant
//! [`CONTINUE`]), and so is every chunk: the answers above, the head of an event stream (whose body
//! follows in chunks, or until the close for HTTP/1.0) and the chunk framing of its events.

use std::fmt::Write as _;

/// The interim answer to `Expect: 100-continue`, sent before a body is read.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A response to write.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Extra headers. `Content-Length` and `Connection` are added on write; no `Date` is sent
    /// (RFC 9110 lets a server without a clock omit it, and no client here needs it).
    pub headers: Vec<(&'static str, String)>,
    /// The body; for HEAD it is measured but not sent.
    pub body: Body,
}

/// What follows the head.
#[derive(Debug)]
pub enum Body {
    /// Bytes built whole (small answers).
    Bytes(Vec<u8>),
    /// Built piece by piece as it is written.
    Pieces(Box<dyn Pieces>),
}

impl Body {
    /// Its length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Body::Bytes(bytes) => bytes.len(),
            Body::Pieces(pieces) => pieces.len(),
        }
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A body written in pieces.
pub trait Pieces: Send + Sync + std::fmt::Debug {
    /// Bytes in all pieces.
    fn len(&self) -> usize;

    /// Whether there are no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Piece `index`: either appended to `out` (small pieces) or lent from data the server
    /// keeps anyway; `None` past the last.
    fn piece<'a>(&'a self, index: usize, out: &mut Vec<u8>) -> Option<Piece<'a>>;
}

/// One piece of a [`Pieces`] body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Appended to the buffer given.
    Built,
    /// These bytes, as they are.
    Lent(&'a [u8]),
}

impl Response {
    /// A response with no body.
    pub fn empty(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Body::Bytes(Vec::new()) }
    }

    /// A JSON body.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response { status, headers: vec![("Content-Type", "application/json".into())], body: Body::Bytes(body.into()) }
    }

    /// A JSON body written in pieces.
    pub fn json_pieces(status: u16, body: impl Pieces + 'static) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body: Body::Pieces(Box::new(body)),
        }
    }

    /// The error shape of docs/API.md: `{"error": {"code", "message"}}`.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        Response::json(status, body.to_string())
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Serializes the head and, for [`Part::Whole`], a body of bytes into `out`; a body of
    /// pieces is left to the caller, which writes them as the socket takes them.
    pub fn write_to(&self, out: &mut Vec<u8>, part: Part, connection: Connection) {
        // 204 and 304 carry no Content-Length (RFC 9110, 8.6); every other answer is delimited.
        let end = if matches!(self.status, 204 | 304) { BodyEnd::NoBody } else { BodyEnd::Length(self.body.len()) };
        let headers = self.headers.iter().map(|(name, value)| (*name, value.as_str()));
        write_head(out, self.status, headers, end, connection);
        if let (Part::Whole, Body::Bytes(body)) = (part, &self.body) {
            out.extend_from_slice(body);
        }
    }
}

/// What of a response is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The head and the body.
    Whole,
    /// The head alone, which still gives the body's length (the answer to `HEAD`).
    HeadOnly,
}

/// Whether the connection serves another request after this answer, as its `Connection` header
/// says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// `Connection: keep-alive`: the next request may follow.
    KeepAlive,
    /// `Connection: close`: the server closes after the answer.
    Close,
}

/// How the end of a body of unknown length is found: a stream's events go out as they happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// HTTP/1.1 chunks, then the last chunk ([`LAST_CHUNK`]): the connection may go on after it.
    Chunked,
    /// The bytes as they are, ended by closing the connection (HTTP/1.0 has no chunks).
    CloseDelimited,
}

/// The chunk that ends a chunked body (with no trailer fields).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Room for the size line of any chunk the server sends: 8 hex digits (up to 4 GiB) and CRLF.
pub const CHUNK_ROOM: usize = 10;

impl Framing {
    /// Chunks for HTTP/1.1, the close for HTTP/1.0.
    pub fn for_request(http11: bool) -> Framing {
        if http11 { Framing::Chunked } else { Framing::CloseDelimited }
    }

    /// Appends `data` as this framing sends it: as one chunk, or as it is.
    pub fn push(self, out: &mut Vec<u8>, data: &[u8]) {
        match self {
            Framing::CloseDelimited => out.extend_from_slice(data),
            Framing::Chunked => {
                let start = out.len() + size_line_len(data.len());
                out.resize(start, 0);
                out.extend_from_slice(data);
                frame_chunk(out, start);
            }
        }
    }

    /// `data` as this framing sends it: itself (not copied), or copied into one chunk.
    pub fn frame(self, data: Vec<u8>) -> Vec<u8> {
        match self {
            Framing::CloseDelimited => data,
            Framing::Chunked => {
                let mut out = Vec::with_capacity(data.len() + CHUNK_ROOM + 2);
                self.push(&mut out, &data);
                out
            }
        }
    }
}

/// Bytes of the size line of a chunk of `len` bytes: its hex digits and CRLF.
pub fn size_line_len(len: usize) -> usize {
    (usize::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize + 2
}

/// Frames `buf[data..]` as one chunk, in place, and returns where the chunk begins: its size line
/// goes at the end of the room kept in front of the data (at least [`size_line_len`] bytes;
/// [`CHUNK_ROOM`] fits every chunk the server sends), CRLF after it. In place so an event of 1 MiB is framed without being
/// copied: this runs once per change on the hot path.
pub fn frame_chunk(buf: &mut Vec<u8>, data: usize) -> usize {
    let size = buf.len() - data;
    let begins = write_size_line(buf, data, size);
    buf.extend_from_slice(b"\r\n");
    begins
}

/// Writes the size line of a chunk of `size` bytes so that it ends at `data` (in room kept in
/// front, as for [`frame_chunk`]), and returns where it begins; the chunk's data and closing CRLF
/// are the caller's.
pub fn write_size_line(buf: &mut [u8], data: usize, mut size: usize) -> usize {
    // A chunk of no bytes is the last chunk: it would end the body.
    debug_assert!(size > 0, "a chunk has data");
    let begins = data.checked_sub(size_line_len(size)).expect("room for the size line");
    buf[data - 2..data].copy_from_slice(b"\r\n");
    for at in (begins..data - 2).rev() {
        buf[at] = b"0123456789abcdef"[size & 15];
        size >>= 4;
    }
    begins
}

/// Writes the head of an answer whose body follows in `framing`, for as long as it lasts (an
/// event stream): the status line, `headers`, then `Connection` (`keep-alive` for chunks, which
/// end by themselves; `close` otherwise) and, for chunks, `Transfer-Encoding`.
pub fn write_stream_head<'a>(
    out: &mut Vec<u8>,
    status: u16,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    framing: Framing,
) {
    let (end, connection) = match framing {
        Framing::Chunked => (BodyEnd::Chunks, Connection::KeepAlive),
        Framing::CloseDelimited => (BodyEnd::Close, Connection::Close),
    };
    write_head(out, status, headers, end, connection);
}

/// How a head says where its body ends.
enum BodyEnd {
    /// `Content-Length`.
    Length(usize),
    /// Nothing: the status has no body (204, 304).
    NoBody,
    /// `Transfer-Encoding: chunked`.
    Chunks,
    /// Nothing: the close ends it.
    Close,
}

/// The one writer of heads: the status line, the headers, the body's length, `Connection`, and
/// `Transfer-Encoding` for chunks, in that order.
fn write_head<'a>(
    out: &mut Vec<u8>,
    status: u16,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    end: BodyEnd,
    connection: Connection,
) {
    let mut head = String::with_capacity(128);
    let _ = write!(head, "HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if let BodyEnd::Length(length) = end {
        let _ = write!(head, "Content-Length: {length}\r\n");
    }
    head.push_str(match connection {
        Connection::KeepAlive => "Connection: keep-alive\r\n",
        Connection::Close => "Connection: close\r\n",
    });
    if let BodyEnd::Chunks = end {
        head.push_str("Transfer-Encoding: chunked\r\n");
    }
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());
}

/// The reason phrase of each status the server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_the_contract_shape_and_a_length() {
        let mut out = Vec::new();
        Response::error(404, "not_found", "No route.").write_to(&mut out, Part::Whole, Connection::KeepAlive);
        let text = String::from_utf8(out).unwrap();
        let body = r#"{"error":{"code":"not_found","message":"No route."}}"#;
        assert_eq!(
            text,
            format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
                body.len()
            )
        );
    }

    #[test]
    fn head_answers_keep_the_length_but_not_the_body() {
        let mut out = Vec::new();
        Response::json(200, "{}").write_to(&mut out, Part::HeadOnly, Connection::Close);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("Content-Length: 2\r\nConnection: close\r\n\r\n"), "{text}");
    }

    #[test]
    fn a_stream_head_says_how_its_body_ends() {
        // Shows the stream head byte for byte: chunks keep the connection, the close ends it.
        let headers = [("Content-Type", "text/event-stream"), ("Vary", "Origin")];
        let mut out = Vec::new();
        write_stream_head(&mut out, 200, headers, Framing::Chunked);
        let want = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nVary: Origin\r\n\
                    Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(String::from_utf8(out).unwrap(), want);
        let mut out = Vec::new();
        write_stream_head(&mut out, 200, headers, Framing::CloseDelimited);
        let want = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nVary: Origin\r\nConnection: close\r\n\r\n";
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    #[test]
    fn chunks_are_framed_with_their_hex_size() {
        // Shows `push`, `frame` and `frame_chunk` against the RFC 9112 shape `{size:x}\r\n{data}\r\n`,
        // across the lengths where the number of hex digits changes.
        for len in [1usize, 15, 16, 255, 256, 4095, 4096, 70_000, (1 << 20) + 1] {
            let data = vec![b'x'; len];
            let want = [format!("{len:x}\r\n").as_bytes(), &data, b"\r\n"].concat();
            assert_eq!(size_line_len(len), format!("{len:x}\r\n").len(), "{len}");
            let mut out = b"head".to_vec();
            Framing::Chunked.push(&mut out, &data);
            assert_eq!(&out[..4], b"head");
            assert_eq!(out[4..], want[..], "{len}");
            let mut room = vec![0u8; CHUNK_ROOM];
            room.extend_from_slice(&data);
            let begins = frame_chunk(&mut room, CHUNK_ROOM);
            assert_eq!(room[begins..], want[..], "{len}");
            let mut plain = b"head".to_vec();
            Framing::CloseDelimited.push(&mut plain, &data);
            assert_eq!(plain[4..], data[..]);
            assert_eq!(Framing::Chunked.frame(data.clone()), want);
            assert_eq!(Framing::CloseDelimited.frame(data.clone()), data);
        }
        assert_eq!(size_line_len(0), 3, "0\r\n");
    }
}
