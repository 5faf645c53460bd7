//! Graceful drain (API.md, `--drain-secs`; `Server::run_until`): on SIGTERM/SIGINT the server
//! stops accepting, tells every stream `event: error` `shutting_down` (after a `retry:` hint) and
//! ends it, finishes requests already accepted, and exits 0 within the drain time.

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use sse_progress::Config;
use sse_progress::client;

use crate::support::*;

/// Reads `stream`'s body to its end and then the connection to its close; the body text from
/// byte `from` on. Fails on a timeout: the stream must end by itself.
fn read_to_close(stream: &mut RawStream, from: usize) -> String {
    stream.read_to_end();
    let mut rest = Vec::new();
    match stream.reader.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the connection closes after the stream: {e}"),
    }
    assert!(rest.is_empty(), "nothing after the end of the body: {:?}", String::from_utf8_lossy(&rest));
    String::from_utf8_lossy(&stream.body[from..]).into_owned()
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
    create(server.addr, "job");
    let mut streams: Vec<RawStream> = (0..3).map(|_| RawStream::follow(server.addr, "job")).collect();

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
        assert_shutting_down(&read_to_close(stream, from));
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
    create(server.addr, "int");
    let mut stream = RawStream::follow(server.addr, "int");
    server.signal("INT");
    let from = stream.body.len();
    assert_shutting_down(&read_to_close(&mut stream, from));
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
    let mut stuck = half_sent_head(server.addr);
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(2 + 6));
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(read_until_close(&mut stuck).closed(), "the stuck connection is closed when the process exits");
}

#[test]
fn run_until_tells_streams_and_returns_within_the_drain_time() {
    // Shows `Server::run_until(shutdown)` with `drain: 2 s`: after the shutdown future completes,
    // streams are told `shutting_down` and end, an idle keep-alive connection is closed, new
    // connections are refused, and it returns Ok within the drain time even though a client
    // holding a half-sent request head never finishes it.
    let mut server = start_server(Config {
        drain: Duration::from_secs(2),
        header_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        connect_rate_per_client: 0,
        threads: 2,
        ..Config::default()
    });
    server.tracker.create_task("inproc", "start").unwrap();
    let mut streams: Vec<RawStream> = (0..2).map(|_| RawStream::follow(server.addr, "inproc")).collect();

    let mut idle = connect(server.addr);
    idle.write_all(b"GET /api/brand-monitor/health HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut idle_reader = BufReader::new(idle.try_clone().unwrap());
    let reply = client::read_reply(&mut idle_reader, false).unwrap();
    assert_eq!((reply.status, reply.header("connection")), (200, Some("keep-alive")));

    let stuck = half_sent_head(server.addr);

    let stopped_at = Instant::now();
    server.stop();

    for stream in &mut streams {
        let from = stream.body.len();
        assert_shutting_down(&read_to_close(stream, from));
    }
    let mut rest = Vec::new();
    match idle_reader.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest)),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "the idle connection is closed: {e}"),
    }
    assert!(refused(server.addr), "new connections are refused while draining");

    // The half-sent head would hold the connection for its 60 s header timeout; the drain
    // deadline (2 s) ends the wait. The bound is generous but well below 60 s.
    assert_eq!(server.returned(Duration::from_secs(2 + 10)), Ok(()));
    eprintln!("run_until returned {:?} after the shutdown", stopped_at.elapsed());
    drop(stuck);
}

#[test]
fn a_stream_requested_during_the_drain_gets_503_shutting_down() {
    // Shows that a stream request whose head completes after the shutdown started is answered
    // 503 `shutting_down` with `Retry-After` and a JSON body (API.md, errors before the stream).
    let mut server = start_server(Config {
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

    server.stop();
    // The listener is closed when the drain starts.
    wait_until("the listener to close", || refused(server.addr));
    late.write_all(b"Accept: text/event-stream\r\n\r\n").unwrap();
    let reply = client::read_reply(&mut late_reader, false).expect("an answer");
    assert_error(&reply, 503, "shutting_down");
    assert_retry_after(&reply);
    assert_eq!(server.returned(Duration::from_secs(2 + 10)), Ok(()));
}
