//! `sse-progress watch URL TASK...` following several tasks over one multi-task stream against
//! the real server: its exit codes (0 all completed, 1 one failed or was dropped, 2 otherwise),
//! one plain line per change when stdout is not a terminal, a per-task error failing that task
//! alone, a dropped connection resumed with `Last-Event-ID` without missing a change, and
//! `Retry-After` honoured.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use sse_progress::{Config, TaskUpdate};

/// A running `watch`, its stdout and stderr read line by line on threads of their own, so every
/// wait for a line is bounded.
struct Watch {
    child: Child,
    lines: Receiver<String>,
    errors: Receiver<String>,
    /// Every stdout line read so far.
    seen: Vec<String>,
}

impl Watch {
    fn start(url: &str, args: &[&str]) -> Watch {
        let mut child = Command::new(BIN)
            .args(["watch", url])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("watch starts");
        let lines = lines_of(child.stdout.take().unwrap());
        let errors = lines_of(child.stderr.take().unwrap());
        Watch { child, lines, errors, seen: Vec::new() }
    }

    /// The next stdout line that contains every one of `parts`, skipping others.
    fn line_with(&mut self, parts: &[&str]) -> String {
        loop {
            let line = self.lines.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
                panic!("no line with {parts:?} within {TIMEOUT:?}; lines so far: {:#?}", self.seen)
            });
            self.seen.push(line.clone());
            if parts.iter().all(|p| line.contains(p)) {
                return line;
            }
        }
    }

    /// The next stderr line that contains `part`.
    fn notice_with(&mut self, part: &str) -> String {
        loop {
            let line = self.errors.recv_timeout(TIMEOUT).unwrap_or_else(|_| panic!("no notice with {part:?}"));
            if line.contains(part) {
                return line;
            }
        }
    }

    /// Waits for the exit (bounded) and returns its code with every stdout line of the run.
    fn exit(mut self) -> (Option<i32>, Vec<String>) {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "watch did not exit; lines: {:#?}", self.seen);
            std::thread::sleep(Duration::from_millis(20));
        };
        // The rest of stdout, up to its end (the reader thread may still be passing lines on).
        while let Ok(line) = self.lines.recv_timeout(TIMEOUT) {
            self.seen.push(line);
        }
        (status.code(), std::mem::take(&mut self.seen))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn url_of(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

fn create_all(server: &TestServer, ids: &[&str]) {
    for id in ids {
        server.tracker.create_task(id, "Queued").unwrap();
    }
}

#[test]
fn several_tasks_that_complete_exit_0() {
    // Three tasks on one stream: a snapshot line each, their changes, and exit 0 once all three
    // completed; the server saw one stream, not three.
    let server = start_default();
    create_all(&server, &["a", "b", "c"]);
    let mut watch = Watch::start(&url_of(server.addr), &["a", "b", "c"]);
    for id in ["a ", "b ", "c "] {
        watch.line_with(&[id, "pending", "Queued"]);
    }
    assert_eq!(health(server.addr)["activeConnections"], 1, "one stream for three tasks");
    server.tracker.update_task("b", TaskUpdate::running(50.0).stage("Half")).unwrap();
    watch.line_with(&["b ", " 50.0%", "running", "Half"]);
    for id in ["c", "a", "b"] {
        server.tracker.complete_task(id, serde_json::Value::Null).unwrap();
    }
    let (code, lines) = watch.exit();
    assert_eq!(code, Some(0), "{lines:#?}");
    for id in ["a ", "b ", "c "] {
        assert!(lines.iter().any(|l| l.starts_with(id) && l.contains("100.0% completed")), "{id}: {lines:#?}");
    }
}

#[test]
fn one_failed_task_exits_1_once_the_others_end() {
    // b fails first: watch goes on following a, and exits 1 only when a has ended too.
    let server = start_default();
    create_all(&server, &["a", "b"]);
    let mut watch = Watch::start(&url_of(server.addr), &["a", "b"]);
    watch.line_with(&["a ", "pending"]);
    watch.line_with(&["b ", "pending"]);
    server.tracker.fail_task("b", "quota exceeded").unwrap();
    watch.line_with(&["b ", "failed", "quota exceeded"]);
    server.tracker.update_task("a", TaskUpdate::running(70.0)).unwrap();
    watch.line_with(&["a ", " 70.0%"]);
    assert!(watch.child.try_wait().unwrap().is_none(), "a has not ended: watch goes on");
    server.tracker.complete_task("a", serde_json::Value::Null).unwrap();
    watch.line_with(&["a ", "completed"]);
    assert_eq!(watch.exit().0, Some(1));
}

#[test]
fn a_deleted_task_fails_alone() {
    // The per-task `event: error` `task_deleted` (with its taskId) ends b; a goes on to complete.
    let server = start_default();
    create_all(&server, &["a", "b"]);
    let mut watch = Watch::start(&url_of(server.addr), &["a", "b"]);
    watch.line_with(&["b ", "pending"]);
    server.tracker.delete_task("b").unwrap();
    watch.line_with(&["b ", "error", "task_deleted"]);
    server.tracker.update_task("a", TaskUpdate::running(20.0).stage("Still here")).unwrap();
    watch.line_with(&["a ", " 20.0%", "Still here"]);
    server.tracker.complete_task("a", serde_json::Value::Null).unwrap();
    let (code, lines) = watch.exit();
    assert_eq!(code, Some(1), "a deleted task is not a completed one: {lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("a ") && l.contains("completed")), "{lines:#?}");
}

#[test]
fn an_unknown_task_of_the_list_fails_alone_and_an_all_unknown_list_exits_2() {
    // `ghost` does not exist: its own `not_found` error, the other task followed to its end
    // (exit 1); a list of which no task exists is answered 404: exit 2 at once, no retry.
    let server = start_default();
    create_all(&server, &["real"]);
    let mut watch = Watch::start(&url_of(server.addr), &["real", "ghost"]);
    watch.line_with(&["ghost ", "error", "not_found"]);
    server.tracker.complete_task("real", serde_json::Value::Null).unwrap();
    let (code, lines) = watch.exit();
    assert_eq!(code, Some(1), "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("real ") && l.contains("completed")), "{lines:#?}");

    let mut watch = Watch::start(&url_of(server.addr), &["ghost", "spectre"]);
    assert!(watch.notice_with("404").contains("not_found"));
    let (code, lines) = watch.exit();
    assert_eq!(code, Some(2), "{lines:#?}");
}

#[test]
fn off_a_terminal_every_change_is_one_plain_line() {
    // stdout is a pipe: one line per change, the task's id first, no escape sequence, nothing
    // redrawn; exactly the changes made, in order.
    let server = start_default();
    create_all(&server, &["build-1", "b"]);
    let mut watch = Watch::start(&url_of(server.addr), &["build-1", "b"]);
    // The two snapshots, in whichever order they come.
    watch.line_with(&["pending"]);
    watch.line_with(&["pending"]);
    server.tracker.update_task("b", TaskUpdate::running(25.0).stage("Compiling")).unwrap();
    watch.line_with(&["b ", "Compiling"]);
    server.tracker.complete_task("b", serde_json::Value::Null).unwrap();
    watch.line_with(&["b ", "completed"]);
    server.tracker.fail_task("build-1", "disk full").unwrap();
    let (code, lines) = watch.exit();
    assert_eq!(code, Some(1));
    let mut sorted_snapshots = lines[..2].to_vec();
    sorted_snapshots.sort();
    assert_eq!(
        sorted_snapshots,
        [
            "b       [--------------------]   0.0% pending   Queued",
            "build-1 [--------------------]   0.0% pending   Queued",
        ]
    );
    assert_eq!(
        lines[2..],
        [
            "b       [#####---------------]  25.0% running   Compiling",
            "b       [####################] 100.0% completed Compiling",
            "build-1 [--------------------]   0.0% failed    disk full",
        ]
    );
    assert!(lines.iter().all(|l| !l.contains('\x1b') && !l.contains('\r')), "{lines:#?}");
}

#[test]
fn tokens_go_with_their_tasks_and_a_wrong_one_refuses_that_task_alone() {
    // Subscribe tokens on: a's right token admits a, b's wrong one refuses b alone
    // (`token_invalid`), and the tokens were given as repeated flags in the tasks' order.
    let server = start_server(Config {
        publish_token: Some("p".into()),
        require_subscribe_token: true,
        threads: 2,
        ..Config::default()
    });
    create_all(&server, &["a", "b"]);
    let token_a = server.tracker.subscribe_token("a").expect("a token");
    let mut watch = Watch::start(&url_of(server.addr), &["a", "b", "--token", &token_a, "--token", "not+right"]);
    watch.line_with(&["b ", "error", "token_invalid"]);
    server.tracker.complete_task("a", serde_json::Value::Null).unwrap();
    let (code, lines) = watch.exit();
    assert_eq!(code, Some(1), "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("a ") && l.contains("completed")), "{lines:#?}");
}

/// A TCP proxy in front of the server, so a test can cut a stream and choose when the next
/// connection gets through: each accepted connection waits until `forward` is called for it.
struct Proxy {
    listener: TcpListener,
}

/// One forwarded connection: what each side sent, and the sockets to cut it.
struct Leg {
    client: TcpStream,
    upstream: TcpStream,
    from_client: Arc<Mutex<Vec<u8>>>,
    from_server: Arc<Mutex<Vec<u8>>>,
}

impl Proxy {
    fn new() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Proxy { listener }
    }

    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }

    /// Accepts the next connection (within TIMEOUT) and forwards it to `server` both ways.
    fn forward(&self, server: SocketAddr) -> Leg {
        let deadline = Instant::now() + TIMEOUT;
        let client = loop {
            match self.listener.accept() {
                Ok((socket, _)) => break socket,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("no connection to forward: {e}"),
            }
        };
        client.set_nonblocking(false).unwrap();
        let upstream = connect(server);
        upstream.set_read_timeout(None).unwrap();
        let (from_client, from_server) = (Arc::default(), Arc::default());
        pump(client.try_clone().unwrap(), upstream.try_clone().unwrap(), Arc::clone(&from_client));
        pump(upstream.try_clone().unwrap(), client.try_clone().unwrap(), Arc::clone(&from_server));
        Leg { client, upstream, from_client, from_server }
    }
}

/// Copies `from` to `to`, keeping a record of the bytes, until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream, record: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            record.lock().unwrap().extend_from_slice(&buf[..n]);
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

impl Leg {
    /// Drops the connection on both sides, as a network failure would.
    fn cut(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }

    /// The last `id:` the server sent on this leg.
    fn last_id(&self) -> String {
        let text = String::from_utf8_lossy(&self.from_server.lock().unwrap()).into_owned();
        let at = text.rfind("\nid: ").expect("the server sent an id");
        text[at + 5..].split('\n').next().unwrap().to_owned()
    }

    /// The request head the client sent on this leg, once it is whole.
    fn request_head(&self) -> String {
        wait_until("the request head", || self.from_client.lock().unwrap().windows(4).any(|w| w == b"\r\n\r\n"));
        String::from_utf8_lossy(&self.from_client.lock().unwrap()).into_owned()
    }
}

#[test]
fn a_dropped_connection_resumes_with_last_event_id_and_misses_no_change() {
    // The stream is cut; while watch is away a changes and b completes. The next request carries
    // `Last-Event-ID` = the last id of the cut stream, and brings exactly what changed: a's
    // newest state and b's end, not c again (unchanged).
    let server = start_default();
    create_all(&server, &["a", "b", "c"]);
    let proxy = Proxy::new();
    let mut watch = Watch::start(&url_of(proxy.addr()), &["a", "b", "c"]);
    let first = proxy.forward(server.addr);
    assert!(!first.request_head().contains("Last-Event-ID"), "a first connect resumes nothing");
    for id in ["a ", "b ", "c "] {
        watch.line_with(&[id, "pending"]);
    }
    server.tracker.update_task("a", TaskUpdate::running(30.0)).unwrap();
    watch.line_with(&["a ", " 30.0%"]);
    first.cut();
    watch.notice_with("reconnecting");
    server.tracker.update_task("a", TaskUpdate::running(60.0).stage("While away")).unwrap();
    server.tracker.complete_task("b", serde_json::Value::Null).unwrap();

    let second = proxy.forward(server.addr);
    let head = second.request_head();
    assert!(head.contains(&format!("\r\nLast-Event-ID: {}\r\n", first.last_id())), "{head}");
    watch.line_with(&["a ", " 60.0%", "While away"]);
    watch.line_with(&["b ", "completed"]);
    server.tracker.complete_task("a", serde_json::Value::Null).unwrap();
    server.tracker.complete_task("c", serde_json::Value::Null).unwrap();
    let (code, lines) = watch.exit();
    assert_eq!(code, Some(0), "{lines:#?}");
    let c_lines: Vec<&String> = lines.iter().filter(|l| l.starts_with("c ")).collect();
    assert_eq!(c_lines.len(), 2, "c: its snapshot and its end, nothing re-sent: {lines:#?}");
}

#[test]
fn a_429_waits_its_retry_after_before_the_next_attempt() {
    // One connection per client: while the test holds one, watch is refused with 429 and
    // `Retry-After: 5`; it says so, waits those 5 s (more than the 2 s of a plain backoff)
    // and then follows the task to its end.
    let server = start_server(Config { max_connections_per_client: 1, threads: 2, ..Config::default() });
    create_all(&server, &["t"]);
    let held = open_connected(server.addr, "t", &[]);
    let started = Instant::now();
    let mut watch = Watch::start(&url_of(server.addr), &["t"]);
    let notice = watch.notice_with("429");
    assert!(notice.contains("reconnecting in 5.") || notice.contains("reconnecting in 6."), "{notice}");
    drop(held);
    watch.line_with(&["pending"]);
    assert!(started.elapsed() >= Duration::from_secs(5), "retried after {:?}", started.elapsed());
    server.tracker.complete_task("t", serde_json::Value::Null).unwrap();
    assert_eq!(watch.exit().0, Some(0));
}
