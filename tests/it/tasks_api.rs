//! The producer API of API.md over real TCP: every route, every documented error, the task JSON
//! field for field, and the rules of the task model (monotonic progress, terminal states, ids).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sse_progress::Config;
use sse_progress::client::Reply;
use sse_progress::internals::now_ms;

use crate::support::*;

/// The fields of the task JSON, exactly (API.md, "The task model").
const TASK_FIELDS: [&str; 11] = [
    "taskId",
    "status",
    "progress",
    "stage",
    "message",
    "createdAt",
    "updatedAt",
    "estimatedTimeRemaining",
    "result",
    "error",
    "eventId",
];

/// `PATCH /tasks/{id}` with the body text `body`; the reply, whatever its status.
fn patch(addr: SocketAddr, id: &str, body: &str) -> Reply {
    request(addr, "PATCH", &format!("{TASKS}/{id}"), &[], Some(body))
}

/// `GET path`; the reply, whatever its status.
fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[], None)
}

/// The task's progress, a number.
fn progress_of(task: &Value) -> f64 {
    task["progress"].as_f64().unwrap_or_else(|| panic!("progress is a number: {task}"))
}

/// The task's event id, a whole number.
fn event_id_of(task: &Value) -> u64 {
    task["eventId"].as_u64().unwrap_or_else(|| panic!("eventId is a whole number: {task}"))
}

/// Returns once the wall clock (the server's as well: same host) is past `ms`, so the next
/// timestamp differs. Spins at most a millisecond or so; bounded by the support TIMEOUT.
fn wait_for_clock_past(ms: u64) {
    let deadline = Instant::now() + TIMEOUT;
    while now_ms() <= ms {
        assert!(Instant::now() < deadline, "the clock does not move");
        std::thread::yield_now();
    }
}

