//! Text from producers cannot forge events: every `data:` value is one line of JSON, so CR, LF
//! and field-looking text inside a stage, message, result or error arrive intact in one event.

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::support::*;

/// Stage and message pairs that would split or add events if written raw into the stream.
const PAYLOADS: &[(&str, &str)] = &[
    ("a\r\nb", "x\n\ndata: evil"),
    ("\revent: x", "\r\n\r\nevent: x\r\ndata: evil\r\n\r\n"),
    ("id: 999\n\nretry: 1", ": comment\n\ndata: evil\n"),
    ("\n", "\r"),
    ("nul \u{0} and \u{2028}\u{2029}\u{85}", "tab\tfeed\u{c}vt\u{b}"),
    (" leading space", "\n\nevent: x\n\n"),
];

/// A producer call that must succeed, its body checked to be one line; returns the JSON answer.
fn publish(addr: SocketAddr, method: &str, path: &str, body: Value) -> Value {
    assert!(!body.to_string().contains(['\r', '\n']), "JSON escapes keep the request body on one line");
    call(addr, method, path, Some(body))
}

/// Opens a stream read at the byte level, checked to be chunked, and reads through its snapshot.
fn open_raw(addr: SocketAddr, task_id: &str) -> RawStream {
    let raw = RawStream::follow(addr, task_id);
    assert!(raw.chunked, "{:?}", raw.head);
    raw
}

/// Checks that every line of a raw stream body is one of the fields the server writes, that
/// nothing forged appears, and that every `data:` line is a whole JSON value; returns the
/// number of `progress` events.
fn check_lines(body: &[u8]) -> usize {
    let body = std::str::from_utf8(body).expect("the stream is UTF-8");
    let mut progress = 0;
    for line in body.split('\n') {
        assert!(!line.contains('\r'), "no CR inside a line: {line:?}");
        for forged in ["event: x", "data: evil", "retry: 1", "id: 999", ": comment"] {
            assert!(!line.starts_with(forged), "forged line {line:?} in {body:?}");
        }
        if let Some(data) = line.strip_prefix("data: ") {
            serde_json::from_str::<Value>(data).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        } else if line == "event: progress" {
            progress += 1;
        } else {
            let known = line.is_empty()
                || line == "retry: 2000"
                || line == "event: connected"
                || line.strip_prefix("id: ").is_some_and(|id| id.parse::<u64>().is_ok());
            assert!(known, "unexpected line {line:?}");
        }
    }
    progress
}

#[test]
fn line_breaks_in_stage_and_message_arrive_intact_in_one_event() {
    // Shows one progress event per PATCH, whose JSON holds the exact text, and no forged lines.
    let server = start_default();
    let created = publish(server.addr, "POST", "/api/brand-monitor/tasks", json!({"taskId": "inj"}));
    assert_eq!(created["eventId"], 1);
    let (mut stream, _) = follow(server.addr, "inj");
    let mut raw = open_raw(server.addr, "inj");
    raw.wait_for(0, "id: 1\n");

    for (i, (stage, message)) in PAYLOADS.iter().enumerate() {
        let body = json!({"progress": i as f64, "stage": stage, "message": message});
        let answer = publish(server.addr, "PATCH", "/api/brand-monitor/tasks/inj", body);
        assert_eq!((answer["stage"].as_str(), answer["message"].as_str()), (Some(*stage), Some(*message)));
        let id = i as u64 + 2;
        let event = stream.next().expect("one event for the PATCH");
        assert_eq!((event.event.as_str(), event.id.clone()), ("progress", Some(id.to_string())), "{event:?}");
        let task: Value = serde_json::from_str(&event.data).expect("the data is one JSON value");
        assert_eq!(task["stage"].as_str(), Some(*stage));
        assert_eq!(task["message"].as_str(), Some(*message));
        assert_eq!(task["eventId"], id);
    }
    // A plain change right after: the next event is its own, so no PATCH made two events.
    let sentinel_id = PAYLOADS.len() as u64 + 2;
    publish(server.addr, "PATCH", "/api/brand-monitor/tasks/inj", json!({"stage": "sentinel"}));
    let event = stream.next().unwrap();
    assert_eq!(event.id, Some(sentinel_id.to_string()), "{event:?}");
    assert!(event.data.contains("\"sentinel\""));

    raw.wait_for(0, &format!("id: {sentinel_id}\n"));
    raw.wait_for(0, "\"sentinel\"");
    assert_eq!(check_lines(&raw.body), PAYLOADS.len() + 2, "snapshot, one per PATCH, sentinel");
}

#[test]
fn line_breaks_in_a_new_task_a_result_and_an_error_cannot_forge_events() {
    // Shows the same for creation (the snapshot), completion (result) and failure (error).
    let server = start_default();
    let (stage, message) = PAYLOADS[1];
    let body = json!({"taskId": "made", "stage": stage, "message": message});
    publish(server.addr, "POST", "/api/brand-monitor/tasks", body);
    let mut raw = open_raw(server.addr, "made");
    raw.wait_for(0, "id: 1\n");
    let (mut stream, snapshot) = follow(server.addr, "made");
    assert_eq!((snapshot["stage"].as_str(), snapshot["message"].as_str()), (Some(stage), Some(message)));

    let result = json!({"text": "done\n\nevent: x\ndata: evil\r\n", "list": ["\r", "\n\n"]});
    publish(server.addr, "POST", "/api/brand-monitor/tasks/made/complete", json!({"result": result}));
    let event = stream.next().unwrap();
    let task: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(task["result"], result);
    assert_eq!(stream.next(), None, "the terminal snapshot was one event and ended the stream");
    raw.wait_for(0, "\"completed\"");
    assert_eq!(check_lines(&raw.body), 2);

    publish(server.addr, "POST", "/api/brand-monitor/tasks", json!({"taskId": "failing"}));
    let (mut stream, _) = follow(server.addr, "failing");
    let error = "rate limit\r\n\r\nevent: x\ndata: evil";
    publish(server.addr, "POST", "/api/brand-monitor/tasks/failing/fail", json!({"error": error}));
    let event = stream.next().unwrap();
    let task: Value = serde_json::from_str(&event.data).unwrap();
    let shown = task["error"].as_str().expect("an error text");
    assert!(!shown.contains(['\r', '\n']), "errors are sanitized: {shown:?}");
    assert!(shown.starts_with("rate limit") && shown.contains("event: x"), "{shown:?}");
    assert_eq!(stream.next(), None);
}

#[test]
fn line_breaks_in_the_stage_cannot_forge_headers_of_head() {
    // Shows that X-Task-Stage is percent-encoded: a CRLF in the stage adds no header.
    let server = start_default();
    publish(server.addr, "POST", "/api/brand-monitor/tasks", json!({"taskId": "hdr"}));
    let stage = "a\r\nX-Evil: 1\r\n\r\nbody";
    publish(server.addr, "PATCH", "/api/brand-monitor/tasks/hdr", json!({"stage": stage}));
    let text = raw_exchange(
        server.addr,
        b"HEAD /api/brand-monitor/progress/hdr HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(text.contains("\r\nX-Task-Stage: a%0D%0AX-Evil%3A%201%0D%0A%0D%0Abody\r\n"), "{text:?}");
    assert!(!text.to_ascii_lowercase().contains("\r\nx-evil"), "{text:?}");
    assert!(text.ends_with("\r\n\r\n") && !text.contains("\r\n\r\nbody"), "{text:?}");
}
