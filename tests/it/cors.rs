//! `--cors-origin` (API.md, "Protection settings of `serve`"; `Config::cors_origins`): which
//! origins may read the stream and HEAD across origins, the preflight, `*`, and the CORS headers
//! on the stream route's error answers. Nothing is sent by default.

use std::net::SocketAddr;

use sse_progress::Config;
use sse_progress::client::Reply;

use crate::support::*;

const APP: &str = "https://app.example";
const EVIL: &str = "https://evil.example";
/// The publish token of the server that requires subscribe tokens.
const PUBLISH: &str = "cors-publish-token";

/// An unthrottled server that lets `origins` read the stream across origins.
fn start_with_origins(origins: &[&str]) -> TestServer {
    start_unthrottled(Config {
        cors_origins: origins.iter().map(|o| o.to_string()).collect(),
        threads: 2,
        ..Config::default()
    })
}

/// The stream route of `task`.
fn path(task: &str) -> String {
    format!("{PROGRESS}/{task}")
}

/// The names of the `Access-Control-*` headers in `headers`.
fn cors_names(headers: &[(String, String)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().starts_with("access-control-"))
        .map(|(n, _)| n.clone())
        .collect()
}

/// The value of header `name` (case-insensitive).
fn value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Whether the comma-separated header `name` lists `item` (case-insensitively).
fn lists(headers: &[(String, String)], name: &str, item: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(item))
}

/// Opens a stream with `Origin: origin`; checks it is a working stream; returns its headers.
fn stream_headers(addr: SocketAddr, task: &str, origin: &str) -> Vec<(String, String)> {
    open_connected(addr, task, &[("Origin", origin)]).headers
}

/// HEAD of `task`'s stream route with `Origin: origin`.
fn head(addr: SocketAddr, task: &str, origin: &str) -> Reply {
    request(addr, "HEAD", &path(task), &[("Origin", origin)], None)
}

/// The CORS preflight of a stream with `Last-Event-ID` from `origin`.
fn preflight(addr: SocketAddr, target: &str, origin: &str) -> Reply {
    request(
        addr,
        "OPTIONS",
        target,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "last-event-id"),
        ],
        None,
    )
}

#[test]
fn by_default_no_cors_headers_are_sent() {
    // Shows that without `cors_origins` no answer of the stream route carries Access-Control-*.
    let server = start_with_origins(&[]);
    server.tracker.create_task("plain", "start").unwrap();
    let headers = stream_headers(server.addr, "plain", APP);
    assert!(cors_names(&headers).is_empty(), "{headers:?}");
    let reply = head(server.addr, "plain", APP);
    assert_eq!(reply.status, 200);
    assert!(cors_names(&reply.headers).is_empty(), "{:?}", reply.headers);
    let reply = head(server.addr, "missing", APP);
    assert_eq!(reply.status, 404);
    assert!(cors_names(&reply.headers).is_empty(), "{:?}", reply.headers);
    let reply = preflight(server.addr, &path("plain"), APP);
    assert!(cors_names(&reply.headers).is_empty(), "no preflight approval: {:?}", reply.headers);
}

#[test]
fn an_allowed_origin_may_read_the_stream_and_head() {
    // Shows `Access-Control-Allow-Origin: <origin>` and `Vary: Origin` on the stream's head and on
    // HEAD for a configured origin, and nothing for another origin.
    let server = start_with_origins(&[APP]);
    server.tracker.create_task("shared", "start").unwrap();

    let headers = stream_headers(server.addr, "shared", APP);
    assert_eq!(value(&headers, "access-control-allow-origin"), Some(APP), "{headers:?}");
    assert!(lists(&headers, "vary", "origin"), "{headers:?}");
    assert_eq!(value(&headers, "content-type"), Some("text/event-stream"), "still the stream");

    let reply = head(server.addr, "shared", APP);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP), "{:?}", reply.headers);
    assert!(lists(&reply.headers, "vary", "origin"), "{:?}", reply.headers);
    assert_eq!(reply.header("x-task-status"), Some("pending"));

    for other in [EVIL, "https://app.example.evil", "http://app.example", "https://APP.example", "null"] {
        let headers = stream_headers(server.addr, "shared", other);
        assert!(cors_names(&headers).is_empty(), "{other}: {headers:?}");
        let reply = head(server.addr, "shared", other);
        assert_eq!(reply.status, 200);
        assert!(cors_names(&reply.headers).is_empty(), "{other}: {:?}", reply.headers);
    }
}

#[test]
fn each_configured_origin_gets_its_own_origin_back() {
    // Shows that with several origins the answer names the requesting one, never the list.
    let second = "https://admin.example";
    let server = start_with_origins(&[APP, second]);
    server.tracker.create_task("both", "start").unwrap();
    for origin in [APP, second] {
        let headers = stream_headers(server.addr, "both", origin);
        assert_eq!(value(&headers, "access-control-allow-origin"), Some(origin), "{headers:?}");
        assert_eq!(head(server.addr, "both", origin).header("access-control-allow-origin"), Some(origin));
    }
}

