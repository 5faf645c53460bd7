//! A small blocking HTTP/1.1 client and SSE reader for the CLI's `publish`, `watch` and `bench`.
//!
//! Blocking std sockets keep these commands simple: each does one thing at a time, and the load
//! tool runs its many streams on the server's side of the measurement, not here.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Percent-encodes every byte but the unreserved ones of RFC 3986 (`A-Z a-z 0-9 - . _ ~`), so
/// any UTF-8 fits a header value or a query parameter (even `+`, which query decoding reads as a
/// space, goes out as `%2B`).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A parsed `http://host:port/base` URL (https is not supported by these tools).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `host:port`
    pub authority: String,
    /// The resolved address.
    pub addr: SocketAddr,
    /// The path prefix, without a trailing `/`.
    pub base: String,
}

impl Url {
    /// Parses `http://host[:port][/base]`.
    pub fn parse(url: &str) -> io::Result<Url> {
        let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{url}: {why}"));
        let rest = url.strip_prefix("http://").ok_or_else(|| bad("only http:// URLs are supported"))?;
        let (authority, base) = rest.split_once('/').map_or((rest, ""), |(a, b)| (a, b));
        let authority = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
        let addr = authority.to_socket_addrs()?.next().ok_or_else(|| bad("the host resolves to nothing"))?;
        Ok(Url { authority, addr, base: format!("/{}", base.trim_end_matches('/')).trim_end_matches('/').to_owned() })
    }
}

/// A response read whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive connection to one server.
#[derive(Debug)]
pub struct Client {
    url: Url,
    reader: BufReader<TcpStream>,
    token: Option<String>,
}

impl Client {
    /// Connects, with `timeout` for the connect and for each read.
    pub fn connect(url: &Url, token: Option<String>, timeout: Duration) -> io::Result<Client> {
        let stream = connect(url.addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        Ok(Client { url: url.clone(), reader: BufReader::new(stream), token })
    }

    /// Sends one request and reads the whole answer.
    pub fn request(&mut self, method: &str, path: &str, body: Option<&str>) -> io::Result<Reply> {
        let request = request_bytes(&self.url, self.token.as_deref(), method, path, body);
        self.reader.get_mut().write_all(&request)?;
        read_reply(&mut self.reader, method == "HEAD")
    }
}

/// The bytes of one request to `url`: a bearer `token` if given, a JSON `body` if given.
///
/// `Host` is the URL's authority. A `POST`, `PUT` or `PATCH` always says it is JSON, even with no
/// body: the server answers one without `Content-Type: application/json` with `415` (docs/API.md), so
/// a web page's form cannot pass for a producer.
pub fn request_bytes(url: &Url, token: Option<&str>, method: &str, path: &str, body: Option<&str>) -> Vec<u8> {
    let mut head = format!("{method} {}{path} HTTP/1.1\r\nHost: {}\r\n", url.base, url.authority);
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if body.is_some() || matches!(method, "POST" | "PUT" | "PATCH") {
        let length = body.map_or(0, str::len);
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {length}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(body.unwrap_or(""));
    head.into_bytes()
}

/// Reads one response with a `Content-Length` (or none, for HEAD and 204) from `reader`.
pub fn read_reply(reader: &mut impl BufRead, head_only: bool) -> io::Result<Reply> {
    let (status, headers) = read_head(reader)?;
    let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse::<usize>().ok());
    let mut body = vec![0; if head_only || status == 204 { 0 } else { length.unwrap_or(0) }];
    reader.read_exact(&mut body)?;
    Ok(Reply { status, headers, body })
}

/// Longest line of a response head (or a chunk-size line) these tools read.
const MAX_HEAD_LINE: u64 = 8 * 1024;
/// Most header lines of a response these tools read.
const MAX_HEADERS: usize = 100;
/// Longest SSE line, and longest `data` of one event, these tools keep (a result is at most
/// 1 MiB): a hostile or broken server cannot make them grow without bound.
const MAX_EVENT_BYTES: usize = 16 << 20;

fn too_long(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what} too long"))
}

/// Reads one line of at most `MAX_HEAD_LINE` bytes (0 at the end of the input).
fn read_bounded_line(reader: &mut impl BufRead, line: &mut String) -> io::Result<usize> {
    let n = Read::take(&mut *reader, MAX_HEAD_LINE).read_line(line)?;
    if n as u64 == MAX_HEAD_LINE && !line.ends_with('\n') {
        return Err(too_long("response line"));
    }
    Ok(n)
}

/// Reads a status line and headers.
pub fn read_head(reader: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    read_bounded_line(reader, &mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP status line"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if read_bounded_line(reader, &mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            return Ok((status, headers));
        }
        if headers.len() == MAX_HEADERS {
            return Err(too_long("response head"));
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
}

/// One event read from a stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// `event:` (empty means `message`).
    pub event: String,
    /// `id:`, if the event had one.
    pub id: Option<String>,
    /// The `data:` lines joined with LF.
    pub data: String,
}

