//! Event streams as a viewer reads them: parsed into events ([`Stream`]), or at the byte level
//! ([`RawStream`]) where a test must see the fields, the chunk framing and the end of the body.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use serde_json::Value;
use sse_progress::client::{self, Event, EventReader};

use super::{PROGRESS, TIMEOUT, connect};

/// The request head of `GET /progress/{task_id}` (`task_id` may carry a query) with
/// `Accept: text/event-stream` and `headers`.
pub fn stream_request(task_id: &str, headers: &[(&str, &str)]) -> String {
    get_request(&format!("{PROGRESS}/{task_id}"), headers)
}

/// The request head of `GET {target}` with `Accept: text/event-stream` and `headers`.
pub fn get_request(target: &str, headers: &[(&str, &str)]) -> String {
    let mut text = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text
}

/// The target of the stream of many tasks following `task_ids` (`?tasks=`, comma separated).
pub fn many_target(task_ids: &[&str]) -> String {
    format!("{PROGRESS}?tasks={}", task_ids.join(","))
}

/// A stream opened with GET; holds the socket.
pub struct Stream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub events: EventReader<BufReader<TcpStream>>,
}

impl Stream {
    /// The next event, failing the test on timeout or error.
    pub fn next(&mut self) -> Option<Event> {
        self.events.next_event().expect("an event before the timeout")
    }

    /// The next event that is not a heartbeat.
    pub fn next_non_heartbeat(&mut self) -> Option<Event> {
        loop {
            match self.next() {
                Some(e) if e.event == "heartbeat" => continue,
                other => return other,
            }
        }
    }

    /// The header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Opens `GET /api/brand-monitor/progress/{task_id}` with extra headers.
pub fn open_stream(addr: SocketAddr, task_id: &str, headers: &[(&str, &str)]) -> Stream {
    open_target(addr, &format!("{PROGRESS}/{task_id}"), headers)
}

/// Opens a stream at `target` (a path and query) with extra headers.
pub fn open_target(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Stream {
    let mut stream = connect(addr);
    stream.write_all(get_request(target, headers).as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let (status, headers) = client::read_head(&mut reader).expect("a response head");
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v == "chunked");
    Stream { status, headers, events: EventReader::new(reader, chunked) }
}

/// Sends the stream request for `target` on a socket with a small receive window and returns the
/// socket unread: a viewer that is stuck until the test reads it (with [`events_of`]).
pub fn stuck_stream(addr: SocketAddr, target: &str) -> TcpStream {
    let mut stream = super::connect_small_window(addr);
    stream.write_all(get_request(target, &[]).as_bytes()).unwrap();
    stream
}

/// Reads a stream's response head from `socket`, checked to be 200, and returns a reader of its
/// events.
pub fn events_of(socket: TcpStream) -> EventReader<BufReader<TcpStream>> {
    let mut reader = BufReader::new(socket);
    let (status, headers) = client::read_head(&mut reader).expect("a response head");
    assert_eq!(status, 200, "{headers:?}");
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v == "chunked");
    EventReader::new(reader, chunked)
}

/// [`open_stream`], checked to answer 200 and to open with `connected`, which it reads past.
pub fn open_connected(addr: SocketAddr, task_id: &str, headers: &[(&str, &str)]) -> Stream {
    let mut stream = open_stream(addr, task_id, headers);
    assert_eq!(stream.status, 200, "{task_id} with {headers:?}: {:?}", stream.headers);
    let connected = stream.next().expect("connected");
    assert_eq!(connected.event, "connected");
    stream
}

/// Opens a stream and reads past `connected` and the snapshot; returns the stream and snapshot.
pub fn follow(addr: SocketAddr, task_id: &str) -> (Stream, Value) {
    let mut stream = open_connected(addr, task_id, &[]);
    let snapshot = stream.next().expect("snapshot");
    assert_eq!(snapshot.event, "progress");
    (stream, serde_json::from_str(&snapshot.data).unwrap())
}

/// A connection read at the byte level: the response head as text, then the body as it came.
pub struct RawStream {
    pub reader: BufReader<TcpStream>,
    pub head: String,
    pub chunked: bool,
    /// The body read so far, without the chunk framing.
    pub body: Vec<u8>,
    /// The body read so far exactly as it came off the wire (chunk framing included).
    pub wire: Vec<u8>,
    /// The body ended (zero-size chunk read, or EOF of a close-delimited body).
    pub ended: bool,
}

impl RawStream {
    /// Sends `request` on a new connection and reads the response head.
    pub fn open(addr: SocketAddr, request: &str) -> RawStream {
        let mut stream = connect(addr);
        stream.write_all(request.as_bytes()).unwrap();
        RawStream::on(BufReader::new(stream))
    }

