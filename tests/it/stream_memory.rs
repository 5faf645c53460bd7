//! Memory that must not grow with clients times result size (issue 8): viewers that stop reading
//! a task whose terminal event is 1 MiB share the one encoded frame of it; none holds a copy of
//! what it could not send, whether the event came while it watched or was its opening snapshot;
//! and clients that ask for the task or the list and do not read the answer share the stored
//! result. Measured as the resident memory of the server binary in a process of its own.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::{Value, json};

use crate::support::*;

/// Viewers that never read, per phase.
const VIEWERS: usize = 48;
/// The result's size: its frame is a little more.
const RESULT: usize = 1000 * 1024;

/// A request (`head`) on a socket with a small receive buffer, whose answer is never read.
fn stuck_reader(addr: SocketAddr, head: &str) -> TcpStream {
    let mut stream = connect_small_window(addr);
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

/// A result of about [`RESULT`] bytes.
fn large_result() -> Value {
    json!({ "blob": "m".repeat(RESULT) })
}

#[test]
fn stuck_viewers_of_a_large_result_share_one_copy_of_it() {
    // Shows that 48 viewers that stop reading a 1 MiB terminal event add far less than 48 MiB to
    // the server's resident memory, both when the event is published while they watch and when
    // it is the snapshot they open with. Before, each held a copy of its unsent rest (~48 MiB in
    // all for either phase).
    let binary = Binary::serve(&["--connect-rate-per-client", "0"]);
    let (addr, pid) = (binary.addr, binary.pid());
    let limit = (VIEWERS as u64 / 2) << 20;

    // The event comes while they watch.
    create(addr, "watched");
    let watching: Vec<TcpStream> = (0..VIEWERS).map(|_| stuck_reader(addr, &stream_request("watched", &[]))).collect();
    wait_for_health(addr, "every viewer to be streaming", |h| h["activeConnections"] == VIEWERS);
    let before = rss(pid);
    complete(addr, "watched", large_result());
    // A viewer whose socket holds more than its opening has had the event written, as far as
    // its socket takes it: the server holds the rest.
    wait_until("the event to reach every viewer's socket", || watching.iter().all(|v| has_unread(v, 8 * 1024)));
    let grown = rss(pid).saturating_sub(before);
    eprintln!("{VIEWERS} stuck viewers of a published 1 MiB event: +{} KiB", grown >> 10);
    assert!(grown < limit, "the server grew by {} MiB", grown >> 20);

    // The event is the snapshot they open with.
    create(addr, "finished");
    complete(addr, "finished", large_result());
    let before = rss(pid);
    let opening: Vec<TcpStream> = (0..VIEWERS).map(|_| stuck_reader(addr, &stream_request("finished", &[]))).collect();
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
    let binary = Binary::serve(&["--connect-rate-per-client", "0"]);
    let (addr, pid) = (binary.addr, binary.pid());
    create(addr, "big");
    complete(addr, "big", large_result());
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
