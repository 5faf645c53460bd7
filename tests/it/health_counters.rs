//! `GET /api/brand-monitor/health` and `GET /metrics`: the documented fields, the connection
//! counters following real streams as they open and close, task counts by status, and the
//! Prometheus text agreeing with the JSON.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sse_progress::{Config, TaskUpdate};

use crate::support::*;

/// The whole number `field` of `h`.
fn count(h: &Value, field: &str) -> u64 {
    h[field].as_u64().unwrap_or_else(|| panic!("{field} is a whole number: {h}"))
}

/// healthy + unhealthy + stale, which must equal activeConnections.
fn health_sum(h: &Value) -> u64 {
    ["healthy", "unhealthy", "stale"].iter().map(|k| h["connectionHealth"][k].as_u64().expect(k)).sum()
}

/// One request that must answer `status`.
fn send(addr: SocketAddr, method: &str, path: &str, body: Option<&str>, status: u16) {
    let reply = request(addr, method, path, &[], body);
    assert_eq!(reply.status, status, "{method} {path}: {}", reply.text());
}

#[test]
fn a_fresh_server_reports_every_documented_field() {
    // A new server is healthy with zero connections and tasks, and every field of API.md has its JSON type.
    let server = start_unthrottled_default();
    let h = health(server.addr);
    assert_eq!(h["status"], "healthy", "{h}");
    assert!(h["uptimeSeconds"].as_f64().is_some_and(|s| s >= 0.0), "{h}");
    let zeros = [
        ("totalConnections", &h["totalConnections"]),
        ("activeConnections", &h["activeConnections"]),
        ("connectionErrors", &h["connectionErrors"]),
        ("connectionHealth.healthy", &h["connectionHealth"]["healthy"]),
        ("connectionHealth.unhealthy", &h["connectionHealth"]["unhealthy"]),
        ("connectionHealth.stale", &h["connectionHealth"]["stale"]),
        ("tasks.total", &h["tasks"]["total"]),
        ("tasks.pending", &h["tasks"]["pending"]),
        ("tasks.running", &h["tasks"]["running"]),
        ("tasks.completed", &h["tasks"]["completed"]),
        ("tasks.failed", &h["tasks"]["failed"]),
    ];
    for (field, value) in zeros {
        assert_eq!(value.as_u64(), Some(0), "{field} in {h}");
    }
    assert_eq!(h["averageConnectionTime"].as_f64(), Some(0.0), "no stream has ended: {h}");
}

#[test]
fn total_connections_counts_every_stream_opened_and_nothing_else() {
    // Each stream opened adds one to totalConnections, closed or not; other requests and refused streams add nothing.
    let server = start_unthrottled_default();
    create(server.addr, "t");
    let mut streams = Vec::new();
    for n in 1..=3 {
        streams.push(follow(server.addr, "t").0);
        assert_eq!(count(&health(server.addr), "totalConnections"), n);
    }
    drop(streams);
    // Requests that are not streams.
    send(server.addr, "GET", "/api/brand-monitor/progress/ghost", None, 404);
    send(server.addr, "GET", "/api/brand-monitor/progress/.bad", None, 400);
    send(server.addr, "HEAD", "/api/brand-monitor/progress/t", None, 200);
    send(server.addr, "GET", &format!("{TASKS}/t"), None, 200);
    send(server.addr, "GET", "/metrics", None, 200);
    let h = wait_for_health(server.addr, "the closed streams to end", |h| count(h, "activeConnections") == 0);
    assert_eq!(count(&h, "totalConnections"), 3, "closing keeps the total: {h}");
    let (_stream, _) = follow(server.addr, "t");
    assert_eq!(count(&health(server.addr), "totalConnections"), 4);
}

