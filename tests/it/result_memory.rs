//! A completed task's `result` is kept as the JSON text the producer sent (compact, one line, key
//! order and number spelling as sent), is served exactly so by GET, the list and the stream, and
//! the results held are bounded in bytes (`Config::max_result_bytes`): past the bound, creation
//! and complete answer `503 result_space_exhausted` with `Retry-After`, until tasks go.

use std::net::SocketAddr;

use serde_json::Value;
use sse_progress::Config;
use sse_progress::client::Reply;

use crate::support::*;

/// `POST /tasks/{id}/complete` with the body text `body` as sent; the reply, whatever its status.
fn send_complete(addr: SocketAddr, id: &str, body: &str) -> Reply {
    post(addr, &format!("{TASKS}/{id}/complete"), body)
}

/// The text between `"result":` and `,"error":` of one task JSON: the result as sent on the wire.
fn result_text(task_json: &str) -> &str {
    let start = task_json.find(r#""result":"#).expect("a result field") + r#""result":"#.len();
    let end = task_json[start..].find(r#","error":"#).expect("the error field after the result");
    &task_json[start..start + end]
}

/// The `data` of the terminal snapshot a new viewer of a finished task gets.
fn terminal_snapshot(addr: SocketAddr, id: &str) -> String {
    let mut stream = open_connected(addr, id, &[]);
    let snapshot = stream.next().expect("the snapshot");
    assert_eq!(snapshot.event, "progress");
    snapshot.data
}

/// A result whose text a `Value` would change: keys out of order, numbers spelled unusually, a
/// number beyond f64 precision, escapes a serializer would not write, and whitespace everywhere.
const PRETTY: &str = "{\n  \"result\" : {\n    \"zeta\": 1.50,\n    \"alpha\" : [ 1e2, 12345678901234567890123 ,\
                      \"caf\\u00e9 \\/ \\\"q\\\"\\n\" ],\n\t\"empty\": { }\r\n  }\n}\n";
/// [`PRETTY`]'s result, compact: nothing but the whitespace between tokens is gone.
const COMPACT: &str = r#"{"zeta":1.50,"alpha":[1e2,12345678901234567890123,"caf\u00e9 \/ \"q\"\n"],"empty":{}}"#;

#[test]
fn a_result_is_served_as_sent_on_one_line_everywhere() {
    // Shows that a pretty-printed result comes back byte for byte as its compact text from
    // complete, GET, the list and the stream's terminal snapshot, each one line of JSON.
    let server = start_unthrottled_default();
    create(server.addr, "exact");
    let done = send_complete(server.addr, "exact", PRETTY);
    assert_eq!(done.status, 200, "{}", done.text());
    let get = request(server.addr, "GET", &format!("{TASKS}/exact"), &[], None);
    let list = request(server.addr, "GET", TASKS, &[], None);
    let snapshot = terminal_snapshot(server.addr, "exact");
    for (what, text) in [("complete", done.text()), ("GET", get.text()), ("list", list.text()), ("stream", snapshot)] {
        assert_eq!(result_text(&text), COMPACT, "{what}: {text}");
        assert!(!text.contains(['\n', '\r']), "{what} is one line: {text:?}");
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{what} is JSON ({e}): {text}"));
    }
    // The stream's snapshot, read as a viewer reads it, holds the same value.
    let (_, snapshot) = follow(server.addr, "exact");
    assert_eq!(snapshot["result"], serde_json::from_str::<Value>(COMPACT).unwrap());
}

#[test]
fn listing_several_large_results_gives_valid_json_with_every_result() {
    // Shows that GET /tasks over five tasks with results of 600 KB each answers one JSON document
    // in which every result is the exact text that was sent.
    let server = start_unthrottled_default();
    let mut expected = Vec::new();
    for i in 0..5 {
        let id = format!("big-{i}");
        create(server.addr, &id);
        let result = format!(r#"{{"z":"{}","a":{i}.50}}"#, char::from(b'a' + i as u8).to_string().repeat(600_000));
        let done = send_complete(server.addr, &id, &format!(r#"{{"result": {result}}}"#));
        assert_eq!(done.status, 200, "{}", done.text());
        expected.push((id, result));
    }
    let reply = request(server.addr, "GET", TASKS, &[], None);
    assert_eq!(reply.status, 200);
    let list: Value = serde_json::from_slice(&reply.body).expect("the list is JSON");
    let tasks = list["tasks"].as_array().expect("a tasks array");
    assert_eq!(tasks.len(), 5);
    let text = reply.text();
    for (id, result) in &expected {
        let task = tasks.iter().find(|t| t["taskId"] == id.as_str()).unwrap_or_else(|| panic!("{id} is listed"));
        assert_eq!(task["result"], serde_json::from_str::<Value>(result).unwrap(), "{id}");
        assert!(text.contains(&format!(r#""result":{result},"#)), "{id}'s result is listed as sent");
    }
}

/// Asserts a `503 result_space_exhausted` with a `Retry-After` of whole seconds.
fn assert_space_exhausted(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 503, "{what}: {}", reply.text());
    assert_error(reply, 503, "result_space_exhausted");
    assert_retry_after(reply);
}

#[test]
fn the_result_bytes_bound_answers_503_with_retry_after_and_frees_on_delete() {
    // Shows that once the results held reach `max_result_bytes`, creation and a complete that
    // would pass it answer 503 with Retry-After and change nothing, and that deleting the task
    // that holds the bytes makes room again.
    let server = start_unthrottled(Config { max_result_bytes: 1000, threads: 2, ..Config::default() });
    for id in ["a", "b"] {
        create(server.addr, id);
    }
    let filler = format!("\"{}\"", "x".repeat(998));
    let done = send_complete(server.addr, "a", &format!("{{\"result\": {filler}}}"));
    assert_eq!(done.status, 200, "a result of exactly the bound fits: {}", done.text());

    assert_space_exhausted(&post(server.addr, TASKS, r#"{"taskId":"c"}"#), "create at the bound");
    assert_space_exhausted(&send_complete(server.addr, "b", r#"{"result": 1}"#), "complete past the bound");
    assert_eq!(request(server.addr, "GET", &format!("{TASKS}/c"), &[], None).status, 404, "c was not made");
    let b: Value = serde_json::from_slice(&request(server.addr, "GET", &format!("{TASKS}/b"), &[], None).body).unwrap();
    assert_eq!((b["status"].as_str(), b["eventId"].as_u64()), (Some("pending"), Some(1)), "b is unchanged: {b}");

    assert_eq!(request(server.addr, "DELETE", &format!("{TASKS}/a"), &[], None).status, 204);
    create(server.addr, "c");
    let done = send_complete(server.addr, "b", &format!("{{\"result\": {filler}}}"));
    assert_eq!(done.status, 200, "the deleted task's bytes are free again: {}", done.text());
    assert_space_exhausted(&send_complete(server.addr, "c", r#"{"result": null}"#), "full again");
}

/// The `sse_progress_result_bytes` gauge of `/metrics`.
fn result_bytes_metric(addr: SocketAddr) -> u64 {
    let reply = request(addr, "GET", "/metrics", &[], None);
    assert_eq!(reply.status, 200);
    let text = reply.text();
    let line = text.lines().find_map(|l| l.strip_prefix("sse_progress_result_bytes "));
    line.unwrap_or_else(|| panic!("a result_bytes gauge: {text}")).parse().expect("a whole number")
}

#[test]
fn expired_results_free_their_bytes() {
    // Shows that a finished task removed after its retention (zero here) gives its result's bytes
    // back (the `result_bytes` gauge goes to 0), so another task's result of the same size fits.
    let server = start_unthrottled(Config {
        max_result_bytes: 100,
        retention: std::time::Duration::ZERO,
        threads: 2,
        ..Config::default()
    });
    let big = format!("{{\"result\": \"{}\"}}", "y".repeat(98));
    for id in ["first", "second"] {
        create(server.addr, id);
    }
    assert_eq!(send_complete(server.addr, "first", &big).status, 200);
    // The first task goes at the next change or the next sweep; wait for it with a deadline.
    wait_until("the finished task to go", || {
        request(server.addr, "GET", &format!("{TASKS}/first"), &[], None).status == 404
    });
    assert_eq!(result_bytes_metric(server.addr), 0, "the expired result is no longer counted");
    let done = send_complete(server.addr, "second", &big);
    assert_eq!(done.status, 200, "{}", done.text());
}

#[test]
fn head_measures_task_answers_without_a_body() {
    // Shows HEAD on the producer's read routes gives the length GET would send, and no body:
    // the answer is measured piece by piece, never built.
    let server = start_unthrottled_default();
    for id in ["a", "b"] {
        create(server.addr, id);
    }
    let body = format!(r#"{{"result": {{"blob": "{}"}}}}"#, "x".repeat(300_000));
    assert_eq!(send_complete(server.addr, "a", &body).status, 200);
    for path in [format!("{TASKS}/a"), format!("{TASKS}/b"), TASKS.to_owned()] {
        let get = request(server.addr, "GET", &path, &[], None);
        let head = request(server.addr, "HEAD", &path, &[], None);
        assert_eq!((get.status, head.status), (200, 200), "{path}");
        assert!(head.body.is_empty(), "{path}");
        let length: usize = head.header("content-length").expect("a length").parse().unwrap();
        assert_eq!(length, get.body.len(), "{path}");
        let _: Value = serde_json::from_slice(&get.body).expect("the GET answer is JSON");
    }
}
