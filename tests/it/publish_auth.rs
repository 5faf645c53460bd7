//! A server with a publish token: every producer call needs `Authorization: Bearer <token>`
//! (401 JSON with `WWW-Authenticate` otherwise, and nothing changes), while viewers (the stream,
//! HEAD, health) need no token.

use std::io::{BufReader, Write};

use serde_json::Value;
use sse_progress::Config;
use sse_progress::client::{self, Reply};

use crate::support::*;

const TOKEN: &str = "s3cret";
const RIGHT: (&str, &str) = ("Authorization", "Bearer s3cret");

/// An unthrottled server whose producer calls need `TOKEN`.
fn token_server() -> TestServer {
    start_unthrottled(Config { publish_token: Some(TOKEN.into()), threads: 2, ..Config::default() })
}

/// Every producer call of API.md: (method, path, body). Task `t` exists and is unfinished.
fn producer_calls() -> Vec<(&'static str, String, Option<&'static str>)> {
    vec![
        ("POST", TASKS.into(), Some(r#"{"taskId":"new"}"#)),
        ("POST", TASKS.into(), Some("{}")),
        ("GET", TASKS.into(), None),
        ("GET", format!("{TASKS}/t"), None),
        ("PATCH", format!("{TASKS}/t"), Some(r#"{"progress":50}"#)),
        ("POST", format!("{TASKS}/t/complete"), Some(r#"{"result":1}"#)),
        ("POST", format!("{TASKS}/t/fail"), Some(r#"{"error":"x"}"#)),
        ("DELETE", format!("{TASKS}/t"), None),
    ]
}

/// Asserts a 401 with the JSON error answer and a Bearer challenge.
fn assert_unauthorized(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", reply.text());
    assert_error_shape(reply, 401);
    assert!(!reply.text().contains(TOKEN), "{what}: the token is never echoed");
    let challenge = reply.header("www-authenticate").unwrap_or_else(|| panic!("{what}: WWW-Authenticate"));
    assert!(challenge.starts_with("Bearer"), "{what}: {challenge:?}");
}

/// The state of task `t` as the tracker holds it: (eventId, status).
fn state_of_t(server: &TestServer) -> (u64, &'static str) {
    let task = server.tracker.get_task("t").expect("task t is still there");
    (task.event_id, task.status.as_str())
}

#[test]
fn producer_calls_without_authorization_are_401_and_change_nothing() {
    // Every producer route answers 401 (JSON, WWW-Authenticate: Bearer) without Authorization, and no task changes.
    let server = token_server();
    server.tracker.create_task("t", "Init").unwrap();
    for (method, path, body) in producer_calls() {
        let reply = request(server.addr, method, &path, &[], body);
        assert_unauthorized(&reply, &format!("{method} {path}"));
    }
    assert_eq!(state_of_t(&server), (1, "pending"));
    assert!(server.tracker.get_task("new").is_none(), "no task was created");
    assert_eq!(server.tracker.list_tasks().len(), 1);
}

#[test]
fn a_wrong_token_is_401() {
    // Anything but `Bearer s3cret` exactly answers 401 on a producer call.
    let server = token_server();
    server.tracker.create_task("t", "Init").unwrap();
    let wrong = [
        "Bearer wrong",
        "Bearer s3cre",
        "Bearer s3cret2",
        "Bearer S3CRET",
        "Bearer",
        "Bearer ",
        "s3cret",
        "Basic s3cret",
        "Basic czNjcmV0",
        "Token s3cret",
        "Bearer s3cret s3cret",
        "Bearers3cret",
    ];
    for value in wrong {
        for (method, path, body) in producer_calls() {
            let reply = request(server.addr, method, &path, &[("Authorization", value)], body);
            assert_unauthorized(&reply, &format!("{method} {path} with {value:?}"));
        }
    }
    assert_eq!(state_of_t(&server), (1, "pending"));
    assert_eq!(server.tracker.list_tasks().len(), 1);
}

#[test]
fn the_right_token_works_on_every_producer_route() {
    // With `Authorization: Bearer s3cret` every producer call does its job.
    let server = token_server();
    let auth = [RIGHT];
    let call = |method: &str, path: &str, body: Option<&str>, status: u16| -> Reply {
        let reply = request(server.addr, method, path, &auth, body);
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text());
        reply
    };
    call("POST", TASKS, Some(r#"{"taskId":"t"}"#), 201);
    call("POST", TASKS, Some(r#"{"taskId":"u"}"#), 201);
    let made = call("POST", TASKS, Some("{}"), 201);
    let made: Value = serde_json::from_slice(&made.body).unwrap();
    assert!(made["taskId"].as_str().is_some_and(|id| id.len() >= 32));
    call("GET", TASKS, None, 200);
    call("GET", &format!("{TASKS}/t"), None, 200);
    call("PATCH", &format!("{TASKS}/t"), Some(r#"{"progress":50}"#), 200);
    call("POST", &format!("{TASKS}/t/complete"), Some(r#"{"result":{"ok":true}}"#), 200);
    call("POST", &format!("{TASKS}/u/fail"), Some(r#"{"error":"nope"}"#), 200);
    call("DELETE", &format!("{TASKS}/u"), None, 204);
    assert_eq!(state_of_t(&server), (3, "completed"));
    assert!(server.tracker.get_task("u").is_none());
    // Surrounding spaces in the header value are not part of it.
    let reply = request(server.addr, "GET", TASKS, &[("Authorization", "  Bearer s3cret  ")], None);
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[test]
fn viewer_routes_need_no_token() {
    // The stream, HEAD progress and health answer without Authorization on a server with a publish token.
    let server = token_server();
    server.tracker.create_task("t", "Init").unwrap();
    let (mut stream, snapshot) = follow(server.addr, "t");
    assert_eq!(snapshot["taskId"], "t");
    let head = request(server.addr, "HEAD", "/api/brand-monitor/progress/t", &[], None);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("x-task-status"), Some("pending"));
    let health = request(server.addr, "GET", "/api/brand-monitor/health", &[], None);
    assert_eq!(health.status, 200, "{}", health.text());
    // A viewer with a wrong token in the header is still just a viewer.
    let head = request(server.addr, "HEAD", "/api/brand-monitor/progress/t", &[("Authorization", "Bearer nope")], None);
    assert_eq!(head.status, 200);
    // The stream still gets what a producer with the token publishes.
    let reply = request(server.addr, "PATCH", &format!("{TASKS}/t"), &[RIGHT], Some(r#"{"progress":10}"#));
    assert_eq!(reply.status, 200);
    let event = stream.next_non_heartbeat().expect("the update");
    assert_eq!((event.event.as_str(), event.id.as_deref()), ("progress", Some("2")));
}

#[test]
fn an_unauthorized_body_is_never_run_as_a_request() {
    // The body of a refused call is not read as the next request on the connection, even when it
    // looks like one with the right token.
    let server = token_server();
    server.tracker.create_task("victim", "").unwrap();
    let smuggled =
        format!("DELETE {TASKS}/victim HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    let text = format!(
        "PATCH {TASKS}/victim HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{smuggled}\
         GET /api/brand-monitor/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        smuggled.len()
    );
    let mut stream = connect(server.addr);
    stream.write_all(text.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let reply = client::read_reply(&mut reader, false).expect("an answer");
    assert_unauthorized(&reply, "PATCH with a request-like body");
    // The server may close now, or skip the body and answer the GET; it must never answer the DELETE.
    let mut statuses: Vec<u16> = Vec::new();
    while let Ok(next) = client::read_reply(&mut reader, false) {
        statuses.push(next.status);
    }
    assert!(statuses.is_empty() || statuses == [200], "answers after the 401: {statuses:?}");
    assert!(server.tracker.get_task("victim").is_some(), "the body was run as a DELETE");
}

#[test]
fn the_right_token_still_needs_application_json() {
    // A producer call with the right token but no `Content-Type` (empty body or not) answers 415
    // and changes nothing: the token is no excuse for an untyped body.
    let server = token_server();
    server.tracker.create_task("t", "Init").unwrap();
    for (method, path, body) in producer_calls().into_iter().filter(|(m, _, _)| *m == "POST" || *m == "PATCH") {
        for body in [body.unwrap_or(""), ""] {
            let reply = request_untyped(server.addr, method, &path, &[RIGHT], body);
            assert_eq!(reply.status, 415, "{method} {path} {body:?}: {}", reply.text());
        }
    }
    assert_eq!(state_of_t(&server), (1, "pending"));
    assert_eq!(server.tracker.list_tasks().len(), 1, "no task was created");
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    // Shows RFC 9110's rule for auth schemes: `bearer`, `BEARER` and `Bearer` carry the same
    // token; a wrong token stays 401 whatever the case of its scheme.
    let server = token_server();
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let value = format!("{scheme} {TOKEN}");
        let reply = request(server.addr, "GET", TASKS, &[("Authorization", &value)], None);
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.text());
        let wrong = format!("{scheme} nope");
        let reply = request(server.addr, "GET", TASKS, &[("Authorization", &wrong)], None);
        assert_eq!(reply.status, 401, "{scheme}");
    }
}
