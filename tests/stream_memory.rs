//! Memory that must not grow with clients times result size (issue 8): viewers that stop reading
//! a task whose terminal event is 1 MiB share the one encoded frame of it; none holds a copy of
//! what it could not send, whether the event came while it watched or was its opening snapshot;
//! and clients that ask for the task or the list and do not read the answer share the stored
//! result. Measured as the resident memory of the server binary in a process of its own.
mod support;

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{TIMEOUT, request};

/// Viewers that never read, per phase.
const VIEWERS: usize = 48;
/// The result's size: its frame is a little more.
const RESULT: usize = 1000 * 1024;

/// The binary under test, killed by its PID when the test ends.
struct Binary(Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

/// `VmRSS` of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn health(addr: SocketAddr) -> Value {
    let reply = request(addr, "GET", "/api/brand-monitor/health", &[], None);
    assert_eq!(reply.status, 200, "{}", reply.text());
    serde_json::from_slice(&reply.body).expect("health is JSON")
}

/// Waits (polling, with a short pause) until `condition` holds, failing after TIMEOUT.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the binary on a free port; returns it with its address once it answers.
fn start_binary() -> (Binary, SocketAddr) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sse-progress"))
        .args(["serve", "--listen", &addr.to_string(), "--connect-rate-per-client", "0", "--threads", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut binary = Binary(child);
    wait_until("the server to answer", || {
        if let Some(status) = binary.0.try_wait().unwrap() {
            panic!("the server exited: {status}");
        }
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
    });
    (binary, addr)
}

/// A stream request on a socket with a small receive buffer, which the test never reads.
fn stuck_viewer(addr: SocketAddr, task: &str) -> TcpStream {
    stuck_reader(
        addr,
        &format!(
            "GET /api/brand-monitor/progress/{task} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
        ),
    )
}

/// A request (`head`) on a socket with a small receive buffer, whose answer is never read.
fn stuck_reader(addr: SocketAddr, head: &str) -> TcpStream {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let fd = rustix::net::socket_with(AddressFamily::INET, SocketType::STREAM, SocketFlags::CLOEXEC, None)
        .expect("a socket");
    sockopt::set_socket_recv_buffer_size(&fd, 16 * 1024).expect("SO_RCVBUF");
    rustix::net::connect(&fd, &addr).expect("connect");
    let mut stream = TcpStream::from(fd);
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.set_nonblocking(true).unwrap();
    stream
}

/// Whether the server has sent `viewer` more than its small opening: at least `bytes` wait
/// unread in its receive buffer.
fn has_unread(viewer: &TcpStream, bytes: usize) -> bool {
    let mut buf = vec![0u8; bytes];
    match viewer.peek(&mut buf) {
        Ok(n) => n >= bytes,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("a stuck viewer's connection failed: {e}"),
    }
}

fn post(addr: SocketAddr, path: &str, body: &str) {
    let reply = request(addr, "POST", path, &[], Some(body));
    assert!((200..300).contains(&reply.status), "{path}: {} {}", reply.status, reply.text());
}

fn complete(addr: SocketAddr, task: &str) {
    let body = serde_json::json!({ "result": { "blob": "m".repeat(RESULT) } }).to_string();
    post(addr, &format!("/api/brand-monitor/tasks/{task}/complete"), &body);
}

#[test]
fn stuck_viewers_of_a_large_result_share_one_copy_of_it() {
    // Shows that 48 viewers that stop reading a 1 MiB terminal event add far less than 48 MiB to
    // the server's resident memory, both when the event is published while they watch and when
    // it is the snapshot they open with. Before, each held a copy of its unsent rest (~48 MiB in
    // all for either phase).
    let (binary, addr) = start_binary();
    let pid = binary.0.id();
    let limit = (VIEWERS as u64 / 2) << 20;

    // The event comes while they watch.
    post(addr, "/api/brand-monitor/tasks", r#"{"taskId": "watched"}"#);
    let watching: Vec<TcpStream> = (0..VIEWERS).map(|_| stuck_viewer(addr, "watched")).collect();
    wait_until("every viewer to be streaming", || health(addr)["activeConnections"] == VIEWERS);
    let before = rss(pid);
    complete(addr, "watched");
    // A viewer whose socket holds more than its opening has had the event written, as far as
    // its socket takes it: the server holds the rest.
    wait_until("the event to reach every viewer's socket", || watching.iter().all(|v| has_unread(v, 8 * 1024)));
    let grown = rss(pid).saturating_sub(before);
    eprintln!("{VIEWERS} stuck viewers of a published 1 MiB event: +{} KiB", grown >> 10);
    assert!(grown < limit, "the server grew by {} MiB", grown >> 20);

    // The event is the snapshot they open with.
    post(addr, "/api/brand-monitor/tasks", r#"{"taskId": "finished"}"#);
    complete(addr, "finished");
    let before = rss(pid);
    let opening: Vec<TcpStream> = (0..VIEWERS).map(|_| stuck_viewer(addr, "finished")).collect();
    wait_until("the snapshot to reach every viewer's socket", || opening.iter().all(|v| has_unread(v, 8 * 1024)));
    let grown = rss(pid).saturating_sub(before);
    eprintln!("{VIEWERS} stuck viewers opening on a 1 MiB snapshot: +{} KiB", grown >> 10);
    assert!(grown < limit, "the server grew by {} MiB", grown >> 20);
    assert_eq!(health(addr)["activeConnections"], 2 * VIEWERS, "every stuck viewer is still connected");
    drop((watching, opening, binary));
}

#[test]
fn clients_that_do_not_read_a_large_answer_share_the_stored_result() {
    // Shows that GET of a task with a 1 MiB result, and of the list, costs no copy of the result
    // per request: 48 clients that ask and never read add far less than 48 MiB. Before, each
    // held the answer built whole, and a copy of it in its write buffer (~100 MiB in all).
    let (binary, addr) = start_binary();
    let pid = binary.0.id();
    post(addr, "/api/brand-monitor/tasks", r#"{"taskId": "big"}"#);
    complete(addr, "big");
    for path in ["/api/brand-monitor/tasks/big", "/api/brand-monitor/tasks"] {
        let before = rss(pid);
        let head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let readers: Vec<TcpStream> = (0..VIEWERS).map(|_| stuck_reader(addr, &head)).collect();
        wait_until("the answer to reach every socket", || readers.iter().all(|r| has_unread(r, 8 * 1024)));
        let grown = rss(pid).saturating_sub(before);
        eprintln!("{VIEWERS} clients not reading GET {path}: +{} KiB", grown >> 10);
        assert!(grown < (VIEWERS as u64 / 2) << 20, "GET {path}: the server grew by {} MiB", grown >> 20);
        drop(readers);
    }
    drop(binary);
}
