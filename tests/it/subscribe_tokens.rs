//! `--require-subscribe-token` (API.md, "Protection settings of `serve`"): creation hands out a
//! `subscribeToken`, streams and HEAD need it as `?token=` (missing 401, wrong 403), an unknown
//! task is answered exactly like a wrong token (no existence oracle), producer routes need the
//! publish token and no subscribe token, and without the setting nothing changes.

use std::net::SocketAddr;

use serde_json::{Value, json};
use sse_progress::Config;

use crate::support::*;

/// The publish token of every server here: subscribe tokens without one protect nothing, and
/// `Config::validate` refuses that combination.
const PUBLISH: &str = "publish-s3cret";
const BEARER: &str = "Bearer publish-s3cret";

/// An unthrottled server with the publish token, requiring subscribe tokens or not.
fn start_with_tokens(require_subscribe_token: bool) -> TestServer {
    start_unthrottled(Config {
        require_subscribe_token,
        publish_token: Some(PUBLISH.into()),
        threads: 2,
        ..Config::default()
    })
}

/// A producer call with the publish token.
fn produce(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> sse_progress::client::Reply {
    request(addr, method, path, &[("Authorization", BEARER)], body)
}

/// `POST /tasks` with `body` and the publish token; the 201 answer as JSON.
fn create_with(addr: SocketAddr, body: &Value) -> Value {
    let reply = produce(addr, "POST", TASKS, Some(&body.to_string()));
    assert_eq!(reply.status, 201, "{}", reply.text());
    serde_json::from_slice(&reply.body).expect("task JSON")
}

/// The `subscribeToken` of a create answer, checked to be 32 lowercase hex digits.
fn token_of(created: &Value) -> String {
    let token = created["subscribeToken"].as_str().unwrap_or_else(|| panic!("a subscribeToken: {created}"));
    assert_eq!(token.len(), 32, "{token:?}");
    assert!(token.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "hex: {token:?}");
    token.to_owned()
}

/// The stream route of `task`, with `?token=` when `token` is given.
fn progress_path(task: &str, token: Option<&str>) -> String {
    match token {
        Some(token) => format!("/api/brand-monitor/progress/{task}?token={token}"),
        None => format!("/api/brand-monitor/progress/{task}"),
    }
}

/// Opens a stream (GET) and returns its status, with the error code when it is refused.
fn stream_status(addr: SocketAddr, task: &str, token: Option<&str>) -> (u16, Option<String>) {
    let reply = request(addr, "GET", &progress_path(task, token), &[], None);
    if reply.status == 200 {
        return (200, None);
    }
    (reply.status, Some(error_code(&reply)))
}

/// The status HEAD of `task`'s stream route answers.
fn head_status(addr: SocketAddr, task: &str, token: Option<&str>) -> u16 {
    request(addr, "HEAD", &progress_path(task, token), &[], None).status
}

#[test]
fn creation_hands_out_a_distinct_token_per_task() {
    // Shows that each create answer carries a 32-hex `subscribeToken`, different per task, also
    // for ids the server makes, and that it is not the task id.
    let server = start_with_tokens(true);
    let named = create_with(server.addr, &json!({"taskId": "named-1", "stage": "start"}));
    let named_2 = create_with(server.addr, &json!({"taskId": "named-2"}));
    let made = create_with(server.addr, &json!({}));
    let made_2 = create_with(server.addr, &json!({"stage": "queued"}));
    let tokens: Vec<String> = [&named, &named_2, &made, &made_2].iter().map(|t| token_of(t)).collect();
    let mut distinct = tokens.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), tokens.len(), "{tokens:?}");
    for (task, token) in [&named, &named_2, &made, &made_2].iter().zip(&tokens) {
        assert_ne!(task["taskId"].as_str().unwrap(), token, "the token is not the id");
    }
    // The rest of the answer is the task JSON.
    assert_eq!(named["taskId"], "named-1");
    assert_eq!(named["status"], "pending");
    assert_eq!(named["eventId"], 1);
    // A server-made id gets a working token too.
    let id = made["taskId"].as_str().unwrap();
    assert_eq!(head_status(server.addr, id, Some(&tokens[2])), 200);
}

