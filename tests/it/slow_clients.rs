//! Clients that do not keep up (API.md, "The event stream" point 3, Errors, Health): half-sent
//! request heads are closed by the header timeout without holding up anyone else, a viewer that
//! never reads is disconnected and costs no frames, a viewer that reads slowly is not (it gets
//! every byte of a large event), and memory does not grow with updates x stuck viewers.

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sse_progress::client::{self, EventReader};
use sse_progress::{Config, TaskUpdate};

use crate::support::*;

/// Reads `stream` until the server closes it (EOF or reset) or `deadline`; the bytes read and
/// whether it was closed.
fn read_until_closed(stream: &mut TcpStream, deadline: Instant) -> (Vec<u8>, bool) {
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (bytes, false);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (bytes, true),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return (bytes, false),
            Err(_) => return (bytes, true), // reset: closed too
        }
    }
}

#[test]
fn a_thousand_half_sent_heads_are_closed_and_viewers_are_served_meanwhile() {
    // Shows that 1,000 connections stuck in the middle of their request head neither stop a
    // viewer from getting its update nor stay open: each is closed by the header timeout (with a
    // 408 where the socket takes it).
    let server = start_server(Config {
        header_timeout: Duration::from_millis(500),
        connect_rate_per_client: 0,
        // One address opens them all; the per-client cap has a test of its own.
        max_connections_per_client: 0,
        threads: 2,
        ..Config::default()
    });
    server.tracker.create_task("busy", "start").unwrap();

    let mut slow: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut stream = connect(server.addr);
            stream.write_all(b"GET /api/brand-monitor/health HTTP/1.1\r\nHost: te").unwrap();
            stream
        })
        .collect();

    let (mut viewer, snapshot) = follow(server.addr, "busy");
    assert_eq!(snapshot["eventId"], 1);
    server.tracker.update_task("busy", TaskUpdate::running(30.0).message("served anyway")).unwrap();
    let event = viewer.next_non_heartbeat().expect("the update");
    assert_eq!(event.id.as_deref(), Some("2"));
    let data: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(data["message"], "served anyway");

    let deadline = Instant::now() + 3 * TIMEOUT;
    let mut answered_408 = 0;
    for (i, stream) in slow.iter_mut().enumerate() {
        let (bytes, closed) = read_until_closed(stream, deadline);
        assert!(closed, "slow connection {i} is still open after the header timeout");
        if !bytes.is_empty() {
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.starts_with("HTTP/1.1 408 "), "connection {i}: {text:?}");
            answered_408 += 1;
        }
    }
    eprintln!("{answered_408} of 1000 got a 408 before the close");
    // The viewer outlived them all and still works.
    server.tracker.update_task("busy", TaskUpdate::running(60.0)).unwrap();
    assert_eq!(viewer.next_non_heartbeat().expect("a later update").id.as_deref(), Some("3"));
    assert_eq!(health(server.addr)["activeConnections"], 1);
}

