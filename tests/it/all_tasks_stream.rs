//! The stream of every task (API.md, "Many tasks on one stream", `GET /api/brand-monitor/progress`
//! without `tasks`): it needs the publish token when the server has one, opens with the current
//! tasks (newest 1000) in `connected` and their snapshots in change order, then carries every
//! change of any task, creations included, and `removed` (with an id) for deletes and expiries;
//! it resumes like the stream of many tasks, never answers 204, never ends on its own, and a
//! viewer that was stuck is brought back with the newest snapshot of each task.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use sse_progress::Config;
use sse_progress::client::Event;

use crate::support::*;

/// An event of the stream as the test reads it: its name, id and data.
fn parts(event: &Event) -> (&str, u64, Value) {
    let id = event.id.as_deref().and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("a numeric id: {event:?}"));
    (event.event.as_str(), id, serde_json::from_str(&event.data).expect("JSON data"))
}

/// Opens the stream of all tasks with `headers`, checks the 200, and returns it with the
/// `taskIds` of its `connected` event.
fn open_all(addr: SocketAddr, headers: &[(&str, &str)]) -> (Stream, Vec<String>) {
    let mut stream = open_target(addr, PROGRESS, headers);
    assert_eq!(stream.status, 200, "{:?}", stream.headers);
    let connected = stream.next().expect("connected");
    assert_eq!(connected.event, "connected");
    let data: Value = serde_json::from_str(&connected.data).unwrap();
    let ids = data["taskIds"].as_array().expect("taskIds").iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    (stream, ids)
}

/// The next event that is not a heartbeat.
fn next(stream: &mut Stream) -> Event {
    stream.next_non_heartbeat().expect("an event")
}

