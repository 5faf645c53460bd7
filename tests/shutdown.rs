//! Graceful drain (API.md, `--drain-secs`; `Server::run_until`): on SIGTERM/SIGINT the server
//! stops accepting, tells every stream `event: error` `shutting_down` (after a `retry:` hint) and
//! ends it, finishes requests already accepted, and exits 0 within the drain time.
mod support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sse_progress::client::{self, Reply};
use sse_progress::{Config, ProgressTracker, Server};
use support::{TIMEOUT, connect};

/// The binary under test, killed (SIGKILL, by its PID) if a test leaves it running.
struct Binary {
    child: Child,
    addr: SocketAddr,
}

impl Binary {
    /// Starts `sse-progress serve` on a free port with `args`, and waits until it answers health.
    fn serve(args: &[&str]) -> Binary {
        // A port the kernel just gave out and took back; the child binds it a moment later.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sse-progress"))
            .args(["serve", "--listen", &addr.to_string(), "--threads", "2"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        let mut binary = Binary { child, addr };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = binary.child.try_wait().unwrap() {
                panic!("the server exited before answering: {status}");
            }
            if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                stream.set_read_timeout(Some(TIMEOUT)).unwrap();
                let mut stream = stream;
                let _ = stream.write_all(
                    b"GET /api/brand-monitor/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                );
                if client::read_reply(&mut BufReader::new(stream), false).is_ok_and(|r| r.status == 200) {
                    return binary;
                }
            }
            assert!(Instant::now() < deadline, "the server did not answer health on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `INT`, `KILL`) to the child, by its PID.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([format!("-{signal}"), self.pid().to_string()]).status().unwrap();
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    /// Waits for the child to exit, at most `limit`; kills it and fails the test if it overruns.
    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                self.signal("KILL");
                let _ = self.child.wait();
                panic!("the server did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").args(["-KILL", &self.pid().to_string()]).status();
            let _ = self.child.wait();
        }
    }
}

/// One request on a new connection (`Connection: close`).
fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Reply {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(body) = body {
        text.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body.unwrap_or(""));
    let mut stream = connect(addr);
    stream.write_all(text.as_bytes()).unwrap();
    client::read_reply(&mut BufReader::new(stream), method == "HEAD").expect("a reply")
}

/// A stream read at the byte level, so `retry:` lines and the end of the body can be seen.
struct RawStream {
    reader: BufReader<TcpStream>,
    chunked: bool,
    /// The body so far, chunk framing removed.
    body: Vec<u8>,
    /// Whether the body ended with the zero-size chunk.
    terminated: bool,
}

impl RawStream {
    /// Opens a stream of `task` and reads until its snapshot (the first `event: progress`).
    fn open(addr: SocketAddr, task: &str) -> RawStream {
        let mut stream = connect(addr);
        let request = format!(
            "GET /api/brand-monitor/progress/{task} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let (status, headers) = client::read_head(&mut reader).expect("a response head");
        assert_eq!(status, 200);
        let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v == "chunked");
        let mut raw = RawStream { reader, chunked, body: Vec::new(), terminated: false };
        while !raw.text().contains("event: progress\n") {
            assert!(raw.fill().expect("the opening events"), "the stream ended early: {:?}", raw.text());
        }
        while !raw.text().ends_with("\n\n") {
            assert!(raw.fill().expect("the snapshot"), "the stream ended early: {:?}", raw.text());
        }
        raw
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Reads the next piece of the body; false at its end (zero chunk or EOF).
    fn fill(&mut self) -> std::io::Result<bool> {
        if self.terminated {
            return Ok(false);
        }
        if !self.chunked {
            let mut buf = [0u8; 4096];
            let n = self.reader.read(&mut buf)?;
            self.body.extend_from_slice(&buf[..n]);
            return Ok(n > 0);
        }
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Ok(false);
        }
        let size = usize::from_str_radix(line.trim_end(), 16)
            .map_err(|_| std::io::Error::new(ErrorKind::InvalidData, format!("chunk size {line:?}")))?;
        let mut data = vec![0u8; size + 2];
        self.reader.read_exact(&mut data)?;
        self.body.extend_from_slice(&data[..size]);
        self.terminated = size == 0;
        Ok(size > 0)
    }

    /// Reads the body to its end and then the connection to its close; the body text from
    /// `from` on. Fails on a timeout: the stream must end by itself.
    fn read_to_close(&mut self, from: usize) -> String {
        while self.fill().unwrap_or_else(|e| panic!("the stream ends cleanly, not {e}: {:?}", self.text())) {}
        assert!(!self.chunked || self.terminated, "the chunked body ends with its terminator: {:?}", self.text());
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("the connection closes after the stream: {e}"),
        }
        assert!(rest.is_empty(), "nothing after the end of the body: {:?}", String::from_utf8_lossy(&rest));
        String::from_utf8_lossy(&self.body[from..]).into_owned()
    }
}

/// Checks the end of a stream told to shut down: a `retry:` line, then `event: error` whose data
/// has code `shutting_down`, as the last event.
fn assert_shutting_down(tail: &str) {
    let blocks: Vec<&str> = tail.split("\n\n").filter(|b| !b.is_empty()).collect();
    assert!(tail.ends_with("\n\n"), "the stream ends with a whole event: {tail:?}");
    let last = blocks.last().unwrap_or_else(|| panic!("an event after the snapshot: {tail:?}"));
    let lines: Vec<&str> = last.lines().collect();
    let error_at = lines.iter().position(|l| *l == "event: error").unwrap_or_else(|| panic!("event: error: {tail:?}"));
    let data = lines[error_at + 1..]
        .iter()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("a data line: {tail:?}"));
    let data: Value = serde_json::from_str(data).expect("the error data is JSON");
    assert_eq!(data["code"], "shutting_down", "{tail:?}");
    assert!(data["message"].as_str().is_some_and(|m| !m.is_empty()), "{data}");
    let retry_at = tail.find("retry: ").unwrap_or_else(|| panic!("a retry: line: {tail:?}"));
    let retry_line = tail[retry_at..].lines().next().unwrap();
    let ms: u64 = retry_line["retry: ".len()..].parse().unwrap_or_else(|_| panic!("retry is a number: {retry_line:?}"));
    assert!(ms > 0, "{retry_line}");
    assert!(retry_at < tail.find("event: error").unwrap(), "the retry hint comes before the error: {tail:?}");
}

