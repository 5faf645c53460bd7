//! The event stream of API.md ("The event stream"): the response head, the opening events, one
//! event per change, heartbeats, how a stream ends (terminal snapshot, deletion, HTTP/1.0), and
//! a request pipelined behind a stream.

use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};
use sse_progress::Config;
use sse_progress::client;
use sse_progress::internals::now_ms;

use crate::support::*;

/// The events of a body, each the text before its blank line.
fn blocks(body: &str) -> Vec<&str> {
    let mut blocks: Vec<&str> = body.split("\n\n").collect();
    assert_eq!(blocks.pop(), Some(""), "the body ends with a whole event: {body:?}");
    blocks
}

/// The (field, value) lines of one event block.
fn fields(block: &str) -> Vec<(&str, &str)> {
    block
        .lines()
        .map(|line| line.split_once(": ").unwrap_or_else(|| panic!("a `name: value` line: {line:?}")))
        .collect()
}

/// Asserts that `block` is exactly `event: progress`, `id: <id>`, one `data:` line of `task`.
fn assert_progress(block: &str, id: u64, task: &Value) {
    let lines = fields(block);
    assert_eq!(lines.len(), 3, "{block:?}");
    assert_eq!(lines[0], ("event", "progress"));
    assert_eq!(lines[1], ("id", id.to_string().as_str()));
    assert_eq!(lines[2].0, "data");
    let data: Value = serde_json::from_str(lines[2].1).expect("the data line is JSON");
    assert_eq!(&data, task, "{block:?}");
}

#[test]
fn the_head_is_exact_and_the_body_opens_with_retry_connected_and_the_snapshot() {
    // Shows the 200 head of API.md byte for byte, then `retry`, `connected` and the snapshot.
    let server = start_default();
    create(server.addr, "head");
    update(server.addr, "head", json!({"progress": 25, "message": "quarter"}));
    let before = now_ms();
    let mut raw = RawStream::open(server.addr, &stream_request("head", &[]));
    let end = raw.wait_for(0, "event: progress\n");
    raw.wait_for(end, "\n\n");
    let after = now_ms();

    assert!(raw.head.starts_with("HTTP/1.1 200 OK\r\n"), "{:?}", raw.head);
    for line in [
        "Content-Type: text/event-stream",
        "Cache-Control: no-cache, no-transform",
        "Connection: keep-alive",
        "X-Accel-Buffering: no",
        "Transfer-Encoding: chunked",
    ] {
        assert!(raw.head.contains(&format!("\r\n{line}\r\n")), "no {line:?} in {:?}", raw.head);
    }
    assert!(!raw.head.to_ascii_lowercase().contains("content-length"), "{:?}", raw.head);

    let body = raw.text();
    assert!(body.starts_with("retry: 2000\n"), "{body:?}");
    let events = blocks(&body);
    assert_eq!(events[0], "retry: 2000");
    let connected = fields(events[1]);
    assert_eq!(connected.len(), 2, "{connected:?}");
    assert_eq!(connected[0], ("event", "connected"));
    assert_eq!(connected[1].0, "data");
    let data: Value = serde_json::from_str(connected[1].1).unwrap();
    assert_eq!(data["taskId"], "head");
    assert!(data["connectionId"].as_str().is_some_and(|id| !id.is_empty()), "{data}");
    let server_time = data["serverTime"].as_u64().expect("serverTime in ms");
    assert!((before - 1000..=after + 1000).contains(&server_time), "{server_time} vs {before}..{after}");

    let task = current(server.addr, "head");
    assert_eq!(task["eventId"], 2);
    assert_progress(events[2], 2, &task);
    assert_eq!(events.len(), 3, "nothing else yet: {body:?}");
}

#[test]
fn every_change_arrives_as_one_progress_event_with_consecutive_ids() {
    // Shows one `progress` event per change, in order, each carrying the changed task.
    let server = start_default();
    create(server.addr, "changes");
    let (mut stream, snapshot) = follow(server.addr, "changes");
    assert_eq!(snapshot["eventId"], 1);
    let mut sent = Vec::new();
    for (i, progress) in [10.0, 20.5, 30.0, 55.0, 70.0].into_iter().enumerate() {
        let stage = format!("step {i}");
        sent.push(update(server.addr, "changes", json!({"progress": progress, "stage": stage})));
    }
    for (i, task) in sent.iter().enumerate() {
        let event = stream.next().expect("a progress event");
        assert_eq!(event.event, "progress");
        let id = (i + 2).to_string();
        assert_eq!(event.id.as_deref(), Some(id.as_str()));
        let data: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(&data, task, "the event carries the task as the PATCH answered it");
        assert_eq!(data["eventId"], i as u64 + 2);
    }
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
}