#[test]
fn streams_need_the_right_token() {
    // Shows 401 `token_required` without `?token=`, 403 `token_invalid` with a wrong one (also
    // another task's token), and a working stream with the right one.
    let server = start_with_tokens(true);
    let task = create_with(server.addr, &json!({"taskId": "guarded"}));
    let token = token_of(&task);
    let other = token_of(&create_with(server.addr, &json!({"taskId": "other"})));

    assert_eq!(stream_status(server.addr, "guarded", None), (401, Some("token_required".into())));
    for wrong in ["0123456789abcdef0123456789abcdef", "", &other, &token[..31], &format!("{token}0")] {
        assert_eq!(
            stream_status(server.addr, "guarded", Some(wrong)),
            (403, Some("token_invalid".into())),
            "token {wrong:?}"
        );
    }
    let upper = token.to_ascii_uppercase();
    assert_eq!(stream_status(server.addr, "guarded", Some(&upper)).0, 403, "tokens compare exactly");

    let (mut stream, snapshot) = follow(server.addr, &format!("guarded?token={token}"));
    assert_eq!(snapshot["taskId"], "guarded");
    assert!(snapshot.get("subscribeToken").is_none(), "viewers are not shown the token: {snapshot}");
    let reply =
        produce(server.addr, "PATCH", &format!("{TASKS}/guarded"), Some(r#"{"status": "running", "progress": 40}"#));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let event = stream.next_non_heartbeat().expect("the update");
    assert_eq!((event.event.as_str(), event.id.as_deref()), ("progress", Some("2")));
    let data: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(data["progress"], 40.0);
}

#[test]
fn the_token_is_found_among_other_query_parameters() {
    // Shows that `token` is read as one query parameter among others, in any position.
    let server = start_with_tokens(true);
    let token = token_of(&create_with(server.addr, &json!({"taskId": "query"})));
    for query in [format!("a=1&token={token}"), format!("token={token}&b=2"), format!("x&token={token}&y=")] {
        let reply = request(server.addr, "HEAD", &format!("/api/brand-monitor/progress/query?{query}"), &[], None);
        assert_eq!(reply.status, 200, "?{query}");
    }
    let reply = request(server.addr, "HEAD", &format!("/api/brand-monitor/progress/query?tokens={token}"), &[], None);
    assert_eq!(reply.status, 401, "`tokens` is not `token`");
}

#[test]
fn head_needs_the_right_token_too() {
    // Shows HEAD answering 401 without a token, 403 with a wrong one, 200 with the status headers
    // with the right one.
    let server = start_with_tokens(true);
    let token = token_of(&create_with(server.addr, &json!({"taskId": "headed", "stage": "Étape 1"})));
    assert_eq!(head_status(server.addr, "headed", None), 401);
    assert_eq!(head_status(server.addr, "headed", Some("ffffffffffffffffffffffffffffffff")), 403);
    let reply = request(server.addr, "HEAD", &progress_path("headed", Some(&token)), &[], None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-task-status"), Some("pending"));
    assert_eq!(reply.header("x-task-event-id"), Some("1"));
    assert_eq!(reply.header("x-task-stage"), Some("%C3%89tape%201"));
}

#[test]
fn bad_ids_are_answered_before_the_token() {
    // Shows 400 for a bad id, with or without a token: an id that cannot exist tells nothing.
    let server = start_with_tokens(true);
    let token = token_of(&create_with(server.addr, &json!({"taskId": "known"})));
    for t in [None, Some("abc"), Some(token.as_str())] {
        assert_eq!(stream_status(server.addr, ".bad", t), (400, Some("invalid_task_id".into())), "{t:?}");
        assert_eq!(head_status(server.addr, ".bad", t), 400, "{t:?}");
    }
}

#[test]
fn an_unknown_task_is_answered_exactly_like_a_wrong_token() {
    // Shows that with tokens required, a stream or HEAD of a task that does not exist (never
    // made, or deleted) gets the very answer a known task gives for the same token (401
    // `token_required` without one, 403 `token_invalid` with one): status, headers and body, so
    // no answer tells whether a task exists.
    let server = start_with_tokens(true);
    let known_token = token_of(&create_with(server.addr, &json!({"taskId": "known"})));
    create_with(server.addr, &json!({"taskId": "deleted"}));
    assert_eq!(produce(server.addr, "DELETE", &format!("{TASKS}/deleted"), None).status, 204);
    for method in ["GET", "HEAD"] {
        // What the known task answers without a token, and with a wrong one.
        let missing = request(server.addr, method, &progress_path("known", None), &[], None);
        let wrong = request(server.addr, method, &progress_path("known", Some("wrong")), &[], None);
        assert_eq!((missing.status, wrong.status), (401, 403), "{method}");
        for token in [None, Some("abc"), Some(known_token.as_str()), Some("0123456789abcdef0123456789abcdef")] {
            let known = if token.is_none() { &missing } else { &wrong };
            for unknown in ["never-made", "deleted"] {
                let reply = request(server.addr, method, &progress_path(unknown, token), &[], None);
                assert_eq!(reply.status, known.status, "{method} {unknown} {token:?}: {}", reply.text());
                assert_eq!(reply.headers, known.headers, "{method} {unknown} {token:?}");
                assert_eq!(reply.body, known.body, "{method} {unknown} {token:?}");
            }
        }
    }
}

#[test]
fn producer_routes_need_no_subscribe_token() {
    // Shows that create, update, get, list, complete, fail and delete work with the publish token
    // and without any subscribe token.
    let server = start_with_tokens(true);
    let token = token_of(&create_with(server.addr, &json!({"taskId": "made"})));
    create_with(server.addr, &json!({"taskId": "doomed"}));
    let call = |method: &str, path: &str, body: Option<&str>| {
        let reply = produce(server.addr, method, &format!("{TASKS}{path}"), body);
        (reply.status, reply.text())
    };
    assert_eq!(call("PATCH", "/made", Some(r#"{"progress": 5, "status": "running"}"#)).0, 200);
    assert_eq!(call("GET", "/made", None).0, 200);
    let (status, list) = call("GET", "", None);
    assert_eq!(status, 200);
    assert!(list.contains("\"made\""), "{list}");
    assert_eq!(call("POST", "/made/complete", Some(r#"{"result": {"ok": true}}"#)).0, 200);
    assert_eq!(call("POST", "/doomed/fail", Some(r#"{"error": "no"}"#)).0, 200);
    assert_eq!(call("DELETE", "/doomed", None).0, 204);
    // The finished task still needs its token to be watched.
    assert_eq!(head_status(server.addr, "made", None), 401);
    let reply = request(server.addr, "HEAD", &progress_path("made", Some(&token)), &[], None);
    assert_eq!(reply.header("x-task-status"), Some("completed"));
}

#[test]
fn without_the_setting_there_are_no_tokens() {
    // Shows that by default the create answer has no `subscribeToken` and streams and HEAD need
    // no token (a `token` parameter is ignored).
    let server = start_with_tokens(false);
    let task = create_with(server.addr, &json!({"taskId": "open"}));
    assert!(task.get("subscribeToken").is_none(), "{task}");
    let made = create_with(server.addr, &json!({}));
    assert!(made.get("subscribeToken").is_none(), "{made}");
    let (_, snapshot) = follow(server.addr, "open");
    assert_eq!(snapshot["taskId"], "open");
    assert_eq!(head_status(server.addr, "open", None), 200);
    assert_eq!(head_status(server.addr, "open", Some("whatever")), 200);
    assert_eq!(stream_status(server.addr, "open", Some("whatever")).0, 200);
    assert_eq!(stream_status(server.addr, "gone", None), (404, Some("task_not_found".into())), "no tokens: 404");
    assert_eq!(head_status(server.addr, "gone", Some("whatever")), 404);
}
