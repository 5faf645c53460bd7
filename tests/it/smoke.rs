//! A first end-to-end look: create a task over HTTP, watch it, update it, complete it.

use crate::support::*;

#[test]
fn a_stream_follows_a_task_to_its_end() {
    let server = start_default();
    let reply =
        request(server.addr, "POST", "/api/brand-monitor/tasks", &[], Some(r#"{"taskId":"t1","stage":"Init"}"#));
    assert_eq!(reply.status, 201, "{}", reply.text());
    let (mut stream, snapshot) = follow(server.addr, "t1");
    assert_eq!(snapshot["eventId"], 1);
    let reply = request(server.addr, "PATCH", "/api/brand-monitor/tasks/t1", &[], Some(r#"{"progress":40}"#));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let event = stream.next().unwrap();
    assert_eq!((event.event.as_str(), event.id.as_deref()), ("progress", Some("2")));
    let reply =
        request(server.addr, "POST", "/api/brand-monitor/tasks/t1/complete", &[], Some(r#"{"result":{"ok":true}}"#));
    assert_eq!(reply.status, 200);
    let event = stream.next().unwrap();
    let task: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(task["status"], "completed");
    assert_eq!(stream.next(), None, "the stream ends after the terminal snapshot");
}