    /// Opens a stream of `task_id`, checked to answer 200, and reads through its snapshot (the
    /// first `progress` event).
    pub fn follow(addr: SocketAddr, task_id: &str) -> RawStream {
        let mut raw = RawStream::open(addr, &stream_request(task_id, &[]));
        assert!(raw.head.starts_with("HTTP/1.1 200 "), "{:?}", raw.head);
        let at = raw.wait_for(0, "event: progress\n");
        raw.wait_for(at, "\n\n");
        raw
    }

    /// Reads a response head from a connection already in use.
    pub fn on(mut reader: BufReader<TcpStream>) -> RawStream {
        let mut head = String::new();
        loop {
            let mut line = Vec::new();
            reader.read_until(b'\n', &mut line).expect("a response head before the timeout");
            assert!(!line.is_empty(), "the connection closed inside the head: {head:?}");
            head.push_str(std::str::from_utf8(&line).expect("an ASCII head"));
            if line == b"\r\n" {
                break;
            }
        }
        let chunked = head.contains("\r\nTransfer-Encoding: chunked\r\n");
        RawStream { reader, head, chunked, body: Vec::new(), wire: Vec::new(), ended: false }
    }

    /// Reads the next piece of the body (one chunk, or what a read returns); false at its end.
    /// A chunked body must end with its zero-size chunk: EOF before it fails the test.
    pub fn fill(&mut self) -> bool {
        if self.ended {
            return false;
        }
        if !self.chunked {
            let mut buf = [0u8; 8192];
            let n = self.reader.read(&mut buf).expect("body bytes before the timeout");
            self.body.extend_from_slice(&buf[..n]);
            self.wire.extend_from_slice(&buf[..n]);
            self.ended = n == 0;
            return n > 0;
        }
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("a chunk size before the timeout");
        self.wire.extend_from_slice(&line);
        let text = std::str::from_utf8(&line).expect("an ASCII chunk size");
        assert!(text.ends_with("\r\n"), "a chunk-size line ends in CRLF: {text:?} after {:?}", self.text());
        let size = usize::from_str_radix(text.trim_end(), 16).expect("a hex chunk size");
        let mut data = vec![0u8; size + 2];
        self.reader.read_exact(&mut data).expect("a whole chunk before the timeout");
        self.wire.extend_from_slice(&data);
        assert_eq!(&data[size..], b"\r\n", "a chunk ends in CRLF");
        self.body.extend_from_slice(&data[..size]);
        self.ended = size == 0;
        size > 0
    }

    /// Reads until the body holds `needle` at or after byte `from`; returns where it ends.
    pub fn wait_for(&mut self, from: usize, needle: &str) -> usize {
        let deadline = Instant::now() + 2 * TIMEOUT;
        loop {
            let seen = &self.body[from.min(self.body.len())..];
            if let Some(at) = seen.windows(needle.len()).position(|w| w == needle.as_bytes()) {
                return from + at + needle.len();
            }
            assert!(Instant::now() < deadline, "no {needle:?} in {:?}", self.text());
            assert!(self.fill(), "the body ended without {needle:?}: {:?}", self.text());
        }
    }

    /// Reads the rest of the body.
    pub fn read_to_end(&mut self) {
        let deadline = Instant::now() + 2 * TIMEOUT;
        while self.fill() {
            assert!(Instant::now() < deadline, "the body does not end: {:?}", self.text());
        }
    }

    /// The body so far as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}
