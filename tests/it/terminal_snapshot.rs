//! A reader that fell behind is never without the terminal snapshot (API.md, "The event stream"
//! item 3, and "Many tasks on one stream"), even when the task is deleted right after it
//! finished, so that the newest event of the task is `task_deleted`: on the stream of one task
//! and on a stream of many, the skip stops at the terminal snapshot.

use serde_json::{Value, json};
use sse_progress::Config;
use sse_progress::client::Event;

use crate::support::*;

/// A server whose stuck readers are not cut while the test holds them.
fn start_for_stuck_readers() -> TestServer {
    start_server(Config { connect_rate_per_client: 0, threads: 2, ..Config::default() })
}

/// Waits until the only viewer of each task's topic has stopped taking frames: with a viewer
/// attached, every frame after the one it took last is kept for it, and after the flood it
/// cannot have taken the newest without a socket that takes megabytes.
fn wait_until_detached(server: &TestServer, task_ids: &[&str]) {
    let topics: Vec<_> = task_ids.iter().map(|id| server.tracker.topic(id).unwrap()).collect();
    wait_until("the stuck reader's write to block", || topics.iter().all(|t| t.viewers() == 1 && t.kept() == 1));
}

/// Every event the stuck socket holds, to the end of its stream, heartbeats left out.
fn read_all(stuck: std::net::TcpStream) -> Vec<Event> {
    let mut events = events_of(stuck);
    let mut all = Vec::new();
    while let Some(event) = events.next_event().expect("events, then the end of the stream") {
        if event.event != "heartbeat" {
            all.push(event);
        }
    }
    all
}

/// The task JSON of a `progress` event, or the data of another.
fn data(event: &Event) -> Value {
    serde_json::from_str(&event.data).expect("JSON data")
}

#[test]
fn a_stuck_reader_of_one_task_gets_its_terminal_snapshot_when_it_is_deleted_right_after() {
    // Shows a reader that did not read while 300 updates of 4 KB went by, then the task
    // completed and was deleted, gets the completed snapshot as its last event when it reads,
    // and the stream ends there.
    let server = start_for_stuck_readers();
    server.tracker.create_task("brief", "").unwrap();
    let stuck = stuck_stream(server.addr, &format!("{PROGRESS}/brief"));
    wait_until("the stuck reader to subscribe", || server.tracker.topic("brief").unwrap().viewers() == 1);
    server.flood(&["brief".to_owned()], 300);
    wait_until_detached(&server, &["brief"]);
    let done = server.tracker.complete_task("brief", json!({"ok": true})).unwrap();
    server.tracker.delete_task("brief").unwrap();

    let events = read_all(stuck);
    let last = events.last().expect("events");
    assert_eq!(last.event, "progress", "the last event: {last:?}");
    assert_eq!(data(last)["status"], "completed");
    assert_eq!(data(last)["eventId"], done.event_id);
    assert!(events.iter().all(|e| e.event != "error"), "nothing after the terminal snapshot");
}

#[test]
fn a_stuck_reader_of_many_tasks_gets_the_terminal_snapshot_of_one_deleted_right_after() {
    // Shows the same on a stream of two tasks: the one completed then deleted while the reader
    // was stuck is shown completed, never only `task_deleted`; the other ends as usual.
    let server = start_for_stuck_readers();
    let ids = ["gone", "stays"];
    for id in ids {
        server.tracker.create_task(id, "").unwrap();
    }
    let stuck = stuck_stream(server.addr, &many_target(&ids));
    wait_until("the stuck reader to subscribe", || {
        ids.iter().all(|id| server.tracker.topic(id).unwrap().viewers() == 1)
    });
    server.flood(&ids.map(str::to_owned), 300);
    wait_until_detached(&server, &ids);
    server.tracker.complete_task("gone", json!(1)).unwrap();
    server.tracker.delete_task("gone").unwrap();
    server.tracker.complete_task("stays", json!(2)).unwrap();

    let events = read_all(stuck);
    for id in ids {
        let last = events.iter().rev().find(|e| data(e)["taskId"] == id).expect("an event of the task");
        assert_eq!((last.event.as_str(), &data(last)["status"]), ("progress", &json!("completed")), "{id}: {last:?}");
    }
    assert!(events.iter().all(|e| e.event != "error"), "no `task_deleted` after a terminal snapshot");
}