#[test]
fn a_viewer_that_never_reads_is_disconnected_and_holds_no_frames() {
    // Shows that a stream whose client never reads, while thousands of 4 KB updates are
    // published, is closed by the server (`unhealthy_after: 1 s`), counted in `connectionErrors`,
    // and keeps no frames in the topic; a viewer that reads gets everything up to the final event.
    const UPDATES: u64 = 3000;
    let server = start_server(Config {
        unhealthy_after: Duration::from_secs(1),
        connect_rate_per_client: 0,
        threads: 2,
        ..Config::default()
    });
    server.tracker.create_task("flood", "start").unwrap();
    let topic = server.tracker.topic("flood").unwrap();

    let mut stuck = connect_small_window(server.addr);
    stuck.write_all(stream_request("flood", &[]).as_bytes()).unwrap();
    wait_until("the stuck viewer to subscribe", || topic.viewers() >= 1);

    // The reading viewer reports every event id it sees.
    let (mut reader_stream, _) = follow(server.addr, "flood");
    let (seen_tx, seen) = mpsc::channel::<(u64, String)>();
    let reader = std::thread::spawn(move || {
        let mut ids = Vec::new();
        while let Some(event) = reader_stream.next_non_heartbeat() {
            let id = event.id.as_deref().map(|id| id.parse::<u64>().unwrap());
            let status = serde_json::from_str::<Value>(&event.data).ok().map(|d| d["status"].to_string());
            if let Some(id) = id {
                ids.push(id);
                if seen_tx.send((id, status.unwrap_or_default())).is_err() {
                    break;
                }
            }
        }
        ids
    });

    let mut last_seen = 1;
    let mut published_bytes = 0usize;
    for i in 1..=UPDATES {
        let message = format!("{i:06}-{}", "x".repeat(4000 - 7));
        published_bytes += message.len();
        let progress = i as f64 * 90.0 / UPDATES as f64;
        let task = server.tracker.update_task("flood", TaskUpdate::running(progress).message(message)).unwrap();
        assert_eq!(task.event_id, i + 1);
        // Keep the reading viewer within a few hundred events, so it never stalls for a second
        // and is never taken for a stuck one itself.
        while task.event_id - last_seen > 256 {
            last_seen = seen.recv_timeout(TIMEOUT).expect("the reading viewer keeps up").0;
        }
    }
    while last_seen < UPDATES + 1 {
        last_seen = seen.recv_timeout(TIMEOUT).expect("the reading viewer gets the last update").0;
    }
    // Frames do not wait for the stuck viewer, whether it is still subscribed (detached) or gone.
    let (kept, viewers) = (topic.kept(), topic.viewers());
    assert!(kept <= 16, "the topic keeps {kept} frames with {viewers} viewers subscribed");

    // A stuck viewer is only noticed when a write to it blocks; conflation means it is written
    // to rarely, and the kernel may have taken what it was given. So keep the task moving (as a
    // live task would) until its writes block for the timeout and it is closed.
    let deadline = Instant::now() + 2 * TIMEOUT;
    let mut extra = 0;
    let h = loop {
        let h = health(server.addr);
        if h["connectionErrors"].as_u64().unwrap_or(0) >= 1 && h["activeConnections"] == 1 {
            break h;
        }
        assert!(Instant::now() < deadline, "timed out waiting for the stuck stream to be closed: {h}");
        extra += 1;
        let message = format!("{extra:06}-{}", "y".repeat(4000 - 7));
        let task = server.tracker.update_task("flood", TaskUpdate::running(90.0).message(message)).unwrap();
        last_seen = seen.recv_timeout(TIMEOUT).expect("the reading viewer keeps up").0;
        assert_eq!(last_seen, task.event_id);
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(h["connectionErrors"], 1, "only the stuck stream failed: {h}");
    assert_eq!(topic.viewers(), 1, "the stuck viewer is gone from the topic");
    let kept = topic.kept();
    assert!(kept <= 16, "the topic keeps {kept} frames after the close");

    server.tracker.complete_task("flood", serde_json::json!({"done": true})).unwrap();
    let (id, status) = seen.recv_timeout(TIMEOUT).expect("the final event");
    assert_eq!((id, status.as_str()), (UPDATES + extra + 2, "\"completed\""));
    let ids = reader.join().unwrap();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "events are never reordered");
    assert_eq!(ids.last(), Some(&(UPDATES + extra + 2)));

    // The stuck client finally reads: what the kernel buffered, then the close.
    let (bytes, closed) = read_until_closed(&mut stuck, Instant::now() + 2 * TIMEOUT);
    assert!(closed, "the stuck connection was closed by the server");
    assert!(bytes.len() < published_bytes, "it got {} bytes of {published_bytes}: it was cut off", bytes.len());
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{:?}", &text[..text.len().min(200)]);
    let told = text.contains("too_slow");
    eprintln!("the stuck viewer had {} bytes buffered; told too_slow: {told}", bytes.len());
}

