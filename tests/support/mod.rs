//! Helpers shared by the integration tests: a real server on 127.0.0.1:0 in its own threads,
//! and blocking clients with bounded timeouts so a hang fails fast instead of stalling CI.
#![allow(dead_code)]

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use sse_progress::client::{self, Event, EventReader, Reply};
use sse_progress::{Config, ProgressTracker, Server};

/// Every blocking read or connect in the tests gives up after this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A server running on its own threads; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub tracker: ProgressTracker,
    stop: Option<smol::channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Starts a server with `config` (two executor threads unless set) on 127.0.0.1:0.
pub fn start_server(config: Config) -> TestServer {
    let tracker = ProgressTracker::new(config);
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let (ready, addr) = std::sync::mpsc::channel();
    let t = tracker.clone();
    let thread = std::thread::spawn(move || {
        smol::block_on(async move {
            let server = Server::bind("127.0.0.1:0", t).await.expect("bind 127.0.0.1:0");
            ready.send(server.local_addr().unwrap()).unwrap();
            server
                .run_until(async move {
                    let _ = stopped.recv().await;
                })
                .await
                .unwrap();
        })
    });
    let addr = addr.recv_timeout(TIMEOUT).expect("the server starts");
    TestServer { addr, tracker, stop: Some(stop), thread: Some(thread) }
}

/// A server with the default configuration but two threads.
pub fn start_default() -> TestServer {
    start_server(Config { threads: 2, ..Config::default() })
}

impl Drop for TestServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A connected socket with read and write timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Sends raw bytes on a new connection and reads until the server closes it (or TIMEOUT).
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = connect(addr);
    stream.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// One request on a new connection (`Connection: close`), the whole reply read back.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
            text.push_str("Content-Type: application/json\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body.unwrap_or(""));
    let mut stream = connect(addr);
    stream.write_all(text.as_bytes()).unwrap();
    client::read_reply(&mut BufReader::new(stream), method == "HEAD").expect("a reply")
}

/// A producer call that must succeed; returns the JSON answer (Null for 204).
pub fn call(addr: SocketAddr, method: &str, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
    let body = body.map(|b| b.to_string());
    let reply = request(addr, method, path, &[], body.as_deref());
    assert!((200..300).contains(&reply.status), "{method} {path}: {} {}", reply.status, reply.text());
    if reply.body.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(&reply.body).unwrap() }
}

/// The `{"error": {"code"}}` of an error reply.
pub fn error_code(reply: &Reply) -> String {
    let json: serde_json::Value = serde_json::from_slice(&reply.body).expect("error bodies are JSON");
    json["error"]["code"].as_str().expect("error.code").to_owned()
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
    let mut text = format!(
        "GET /api/brand-monitor/progress/{task_id} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n"
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    let mut stream = connect(addr);
    stream.write_all(text.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let (status, headers) = client::read_head(&mut reader).expect("a response head");
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v == "chunked");
    Stream { status, headers, events: EventReader::new(reader, chunked) }
}

/// Opens a stream and reads past `connected` and the snapshot; returns the stream and snapshot.
pub fn follow(addr: SocketAddr, task_id: &str) -> (Stream, serde_json::Value) {
    let mut stream = open_stream(addr, task_id, &[]);
    assert_eq!(stream.status, 200);
    let connected = stream.next().expect("connected");
    assert_eq!(connected.event, "connected");
    let snapshot = stream.next().expect("snapshot");
    assert_eq!(snapshot.event, "progress");
    (stream, serde_json::from_str(&snapshot.data).unwrap())
}