#[test]
fn a_silent_stream_gets_heartbeats_without_an_id() {
    // Shows `event: heartbeat` with {"time": ms} and no `id:` line, once per interval of silence.
    let config = Config {
        heartbeat: Duration::from_millis(300),
        timer_tick: Duration::from_millis(20),
        threads: 2,
        ..Config::default()
    };
    let server = start_server(config);
    create(server.addr, "quiet");
    let mut raw = RawStream::open(server.addr, &stream_request("quiet", &[]));
    let mut at = raw.wait_for(0, "event: progress\n");
    at = raw.wait_for(at, "\n\n");
    let mut last_time = 0;
    for _ in 0..2 {
        let before = now_ms();
        let wire_from = raw.wire.len();
        let end = raw.wait_for(at, "event: heartbeat\n");
        let end = raw.wait_for(end, "\n\n");
        let after = now_ms();
        let block = std::str::from_utf8(&raw.body[at..end]).unwrap().to_owned();
        assert!(!block.contains("id:"), "a heartbeat carries no id: {block:?}");
        let lines = fields(block.trim_end());
        assert_eq!(lines.len(), 2, "{block:?}");
        assert_eq!(lines[0], ("event", "heartbeat"));
        assert_eq!(lines[1].0, "data");
        let data: Value = serde_json::from_str(lines[1].1).unwrap();
        let time = data["time"].as_u64().expect("time in ms");
        assert_eq!(data.as_object().unwrap().len(), 1, "{data}");
        assert!((before - 1000..=after + 1000).contains(&time), "{time} vs {before}..{after}");
        assert!(time >= last_time);
        last_time = time;
        // On the wire the heartbeat is one chunk of its own.
        let chunk = format!("{:x}\r\n{block}\r\n", block.len());
        assert_eq!(String::from_utf8_lossy(&raw.wire[wire_from..]), chunk);
        at = end;
    }
}

#[test]
fn the_terminal_snapshot_ends_the_chunked_body_and_the_connection_goes_on() {
    // Shows the chunked terminator after the completed snapshot, then keep-alive requests.
    let server = start_default();
    create(server.addr, "done");
    let mut raw = RawStream::open(server.addr, &stream_request("done", &[]));
    let at = raw.wait_for(0, "id: 1\n");
    raw.wait_for(at, "\n\n");
    let done = complete(server.addr, "done", json!({"ok": true}));
    assert_eq!(done["status"], "completed");
    raw.read_to_end();
    assert!(raw.wire.ends_with(b"\n\n\r\n0\r\n\r\n"), "{:?}", String::from_utf8_lossy(&raw.wire));
    let body = raw.text();
    let events = blocks(&body);
    assert_progress(events.last().unwrap(), 2, &done);

    // The same connection serves another request, with nothing left over from the stream.
    let mut reader = raw.reader;
    let get = "GET /api/brand-monitor/tasks/done HTTP/1.1\r\nHost: localhost\r\n\r\n";
    reader.get_mut().write_all(get.as_bytes()).unwrap();
    let reply = client::read_reply(&mut reader, false).expect("a reply on the kept-alive connection");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let task: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(task, done);

    // And another stream, which is the finished task's snapshot and its end again.
    reader.get_mut().write_all(stream_request("done", &[]).as_bytes()).unwrap();
    let mut again = RawStream::on(reader);
    assert!(again.head.starts_with("HTTP/1.1 200 OK\r\n"), "{:?}", again.head);
    again.read_to_end();
    let body = again.text();
    let events = blocks(&body);
    assert_eq!(events.len(), 3, "{body:?}");
    assert_progress(events[2], 2, &done);
    assert!(again.wire.ends_with(b"0\r\n\r\n"));
}

#[test]
fn a_request_pipelined_during_a_stream_neither_ends_it_nor_is_lost() {
    // Shows that a client sending its next request while its stream runs (HTTP/1.1 pipelining)
    // keeps the stream: it gets the changes and the terminal event, then the answer to that
    // request on the same connection. Before, bytes from the client ended the stream.
    let server = start_default();
    create(server.addr, "piped");
    let mut raw = RawStream::open(server.addr, &stream_request("piped", &[]));
    let at = raw.wait_for(0, "id: 1\n");
    let at = raw.wait_for(at, "\n\n");
    let next = "GET /api/brand-monitor/tasks/piped HTTP/1.1\r\nHost: localhost\r\n\r\n";
    raw.reader.get_mut().write_all(next.as_bytes()).unwrap();
    let changed = update(server.addr, "piped", json!({"progress": 50, "message": "half"}));
    let end = raw.wait_for(at, "id: 2\n");
    raw.wait_for(end, "\n\n");
    let done = complete(server.addr, "piped", json!(1));
    raw.read_to_end();
    let body = raw.text();
    let events = blocks(&body);
    assert_eq!(events.len(), 5, "retry, connected, snapshot, change, terminal: {body:?}");
    assert_progress(events[3], 2, &changed);
    assert_progress(events[4], 3, &done);

    let reply = client::read_reply(&mut raw.reader, false).expect("the answer to the pipelined request");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(serde_json::from_slice::<Value>(&reply.body).unwrap(), done);
}