#[test]
fn with_a_publish_token_the_stream_needs_it_as_bearer() {
    // Shows 401 without the publish token or with a wrong one, 200 with it; subscribe tokens,
    // which are per task, do not apply.
    let server = start_unthrottled(Config {
        publish_token: Some("pub".into()),
        require_subscribe_token: true,
        threads: 2,
        ..Config::default()
    });
    for headers in [&[][..], &[("Authorization", "Bearer wrong")][..]] {
        let reply = request(server.addr, "GET", PROGRESS, headers, None);
        assert_error(&reply, 401, "unauthorized");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
    let (_stream, ids) = open_all(server.addr, &[("Authorization", "Bearer pub")]);
    assert!(ids.is_empty());
}

#[test]
fn creations_changes_and_removals_arrive_with_growing_ids() {
    // Shows the opening (current tasks in `connected`, their snapshots in change order), then
    // a creation, a change, a completion (which ends nothing) and a delete as `removed` with its
    // id; the stream counts as one open stream.
    let server = start_default();
    create(server.addr, "wa"); // 1
    create(server.addr, "wb"); // 2
    update(server.addr, "wa", json!({"progress": 30})); // 3
    let (mut stream, ids) = open_all(server.addr, &[]);
    assert_eq!(ids.iter().map(String::as_str).collect::<BTreeSet<_>>(), BTreeSet::from(["wa", "wb"]));
    let snapshots: Vec<(u64, String)> = (0..2)
        .map(|_| next(&mut stream))
        .map(|e| {
            let (name, id, task) = parts(&e);
            assert_eq!(name, "progress");
            (id, task["taskId"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(snapshots, [(server.seq(2), "wb".to_owned()), (server.seq(3), "wa".to_owned())]);
    assert_eq!(health(server.addr)["activeConnections"], 1);

    let created = create(server.addr, "wc");
    let changed = update(server.addr, "wb", json!({"progress": 5}));
    let done = complete(server.addr, "wc", json!("ok"));
    call(server.addr, "DELETE", &format!("{TASKS}/wa"), None);
    create(server.addr, "wd");
    let got: Vec<(String, u64, Value)> = (0..5)
        .map(|_| {
            let event = next(&mut stream);
            let (name, id, data) = parts(&event);
            (name.to_owned(), id, data)
        })
        .collect();
    assert_eq!(got[0], ("progress".into(), server.seq(4), created));
    assert_eq!(got[1], ("progress".into(), server.seq(5), changed));
    assert_eq!(got[2], ("progress".into(), server.seq(6), done), "a completion ends nothing here");
    assert_eq!(got[3], ("removed".into(), server.seq(7), json!({"taskId": "wa"})));
    assert_eq!((got[4].0.as_str(), got[4].1, &got[4].2["taskId"]), ("progress", server.seq(8), &json!("wd")));
}

#[test]
fn an_expired_task_is_removed_with_an_id() {
    // Shows a task past its retention leaves the stream with `event: removed` and an id.
    let server = start_server(Config { retention: Duration::from_millis(100), threads: 2, ..Config::default() });
    create(server.addr, "old"); // 1
    let (mut stream, _) = open_all(server.addr, &[]);
    assert_eq!(parts(&next(&mut stream)).1, server.seq(1));
    complete(server.addr, "old", json!(null)); // 2
    assert_eq!(parts(&next(&mut stream)).1, server.seq(2));
    let removed = next(&mut stream);
    assert_eq!(parts(&removed), ("removed", server.seq(3), json!({"taskId": "old"})));
}

#[test]
fn a_resume_gets_only_what_changed_and_connected_lists_the_tasks_there_are() {
    // Shows a resume with `Last-Event-ID` (or `lastEventId`) gets the snapshots of tasks changed
    // after it and `connected` without the tasks removed meanwhile; an N the server cannot place
    // gets every snapshot; nothing changed is a 200 that waits, never a 204.
    let server = start_default();
    for id in ["ra", "rb", "rc"] {
        create(server.addr, id); // 1, 2, 3
    }
    call(server.addr, "DELETE", &format!("{TASKS}/rc"), None); // 4
    complete(server.addr, "ra", json!(1)); // 5
    let (mut stream, ids) = open_all(server.addr, &[("Last-Event-ID", &server.seq(4).to_string())]);
    assert_eq!(ids.iter().map(String::as_str).collect::<BTreeSet<_>>(), BTreeSet::from(["ra", "rb"]));
    let first = next(&mut stream);
    let (name, id, task) = parts(&first);
    assert_eq!((name, id, task["taskId"].as_str()), ("progress", server.seq(5), Some("ra")));
    update(server.addr, "rb", json!({"progress": 1})); // 6
    assert_eq!(parts(&next(&mut stream)).1, server.seq(6), "no snapshot of rb before its change");

    let (mut stream, _) = open_target_all(server.addr, &format!("{PROGRESS}?lastEventId={}", server.seq(99)));
    let ids: Vec<u64> = (0..2).map(|_| parts(&next(&mut stream)).1).collect();
    assert_eq!(ids, [server.seq(5), server.seq(6)], "an id never issued gets every snapshot");

    let (mut stream, _) = open_all(server.addr, &[("Last-Event-ID", &server.seq(6).to_string())]);
    create(server.addr, "rd"); // 7
    assert_eq!(parts(&next(&mut stream)).1, server.seq(7), "up to date: the next change comes first");
}

/// [`open_all`] at another target of the route (a query).
fn open_target_all(addr: SocketAddr, target: &str) -> (Stream, Value) {
    let mut stream = open_target(addr, target, &[]);
    assert_eq!(stream.status, 200);
    let connected = stream.next().expect("connected");
    (stream, serde_json::from_str(&connected.data).unwrap())
}

#[test]
fn connected_and_the_snapshots_are_the_newest_thousand_tasks() {
    // Shows a server of 1,005 tasks opens the stream with 1,000 of them (the newest, as the
    // task list has them), snapshots and `connected` alike.
    let server = start_default();
    server.create_tasks("n", 1005);
    let listed = json_answer(&request(server.addr, "GET", TASKS, &[], None), 200);
    let newest: BTreeSet<String> =
        listed["tasks"].as_array().unwrap().iter().map(|t| t["taskId"].as_str().unwrap().to_owned()).collect();
    let (mut stream, ids) = open_all(server.addr, &[]);
    assert_eq!(ids.len(), 1000);
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), newest);
    let snapshots: BTreeSet<String> =
        (0..1000).map(|_| parts(&next(&mut stream)).2["taskId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(snapshots, newest);
    create(server.addr, "marker");
    assert_eq!(parts(&next(&mut stream)).2["taskId"], "marker", "nothing else came before it");
}

#[test]
fn a_stuck_viewer_of_all_tasks_resyncs_with_the_newest_snapshot_of_each_task() {
    // Shows a viewer of all tasks that does not read while 3,000 updates of 4 KB go by over 10
    // tasks (and one is deleted) makes the feed keep no frames for it, and when it reads gets,
    // in growing ids, each task's newest state and the removal, far fewer events than were
    // published, then the changes after them.
    const TASKS: usize = 10;
    const UPDATES: usize = 3000;
    let server = start_server(Config { connect_rate_per_client: 0, threads: 2, ..Config::default() });
    let ids = server.create_tasks("s", TASKS);
    let feed = server.tracker.feed_topic();
    let stuck = stuck_stream(server.addr, PROGRESS);
    wait_until("the stuck viewer to subscribe", || feed.viewers() == 1);
    server.flood(&ids, UPDATES);
    server.tracker.delete_task("s003").unwrap();
    let kept = feed.kept();
    assert!(kept <= 16, "the feed keeps {kept} frames for a viewer that takes none");
    let mut events = events_of(stuck);
    assert_eq!(events.next_event().unwrap().expect("connected").event, "connected");
    // Read in the background while a marker change shows where the catching up ends.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        while let Some(event) = events.next_event().expect("events") {
            if tx.send(event).is_err() {
                break;
            }
        }
    });
    server.tracker.create_task("marker", "").unwrap();
    let mut got = Vec::new();
    loop {
        let event = rx.recv_timeout(2 * TIMEOUT).expect("the marker arrives");
        if event.event == "heartbeat" {
            continue;
        }
        let (name, id, data) = parts(&event);
        got.push((name.to_owned(), id, data.clone()));
        if data["taskId"] == "marker" {
            break;
        }
    }
    let seqs: Vec<u64> = got.iter().map(|(_, id, _)| *id).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "ids grow: {seqs:?}");
    let mut last: BTreeMap<String, &Value> = BTreeMap::new();
    for (name, _, data) in &got {
        if name == "progress" {
            last.insert(data["taskId"].as_str().unwrap().to_owned(), data);
        }
    }
    for id in ids.iter().filter(|id| *id != "s003") {
        assert_eq!(last[id]["eventId"], current(server.addr, id)["eventId"], "{id}: the newest state");
    }
    assert!(got.iter().any(|(name, _, data)| name == "removed" && data["taskId"] == "s003"), "the removal");
    assert!(got.len() < UPDATES / 2, "{} events of {UPDATES}: the viewer was resynced", got.len());
    eprintln!("the stuck viewer of all tasks received {} events of {}", got.len(), UPDATES + 2);
    assert_eq!(health(server.addr)["connectionErrors"], 0);
}