/// Reads events from the body of a stream (chunked or not), following the WHATWG rules.
#[derive(Debug)]
pub struct EventReader<R> {
    reader: R,
    chunked: bool,
    /// Bytes left in the current chunk.
    chunk_left: usize,
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no LF, so a long line is scanned once, not once
    /// per read.
    scanned: usize,
    done: bool,
}

impl<R: BufRead> EventReader<R> {
    /// Reads events from `reader`, positioned just after the response head.
    pub fn new(reader: R, chunked: bool) -> Self {
        EventReader { reader, chunked, chunk_left: 0, pending: Vec::new(), scanned: 0, done: false }
    }

    /// The next body bytes, unchunked; empty at the end of the body.
    fn fill(&mut self) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        if !self.chunked {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                self.done = true;
                return Ok(false);
            }
            let n = buf.len();
            self.pending.extend_from_slice(buf);
            self.reader.consume(n);
            return Ok(true);
        }
        if self.chunk_left == 0 {
            let mut line = String::new();
            read_bounded_line(&mut self.reader, &mut line)?;
            let size = usize::from_str_radix(line.trim(), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                self.done = true;
                return Ok(false);
            }
            self.chunk_left = size + 2;
        }
        let buf = self.reader.fill_buf()?;
        if buf.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let n = buf.len().min(self.chunk_left);
        let data_len = n.min(self.chunk_left.saturating_sub(2));
        self.pending.extend_from_slice(&buf[..data_len]);
        self.reader.consume(n);
        self.chunk_left -= n;
        Ok(true)
    }

    /// The next event; `None` when the stream ended cleanly.
    pub fn next_event(&mut self) -> io::Result<Option<Event>> {
        let mut event = Event::default();
        let mut has_data = false;
        loop {
            let Some(end) = self.pending[self.scanned..].iter().position(|&b| b == b'\n').map(|i| self.scanned + i)
            else {
                self.scanned = self.pending.len();
                if self.pending.len() > MAX_EVENT_BYTES {
                    return Err(too_long("event-stream line"));
                }
                if !self.fill()? {
                    return Ok(None);
                }
                continue;
            };
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.scanned = 0;
            let line = String::from_utf8_lossy(&line[..line.len() - 1]);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                // A block without data (such as `retry:` alone) dispatches nothing.
                if has_data {
                    return Ok(Some(event));
                }
                event = Event::default();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (name, value) = line.split_once(':').map_or((line, ""), |(n, v)| (n, v.strip_prefix(' ').unwrap_or(v)));
            match name {
                "event" => event.event = value.to_owned(),
                "id" => event.id = Some(value.to_owned()),
                "data" => {
                    if event.data.len() + value.len() > MAX_EVENT_BYTES {
                        return Err(too_long("event"));
                    }
                    if has_data {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                    has_data = true;
                }
                _ => {}
            }
        }
    }
}

/// Connects to a server: a plain std socket with `TCP_NODELAY`.
pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_cannot_make_the_reader_grow_without_bound() {
        // Shows an endless SSE line, an endless event and an endless head line are refused at
        // their bounds instead of being kept, and that a line ending later is still read whole.
        let endless_line = vec![b'x'; MAX_EVENT_BYTES + 2];
        let mut reader = EventReader::new(io::Cursor::new(endless_line), false);
        assert_eq!(reader.next_event().unwrap_err().kind(), io::ErrorKind::InvalidData);
        let mut many = Vec::new();
        while many.len() <= MAX_EVENT_BYTES {
            many.extend_from_slice(format!("data: {}\n", "y".repeat(1 << 16)).as_bytes());
        }
        let mut reader = EventReader::new(io::Cursor::new(many), false);
        assert_eq!(reader.next_event().unwrap_err().kind(), io::ErrorKind::InvalidData);
        let head = format!("HTTP/1.1 200 OK\r\nX-Long: {}\r\n\r\n", "z".repeat(MAX_HEAD_LINE as usize));
        assert_eq!(read_head(&mut io::Cursor::new(head)).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let headers: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let head = format!("HTTP/1.1 200 OK\r\n{headers}\r\n");
        assert_eq!(read_head(&mut io::Cursor::new(head)).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let long = format!("data: {}\n\n", "w".repeat(1 << 20));
        let mut reader = EventReader::new(io::BufReader::with_capacity(100, io::Cursor::new(long)), false);
        assert_eq!(reader.next_event().unwrap().unwrap().data.len(), 1 << 20);
    }

    fn text(method: &str, body: Option<&str>) -> String {
        let url = Url::parse("http://127.0.0.1:8080/base").unwrap();
        String::from_utf8(request_bytes(&url, Some("t"), method, "/x", body)).unwrap()
    }

    #[test]
    fn producer_calls_are_json_even_without_a_body() {
        for method in ["POST", "PATCH"] {
            let request = text(method, None);
            assert!(request.starts_with(&format!("{method} /base/x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")));
            assert!(request.contains("\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n"), "{request}");
        }
        assert!(text("POST", Some("{}")).ends_with("Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"));
        for method in ["GET", "HEAD", "DELETE"] {
            let request = text(method, None);
            assert!(!request.contains("Content-") && request.ends_with("Bearer t\r\n\r\n"), "{request}");
        }
    }
}