#[test]
fn a_stuck_viewer_still_connected_holds_no_frames_and_gets_the_terminal_event_later() {
    // Shows that while a viewer's socket is full (and before it is deemed unhealthy) frames do not
    // wait for it, and that when it finally reads it gets events in order ending with the terminal
    // snapshot (older progress snapshots may be skipped, never reordered).
    const UPDATES: u64 = 3000;
    let server = start_server(Config { connect_rate_per_client: 0, threads: 2, ..Config::default() });
    server.tracker.create_task("later", "start").unwrap();
    let topic = server.tracker.topic("later").unwrap();

    let mut stuck = connect_small_window(server.addr);
    stuck.write_all(stream_request("later", &[]).as_bytes()).unwrap();
    wait_until("the stuck viewer to subscribe", || topic.viewers() >= 1);
    let (mut reading, _) = follow(server.addr, "later");
    let (seen_tx, seen) = mpsc::channel::<u64>();
    let reader = std::thread::spawn(move || {
        while let Some(event) = reading.next_non_heartbeat() {
            if let Some(id) = event.id.and_then(|id| id.parse().ok())
                && seen_tx.send(id).is_err()
            {
                break;
            }
        }
    });

    let mut last_seen = 1;
    for i in 1..=UPDATES {
        let message = format!("{i:06}-{}", "z".repeat(4000 - 7));
        let progress = i as f64 * 90.0 / UPDATES as f64;
        let task = server.tracker.update_task("later", TaskUpdate::running(progress).message(message)).unwrap();
        while task.event_id - last_seen > 256 {
            last_seen = seen.recv_timeout(TIMEOUT).expect("the reading viewer keeps up");
        }
    }
    while last_seen < UPDATES + 1 {
        last_seen = seen.recv_timeout(TIMEOUT).expect("the reading viewer gets the last update");
    }
    assert_eq!(topic.viewers(), 2, "the stuck viewer is still subscribed (unhealthy_after is 30 s)");
    let kept = topic.kept();
    assert!(kept <= 16, "the topic keeps {kept} frames for a viewer that takes none");
    assert_eq!(health(server.addr)["connectionErrors"], 0);

    server.tracker.complete_task("later", serde_json::json!({"done": true})).unwrap();
    assert_eq!(seen.recv_timeout(TIMEOUT).expect("the final event"), UPDATES + 2);
    reader.join().unwrap();

    // Now the stuck client reads everything, to the end of the stream.
    let mut reader = BufReader::new(stuck);
    let (status, headers) = client::read_head(&mut reader).unwrap();
    assert_eq!(status, 200);
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v == "chunked");
    let mut events = EventReader::new(reader, chunked);
    let mut ids = Vec::new();
    let mut last = None;
    let deadline = Instant::now() + 3 * TIMEOUT;
    while let Some(event) = events.next_event().expect("events, then the end of the stream") {
        assert!(Instant::now() < deadline, "the stream does not end");
        if let Some(id) = event.id.as_deref() {
            ids.push(id.parse::<u64>().unwrap());
        }
        last = Some(event);
    }
    let last = last.expect("events");
    assert_eq!((last.event.as_str(), last.id.as_deref()), ("progress", Some(&*(UPDATES + 2).to_string())));
    let data: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(data["status"], "completed");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "events are never reordered");
    eprintln!("the stuck viewer received {} of {} progress events", ids.len(), UPDATES + 2);
}

/// A client that reads at most `step` bytes at a time with a pause before each read: a live
/// connection on a slow link.
struct Trickle {
    stream: TcpStream,
    step: usize,
    pause: Duration,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::thread::sleep(self.pause);
        let n = buf.len().min(self.step);
        self.stream.read(&mut buf[..n])
    }
}

#[test]
fn a_slow_reader_gets_a_large_terminal_event_whole() {
    // Shows that the stuck-write deadline is time without progress, not the time of the whole
    // write: a viewer that reads a ~900 KB terminal event at about 160 KB/s (so it takes several
    // times `unhealthy_after`: 2 s) gets all of it and the end of the stream, and is not counted
    // as an error. Before, it was cut after 2 s, every time.
    let server = start_server(Config {
        unhealthy_after: Duration::from_secs(2),
        connect_rate_per_client: 0,
        threads: 2,
        ..Config::default()
    });
    server.tracker.create_task("large", "start").unwrap();
    let mut stream = connect_small_window(server.addr);
    stream.write_all(stream_request("large", &[]).as_bytes()).unwrap();
    let trickle = Trickle { stream, step: 8 * 1024, pause: Duration::from_millis(50) };
    let mut reader = BufReader::with_capacity(8 * 1024, trickle);
    let (status, headers) = client::read_head(&mut reader).unwrap();
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(n, v)| n == "transfer-encoding" && v == "chunked"));
    let mut events = EventReader::new(reader, true);
    assert_eq!(events.next_event().unwrap().expect("connected").event, "connected");
    assert_eq!(events.next_event().unwrap().expect("the snapshot").id.as_deref(), Some("1"));

    let blob = "r".repeat(900 * 1024);
    server.tracker.complete_task("large", serde_json::json!({ "blob": blob })).unwrap();
    let started = Instant::now();
    let last = loop {
        let event = events.next_event().expect("the terminal event, before the timeout").expect("the terminal event");
        if event.event != "heartbeat" {
            break event;
        }
    };
    let took = started.elapsed();
    assert_eq!((last.event.as_str(), last.id.as_deref()), ("progress", Some("2")), "{:.200}", last.data);
    let data: Value = serde_json::from_str(&last.data).expect("the whole JSON");
    assert_eq!(data["status"], "completed");
    assert_eq!(data["result"]["blob"].as_str().map(str::len), Some(blob.len()));
    assert!(events.next_event().unwrap().is_none(), "the stream ends cleanly after it");
    eprintln!("the slow reader took {took:?} for the terminal event");
    // The premise, which its pauses alone guarantee: the write lasted longer than the deadline.
    assert!(took > Duration::from_secs(2), "{took:?}");
    assert_eq!(health(server.addr)["connectionErrors"], 0);
}

