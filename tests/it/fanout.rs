//! One task, many viewers (API.md, "The event stream", item 3): every viewer gets the change, a
//! viewer that keeps up gets every change in order, and one that never reads delays nobody.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};
use sse_progress::client::{Client, Url};
use sse_progress::{Config, TaskUpdate};

use crate::support::*;

/// How long the test waits for a helper thread's report (each of its reads has TIMEOUT too).
const REPORT: Duration = Duration::from_secs(60);

/// The ids and statuses of a stream's events until its end.
fn drain(stream: &mut Stream) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    while let Some(event) = stream.next_non_heartbeat() {
        assert_eq!(event.event, "progress", "{event:?}");
        let task: Value = serde_json::from_str(&event.data).expect("one JSON value");
        let id: u64 = event.id.as_deref().and_then(|id| id.parse().ok()).expect("a numeric id");
        assert_eq!(task["eventId"], id);
        seen.push((id, task["status"].as_str().unwrap().to_owned()));
    }
    seen
}

/// Reads a stream to its end on a helper thread; the result arrives on the returned channel.
fn drain_in_background(mut stream: Stream) -> mpsc::Receiver<Vec<(u64, String)>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(drain(&mut stream));
    });
    rx
}

/// Asserts that `ids` only go up.
fn assert_strictly_increasing(ids: &[u64]) {
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids go up: {ids:?}");
}

