//! Resuming a stream with `Last-Event-ID` (API.md, "The event stream", items 2 and 6): the
//! snapshot is skipped only when nothing was missed, and a finished task answers 204.

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::support::*;

/// Opens a stream with `Last-Event-ID: last` and reads past `connected`.
fn resume(addr: SocketAddr, task_id: &str, last: &str) -> Stream {
    open_connected(addr, task_id, &[("Last-Event-ID", last)])
}

/// Reads the next event and checks it is `progress` with `id`; returns its task.
fn expect_progress(stream: &mut Stream, id: u64) -> Value {
    let event = stream.next().expect("a progress event");
    assert_eq!(event.event, "progress", "{event:?}");
    assert_eq!(event.id, Some(id.to_string()), "expected id {id}: {event:?}");
    let task: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(task["eventId"], id);
    task
}

#[test]
fn a_current_last_event_id_skips_the_snapshot() {
    // Shows that Last-Event-ID equal to the task's eventId leads straight to the next change.
    let server = start_default();
    create(server.addr, "current");
    update(server.addr, "current", json!({"progress": 10}));
    let mut stream = resume(server.addr, "current", "2");
    let sent = update(server.addr, "current", json!({"progress": 20, "stage": "next"}));
    let task = expect_progress(&mut stream, 3);
    assert_eq!(task, sent, "the first event after `connected` is the next change, not snapshot 2");
}

#[test]
fn an_older_last_event_id_gets_the_snapshot() {
    // Shows that a client behind the task gets the current snapshot first.
    let server = start_default();
    create(server.addr, "older");
    update(server.addr, "older", json!({"progress": 10}));
    let current = update(server.addr, "older", json!({"progress": 20}));
    let mut stream = resume(server.addr, "older", "1");
    assert_eq!(expect_progress(&mut stream, 3), current);
    let next = update(server.addr, "older", json!({"progress": 30}));
    assert_eq!(expect_progress(&mut stream, 4), next);
}

#[test]
fn a_last_event_id_that_is_not_the_current_one_gets_the_snapshot() {
    // Shows that garbage, negative, future and huge values never skip the snapshot.
    let server = start_default();
    for (i, last) in
        ["abc", "2x", "-2", "0x2", "2.0", "99", "0", "99999999999999999999999999", "\u{0662}"].into_iter().enumerate()
    {
        snapshot_first(server.addr, &format!("garbage-{i}"), last);
    }
}

/// With the task at event 2, a stream with `Last-Event-ID: last` gets snapshot 2, then change 3.
fn snapshot_first(addr: SocketAddr, task_id: &str, last: &str) {
    create(addr, task_id);
    let current = update(addr, task_id, json!({"progress": 10}));
    let mut stream = resume(addr, task_id, last);
    // A change after the open makes a skipped snapshot show as id 3 instead of a timeout.
    let next = update(addr, task_id, json!({"progress": 20}));
    assert_eq!(expect_progress(&mut stream, 2), current, "Last-Event-ID {last:?} must not skip the snapshot");
    assert_eq!(expect_progress(&mut stream, 3), next);
}

#[test]
fn a_last_event_id_spelled_unlike_any_id_sent_gets_the_snapshot() {
    // Shows that only the id as the server wrote it skips the snapshot: `+2` and `02` were never sent.
    let server = start_default();
    for (i, last) in ["+2", "02"].into_iter().enumerate() {
        snapshot_first(server.addr, &format!("spelling-{i}"), last);
    }
}

#[test]
fn the_terminal_last_event_id_of_a_finished_task_gets_204() {
    // Shows 204 No Content without a body or stream headers, so EventSource stops reconnecting.
    let server = start_default();
    create(server.addr, "over");
    update(server.addr, "over", json!({"progress": 50}));
    let done = complete(server.addr, "over", json!("ok"));
    assert_eq!(done["eventId"], 3);
    let text = raw_exchange(
        server.addr,
        b"GET /api/brand-monitor/progress/over HTTP/1.1\r\nHost: localhost\r\nLast-Event-ID: 3\r\nConnection: close\r\n\r\n",
    );
    assert!(text.starts_with("HTTP/1.1 204 No Content\r\n"), "{text:?}");
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole head");
    assert_eq!(body, "", "a 204 has no body");
    let head = head.to_ascii_lowercase();
    assert!(!head.contains("text/event-stream"), "{head:?}");
    assert!(!head.contains("transfer-encoding"), "{head:?}");

    // An older id of the finished task still gets the terminal snapshot, and the end.
    let mut stream = resume(server.addr, "over", "2");
    assert_eq!(expect_progress(&mut stream, 3), done);
    assert_eq!(stream.next(), None);
}

#[test]
fn a_204_leaves_a_kept_alive_connection_usable() {
    // Shows that the 204 is framed so the same connection can carry the next request.
    let server = start_default();
    create(server.addr, "framed");
    complete(server.addr, "framed", json!("ok"));
    let mut socket = connect(server.addr);
    let two = "GET /api/brand-monitor/progress/framed HTTP/1.1\r\nHost: localhost\r\nLast-Event-ID: 2\r\n\r\n\
               GET /api/brand-monitor/tasks/framed HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    std::io::Write::write_all(&mut socket, two.as_bytes()).unwrap();
    let mut reader = std::io::BufReader::new(socket);
    let first = sse_progress::client::read_reply(&mut reader, false).expect("the 204");
    assert_eq!(first.status, 204);
    let second = sse_progress::client::read_reply(&mut reader, false).expect("the task after the 204");
    assert_eq!(second.status, 200, "{}", second.text());
    let task: Value = serde_json::from_slice(&second.body).unwrap();
    assert_eq!(task["status"], "completed");
}

#[test]
fn a_viewer_that_reconnects_mid_task_gets_what_it_missed_as_one_snapshot() {
    // Shows the reconnect of a browser: the missed changes arrive as the current state, then live.
    let server = start_default();
    create(server.addr, "mid");
    let (mut stream, _) = follow(server.addr, "mid");
    update(server.addr, "mid", json!({"progress": 10, "stage": "one"}));
    update(server.addr, "mid", json!({"progress": 20, "stage": "two"}));
    expect_progress(&mut stream, 2);
    let seen = stream.next().expect("event 3");
    let last_id = seen.id.expect("progress events carry an id");
    assert_eq!(last_id, "3");
    drop(stream);

    for (progress, stage) in [(30, "three"), (40, "four"), (50, "five")] {
        update(server.addr, "mid", json!({"progress": progress, "stage": stage, "message": stage}));
    }
    let current = call(server.addr, "GET", "/api/brand-monitor/tasks/mid", None);
    let mut stream = resume(server.addr, "mid", &last_id);
    let snapshot = expect_progress(&mut stream, 6);
    assert_eq!(snapshot, current);
    assert_eq!((snapshot["stage"].as_str(), snapshot["progress"].as_f64()), (Some("five"), Some(50.0)));

    let next = update(server.addr, "mid", json!({"progress": 60}));
    assert_eq!(expect_progress(&mut stream, 7), next, "then the stream is live again");
    let done = complete(server.addr, "mid", json!("ok"));
    assert_eq!(expect_progress(&mut stream, 8), done);
    assert_eq!(stream.next(), None);
}