/// Whether connecting to `addr` is refused now.
fn refused(addr: SocketAddr) -> bool {
    match TcpStream::connect_timeout(&addr, TIMEOUT) {
        Err(e) => e.kind() == ErrorKind::ConnectionRefused,
        Ok(_) => false,
    }
}

#[test]
fn sigterm_tells_streams_finishes_requests_in_flight_and_exits_0() {
    // Shows SIGTERM on the binary: every stream gets `retry:` + `event: error` `shutting_down` and
    // ends, new connections are refused, a PATCH half-sent before the signal still gets its 200
    // and is applied, and the process exits 0 within the drain time.
    let mut server = Binary::serve(&["--drain-secs", "3", "--connect-rate-per-client", "0"]);
    let created = call(server.addr, "POST", "/api/brand-monitor/tasks", Some(r#"{"taskId": "job"}"#));
    assert_eq!(created.status, 201, "{}", created.text());
    let mut streams: Vec<RawStream> = (0..3).map(|_| RawStream::open(server.addr, "job")).collect();

    // A producer connection that is certainly accepted (one request answered on it), then a
    // PATCH whose head and half its body are sent before the signal.
    let mut producer = connect(server.addr);
    producer.write_all(b"GET /api/brand-monitor/health HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut producer_reader = BufReader::new(producer.try_clone().unwrap());
    assert_eq!(client::read_reply(&mut producer_reader, false).unwrap().status, 200);
    let body = r#"{"status": "running", "progress": 42.5, "message": "accepted before the signal"}"#;
    let (first, second) = body.split_at(body.len() / 2);
    let head = format!(
        "PATCH /api/brand-monitor/tasks/job HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    producer.write_all(head.as_bytes()).unwrap();
    producer.write_all(first.as_bytes()).unwrap();

    let signalled = Instant::now();
    server.signal("TERM");

    for stream in &mut streams {
        let from = stream.body.len();
        assert_shutting_down(&stream.read_to_close(from));
    }
    // The streams are told after the listener is closed.
    assert!(refused(server.addr), "a new connection after SIGTERM is refused");

    producer.write_all(second.as_bytes()).expect("the rest of the body is taken");
    let reply = client::read_reply(&mut producer_reader, false).expect("an answer to the PATCH in flight");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let task: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(task["eventId"], 2, "the update was applied: {task}");
    assert_eq!(task["progress"], 42.5);
    assert_eq!(task["message"], "accepted before the signal");
    assert_eq!(reply.header("connection"), Some("close"), "no keep-alive while draining");
    drop((producer, producer_reader));

    let status = server.wait_exit(Duration::from_secs(3 + 7));
    assert!(status.success(), "exit status {status}");
    assert_eq!(status.code(), Some(0));
    eprintln!("exited {:?} after SIGTERM", signalled.elapsed());
}

#[test]
fn sigint_drains_the_same_way() {
    // Shows SIGINT on the binary: the stream is told `shutting_down` and ends, and the process
    // exits 0.
    let mut server = Binary::serve(&["--drain-secs", "3", "--connect-rate-per-client", "0"]);
    let created = call(server.addr, "POST", "/api/brand-monitor/tasks", Some(r#"{"taskId": "int"}"#));
    assert_eq!(created.status, 201);
    let mut stream = RawStream::open(server.addr, "int");
    server.signal("INT");
    let from = stream.body.len();
    assert_shutting_down(&stream.read_to_close(from));
    let status = server.wait_exit(Duration::from_secs(3 + 7));
    assert_eq!(status.code(), Some(0), "exit status {status}");
}

#[test]
fn an_idle_binary_exits_at_once_on_sigterm() {
    // Shows that with no connections open SIGTERM ends the process with 0 well before the drain
    // time (nothing to wait for).
    let mut server = Binary::serve(&["--drain-secs", "30"]);
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "exit status {status}");
}

#[test]
fn a_connection_that_never_finishes_does_not_hold_the_exit_past_the_drain() {
    // Shows that a client holding a half-sent request head does not keep the binary alive after
    // SIGTERM beyond `--drain-secs` (2 s here; the header timeout would be 10 s): it exits 0.
    let mut server = Binary::serve(&["--drain-secs", "2", "--connect-rate-per-client", "0"]);
    let mut stuck = connect(server.addr);
    stuck.write_all(b"GET /api/brand-monitor/health HTTP/1.1\r\nHo").unwrap();
    // The stuck connection is accepted by now: a later one has been answered.
    assert_eq!(call(server.addr, "GET", "/api/brand-monitor/health", None).status, 200);
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(2 + 6));
    assert_eq!(status.code(), Some(0), "exit status {status}");
    let mut rest = Vec::new();
    let closed = match stuck.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    };
    assert!(closed, "the stuck connection is closed when the process exits");
}

/// A server run in this process with `run_until(stop)`; reports when `run_until` returns.
struct InProcess {
    addr: SocketAddr,
    tracker: ProgressTracker,
    stop: Option<smol::channel::Sender<()>>,
    returned: mpsc::Receiver<Result<(), String>>,
}

fn run_in_process(config: Config) -> InProcess {
    let tracker = ProgressTracker::new(config);
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let (ready, addr) = mpsc::channel();
    let (returned_tx, returned) = mpsc::channel();
    let t = tracker.clone();
    std::thread::spawn(move || {
        let result = smol::block_on(async move {
            let server = Server::bind("127.0.0.1:0", t).await?;
            ready.send(server.local_addr()?).unwrap();
            server
                .run_until(async move {
                    let _ = stopped.recv().await;
                })
                .await
        });
        let _ = returned_tx.send(result.map_err(|e| e.to_string()));
    });
    let addr = addr.recv_timeout(TIMEOUT).expect("the server starts");
    InProcess { addr, tracker, stop: Some(stop), returned }
}

#[test]
fn run_until_tells_streams_and_returns_within_the_drain_time() {
    // Shows `Server::run_until(shutdown)` with `drain: 2 s`: after the shutdown future completes,
    // streams are told `shutting_down` and end, an idle keep-alive connection is closed, new
    // connections are refused, and it returns Ok within the drain time even though a client
    // holding a half-sent request head never finishes it.
    let mut server = run_in_process(Config {
        drain: Duration::from_secs(2),
        header_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        connect_rate_per_client: 0,
        threads: 2,
        ..Config::default()
    });
    server.tracker.create_task("inproc", "start").unwrap();
    let mut streams: Vec<RawStream> = (0..2).map(|_| RawStream::open(server.addr, "inproc")).collect();

    let mut idle = connect(server.addr);
    idle.write_all(b"GET /api/brand-monitor/health HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut idle_reader = BufReader::new(idle.try_clone().unwrap());
    let reply = client::read_reply(&mut idle_reader, false).unwrap();
    assert_eq!((reply.status, reply.header("connection")), (200, Some("keep-alive")));

    let mut stuck = connect(server.addr);
    stuck.write_all(b"GET /api/brand-monitor/health HTTP/1.1\r\nHo").unwrap();

    let stopped_at = Instant::now();
    drop(server.stop.take());

    for stream in &mut streams {
        let from = stream.body.len();
        assert_shutting_down(&stream.read_to_close(from));
    }
    let mut rest = Vec::new();
    match idle_reader.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest)),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "the idle connection is closed: {e}"),
    }
    assert!(refused(server.addr), "new connections are refused while draining");

    // The half-sent head would hold the connection for its 60 s header timeout; the drain
    // deadline (2 s) ends the wait. The bound is generous but well below 60 s.
    let result = server.returned.recv_timeout(Duration::from_secs(2 + 10)).expect("run_until returns");
    assert_eq!(result, Ok(()));
    eprintln!("run_until returned {:?} after the shutdown", stopped_at.elapsed());
    drop(stuck);
}