#[test]
fn two_hundred_viewers_of_one_task_all_receive_each_change() {
    // Shows fan-out: 200 open streams on one task each get the update, then the terminal end.
    const THREADS: usize = 8;
    const PER_THREAD: usize = 25;
    // Every viewer here is one client address: lift the per-client caps, which are not the point.
    let server =
        start_server(Config { threads: 2, connect_rate_per_client: 0, max_streams_per_client: 0, ..Config::default() });
    let addr = server.addr;
    create(addr, "crowd");
    let (report, reports) = mpsc::channel::<(usize, &'static str)>();
    let mut go = Vec::new();
    let mut helpers = Vec::new();
    for t in 0..THREADS {
        let (go_tx, go_rx) = mpsc::channel::<()>();
        go.push(go_tx);
        let report = report.clone();
        helpers.push(thread::spawn(move || {
            let mut streams: Vec<Stream> = (0..PER_THREAD).map(|_| follow(addr, "crowd").0).collect();
            report.send((t, "open")).unwrap();
            go_rx.recv_timeout(REPORT).expect("the update is sent");
            for stream in &mut streams {
                let event = stream.next().expect("the update");
                assert_eq!((event.event.as_str(), event.id.as_deref()), ("progress", Some("2")));
                let task: Value = serde_json::from_str(&event.data).unwrap();
                assert_eq!(task["progress"], 50.0);
            }
            report.send((t, "updated")).unwrap();
            go_rx.recv_timeout(REPORT).expect("the completion is sent");
            for stream in &mut streams {
                let event = stream.next().expect("the terminal snapshot");
                assert_eq!(event.id.as_deref(), Some("3"));
                assert_eq!(stream.next(), None, "each stream ends");
            }
            report.send((t, "ended")).unwrap();
        }));
    }
    drop(report);
    let wait_for = |phase: &str| {
        for _ in 0..THREADS {
            let (t, got) = reports.recv_timeout(REPORT).unwrap_or_else(|e| panic!("a thread missed {phase}: {e}"));
            assert_eq!(got, phase, "thread {t}");
        }
    };
    wait_for("open");
    call(addr, "PATCH", "/api/brand-monitor/tasks/crowd", Some(json!({"progress": 50})));
    go.iter().for_each(|g| g.send(()).unwrap());
    wait_for("updated");
    call(addr, "POST", "/api/brand-monitor/tasks/crowd/complete", Some(json!({})));
    go.iter().for_each(|g| g.send(()).unwrap());
    wait_for("ended");
    for helper in helpers {
        helper.join().unwrap();
    }
}

#[test]
fn a_viewer_that_never_reads_does_not_delay_the_others() {
    // Shows that an unread socket with full buffers delays neither the producer nor other viewers.
    const UPDATES: u64 = 3000;
    let server = start_default();
    create(server.addr, "flood");
    let (stuck, _) = follow(server.addr, "flood");
    let (fast, _) = follow(server.addr, "flood");
    let fast = drain_in_background(fast);

    let filler = "m".repeat(4000);
    for i in 1..=UPDATES {
        let update = TaskUpdate::running(i as f64 * 99.0 / UPDATES as f64).message(format!("{i:06}{filler}"));
        server.tracker.update_task("flood", update).expect("the producer is never blocked");
    }
    let done = complete(server.addr, "flood", json!("ok"));
    let final_id = done["eventId"].as_u64().unwrap();
    assert_eq!(final_id, UPDATES + 2);

    let seen = fast.recv_timeout(REPORT).expect("the reading viewer reaches the end");
    let ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    assert_strictly_increasing(&ids);
    assert_eq!(seen.last(), Some(&(final_id, "completed".to_owned())), "the final update arrives");

    // The stuck viewer, read at last: behind, so superseded snapshots, but in order and complete.
    let mut stuck = stuck;
    let seen = drain(&mut stuck);
    let ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    assert_strictly_increasing(&ids);
    assert_eq!(seen.last(), Some(&(final_id, "completed".to_owned())), "the terminal snapshot is never dropped");
    assert!(
        (ids.len() as u64) < UPDATES,
        "the premise: the unread socket filled up and the viewer fell behind ({} events)",
        ids.len()
    );
}

/// Follows `task_id`, runs `produce` (which makes `changes` changes), and returns the ids seen.
fn ids_seen_while(server: &TestServer, task_id: &str, changes: u64, produce: impl FnOnce()) -> Vec<u64> {
    create(server.addr, task_id);
    let (stream, _) = follow(server.addr, task_id);
    let reader = drain_in_background(stream);
    produce();
    let path = format!("/api/brand-monitor/tasks/{task_id}/complete");
    let done = call(server.addr, "POST", &path, Some(json!({})));
    assert_eq!(done["eventId"], changes + 2);
    let seen = reader.recv_timeout(REPORT).expect("the viewer reaches the end");
    seen.into_iter().map(|(id, _)| id).collect()
}

/// The pairs of neighbouring ids that are not consecutive.
fn gaps(ids: &[u64]) -> Vec<(u64, u64)> {
    ids.windows(2).filter(|w| w[1] != w[0] + 1).map(|w| (w[0], w[1])).collect()
}

#[test]
fn a_viewer_reading_promptly_gets_changes_in_order_up_to_the_last() {
    // Shows 500 PATCHes on one keep-alive connection reaching a prompt reader in order, to the last.
    const CHANGES: u64 = 500;
    let server = start_default();
    let ids = ids_seen_while(&server, "steady", CHANGES, || {
        let url = Url::parse(&format!("http://{}", server.addr)).unwrap();
        let mut producer = Client::connect(&url, None, TIMEOUT).unwrap();
        for i in 1..=CHANGES {
            let body = json!({"progress": i as f64 / 10.0}).to_string();
            let path = "/api/brand-monitor/tasks/steady";
            let reply = producer.request("PATCH", path, Some(&body)).unwrap();
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
    });
    assert_strictly_increasing(&ids);
    assert_eq!(ids.last(), Some(&(CHANGES + 2)));
    // Gaps are reported, not failed: on a busy two-core machine the viewer's task can be starved.
    // The strict property is the next test's, whose premise cannot waver.
    let gaps = gaps(&ids);
    if !gaps.is_empty() {
        eprintln!("note: a prompt reader missed changes between {gaps:?} ({} of {})", ids.len(), CHANGES + 2);
    }
}

#[test]
fn a_viewer_whose_socket_never_fills_gets_every_change() {
    // Shows no gaps for a viewer whose socket always takes writes, even from a tight-loop producer.
    // 100 events of about 300 bytes: the whole stream fits in the socket's buffers, so the
    // connection never stops taking writes and API.md allows no skipping.
    const CHANGES: u64 = 100;
    let server = start_default();
    let ids = ids_seen_while(&server, "burst", CHANGES, || {
        for i in 1..=CHANGES {
            server.tracker.update_task("burst", TaskUpdate::running(i as f64 / 10.0)).unwrap();
        }
    });
    assert_eq!(
        gaps(&ids),
        vec![],
        "a viewer whose connection keeps up receives every change ({} of {})",
        ids.len(),
        CHANGES + 2
    );
}