/// Decodes `%XX` escapes (no `+`), for header values.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ASCII escape");
            out.push(u8::from_str_radix(hex, 16).expect("a hex escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn create_answers_201_with_exactly_the_camel_case_task_fields() {
    // POST /tasks answers 201 with the task JSON: exactly the 11 camelCase fields of a new pending task.
    let server = start_unthrottled_default();
    let before = now_ms();
    let reply = post(server.addr, TASKS, r#"{"taskId":"t1","stage":"Init","message":"Starting"}"#);
    let after = now_ms();
    let task = json_answer(&reply, 201);
    let fields: BTreeSet<&str> = task.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(fields, BTreeSet::from(TASK_FIELDS), "{task}");
    let table: &[(&str, Value)] = &[
        ("taskId", json!("t1")),
        ("status", json!("pending")),
        ("stage", json!("Init")),
        ("message", json!("Starting")),
        ("estimatedTimeRemaining", Value::Null),
        ("result", Value::Null),
        ("error", Value::Null),
        ("eventId", json!(1)),
    ];
    for (field, expected) in table {
        assert_eq!(&task[field], expected, "{field} in {task}");
    }
    assert_eq!(progress_of(&task), 0.0);
    let created = task["createdAt"].as_u64().expect("createdAt is ms");
    assert!((before..=after).contains(&created), "{created} within {before}..={after}");
    assert_eq!(task["updatedAt"].as_u64(), Some(created));
    assert_eq!(current(server.addr, "t1"), task, "GET one gives the same task");
}

#[test]
fn create_without_a_task_id_makes_distinct_hex_ids_of_at_least_128_bits() {
    // Without taskId the server makes the id: at least 32 hex digits (128 bits), new every time.
    let server = start_unthrottled_default();
    let mut seen = BTreeSet::new();
    for body in ["{}", r#"{"stage":"Queued"}"#, "", "  "] {
        let task = json_answer(&post(server.addr, TASKS, body), 201);
        let id = task["taskId"].as_str().expect("a string id").to_owned();
        assert!(id.len() >= 32, "{id:?} is at least 32 hex digits");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id:?} is hex");
        assert_eq!(current(server.addr, &id)["taskId"], id.as_str(), "the made id works");
        assert!(seen.insert(id.clone()), "{id} made twice");
    }
}

#[test]
fn creating_an_existing_id_is_409_task_exists() {
    // A second create with the same id answers 409 task_exists and leaves the first task as it was.
    let server = start_unthrottled_default();
    create(server.addr, "dup");
    json_answer(&patch(server.addr, "dup", r#"{"progress":20}"#), 200);
    let reply = post(server.addr, TASKS, r#"{"taskId":"dup","stage":"again"}"#);
    assert_error(&reply, 409, "task_exists");
    let task = current(server.addr, "dup");
    assert_eq!((progress_of(&task), event_id_of(&task)), (20.0, 2), "{task}");
}

#[test]
fn patch_answers_200_and_each_change_grows_event_id_by_one() {
    // PATCH answers 200 with the task; progress moves pending to running, status may go back
    // to pending, and every change adds exactly 1 to eventId.
    let server = start_unthrottled_default();
    create(server.addr, "p1");
    // (body, status after, progress after, stage after)
    let steps: &[(&str, &str, f64, &str)] = &[
        (r#"{"progress":10}"#, "running", 10.0, ""),
        (r#"{"progress":25.5,"stage":"Fetching","message":"page 2"}"#, "running", 25.5, "Fetching"),
        (r#"{"status":"pending"}"#, "pending", 25.5, "Fetching"),
        (r#"{"status":"running","stage":"Scoring"}"#, "running", 25.5, "Scoring"),
        (r#"{"progress":100}"#, "running", 100.0, "Scoring"),
    ];
    let mut last_updated = 0;
    for (i, (body, status, progress, stage)) in steps.iter().enumerate() {
        let task = json_answer(&patch(server.addr, "p1", body), 200);
        assert_eq!(task["status"], *status, "after {body}: {task}");
        assert_eq!(progress_of(&task), *progress, "after {body}: {task}");
        assert_eq!(task["stage"], *stage, "after {body}: {task}");
        assert_eq!(event_id_of(&task), i as u64 + 2, "after {body}: {task}");
        let updated = task["updatedAt"].as_u64().expect("updatedAt is ms");
        assert!(updated >= last_updated, "updatedAt never goes back");
        last_updated = updated;
        assert_eq!(current(server.addr, "p1"), task, "GET one shows the change");
    }
    assert_eq!(current(server.addr, "p1")["message"], "page 2", "an update without message keeps it");
}

#[test]
fn the_estimate_is_null_until_there_is_a_rate() {
    // estimatedTimeRemaining is null for a new task and after the first running point, a number once progress has a rate.
    let server = start_unthrottled_default();
    let created = create(server.addr, "eta");
    assert_eq!(created["estimatedTimeRemaining"], Value::Null);
    let first = json_answer(&patch(server.addr, "eta", r#"{"progress":10}"#), 200);
    assert_eq!(first["estimatedTimeRemaining"], Value::Null, "{first}");
    wait_for_clock_past(first["updatedAt"].as_u64().unwrap());
    let second = json_answer(&patch(server.addr, "eta", r#"{"progress":20}"#), 200);
    let eta = second["estimatedTimeRemaining"].as_f64();
    assert!(eta.is_some_and(|s| s >= 0.0), "a number of seconds: {second}");
}

#[test]
fn invalid_fields_are_422_naming_the_field() {
    // A wrong type, a progress outside 0..100, a string over its limit, or a finishing status in
    // PATCH answers 422 with the field named, and changes nothing.
    let server = start_unthrottled_default();
    create(server.addr, "v");
    let long = |n: usize| "x".repeat(n);
    // (case, method, path, body, field named in the message)
    let cases: Vec<(&str, &str, String, String, &str)> = vec![
        ("progress above 100", "PATCH", "v".into(), r#"{"progress":100.5}"#.into(), "progress"),
        ("progress below 0", "PATCH", "v".into(), r#"{"progress":-1}"#.into(), "progress"),
        ("progress as a string", "PATCH", "v".into(), r#"{"progress":"50"}"#.into(), "progress"),
        ("progress null", "PATCH", "v".into(), r#"{"progress":null}"#.into(), "progress"),
        ("stage as a number", "PATCH", "v".into(), r#"{"stage":5}"#.into(), "stage"),
        ("message as an object", "PATCH", "v".into(), r#"{"message":{}}"#.into(), "message"),
        ("reset as a string", "PATCH", "v".into(), r#"{"reset":"yes"}"#.into(), "reset"),
        ("status completed", "PATCH", "v".into(), r#"{"status":"completed"}"#.into(), "status"),
        ("status failed", "PATCH", "v".into(), r#"{"status":"failed"}"#.into(), "status"),
        ("status unknown", "PATCH", "v".into(), r#"{"status":"paused"}"#.into(), "status"),
        ("status as a number", "PATCH", "v".into(), r#"{"status":1}"#.into(), "status"),
        ("stage of 257 bytes", "PATCH", "v".into(), json!({ "stage": long(257) }).to_string(), "stage"),
        (
            "stage of 258 bytes in 129 chars",
            "PATCH",
            "v".into(),
            json!({ "stage": "é".repeat(129) }).to_string(),
            "stage",
        ),
        ("message of 4097 bytes", "PATCH", "v".into(), json!({ "message": long(4097) }).to_string(), "message"),
        ("taskId as a number", "POST", String::new(), r#"{"taskId":5}"#.into(), "taskId"),
        ("stage as a bool in create", "POST", String::new(), r#"{"taskId":"n1","stage":true}"#.into(), "stage"),
        (
            "stage of 257 bytes in create",
            "POST",
            String::new(),
            json!({ "taskId": "n3", "stage": long(257) }).to_string(),
            "stage",
        ),
        (
            "message of 4097 bytes in create",
            "POST",
            String::new(),
            json!({ "taskId": "n4", "message": long(4097) }).to_string(),
            "message",
        ),
        ("error as a number in fail", "POST", "v/fail".into(), r#"{"error":42}"#.into(), "error"),
    ];
    for (case, method, path, body, field) in &cases {
        let path = if path.is_empty() { TASKS.to_owned() } else { format!("{TASKS}/{path}") };
        let reply = request(server.addr, method, &path, &[], Some(body));
        let message = assert_error(&reply, 422, "invalid_field");
        assert!(message.contains(field), "{case}: the message names `{field}`: {message:?}");
    }
    let task = current(server.addr, "v");
    assert_eq!((task["status"].as_str(), event_id_of(&task)), (Some("pending"), 1), "nothing changed: {task}");
    for id in ["n1", "n3", "n4"] {
        assert_error(&get(server.addr, &format!("{TASKS}/{id}")), 404, "task_not_found");
    }
}

#[test]
fn unknown_fields_are_422_without_echoing_their_name() {
    // An unknown field answers 422 invalid_field with a fixed sentence naming the known fields of
    // that body, never the name that was sent, and changes nothing.
    let server = start_unthrottled_default();
    create(server.addr, "u");
    let cases: &[(&str, &str, &str, &str)] = &[
        ("PATCH", "u", r#"{"colour":"red"}"#, "progress, stage, message, status, reset"),
        ("PATCH", "u", r#"{"progress":5,"zz_marker":1}"#, "progress, stage, message, status, reset"),
        ("POST", "", r#"{"taskId":"n2","owner":"me"}"#, "taskId, stage, message"),
        ("POST", "u/complete", r#"{"result":1,"extra":2}"#, "result"),
        ("POST", "u/fail", r#"{"error":"x","code":3}"#, "error"),
    ];
    for (method, path, body, known) in cases {
        let path = if path.is_empty() { TASKS.to_owned() } else { format!("{TASKS}/{path}") };
        let reply = request(server.addr, method, &path, &[], Some(body));
        let message = assert_error(&reply, 422, "invalid_field");
        assert_eq!(message, format!("The body has a field that is not known; known fields: {known}."), "{body}");
        for sent in ["colour", "zz_marker", "owner", "extra", "code"] {
            assert!(!message.contains(sent), "{body}: the message echoes `{sent}`: {message:?}");
        }
    }
    let task = current(server.addr, "u");
    assert_eq!((task["status"].as_str(), event_id_of(&task)), (Some("pending"), 1), "nothing changed: {task}");
    assert_error(&get(server.addr, &format!("{TASKS}/n2")), 404, "task_not_found");
}

#[test]
fn negative_zero_progress_is_zero() {
    // `-0.0` (and `-0`) is a progress within 0..100 that is stored and shown as 0, never `-0.0`,
    // in the answer, GET, the stream and HEAD.
    let server = start_unthrottled_default();
    create(server.addr, "z");
    for body in [r#"{"progress": -0.0}"#, r#"{"progress": -0}"#, r#"{"progress": -0e5, "reset": true}"#] {
        let reply = patch(server.addr, "z", body);
        assert!(!reply.text().contains("-0"), "{body}: {}", reply.text());
        let task = json_answer(&reply, 200);
        let progress = progress_of(&task);
        assert!(progress == 0.0 && progress.is_sign_positive(), "{body}: {task}");
    }
    let get = get(server.addr, &format!("{TASKS}/z"));
    assert!(!get.text().contains("-0"), "{}", get.text());
    let head = request(server.addr, "HEAD", &format!("{PROGRESS}/z"), &[], None);
    let shown = head.header("x-task-progress").expect("X-Task-Progress");
    assert!(!shown.starts_with('-'), "X-Task-Progress {shown:?}");
    let (_, snapshot) = follow(server.addr, "z");
    assert!(progress_of(&snapshot).is_sign_positive(), "{snapshot}");
}

#[test]
fn tracker_503s_carry_retry_after() {
    // A server holding as many tasks as it may answers creation 503 too_many_tasks with a
    // Retry-After of whole seconds, as every 503 of the producer API does.
    let server = start_unthrottled(Config { max_tasks: 1, threads: 2, ..Config::default() });
    create(server.addr, "only");
    let reply = post(server.addr, TASKS, r#"{"taskId":"second"}"#);
    assert_error(&reply, 503, "too_many_tasks");
    assert_retry_after(&reply);
}

#[test]
fn values_at_their_limits_are_accepted() {
    // The limits are inclusive and in bytes: progress 0 and 100, a 256-byte stage, a 4096-byte message.
    let server = start_unthrottled_default();
    create(server.addr, "edge");
    let cases: Vec<(&str, String)> = vec![
        ("progress 0", r#"{"progress":0}"#.into()),
        ("progress 100", r#"{"progress":100}"#.into()),
        ("stage of 256 bytes", json!({ "stage": "s".repeat(256) }).to_string()),
        ("stage of 256 bytes in 128 chars", json!({ "stage": "é".repeat(128) }).to_string()),
        ("message of 4096 bytes", json!({ "message": "m".repeat(4096) }).to_string()),
    ];
    for (case, body) in &cases {
        let reply = patch(server.addr, "edge", body);
        assert_eq!(reply.status, 200, "{case}: {}", reply.text());
    }
    let body = json!({ "taskId": "edge2", "stage": "s".repeat(256), "message": "m".repeat(4096) });
    let task = json_answer(&post(server.addr, TASKS, &body.to_string()), 201);
    assert_eq!(task["stage"].as_str().map(str::len), Some(256));
    assert_eq!(task["message"].as_str().map(str::len), Some(4096));
}

#[test]
fn progress_never_moves_backwards_while_running_unless_reset() {
    // A lower progress on a running task keeps the higher one; `"reset": true` lets it go back.
    let server = start_unthrottled_default();
    create(server.addr, "mono");
    // (body, progress after)
    let steps: &[(&str, f64)] = &[
        (r#"{"progress":50}"#, 50.0),
        (r#"{"progress":40}"#, 50.0),
        (r#"{"progress":49.9,"reset":false}"#, 50.0),
        (r#"{"progress":60.5}"#, 60.5),
        (r#"{"progress":10,"reset":true}"#, 10.0),
        (r#"{"progress":5}"#, 10.0),
        (r#"{"progress":15}"#, 15.0),
    ];
    for (body, expected) in steps {
        let task = json_answer(&patch(server.addr, "mono", body), 200);
        assert_eq!(progress_of(&task), *expected, "after {body}: {task}");
        assert_eq!(task["status"], "running", "after {body}");
    }
    assert_eq!(progress_of(&current(server.addr, "mono")), 15.0);
}

#[test]
fn complete_sets_progress_100_the_estimate_0_and_the_result() {
    // complete answers 200: status completed, progress 100, estimatedTimeRemaining 0, result as sent (any JSON).
    let server = start_unthrottled_default();
    let results: &[(&str, Value)] = &[
        ("object", json!({"results": "Analysis complete", "mentions": [1, 2, {"a": null}]})),
        ("array", json!([1, "two", 3.5])),
        ("string", json!("done")),
        ("number", json!(42)),
        ("null", Value::Null),
    ];
    for (i, (case, result)) in results.iter().enumerate() {
        let id = format!("c{i}");
        create(server.addr, &id);
        json_answer(&patch(server.addr, &id, r#"{"progress":30}"#), 200);
        let body = json!({ "result": result }).to_string();
        let task = json_answer(&post(server.addr, &format!("{TASKS}/{id}/complete"), &body), 200);
        assert_eq!(task["status"], "completed", "{case}");
        assert_eq!(progress_of(&task), 100.0, "{case}");
        assert_eq!(task["estimatedTimeRemaining"].as_f64(), Some(0.0), "{case}: {task}");
        assert_eq!(&task["result"], result, "{case}");
        assert_eq!(task["error"], Value::Null, "{case}");
        assert_eq!(event_id_of(&task), 3, "{case}");
        assert_eq!(current(server.addr, &id), task, "{case}: GET one shows it");
    }
}

#[test]
fn fail_keeps_the_progress_and_sanitizes_the_error() {
    // fail answers 200: status failed, progress kept, error text without control characters.
    let server = start_unthrottled_default();
    create(server.addr, "f1");
    json_answer(&patch(server.addr, "f1", r#"{"progress":37.5}"#), 200);
    let body = json!({ "error": "rate\r\nlimit\u{7} exceeded\u{1b}[31m\ttab\u{0}end\u{85}" }).to_string();
    let task = json_answer(&post(server.addr, &format!("{TASKS}/f1/fail"), &body), 200);
    assert_eq!(task["status"], "failed");
    assert_eq!(progress_of(&task), 37.5, "fail keeps the progress reached");
    assert_eq!(task["result"], Value::Null);
    let error = task["error"].as_str().expect("error is a string");
    assert!(!error.chars().any(char::is_control), "no control characters: {error:?}");
    for word in ["rate", "limit", "exceeded", "tab", "end"] {
        assert!(error.contains(word), "{word:?} kept in {error:?}");
    }
    assert_eq!(current(server.addr, "f1"), task);
}

#[test]
fn a_long_failure_text_is_kept_within_4096_bytes() {
    // The stored error is at most 4096 bytes: a longer text is cut (200) or refused naming `error` (422).
    let server = start_unthrottled_default();
    create(server.addr, "f2");
    let body = json!({ "error": "é".repeat(3000) }).to_string();
    let reply = post(server.addr, &format!("{TASKS}/f2/fail"), &body);
    if reply.status == 422 {
        assert!(assert_error(&reply, 422, "invalid_field").contains("error"));
        return;
    }
    let task = json_answer(&reply, 200);
    let error = task["error"].as_str().expect("error is a string");
    assert!(error.len() <= 4096 && !error.is_empty(), "{} bytes", error.len());
}

#[test]
fn every_finished_task_reports_0_seconds_remaining() {
    // API.md: estimatedTimeRemaining is "0 when finished"; completed and failed tasks are both finished.
    let server = start_unthrottled_default();
    let finishers = [("complete", r#"{"result":1}"#), ("fail", r#"{"error":"boom"}"#)];
    for (finish, body) in finishers {
        let id = format!("eta-{finish}");
        create(server.addr, &id);
        let first = json_answer(&patch(server.addr, &id, r#"{"progress":10}"#), 200);
        wait_for_clock_past(first["updatedAt"].as_u64().unwrap());
        json_answer(&patch(server.addr, &id, r#"{"progress":20}"#), 200);
        let task = json_answer(&post(server.addr, &format!("{TASKS}/{id}/{finish}"), body), 200);
        assert_eq!(task["estimatedTimeRemaining"].as_f64(), Some(0.0), "after {finish}: {task}");
    }
}

#[test]
fn changes_after_a_terminal_state_are_409_task_finished() {
    // After complete or fail, PATCH, complete and fail all answer 409 task_finished and change nothing.
    let server = start_unthrottled_default();
    let finishers = [("complete", r#"{"result":{"ok":true}}"#), ("fail", r#"{"error":"boom"}"#)];
    // (method, path suffix, body)
    let later: &[(&str, &str, &str)] = &[
        ("PATCH", "", r#"{"progress":5}"#),
        ("PATCH", "", r#"{"progress":5,"reset":true}"#),
        ("PATCH", "", r#"{"status":"running"}"#),
        ("POST", "/complete", r#"{"result":2}"#),
        ("POST", "/fail", r#"{"error":"again"}"#),
    ];
    for (finish, body) in finishers {
        let id = format!("done-{finish}");
        create(server.addr, &id);
        let finished = json_answer(&post(server.addr, &format!("{TASKS}/{id}/{finish}"), body), 200);
        for (method, suffix, body) in later {
            let reply = request(server.addr, method, &format!("{TASKS}/{id}{suffix}"), &[], Some(body));
            assert_error(&reply, 409, "task_finished");
        }
        assert_eq!(current(server.addr, &id), finished, "after {finish}: unchanged");
    }
}

#[test]
fn unknown_tasks_are_404_task_not_found_on_every_route() {
    // Every route that names a task answers 404 task_not_found for an id nobody created.
    let server = start_unthrottled_default();
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("GET", "/api/brand-monitor/tasks/ghost", None),
        ("PATCH", "/api/brand-monitor/tasks/ghost", Some(r#"{"progress":1}"#)),
        ("DELETE", "/api/brand-monitor/tasks/ghost", None),
        ("POST", "/api/brand-monitor/tasks/ghost/complete", Some(r#"{"result":1}"#)),
        ("POST", "/api/brand-monitor/tasks/ghost/fail", Some(r#"{"error":"x"}"#)),
        ("GET", "/api/brand-monitor/progress/ghost", None),
    ];
    for (method, path, body) in cases {
        assert_error(&request(server.addr, method, path, &[], *body), 404, "task_not_found");
    }
    let head = request(server.addr, "HEAD", &format!("{PROGRESS}/ghost"), &[], None);
    assert_eq!(head.status, 404, "HEAD of an unknown task");
}

#[test]
fn the_list_is_newest_first() {
    // GET /tasks answers {"tasks": [...]} with full task objects, the newest created first.
    let server = start_unthrottled_default();
    let empty = json_answer(&get(server.addr, TASKS), 200);
    assert_eq!(empty, json!({ "tasks": [] }));
    // Ids in alphabetical order, created oldest first: a tie-break by id would list them reversed.
    let ids = ["a-old", "b-mid", "c-new"];
    for id in ids {
        let task = create(server.addr, id);
        wait_for_clock_past(task["createdAt"].as_u64().unwrap());
    }
    json_answer(&patch(server.addr, "a-old", r#"{"progress":99}"#), 200);
    let list = json_answer(&get(server.addr, TASKS), 200);
    let keys: Vec<&str> = list.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["tasks"]);
    let tasks = list["tasks"].as_array().expect("tasks is an array");
    let listed: Vec<&str> = tasks.iter().map(|t| t["taskId"].as_str().unwrap()).collect();
    assert_eq!(listed, ["c-new", "b-mid", "a-old"], "newest created first, whatever changed since");
    for task in tasks {
        let fields: BTreeSet<&str> = task.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(fields, BTreeSet::from(TASK_FIELDS), "{task}");
    }
    assert_eq!(progress_of(&tasks[2]), 99.0, "the list shows the current state");
}

#[test]
fn the_list_holds_at_most_1000_tasks() {
    // GET /tasks lists at most 1000 tasks, even when more are held.
    let server = start_unthrottled_default();
    for i in 0..1005 {
        server.tracker.create_task(&format!("bulk-{i}"), "").unwrap();
    }
    let list = json_answer(&get(server.addr, TASKS), 200);
    assert_eq!(list["tasks"].as_array().map(Vec::len), Some(1000));
}

#[test]
fn delete_answers_204_ends_open_streams_and_the_task_is_gone() {
    // DELETE answers 204 without a body; open streams get event: error task_deleted and end; later calls are 404.
    let server = start_unthrottled_default();
    create(server.addr, "del");
    let (mut stream, _) = follow(server.addr, "del");
    let reply = request(server.addr, "DELETE", &format!("{TASKS}/del"), &[], None);
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert!(reply.body.is_empty());
    let event = stream.next_non_heartbeat().expect("an error event");
    assert_eq!(event.event, "error");
    let data: Value = serde_json::from_str(&event.data).expect("JSON data");
    assert_eq!(data["code"], "task_deleted", "{data}");
    assert_eq!(stream.next(), None, "the stream ends after task_deleted");
    assert_error(&get(server.addr, &format!("{TASKS}/del")), 404, "task_not_found");
    assert_error(&request(server.addr, "DELETE", &format!("{TASKS}/del"), &[], None), 404, "task_not_found");
    assert_eq!(request(server.addr, "HEAD", &format!("{PROGRESS}/del"), &[], None).status, 404);
    assert_eq!(json_answer(&get(server.addr, TASKS), 200), json!({ "tasks": [] }));
    create(server.addr, "del");
}

#[test]
fn invalid_task_ids_are_400_invalid_task_id_on_every_route() {
    // Ids outside 1-128 of A-Za-z0-9_-. (or starting with `.`, or percent-encoded) answer 400
    // invalid_task_id on every route, HEAD included; nothing is decoded.
    let server = start_unthrottled_default();
    // A task named like the decoded form must not be reached through the encoded one.
    create(server.addr, "a.b");
    let long = "x".repeat(129);
    let ids = ["a%2Fb", "a%2Eb", ".x", ".", long.as_str(), "a%20b", "%C3%BC", "a:b", "a@b", "a,b", ""];
    for id in ids {
        // (method, path, body)
        let cases: [(&str, String, Option<&str>); 7] = [
            ("GET", format!("{TASKS}/{id}"), None),
            ("PATCH", format!("{TASKS}/{id}"), Some(r#"{"progress":1}"#)),
            ("DELETE", format!("{TASKS}/{id}"), None),
            ("POST", format!("{TASKS}/{id}/complete"), Some(r#"{"result":1}"#)),
            ("POST", format!("{TASKS}/{id}/fail"), Some(r#"{"error":"x"}"#)),
            ("GET", format!("{PROGRESS}/{id}"), None),
            ("HEAD", format!("{PROGRESS}/{id}"), None),
        ];
        for (method, path, body) in &cases {
            let reply = request(server.addr, method, path, &[], *body);
            if *method == "HEAD" {
                assert_eq!(reply.status, 400, "HEAD {path}");
            } else {
                assert_error(&reply, 400, "invalid_task_id");
            }
        }
    }
    let body_ids =
        [json!("a/b"), json!(".x"), json!(long), json!("a b"), json!(""), json!("ü"), json!("a\r\nb"), json!("a%2Fb")];
    for id in body_ids {
        let reply = post(server.addr, TASKS, &json!({ "taskId": id }).to_string());
        assert_error(&reply, 400, "invalid_task_id");
    }
    let task = current(server.addr, "a.b");
    assert_eq!(event_id_of(&task), 1, "the real task was not touched: {task}");
    assert_eq!(json_answer(&get(server.addr, TASKS), 200)["tasks"].as_array().map(Vec::len), Some(1));
}

#[test]
fn task_ids_of_128_allowed_characters_work_on_every_route() {
    // The longest id (128 chars of every allowed kind) works everywhere.
    let server = start_unthrottled_default();
    let id = format!("A_b.c-9{}", "z".repeat(121));
    assert_eq!(id.len(), 128);
    assert_eq!(create(server.addr, &id)["taskId"], id.as_str());
    json_answer(&patch(server.addr, &id, r#"{"progress":5}"#), 200);
    assert_eq!(request(server.addr, "HEAD", &format!("{PROGRESS}/{id}"), &[], None).status, 200);
    let (_stream, snapshot) = follow(server.addr, &id);
    assert_eq!(snapshot["taskId"], id.as_str());
    json_answer(&post(server.addr, &format!("{TASKS}/{id}/complete"), "{}"), 200);
    let reply = request(server.addr, "DELETE", &format!("{TASKS}/{id}"), &[], None);
    assert_eq!(reply.status, 204);
}

#[test]
fn invalid_json_is_400_invalid_json_without_echoing_the_body() {
    // A body that is not JSON answers 400 invalid_json on every route that takes a body, and the
    // message does not repeat what was sent.
    let server = start_unthrottled_default();
    create(server.addr, "j");
    let marker = "MARKER_7f3a";
    let cases: &[(&str, &str, String)] = &[
        ("POST", TASKS, format!(r#"{{"taskId": {marker}"#)),
        ("PATCH", "/api/brand-monitor/tasks/j", format!("{{progress: 1, {marker}}}")),
        ("POST", "/api/brand-monitor/tasks/j/complete", format!(r#"{{"result": }} {marker}"#)),
        ("POST", "/api/brand-monitor/tasks/j/fail", format!("not json {marker}")),
        ("PATCH", "/api/brand-monitor/tasks/j", format!("{{\"stage\":\"x\"}} trailing {marker}")),
        ("PATCH", "/api/brand-monitor/tasks/j", "{\"stage\":\"\u{0}\u{1}\"".to_owned()),
    ];
    for (method, path, body) in cases {
        let reply = request(server.addr, method, path, &[], Some(body));
        let message = assert_error(&reply, 400, "invalid_json");
        assert!(!message.contains(marker), "{method} {path}: the message echoes the body: {message:?}");
    }
    let bytes = b"PATCH /api/brand-monitor/tasks/j HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                  Content-Type: application/json\r\nContent-Length: 4\r\n\r\n\xff\xfe{}";
    let text = raw_exchange(server.addr, bytes);
    assert!(text.starts_with("HTTP/1.1 400 "), "non-UTF-8 body: {text}");
    assert!(text.contains(r#""code":"invalid_json""#), "{text}");
    assert_eq!(event_id_of(&current(server.addr, "j")), 1, "nothing changed");
}

#[test]
fn a_body_of_another_media_type_is_415() {
    // Bodies must be application/json: another Content-Type answers 415 and changes nothing.
    let server = start_unthrottled_default();
    create(server.addr, "m");
    let types = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/json"];
    for content_type in types {
        let headers = [("Content-Type", content_type)];
        let cases: &[(&str, &str, &str)] = &[
            ("POST", TASKS, r#"{"taskId":"m2"}"#),
            ("PATCH", "/api/brand-monitor/tasks/m", r#"{"progress":1}"#),
            ("POST", "/api/brand-monitor/tasks/m/complete", r#"{"result":1}"#),
            ("POST", "/api/brand-monitor/tasks/m/fail", r#"{"error":"x"}"#),
        ];
        for (method, path, body) in cases {
            let reply = request(server.addr, method, path, &headers, Some(body));
            assert_error(&reply, 415, "unsupported_media_type");
        }
    }
    assert_error(&get(server.addr, &format!("{TASKS}/m2")), 404, "task_not_found");
    assert_eq!(event_id_of(&current(server.addr, "m")), 1, "nothing changed");
    let headers = [("Content-Type", "application/json; charset=utf-8")];
    let reply = request(server.addr, "POST", TASKS, &headers, Some(r#"{"taskId":"m3"}"#));
    assert_eq!(reply.status, 201, "parameters of application/json are fine: {}", reply.text());
}

#[test]
fn posts_and_patches_need_application_json_even_when_empty() {
    // Every POST and PATCH without `Content-Type: application/json` answers 415 and changes
    // nothing: no type with a body, no type and no body, an empty form post, a `+json` type.
    // The type's case and parameters do not matter; DELETE and GET need no type.
    let server = start_unthrottled_default();
    create(server.addr, "ct");
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let merge = [("Content-Type", "application/merge-patch+json")];
    let routes: &[(&str, String, &str)] = &[
        ("POST", TASKS.to_owned(), r#"{"taskId":"ct2"}"#),
        ("PATCH", format!("{TASKS}/ct"), r#"{"progress":1}"#),
        ("POST", format!("{TASKS}/ct/complete"), r#"{"result":1}"#),
        ("POST", format!("{TASKS}/ct/fail"), r#"{"error":"x"}"#),
    ];
    for (method, path, body) in routes {
        let what = format!("{method} {path}");
        assert_error(&request_untyped(server.addr, method, path, &[], body), 415, "unsupported_media_type");
        assert_error(&request_untyped(server.addr, method, path, &[], ""), 415, "unsupported_media_type");
        assert_error(&request(server.addr, method, path, &[], None), 415, "unsupported_media_type");
        assert_error(&request(server.addr, method, path, &form, Some("")), 415, "unsupported_media_type");
        assert_error(&request(server.addr, method, path, &form, Some("taskId=ct2")), 415, "unsupported_media_type");
        let reply = request(server.addr, method, path, &merge, Some(body));
        assert_eq!(reply.status, 415, "{what} as merge-patch+json: {}", reply.text());
    }
    assert_error(&get(server.addr, &format!("{TASKS}/ct2")), 404, "task_not_found");
    assert_eq!(event_id_of(&current(server.addr, "ct")), 1, "nothing changed");

    let json = [("Content-Type", "Application/JSON; charset=UTF-8")];
    let reply = request(server.addr, "POST", TASKS, &json, None);
    assert_eq!(reply.status, 201, "an empty typed body is {{}}: {}", reply.text());
    let reply = request(server.addr, "PATCH", &format!("{TASKS}/ct"), &json, Some(r#"{"progress":1}"#));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reply = request(server.addr, "POST", &format!("{TASKS}/ct/complete"), &json, None);
    assert_eq!(json_answer(&reply, 200)["result"], Value::Null, "an empty complete body is a null result");
    assert_eq!(request(server.addr, "DELETE", &format!("{TASKS}/ct"), &[], None).status, 204);
}

#[test]
fn head_progress_gives_the_status_in_headers_and_no_body() {
    // HEAD /progress/{id} answers 200 with X-Task-* headers (the stage percent-encoded UTF-8) and no body bytes.
    let server = start_unthrottled_default();
    create(server.addr, "h1");
    let stage = "Étape 2/3 ✓ 100%";
    let body = json!({ "progress": 12.5, "stage": stage }).to_string();
    let task = json_answer(&patch(server.addr, "h1", &body), 200);
    let got = exchange(
        server.addr,
        b"HEAD /api/brand-monitor/progress/h1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    got.end.expect("the server closes after Connection: close");
    let raw = got.bytes;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head") + 4;
    assert_eq!(&raw[end..], b"", "HEAD has no body");
    let reply = sse_progress::client::read_reply(&mut &raw[..], true).unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-task-status"), Some("running"));
    let progress: f64 = reply.header("x-task-progress").expect("X-Task-Progress").parse().expect("a number");
    assert_eq!(progress, 12.5);
    let encoded = reply.header("x-task-stage").expect("X-Task-Stage");
    assert!(
        encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
        "only unreserved characters and escapes: {encoded}"
    );
    assert_eq!(String::from_utf8(percent_decode(encoded)).as_deref(), Ok(stage), "{encoded}");
    assert_eq!(reply.header("x-task-event-id"), Some("2"));
    let updated = task["updatedAt"].as_u64().unwrap().to_string();
    assert_eq!(reply.header("x-task-updated-at"), Some(updated.as_str()));

    json_answer(&post(server.addr, &format!("{TASKS}/h1/complete"), "{}"), 200);
    let done = request(server.addr, "HEAD", &format!("{PROGRESS}/h1"), &[], None);
    assert_eq!(done.status, 200);
    assert_eq!(done.header("x-task-status"), Some("completed"));
    assert_eq!(done.header("x-task-progress").and_then(|p| p.parse::<f64>().ok()), Some(100.0));
    assert_eq!(done.header("x-task-event-id"), Some("3"));
}

#[test]
fn finished_tasks_are_removed_after_the_retention() {
    // With a zero retention a finished task is soon gone (polled with a deadline); unfinished ones stay.
    let server = start_unthrottled(Config { retention: Duration::ZERO, threads: 2, ..Config::default() });
    create(server.addr, "gone");
    create(server.addr, "stays");
    json_answer(&patch(server.addr, "stays", r#"{"progress":1}"#), 200);
    json_answer(&post(server.addr, &format!("{TASKS}/gone/complete"), "{}"), 200);
    wait_until("the finished task to go", || get(server.addr, &format!("{TASKS}/gone")).status == 404);
    assert_error(&get(server.addr, &format!("{TASKS}/gone")), 404, "task_not_found");
    assert_eq!(current(server.addr, "stays")["status"], "running");
}