#[test]
fn the_preflight_allows_last_event_id() {
    // Shows that `OPTIONS` with `Access-Control-Request-Method: GET` and
    // `Access-Control-Request-Headers: last-event-id` answers 204 with the allow headers, and
    // that another origin gets no approval.
    let server = start_with_origins(&[APP]);
    server.tracker.create_task("pre", "start").unwrap();
    let reply = preflight(server.addr, &path("pre"), APP);
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert!(reply.body.is_empty());
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP), "{:?}", reply.headers);
    assert!(lists(&reply.headers, "access-control-allow-methods", "GET"), "{:?}", reply.headers);
    assert!(lists(&reply.headers, "access-control-allow-headers", "Last-Event-ID"), "{:?}", reply.headers);
    let reply = preflight(server.addr, &path("pre"), EVIL);
    assert!(reply.header("access-control-allow-origin").is_none(), "{:?}", reply.headers);
    assert!(reply.header("access-control-allow-headers").is_none(), "{:?}", reply.headers);
}

#[test]
fn a_star_allows_every_origin() {
    // Shows that `*` answers `Access-Control-Allow-Origin: *` on the stream, HEAD and preflight.
    let server = start_with_origins(&["*"]);
    server.tracker.create_task("public", "start").unwrap();
    for origin in [APP, EVIL] {
        let headers = stream_headers(server.addr, "public", origin);
        assert_eq!(value(&headers, "access-control-allow-origin"), Some("*"), "{headers:?}");
        assert_eq!(head(server.addr, "public", origin).header("access-control-allow-origin"), Some("*"));
        let reply = preflight(server.addr, &path("public"), origin);
        assert_eq!(reply.status, 204);
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
        assert!(lists(&reply.headers, "access-control-allow-headers", "Last-Event-ID"), "{:?}", reply.headers);
    }
}

#[test]
fn error_answers_of_the_stream_route_carry_cors_headers() {
    // Shows that 404, 400 (and 401/403/429 with those settings) on the stream route carry
    // `Access-Control-Allow-Origin` so a page on the allowed origin can read why.
    let server = start_with_origins(&[APP]);
    for (target, status, code) in [(path("missing"), 404, "task_not_found"), (path(".bad"), 400, "invalid_task_id")] {
        let reply = request(server.addr, "GET", &target, &[("Origin", APP)], None);
        assert_eq!(reply.status, status, "{}", reply.text());
        assert_eq!(error_code(&reply), code);
        assert_eq!(reply.header("access-control-allow-origin"), Some(APP), "{target}: {:?}", reply.headers);
        let reply = request(server.addr, "HEAD", &target, &[("Origin", APP)], None);
        assert_eq!(reply.status, status);
        assert_eq!(reply.header("access-control-allow-origin"), Some(APP), "HEAD {target}: {:?}", reply.headers);
        // Not for another origin.
        let reply = request(server.addr, "GET", &target, &[("Origin", EVIL)], None);
        assert_eq!(reply.status, status);
        assert!(cors_names(&reply.headers).is_empty(), "{:?}", reply.headers);
    }

    // Subscribe tokens protect nothing without a publish token (Config::validate), so it has one.
    let guarded = start_server(Config {
        cors_origins: vec![APP.into()],
        require_subscribe_token: true,
        publish_token: Some(PUBLISH.into()),
        max_streams_per_client: 1,
        connect_rate_per_client: 0,
        threads: 2,
        ..Config::default()
    });
    let bearer = format!("Bearer {PUBLISH}");
    let created = request(
        guarded.addr,
        "POST",
        "/api/brand-monitor/tasks",
        &[("Authorization", &bearer)],
        Some(r#"{"taskId": "g"}"#),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let token: serde_json::Value = serde_json::from_slice(&created.body).unwrap();
    let token = token["subscribeToken"].as_str().expect("a subscribe token").to_owned();
    for (target, status) in [(path("g"), 401), (format!("{}?token=nope", path("g")), 403)] {
        let reply = request(guarded.addr, "GET", &target, &[("Origin", APP)], None);
        assert_eq!(reply.status, status, "{}", reply.text());
        assert_eq!(reply.header("access-control-allow-origin"), Some(APP), "{target}: {:?}", reply.headers);
    }
    let mut first = open_stream(guarded.addr, &format!("g?token={token}"), &[("Origin", APP)]);
    assert_eq!(first.status, 200);
    assert_eq!(first.next().expect("connected").event, "connected");
    let reply = request(guarded.addr, "GET", &format!("{}?token={token}", path("g")), &[("Origin", APP)], None);
    assert_eq!(reply.status, 429, "{}", reply.text());
    assert_eq!(error_code(&reply), "too_many_streams");
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP), "{:?}", reply.headers);
}

#[test]
fn the_producer_api_is_not_opened_to_other_origins() {
    // Shows that CORS covers only the stream and HEAD route (Config::cors_origins): the producer
    // routes answer an allowed origin, and its preflight, without Access-Control-* headers.
    let server = start_with_origins(&[APP]);
    let reply = preflight(server.addr, "/api/brand-monitor/tasks", APP);
    assert!(cors_names(&reply.headers).is_empty(), "{:?}", reply.headers);
    let reply =
        request(server.addr, "POST", "/api/brand-monitor/tasks", &[("Origin", APP)], Some(r#"{"taskId": "p"}"#));
    assert_eq!(reply.status, 201);
    assert!(cors_names(&reply.headers).is_empty(), "{:?}", reply.headers);
    let reply = request(server.addr, "GET", "/api/brand-monitor/tasks/p", &[("Origin", APP)], None);
    assert_eq!(reply.status, 200);
    assert!(cors_names(&reply.headers).is_empty(), "{:?}", reply.headers);
}