#[test]
fn active_connections_follow_streams_as_they_open_and_close() {
    // activeConnections rises with each open stream and falls when a client leaves or the task ends;
    // connectionHealth always sums to it.
    let server = start_unthrottled_default();
    create(server.addr, "a");
    create(server.addr, "b");
    let (first, _) = follow(server.addr, "a");
    let (second, _) = follow(server.addr, "a");
    let (mut third, _) = follow(server.addr, "b");
    let h = health(server.addr);
    assert_eq!(count(&h, "activeConnections"), 3, "{h}");
    assert_eq!(health_sum(&h), 3, "{h}");
    assert_eq!(h["connectionHealth"]["healthy"], 3, "fresh streams are healthy: {h}");

    drop(first);
    let h = wait_for_health(server.addr, "2 active after a client left", |h| count(h, "activeConnections") == 2);
    assert_eq!(health_sum(&h), 2, "{h}");

    send(server.addr, "POST", &format!("{TASKS}/b/complete"), Some("{}"), 200);
    let last = third.next_non_heartbeat().expect("the terminal snapshot");
    assert!(last.data.contains(r#""status":"completed""#), "{}", last.data);
    assert_eq!(third.next(), None, "the stream ends");
    let h = wait_for_health(server.addr, "1 active after a task ended", |h| count(h, "activeConnections") == 1);
    assert_eq!(health_sum(&h), 1, "{h}");

    send(server.addr, "DELETE", &format!("{TASKS}/a"), None, 204);
    drop(second);
    let h = wait_for_health(server.addr, "no stream left", |h| count(h, "activeConnections") == 0);
    assert_eq!(health_sum(&h), 0, "{h}");
    assert_eq!(count(&h, "totalConnections"), 3, "{h}");
    assert_eq!(h["status"], "healthy", "{h}");
}

#[test]
fn tasks_are_counted_by_status() {
    // tasks.total and the counts by status follow creation, updates, complete, fail and delete.
    let server = start_unthrottled_default();
    for id in ["p1", "p2", "r1", "r2", "c1", "f1"] {
        create(server.addr, id);
    }
    for id in ["r1", "r2", "c1"] {
        send(server.addr, "PATCH", &format!("{TASKS}/{id}"), Some(r#"{"progress":10}"#), 200);
    }
    send(server.addr, "POST", &format!("{TASKS}/c1/complete"), Some(r#"{"result":1}"#), 200);
    send(server.addr, "POST", &format!("{TASKS}/f1/fail"), Some(r#"{"error":"x"}"#), 200);
    let h = health(server.addr);
    assert_eq!(h["tasks"], json!({"total": 6, "pending": 2, "running": 2, "completed": 1, "failed": 1}), "{h}");
    send(server.addr, "DELETE", &format!("{TASKS}/p2"), None, 204);
    send(server.addr, "PATCH", &format!("{TASKS}/r2"), Some(r#"{"status":"pending"}"#), 200);
    let h = health(server.addr);
    assert_eq!(h["tasks"], json!({"total": 5, "pending": 2, "running": 1, "completed": 1, "failed": 1}), "{h}");
}

/// The `tasks` object of health, checked to add up: total is the sum of the four statuses.
fn task_counts(addr: SocketAddr) -> Value {
    let h = health(addr);
    let by_status: u64 = ["pending", "running", "completed", "failed"].iter().map(|k| count(&h["tasks"], k)).sum();
    assert_eq!(count(&h["tasks"], "total"), by_status, "{h}");
    h["tasks"].clone()
}

#[test]
fn task_counts_stay_right_across_every_change_and_expiry() {
    // The running counts by status follow create, update (both ways between pending and running),
    // complete, fail, delete, refused changes and the expiry of finished tasks (retention 0): at
    // every step they add up, and they end where the remaining tasks are.
    let server = start_unthrottled(Config { retention: Duration::ZERO, threads: 2, ..Config::default() });
    let counts = |total, pending, running| json!({"total": total, "pending": pending, "running": running, "completed": 0, "failed": 0});
    for id in ["p1", "p2", "r1", "c1", "f1"] {
        create(server.addr, id);
    }
    assert_eq!(task_counts(server.addr), counts(5, 5, 0));
    for id in ["r1", "f1", "p1"] {
        send(server.addr, "PATCH", &format!("{TASKS}/{id}"), Some(r#"{"progress":10}"#), 200);
    }
    send(server.addr, "PATCH", &format!("{TASKS}/p1"), Some(r#"{"status":"pending"}"#), 200);
    send(server.addr, "PATCH", &format!("{TASKS}/r1"), Some(r#"{"progress":20,"stage":"on"}"#), 200);
    send(server.addr, "PATCH", &format!("{TASKS}/r1"), Some(r#"{"progress":101}"#), 422);
    send(server.addr, "PATCH", &format!("{TASKS}/nobody"), Some(r#"{"progress":1}"#), 404);
    send(server.addr, "POST", TASKS, Some(r#"{"taskId":"p2"}"#), 409);
    assert_eq!(task_counts(server.addr), counts(5, 3, 2));
    send(server.addr, "DELETE", &format!("{TASKS}/p2"), None, 204);
    assert_eq!(task_counts(server.addr), counts(4, 2, 2));

    send(server.addr, "POST", &format!("{TASKS}/c1/complete"), Some(r#"{"result":{"n":1}}"#), 200);
    send(server.addr, "POST", &format!("{TASKS}/f1/fail"), Some(r#"{"error":"x"}"#), 200);
    // The finished tasks may go at any moment now; whatever is seen must add up and must not
    // count the unfinished ones wrong.
    let seen = task_counts(server.addr);
    assert_eq!((count(&seen, "pending"), count(&seen, "running")), (1, 1), "{seen}");
    let deadline = Instant::now() + TIMEOUT;
    while task_counts(server.addr) != counts(2, 1, 1) {
        assert!(Instant::now() < deadline, "the finished tasks are still counted: {}", task_counts(server.addr));
        std::thread::sleep(Duration::from_millis(10));
    }
    // A task made anew under an expired task's id is counted once, as pending.
    create(server.addr, "c1");
    assert_eq!(task_counts(server.addr), counts(3, 2, 1));
}

#[test]
fn average_connection_time_covers_the_streams_that_ended() {
    // averageConnectionTime is 0 while no stream has ended, then the mean lifetime in ms of the ended ones.
    let server = start_unthrottled_default();
    create(server.addr, "avg");
    let (stream, _) = follow(server.addr, "avg");
    assert_eq!(health(server.addr)["averageConnectionTime"].as_f64(), Some(0.0), "an open stream is not averaged");
    // Not synchronisation: the stream must live a known while for its lifetime to be checked.
    std::thread::sleep(Duration::from_millis(30));
    drop(stream);
    let h = wait_for_health(server.addr, "the stream to end", |h| count(h, "activeConnections") == 0);
    let average = h["averageConnectionTime"].as_f64().expect("a number");
    assert!(average >= 30.0, "the stream lived at least 30 ms: {h}");
    assert!(average < TIMEOUT.as_millis() as f64 * 2.0, "and not absurdly long: {h}");
    assert_eq!(h["status"], "healthy");
}

/// Publishes `n` updates of about 4 KiB each to task `id` through the tracker.
fn flood(server: &TestServer, id: &str, n: usize) {
    let message = "m".repeat(4096);
    for _ in 0..n {
        let update = TaskUpdate::progress(50.0).message(message.clone());
        server.tracker.update_task(id, update).unwrap();
    }
}

#[test]
fn a_stuck_viewer_turns_unhealthy_degrades_the_status_and_is_closed() {
    // A viewer that stops reading is unhealthy once its write is stuck (status degraded), is closed
    // by the cleanup, and counts as a connection error.
    let config = Config {
        heartbeat: Duration::from_millis(200),
        unhealthy_after: Duration::from_millis(200),
        stale_after: Duration::from_secs(2),
        threads: 2,
        ..Config::default()
    };
    let server = start_unthrottled(config);
    server.tracker.create_task("flood", "").unwrap();
    let (stuck, _) = follow(server.addr, "flood");
    let deadline = Instant::now() + TIMEOUT;
    // Publish until the server sees the viewer as not healthy: the socket buffers fill because
    // the client never reads.
    let degraded = loop {
        flood(&server, "flood", 50);
        let h = health(server.addr);
        let not_healthy = count(&h["connectionHealth"], "unhealthy") + count(&h["connectionHealth"], "stale");
        if not_healthy > 0 || count(&h, "activeConnections") == 0 {
            break h;
        }
        assert!(Instant::now() < deadline, "the viewer never looked stuck: {h}");
    };
    // The server may close a stuck viewer as soon as it is unhealthy; while it is still open and
    // not healthy, it is 1 of 1 connections, so the status is degraded.
    if count(&degraded, "activeConnections") == 1 {
        assert_eq!(degraded["status"], "degraded", "{degraded}");
    }
    // Keep publishing, so that room the kernel frees in the socket buffers is filled again.
    let h = loop {
        let h = health(server.addr);
        if count(&h, "activeConnections") == 0 {
            break h;
        }
        assert!(Instant::now() < deadline, "the stuck viewer was never closed: {h}");
        flood(&server, "flood", 20);
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(count(&h, "connectionErrors"), 1, "{h}");
    assert_eq!(h["status"], "healthy", "{h}");
    drop(stuck);
}

#[test]
fn a_stale_stream_is_closed_by_the_cleanup() {
    // API.md: a connection is stale after stale_after without successful activity, and stale
    // connections are closed. Here heartbeats are rarer than stale_after, so an idle stream goes stale.
    let config = Config {
        heartbeat: Duration::from_secs(60),
        stale_after: Duration::from_millis(300),
        unhealthy_after: Duration::from_millis(100),
        threads: 2,
        ..Config::default()
    };
    let server = start_unthrottled(config);
    server.tracker.create_task("idle", "").unwrap();
    let (mut stream, _) = follow(server.addr, "idle");
    // The failure message shows the health figures, `stale` among them, if it is never closed.
    wait_for_health(server.addr, "the stale stream to be closed", |h| count(h, "activeConnections") == 0);
    // The client sees the end of the stream (an error event first is allowed).
    while let Some(event) = stream.next() {
        assert_eq!(event.event, "error", "only a closing error event may come: {event:?}");
    }
}

/// Parses Prometheus text: `name{labels}` to value, checking each sample's family has HELP and TYPE first.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut described = std::collections::BTreeSet::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap_or("");
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            described.insert(name.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample line: {line:?}"));
        let family = key.split('{').next().unwrap();
        assert!(described.contains(family), "{family} has a # TYPE line before its samples");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number in {line:?}"));
        assert!(samples.insert(key.to_owned(), value).is_none(), "{key} twice");
    }
    samples
}

#[test]
fn metrics_are_prometheus_text_that_agrees_with_health() {
    // GET /metrics is text/plain version 0.0.4 whose connection and task figures equal the health JSON's.
    let server = start_unthrottled_default();
    for id in ["m1", "m2", "m3"] {
        create(server.addr, id);
    }
    send(server.addr, "PATCH", &format!("{TASKS}/m2"), Some(r#"{"progress":50}"#), 200);
    send(server.addr, "POST", &format!("{TASKS}/m3/fail"), Some(r#"{"error":"no"}"#), 200);
    let (gone, _) = follow(server.addr, "m1");
    let (_open, _) = follow(server.addr, "m2");
    drop(gone);
    let h = wait_for_health(server.addr, "one stream left", |h| count(h, "activeConnections") == 1);

    let reply = request(server.addr, "GET", "/metrics", &[], None);
    assert_eq!(reply.status, 200);
    let content_type = reply.header("content-type").expect("a Content-Type");
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let metrics = parse_metrics(&reply.text());
    let table: &[(&str, &Value)] = &[
        ("sse_progress_connections_total", &h["totalConnections"]),
        ("sse_progress_connections_active", &h["activeConnections"]),
        ("sse_progress_connection_errors_total", &h["connectionErrors"]),
        ("sse_progress_connections_by_health{health=\"healthy\"}", &h["connectionHealth"]["healthy"]),
        ("sse_progress_connections_by_health{health=\"unhealthy\"}", &h["connectionHealth"]["unhealthy"]),
        ("sse_progress_connections_by_health{health=\"stale\"}", &h["connectionHealth"]["stale"]),
        ("sse_progress_tasks{status=\"pending\"}", &h["tasks"]["pending"]),
        ("sse_progress_tasks{status=\"running\"}", &h["tasks"]["running"]),
        ("sse_progress_tasks{status=\"completed\"}", &h["tasks"]["completed"]),
        ("sse_progress_tasks{status=\"failed\"}", &h["tasks"]["failed"]),
    ];
    for (key, expected) in table {
        let got = metrics.get(*key).unwrap_or_else(|| panic!("{key} in {}", reply.text()));
        assert_eq!(Some(*got), expected.as_f64(), "{key}: metrics {got}, health {expected}");
    }
    assert_eq!(metrics["sse_progress_connections_total"], 2.0);
    assert_eq!(metrics["sse_progress_connections_active"], 1.0);
    assert_eq!(metrics["sse_progress_tasks{status=\"running\"}"], 1.0);
    let uptime = metrics.get("sse_progress_uptime_seconds").expect("uptime");
    assert!(*uptime >= h["uptimeSeconds"].as_f64().unwrap() - 0.1, "uptime does not go back");
    let average = metrics.get("sse_progress_connection_duration_average_ms").expect("average");
    assert!((average - h["averageConnectionTime"].as_f64().unwrap()).abs() <= 0.1, "{average} vs {h}");
}