#[test]
fn the_binary_keeps_memory_bounded_with_many_stuck_viewers() {
    // Shows that 200 viewers that never read, watching 2,000 updates of 4 KB each (1.6 GB if
    // every viewer buffered every update), leave the server's resident memory under 100 MiB.
    const VIEWERS: usize = 200;
    const UPDATES: u64 = 2000;
    const LIMIT: u64 = 100 << 20;
    let binary = Binary::serve(&["--connect-rate-per-client", "0"]);
    let (addr, pid) = (binary.addr, binary.pid());
    assert_eq!(health(addr)["status"], "healthy");

    let mut producer = client::Client::connect(&client::Url::parse(&format!("http://{addr}")).unwrap(), None, TIMEOUT)
        .expect("a producer connection");
    let created = producer.request("POST", "/api/brand-monitor/tasks", Some(r#"{"taskId": "big"}"#)).unwrap();
    assert_eq!(created.status, 201);

    let stuck: Vec<TcpStream> = (0..VIEWERS)
        .map(|_| {
            let mut s = connect_small_window(addr);
            s.write_all(stream_request("big", &[]).as_bytes()).unwrap();
            s
        })
        .collect();
    wait_for_health(addr, "every stuck viewer to be streaming", |h| h["activeConnections"] == VIEWERS);

    // One viewer that reads, to see the last update arrive.
    let mut reading = connect(addr);
    reading.write_all(stream_request("big", &[]).as_bytes()).unwrap();
    let mut reading = BufReader::new(reading);
    let (status, headers) = client::read_head(&mut reading).unwrap();
    assert_eq!(status, 200);
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v == "chunked");
    let watcher = std::thread::spawn(move || {
        let mut events = EventReader::new(reading, chunked);
        let mut last = 0;
        while let Some(event) = events.next_event().expect("events before the timeout") {
            if let Some(id) = event.id.and_then(|id| id.parse::<u64>().ok()) {
                last = id;
                if id == UPDATES + 1 {
                    break;
                }
            }
        }
        (last, events) // the connection stays open for the count below
    });

    let before = rss(pid);
    let mut peak = before;
    for i in 1..=UPDATES {
        let body = serde_json::json!({
            "status": "running",
            "progress": i as f64 * 90.0 / UPDATES as f64,
            "message": format!("{i:06}-{}", "y".repeat(4000 - 7)),
        })
        .to_string();
        let reply = producer.request("PATCH", "/api/brand-monitor/tasks/big", Some(&body)).unwrap();
        assert_eq!(reply.status, 200, "update {i}: {}", reply.text());
        if i % 250 == 0 {
            peak = peak.max(rss(pid));
        }
    }
    let (last, reading) = watcher.join().unwrap();
    assert_eq!(last, UPDATES + 1, "the reading viewer got the last update");
    let after = rss(pid);
    peak = peak.max(after);
    eprintln!(
        "server VmRSS: {} KiB before the updates, {} KiB peak, {} KiB after",
        before >> 10,
        peak >> 10,
        after >> 10
    );
    assert!(peak < LIMIT, "VmRSS peaked at {} MiB", peak >> 20);
    // The stuck viewers are still connected (their writes are stuck, not failed, for 30 s).
    assert_eq!(health(addr)["activeConnections"], VIEWERS + 1);
    drop((stuck, reading));
    drop(binary);
}
