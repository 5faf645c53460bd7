//! The `id:`s of streams of many tasks keep growing across a restart (API.md, "Many tasks on one
//! stream"): a server that keeps nothing starts its change numbers from the clock, so a client
//! that resumes with the last id the old process sent is placed before every change of the new
//! one: it gets every task's snapshot, and a list of tasks (ids made again) is never answered
//! 204 for changes it never saw.

use serde_json::{Value, json};
use sse_progress::internals::now_ms;

use crate::support::*;

/// The `id:` of an event as a number.
fn id_of(event: &sse_progress::client::Event) -> u64 {
    event.id.as_deref().and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("a numeric id: {event:?}"))
}

/// The `progress` events of a stream opened at `target` resuming after `last`, up to a change
/// of task `marked` made after the opening (which shows the snapshots are over), or to the end
/// of the stream.
fn snapshots_after(server: &TestServer, target: &str, last: u64, marked: Option<&str>) -> Vec<(u64, Value)> {
    let mut stream = open_target(server.addr, target, &[("Last-Event-ID", &last.to_string())]);
    assert_eq!(stream.status, 200, "{target} after {last}: {:?}", stream.headers);
    assert_eq!(stream.next().expect("connected").event, "connected");
    // A message of its own: the task may show an earlier call's marker in its snapshot.
    let marker = format!("marker for {target}");
    if let Some(id) = marked {
        update(server.addr, id, json!({ "message": marker }));
    }
    let mut got = Vec::new();
    while let Some(event) = stream.next_non_heartbeat() {
        assert_eq!(event.event, "progress", "{event:?}");
        let task: Value = serde_json::from_str(&event.data).unwrap();
        if task["message"] == marker.as_str() {
            break;
        }
        got.push((id_of(&event), task));
    }
    got
}

#[test]
fn a_resume_point_from_before_a_restart_hides_no_task() {
    // Shows that after a restart whose new process made more changes than the old one did, a
    // dashboard resuming with the last id the old process sent gets all 22 tasks, a list of 20
    // reused ids all 20 snapshots, and a list of two tasks finished early in the new process
    // their terminal snapshots, not 204.
    let old = start_default();
    let ids = old.create_tasks("d", 20);
    for id in &ids[..10] {
        update(old.addr, id, json!({"progress": 5}));
    }
    // The dashboard's last id: the newest of the 30 changes.
    let mut dashboard = open_target(old.addr, PROGRESS, &[]);
    assert_eq!(dashboard.next().expect("connected").event, "connected");
    let last = (0..20).map(|_| id_of(&dashboard.next_non_heartbeat().expect("a snapshot"))).max().unwrap();
    drop(dashboard);
    drop(old);
    // A real restart takes far longer than the millisecond the clock must move on.
    let stopped = now_ms();
    wait_until("the clock to move on", || now_ms() > stopped);

    let new = start_default();
    for id in ["e1", "e2"] {
        create(new.addr, id);
        complete(new.addr, id, json!(null));
    }
    new.create_tasks("d", 20);
    for id in &ids[..15] {
        update(new.addr, id, json!({"progress": 7}));
    }
    assert_eq!(new.tracker.published_seq(), new.seq(39), "the premise: 39 changes, more than the old 30");

    let all = snapshots_after(&new, PROGRESS, last, Some("d019"));
    assert_eq!(all.len(), 22, "every task: {:?}", all.iter().map(|(_, t)| &t["taskId"]).collect::<Vec<_>>());
    assert!(all.iter().all(|(id, _)| *id > last), "ids grow across the restart");

    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let listed = snapshots_after(&new, &many_target(&refs), last, Some("d019"));
    assert_eq!(listed.len(), 20, "every task of the list");

    let finished = snapshots_after(&new, &many_target(&["e1", "e2"]), last, None);
    let statuses: Vec<&Value> = finished.iter().map(|(_, task)| &task["status"]).collect();
    assert_eq!(statuses, [&json!("completed"), &json!("completed")], "their ends, then the end of the stream");
}
