//! The HTTP API as a test client uses it: one request per connection, the producer calls a test
//! needs to succeed, health, and the error answer every refusal shares (API.md, "Errors").

use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sse_progress::client::{self, Reply};

use super::{HEALTH, TASKS, TIMEOUT, connect};

/// One request on a new connection (`Connection: close`), the whole reply read back. A body is
/// sent as `application/json` unless `headers` name another type.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
    let typed = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    if body.is_none() || typed {
        return request_as_given(addr, method, path, headers, body);
    }
    let headers = [headers, &[("Content-Type", "application/json")]].concat();
    request_as_given(addr, method, path, &headers, body)
}

/// [`request`] with a body and its `Content-Length` but no `Content-Type`.
pub fn request_untyped(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    request_as_given(addr, method, path, headers, Some(body))
}

/// One request with exactly `headers` (and the `Content-Length` of a body) on a new connection.
fn request_as_given(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body.unwrap_or(""));
    let mut stream = connect(addr);
    stream.write_all(text.as_bytes()).unwrap();
    client::read_reply(&mut BufReader::new(stream), method == "HEAD").expect("a reply")
}

/// `POST path` with a JSON `body`; the reply, whatever its status.
pub fn post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    request(addr, "POST", path, &[], Some(body))
}

/// A producer call that must succeed (2xx); returns the JSON answer (Null for 204).
pub fn call(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string());
    let reply = request(addr, method, path, &[], body.as_deref());
    assert!((200..300).contains(&reply.status), "{method} {path}: {} {}", reply.status, reply.text());
    if reply.body.is_empty() { Value::Null } else { serde_json::from_slice(&reply.body).unwrap() }
}

/// A JSON answer: asserts `status` and a JSON content type; returns the body.
pub fn json_answer(reply: &Reply, status: u16) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text());
    let content_type = reply.header("content-type").unwrap_or("");
    assert!(content_type.starts_with("application/json"), "Content-Type {content_type:?}");
    serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("a JSON body ({e}): {:?}", reply.text()))
}

/// Creates task `id` over HTTP (201); returns its JSON.
pub fn create(addr: SocketAddr, id: &str) -> Value {
    json_answer(&post(addr, TASKS, &json!({ "taskId": id }).to_string()), 201)
}

/// Changes task `id` with `PATCH` (200); returns its JSON.
pub fn update(addr: SocketAddr, id: &str, body: Value) -> Value {
    json_answer(&request(addr, "PATCH", &format!("{TASKS}/{id}"), &[], Some(&body.to_string())), 200)
}

/// Completes task `id` with `result` (200); returns its JSON.
pub fn complete(addr: SocketAddr, id: &str, result: Value) -> Value {
    let body = json!({ "result": result }).to_string();
    json_answer(&post(addr, &format!("{TASKS}/{id}/complete"), &body), 200)
}

/// The current JSON of task `id` (GET one, 200).
pub fn current(addr: SocketAddr, id: &str) -> Value {
    json_answer(&request(addr, "GET", &format!("{TASKS}/{id}"), &[], None), 200)
}

/// `GET /health` (200, JSON); the figures.
pub fn health(addr: SocketAddr) -> Value {
    json_answer(&request(addr, "GET", HEALTH, &[], None), 200)
}

/// Polls health until `condition` holds (a short pause between polls), failing after TIMEOUT;
/// returns the figures that met it.
pub fn wait_for_health(addr: SocketAddr, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let h = health(addr);
        if condition(&h) {
            return h;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {h}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `{"error": {"code"}}` of an error reply.
pub fn error_code(reply: &Reply) -> String {
    let json: Value = serde_json::from_slice(&reply.body).expect("error bodies are JSON");
    json["error"]["code"].as_str().expect("error.code").to_owned()
}

/// Asserts the error answer of API.md with `status`: a JSON content type and a body that is
/// `{"error": {"code", "message"}}` and nothing else, the code snake_case, the message not empty.
/// Returns the code and the message.
pub fn assert_error_shape(reply: &Reply, status: u16) -> (String, String) {
    let body = json_answer(reply, status);
    let outer: Vec<&str> = body.as_object().expect("an object").keys().map(String::as_str).collect();
    assert_eq!(outer, ["error"], "{body}");
    let inner: BTreeSet<&str> =
        body["error"].as_object().expect("an error object").keys().map(String::as_str).collect();
    assert_eq!(inner, BTreeSet::from(["code", "message"]), "{body}");
    let code = body["error"]["code"].as_str().expect("a string code");
    assert!(!code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "snake_case code: {code:?}");
    let message = body["error"]["message"].as_str().expect("a string message");
    assert!(!message.is_empty(), "{body}");
    (code.to_owned(), message.to_owned())
}

/// [`assert_error_shape`] with the code `code`; returns the message.
pub fn assert_error(reply: &Reply, status: u16, code: &str) -> String {
    let (got, message) = assert_error_shape(reply, status);
    assert_eq!(got, code, "{}", reply.text());
    message
}

/// Asserts a `Retry-After` of whole seconds, at least 1; returns it.
pub fn assert_retry_after(reply: &Reply) -> u64 {
    let retry = reply.header("retry-after").unwrap_or_else(|| panic!("a Retry-After header: {:?}", reply.headers));
    let seconds: u32 = retry.parse().unwrap_or_else(|_| panic!("Retry-After is whole seconds: {retry:?}"));
    assert!(seconds >= 1, "Retry-After {seconds}");
    u64::from(seconds)
}