#[test]
fn a_stream_requested_during_the_drain_gets_503_shutting_down() {
    // Shows that a stream request whose head completes after the shutdown started is answered
    // 503 `shutting_down` with `Retry-After` and a JSON body (API.md, errors before the stream).
    let mut server = run_in_process(Config {
        drain: Duration::from_secs(2),
        connect_rate_per_client: 0,
        threads: 2,
        ..Config::default()
    });
    server.tracker.create_task("late", "start").unwrap();
    // A connection certainly accepted (one request answered on it), then half a stream request.
    let mut late = connect(server.addr);
    late.write_all(b"GET /api/brand-monitor/health HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut late_reader = BufReader::new(late.try_clone().unwrap());
    assert_eq!(client::read_reply(&mut late_reader, false).unwrap().status, 200);
    late.write_all(b"GET /api/brand-monitor/progress/late HTTP/1.1\r\nHost: localhost\r\n").unwrap();

    drop(server.stop.take());
    // The listener is closed when the drain starts.
    let deadline = Instant::now() + TIMEOUT;
    while !refused(server.addr) {
        assert!(Instant::now() < deadline, "the listener is closed");
        std::thread::sleep(Duration::from_millis(10));
    }
    late.write_all(b"Accept: text/event-stream\r\n\r\n").unwrap();
    let reply = client::read_reply(&mut late_reader, false).expect("an answer");
    assert_eq!(reply.status, 503, "{}", reply.text());
    let json: Value = serde_json::from_slice(&reply.body).expect("a JSON error");
    assert_eq!(json["error"]["code"], "shutting_down");
    let retry: u64 = reply.header("retry-after").expect("Retry-After").parse().expect("whole seconds");
    assert!(retry >= 1);
    let result = server.returned.recv_timeout(Duration::from_secs(2 + 10)).expect("run_until returns");
    assert_eq!(result, Ok(()));
}
