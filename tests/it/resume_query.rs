//! `lastEventId` in the query stands in for `Last-Event-ID` on every stream route (API.md, "The
//! event stream": a new `EventSource` cannot set headers), and the header wins when both are
//! there.

use serde_json::{Value, json};

use crate::support::*;

/// The first event after `connected` of a stream at `target` with `headers`: its id and task.
fn first_after_connected(addr: std::net::SocketAddr, target: &str, headers: &[(&str, &str)]) -> (String, Value) {
    let mut stream = open_target(addr, target, headers);
    assert_eq!(stream.status, 200, "{target}");
    assert_eq!(stream.next().expect("connected").event, "connected");
    // A change after the open shows whether the snapshot was skipped (it comes first if not).
    let event = stream.next_non_heartbeat().expect("an event");
    (event.id.expect("an id"), serde_json::from_str(&event.data).unwrap())
}

#[test]
fn the_query_resumes_a_stream_of_one_task_and_the_header_wins() {
    // Shows `?lastEventId=2` skips a current snapshot 2 like the header does, and that with both
    // the header (an older id here) decides.
    let server = start_default();
    create(server.addr, "q");
    update(server.addr, "q", json!({"progress": 10})); // eventId 2
    let target = format!("{PROGRESS}/q?lastEventId=2");
    let mut stream = open_target(server.addr, &target, &[]);
    assert_eq!(stream.next().expect("connected").event, "connected");
    let next = update(server.addr, "q", json!({"progress": 20})); // eventId 3
    let event = stream.next_non_heartbeat().unwrap();
    assert_eq!(event.id.as_deref(), Some("3"), "snapshot 2 skipped");
    assert_eq!(serde_json::from_str::<Value>(&event.data).unwrap(), next);

    let (id, task) =
        first_after_connected(server.addr, &format!("{PROGRESS}/q?lastEventId=3"), &[("Last-Event-ID", "1")]);
    assert_eq!((id.as_str(), &task), ("3", &next), "the header (1) wins: the snapshot is sent");
}

#[test]
fn a_finished_task_resumed_by_the_query_gets_204() {
    // Shows the query reaches the 204 rule of the one-task route.
    let server = start_default();
    create(server.addr, "q204");
    complete(server.addr, "q204", json!(true));
    let reply = request(server.addr, "GET", &format!("{PROGRESS}/q204?lastEventId=2"), &[], None);
    assert_eq!(reply.status, 204, "{}", reply.text());
}

#[test]
fn the_query_resumes_a_stream_of_many_tasks() {
    // Shows `lastEventId=N` on `?tasks=` sends only the tasks changed after N, like the header.
    let server = start_default();
    create(server.addr, "m1"); // 1
    create(server.addr, "m2"); // 2
    update(server.addr, "m1", json!({"progress": 1})); // 3
    let target = format!("{}&lastEventId={}", many_target(&["m1", "m2"]), server.seq(2));
    let (id, task) = first_after_connected(server.addr, &target, &[]);
    assert_eq!((id, task["taskId"].as_str()), (server.seq(3).to_string(), Some("m1")));
    let (id, task) = first_after_connected(server.addr, &target, &[("Last-Event-ID", "0")]);
    let every = (server.seq(2).to_string(), Some("m2"));
    assert_eq!((id, task["taskId"].as_str()), every, "the header (0) wins: every snapshot");
}