#[test]
fn deleting_a_task_sends_task_deleted_and_ends_the_stream() {
    // Shows `event: error` {"code":"task_deleted"} without an id, then a clean end, then 404.
    let server = start_default();
    create(server.addr, "gone");
    let (mut stream, _) = follow(server.addr, "gone");
    let reply = request(server.addr, "DELETE", "/api/brand-monitor/tasks/gone", &[], None);
    assert_eq!(reply.status, 204);
    let event = stream.next().expect("an error event");
    assert_eq!(event.event, "error");
    assert_eq!(event.id, None, "stream-level errors carry no id");
    let data: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(data["code"], "task_deleted");
    assert!(data["message"].as_str().is_some_and(|m| !m.is_empty()), "{data}");
    assert_eq!(stream.next(), None, "the stream ends cleanly after the error");
    let again = open_stream(server.addr, "gone", &[]);
    assert_eq!(again.status, 404, "the deleted task is gone");
}

#[test]
fn unknown_tasks_are_404_and_bad_ids_400_as_json() {
    // Shows the JSON errors before a stream starts: 404 task_not_found, 400 invalid_task_id.
    let server = start_default();
    let cases = [
        ("/api/brand-monitor/progress/nobody", 404, "task_not_found"),
        ("/api/brand-monitor/progress/a%2Fb", 400, "invalid_task_id"),
        ("/api/brand-monitor/progress/.hidden", 400, "invalid_task_id"),
    ];
    for (path, status, code) in cases {
        let reply = request(server.addr, "GET", path, &[("Accept", "text/event-stream")], None);
        assert_eq!(reply.status, status, "{path}: {}", reply.text());
        assert_eq!(reply.header("content-type"), Some("application/json"), "{path}");
        assert_eq!(error_code(&reply), code, "{path}");
        let json: Value = serde_json::from_slice(&reply.body).unwrap();
        assert!(json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{path}");
    }
}

#[test]
fn an_http_1_0_stream_is_not_chunked_and_closes_at_the_end() {
    // Shows a close-delimited body of bare events for HTTP/1.0, ended by closing the socket.
    let server = start_default();
    create(server.addr, "old");
    let mut raw =
        RawStream::open(server.addr, "GET /api/brand-monitor/progress/old HTTP/1.0\r\nHost: localhost\r\n\r\n");
    assert!(raw.head.starts_with("HTTP/1.1 200 OK\r\n") || raw.head.starts_with("HTTP/1.0 200 OK\r\n"));
    assert!(raw.head.contains("\r\nContent-Type: text/event-stream\r\n"), "{:?}", raw.head);
    assert!(!raw.chunked && !raw.head.to_ascii_lowercase().contains("transfer-encoding"), "{:?}", raw.head);
    assert!(!raw.head.to_ascii_lowercase().contains("content-length"), "{:?}", raw.head);
    let at = raw.wait_for(0, "id: 1\n");
    raw.wait_for(at, "\n\n");
    update(server.addr, "old", json!({"progress": 60}));
    let done = call(server.addr, "POST", "/api/brand-monitor/tasks/old/complete", Some(json!({})));
    raw.read_to_end();
    let body = raw.text();
    assert!(body.starts_with("retry: 2000\n\nevent: connected\n"), "{body:?}");
    assert!(!body.contains('\r'), "no chunk framing: {body:?}");
    let events = blocks(&body);
    assert_eq!(events.len(), 5, "{body:?}");
    assert!(events[3].starts_with("event: progress\nid: 2\ndata: "), "{:?}", events[3]);
    assert_progress(events[4], 3, &done);
}

#[test]
fn a_failed_task_ends_the_stream_with_its_failed_snapshot() {
    // Shows that fail is terminal too: the failed snapshot (progress kept), then the end.
    let server = start_default();
    create(server.addr, "boom");
    let (mut stream, _) = follow(server.addr, "boom");
    update(server.addr, "boom", json!({"progress": 42}));
    let failed =
        call(server.addr, "POST", "/api/brand-monitor/tasks/boom/fail", Some(json!({"error": "API rate limit"})));
    let event = stream.next().unwrap();
    assert_eq!(event.id.as_deref(), Some("2"));
    let event = stream.next().unwrap();
    assert_eq!((event.event.as_str(), event.id.as_deref()), ("progress", Some("3")));
    let task: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(task, failed);
    assert_eq!(task["status"], "failed");
    assert_eq!(task["progress"], 42.0);
    assert_eq!(task["error"], "API rate limit");
    assert_eq!(stream.next(), None, "the stream ends after the failed snapshot");
}

#[test]
fn a_stream_of_a_finished_task_is_its_terminal_snapshot_and_the_end() {
    // Shows that opening a stream on a completed task (no Last-Event-ID) gives the snapshot and ends.
    let server = start_default();
    create(server.addr, "past");
    let done = complete(server.addr, "past", json!(7));
    let (mut stream, snapshot) = follow(server.addr, "past");
    assert_eq!(snapshot, done);
    assert_eq!(stream.next(), None);
}
