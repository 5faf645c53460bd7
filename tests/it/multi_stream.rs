//! Many tasks on one stream (API.md, "Many tasks on one stream"): `id:`s are the server-wide
//! change numbers and grow strictly along the stream, a reader that keeps up gets every change
//! of every task, a reader that is stuck gets per task only the newest snapshots (in order, the
//! terminal ones included) and costs no frames, resuming skips what did not change, a list is
//! 1 to 100 distinct valid ids, tasks that cannot be followed are refused alone, and the stream
//! ends cleanly when every task is finished.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value, json};
use sse_progress::client::{self, Event, EventReader};
use sse_progress::{Config, TaskUpdate};

use crate::support::*;

/// A progress event as the test reads it.
#[derive(Clone, Debug, PartialEq)]
struct Progress {
    /// The `id:`: the change number.
    seq: u64,
    task: Value,
}

impl Progress {
    fn of(event: &Event) -> Progress {
        assert_eq!(event.event, "progress", "{event:?}");
        let seq =
            event.id.as_deref().and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("a numeric id: {event:?}"));
        Progress { seq, task: serde_json::from_str(&event.data).expect("the task JSON") }
    }

    fn task_id(&self) -> &str {
        self.task["taskId"].as_str().expect("taskId")
    }

    fn event_id(&self) -> u64 {
        self.task["eventId"].as_u64().expect("eventId")
    }
}

/// Opens the stream of `task_ids` with `headers`, checks the 200 and `connected` (which must
/// list the ids), and returns it.
fn open_many(addr: SocketAddr, task_ids: &[&str], headers: &[(&str, &str)]) -> Stream {
    let mut stream = open_target(addr, &many_target(task_ids), headers);
    assert_eq!(stream.status, 200, "{:?}", stream.headers);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    let connected = stream.next().expect("connected");
    assert_eq!(connected.event, "connected");
    let data: Value = serde_json::from_str(&connected.data).unwrap();
    assert_eq!(data["taskIds"], json!(task_ids), "{data}");
    assert!(data["connectionId"].is_string() && data["serverTime"].is_u64(), "{data}");
    stream
}

/// The next event that is not a heartbeat, as progress.
fn next_progress(stream: &mut Stream) -> Progress {
    Progress::of(&stream.next_non_heartbeat().expect("a progress event"))
}

/// Every event of the stream to its clean end (heartbeats left out).
fn rest_of(stream: &mut Stream) -> Vec<Event> {
    std::iter::from_fn(|| stream.next_non_heartbeat()).collect()
}

fn assert_strictly_increasing(seqs: impl IntoIterator<Item = u64>) {
    let seqs: Vec<u64> = seqs.into_iter().collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "ids grow strictly: {seqs:?}");
}

#[test]
fn ids_grow_along_the_stream_and_a_reader_that_keeps_up_gets_every_change() {
    // Shows that while 4 threads change 8 tasks at once, the stream's ids only grow, every
    // change of every task arrives exactly once, and the stream ends after the last terminal.
    const TASKS: usize = 8;
    const ROUNDS: u64 = 60;
    let server = start_default();
    let ids = server.create_tasks("many-", TASKS);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut stream = open_many(server.addr, &refs, &[]);
    let received = Arc::new(AtomicU64::new(0));
    let reader = {
        let received = Arc::clone(&received);
        std::thread::spawn(move || {
            let mut got = Vec::new();
            while let Some(event) = stream.next_non_heartbeat() {
                got.push(Progress::of(&event));
                received.fetch_add(1, Ordering::SeqCst);
            }
            got
        })
    };
    let produced = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..4)
        .map(|t| {
            let (tracker, ids, produced, received) =
                (server.tracker.clone(), ids.clone(), Arc::clone(&produced), Arc::clone(&received));
            std::thread::spawn(move || {
                let mine: Vec<&String> = ids.iter().skip(t).step_by(4).collect();
                for round in 1..=ROUNDS {
                    for id in &mine {
                        // Keep the reader within 100 events: a reader that keeps up is the premise.
                        let deadline = Instant::now() + TIMEOUT;
                        while produced.load(Ordering::SeqCst) > received.load(Ordering::SeqCst) + 100 {
                            assert!(Instant::now() < deadline, "the reader stopped reading");
                            std::thread::yield_now();
                        }
                        tracker
                            .update_task(id, TaskUpdate::running(round as f64).message(format!("{t}/{round}")))
                            .unwrap();
                        produced.fetch_add(1, Ordering::SeqCst);
                    }
                }
                for id in mine {
                    tracker.complete_task(id, json!({ "by": t })).unwrap();
                }
            })
        })
        .collect();
    producers.into_iter().for_each(|p| p.join().unwrap());
    let got = reader.join().unwrap();
    assert_strictly_increasing(got.iter().map(|p| p.seq));
    let mut per_task: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for p in &got {
        per_task.entry(p.task_id().to_owned()).or_default().push(p.event_id());
    }
    let every: Vec<u64> = (1..=ROUNDS + 2).collect();
    for id in &ids {
        assert_eq!(per_task[id], every, "every change of {id}, once, in order");
    }
    let last = got.last().unwrap();
    assert_eq!(last.task["status"], "completed");
    assert_eq!(got.len(), TASKS * every.len());
}

#[test]
fn a_stuck_reader_gets_the_newest_snapshot_of_each_task_in_order_and_costs_no_frames() {
    // Shows that a stream whose client does not read while 3,000 updates of 4 KB go by over 20
    // tasks makes no topic keep frames for it, and when it reads gets, in strictly growing ids,
    // per task some snapshots ending with the terminal one, far fewer than were published.
    const TASKS: usize = 20;
    const UPDATES: usize = 3000;
    let server = start_server(Config { connect_rate_per_client: 0, threads: 2, ..Config::default() });
    let ids = server.create_tasks("stuck-", TASKS);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let topics: Vec<_> = ids.iter().map(|id| server.tracker.topic(id).unwrap()).collect();
    let stuck = stuck_stream(server.addr, &many_target(&refs));
    wait_until("the stuck stream to subscribe", || topics.iter().all(|t| t.viewers() == 1));
    server.flood(&ids, UPDATES);
    let kept: usize = topics.iter().map(|t| t.kept()).sum();
    assert!(kept <= 2 * TASKS, "the topics keep {kept} frames for a stream that takes none");
    for id in &ids {
        server.tracker.complete_task(id, json!("done")).unwrap();
    }
    assert_eq!(health(server.addr)["connectionErrors"], 0, "stuck, not failed");

    let mut events = events_of(stuck);
    assert_eq!(events.next_event().unwrap().expect("connected").event, "connected");
    let mut got = Vec::new();
    while let Some(event) = events.next_event().expect("events, then the end of the stream") {
        if event.event != "heartbeat" {
            got.push(Progress::of(&event));
        }
    }
    assert_strictly_increasing(got.iter().map(|p| p.seq));
    let mut last: BTreeMap<&str, &Progress> = BTreeMap::new();
    for p in &got {
        if let Some(before) = last.insert(p.task_id(), p) {
            assert!(before.event_id() < p.event_id(), "a task's snapshots never go back");
        }
    }
    assert_eq!(last.len(), TASKS, "every task is there");
    assert!(last.values().all(|p| p.task["status"] == "completed"), "each ends with its terminal snapshot");
    assert!(got.len() < UPDATES / 2, "{} events of {UPDATES}: the stuck reader skipped", got.len());
    eprintln!("the stuck reader received {} progress events of {}", got.len(), UPDATES + 2 * TASKS);
}

#[test]
fn resuming_sends_only_the_tasks_changed_after_the_point() {
    // Shows a resume with `Last-Event-ID: N` gets snapshots only of the tasks changed after N,
    // then live changes; an N the server cannot place gets every snapshot, in change order.
    let server = start_default();
    for id in ["ra", "rb", "rc"] {
        create(server.addr, id); // changes 1, 2, 3
    }
    update(server.addr, "ra", json!({"progress": 10})); // 4
    let three = server.seq(3).to_string();
    let mut stream = open_many(server.addr, &["ra", "rb", "rc"], &[("Last-Event-ID", &three)]);
    let first = next_progress(&mut stream);
    assert_eq!((first.seq, first.task_id()), (server.seq(4), "ra"));
    update(server.addr, "rc", json!({"progress": 5})); // 5
    let next = next_progress(&mut stream);
    assert_eq!((next.seq, next.task_id()), (server.seq(5), "rc"), "no snapshot of rb or rc before it");

    let (never_issued, four) = (server.seq(6000).to_string(), server.seq(4).to_string());
    let (plus, zero) = (format!("+{four}"), format!("0{four}"));
    for unplaceable in ["abc", &never_issued, &plus, &zero, "-1"] {
        let mut stream = open_many(server.addr, &["ra", "rb", "rc"], &[("Last-Event-ID", unplaceable)]);
        let snapshots: Vec<(u64, String)> =
            (0..3).map(|_| next_progress(&mut stream)).map(|p| (p.seq, p.task_id().to_owned())).collect();
        let want = [(server.seq(2), "rb".into()), (server.seq(4), "ra".into()), (server.seq(5), "rc".into())];
        assert_eq!(snapshots, want, "{unplaceable:?}");
    }
}

#[test]
fn a_resume_after_every_task_ended_unchanged_is_204() {
    // Shows 204 when every listed task is terminal and none changed after the resume point, and
    // the terminal snapshot then the end when one did.
    let server = start_default();
    create(server.addr, "ea"); // 1
    create(server.addr, "eb"); // 2
    complete(server.addr, "ea", json!(1)); // 3
    let eb = complete(server.addr, "eb", json!(2)); // 4
    let target = many_target(&["ea", "eb"]);
    let reply = request(server.addr, "GET", &target, &[("Last-Event-ID", &server.seq(4).to_string())], None);
    assert_eq!(reply.status, 204, "{}", reply.text());
    let mut stream = open_many(server.addr, &["ea", "eb"], &[("Last-Event-ID", &server.seq(3).to_string())]);
    let events = rest_of(&mut stream);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(Progress::of(&events[0]), Progress { seq: server.seq(4), task: eb });
}

#[test]
fn every_bad_list_is_400() {
    // Shows the list must be 1 to 100 distinct valid ids; anything else is a 400 error answer.
    let server = start_unthrottled_default();
    create(server.addr, "ok");
    let hundred_and_one: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    let too_many = format!("{PROGRESS}?tasks={}", hundred_and_one.join(","));
    let cases = [
        (format!("{PROGRESS}?tasks="), "no id"),
        (too_many, "101 ids"),
        (format!("{PROGRESS}?tasks=ok,ok"), "a duplicate"),
        (format!("{PROGRESS}?tasks=ok,a%2Fb"), "a bad id"),
        (format!("{PROGRESS}?tasks=ok,,ok2"), "an empty element"),
        (format!("{PROGRESS}?tasks=ok,"), "a trailing comma"),
        (format!("{PROGRESS}?tasks=%ZZ"), "a bad escape"),
    ];
    for (target, what) in cases {
        let reply = request(server.addr, "GET", &target, &[], None);
        let (code, _) = assert_error_shape(&reply, 400);
        assert!(code == "invalid_task_id" || code == "bad_request", "{what}: {code}");
    }
    let hundred: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
    let mut stream = open_target(server.addr, &format!("{PROGRESS}?tasks=ok,{}", hundred[1..].join(",")), &[]);
    assert_eq!(stream.status, 200, "100 ids, one known");
    drop(stream.next());
}

#[test]
fn a_list_sent_with_percent_encoded_commas_works() {
    // Shows `URLSearchParams`' `%2C` separates ids like a comma: the value is decoded, then split.
    let server = start_default();
    create(server.addr, "pa");
    create(server.addr, "pb");
    let mut stream = open_target(server.addr, &format!("{PROGRESS}?tasks=pa%2Cpb"), &[]);
    assert_eq!(stream.status, 200);
    let connected: Value = serde_json::from_str(&stream.next().unwrap().data).unwrap();
    assert_eq!(connected["taskIds"], json!(["pa", "pb"]));
    let ids: Vec<String> = (0..2).map(|_| next_progress(&mut stream).task_id().to_owned()).collect();
    assert_eq!(ids, ["pa", "pb"]);
}

#[test]
fn an_unknown_or_deleted_task_gets_its_error_and_the_stream_goes_on() {
    // Shows `not_found` for an id that does not exist, `task_deleted` for one deleted later, each
    // naming its task, while the others go on; and 404 when no task of the list exists.
    let server = start_default();
    create(server.addr, "da"); // 1
    create(server.addr, "db"); // 2
    let mut stream = open_many(server.addr, &["da", "ghost", "db"], &[]);
    let error = stream.next().expect("the refusal");
    assert_eq!(error.event, "error");
    assert_eq!(error.id, None);
    let data: Value = serde_json::from_str(&error.data).unwrap();
    assert_eq!((data["code"].as_str(), data["taskId"].as_str()), (Some("not_found"), Some("ghost")), "{data}");
    assert!(data["message"].is_string());
    assert_eq!(next_progress(&mut stream).task_id(), "da");
    assert_eq!(next_progress(&mut stream).task_id(), "db");
    call(server.addr, "DELETE", &format!("{TASKS}/da"), None);
    let deleted = stream.next_non_heartbeat().expect("task_deleted");
    assert_eq!((deleted.event.as_str(), deleted.id.as_deref()), ("error", None));
    let data: Value = serde_json::from_str(&deleted.data).unwrap();
    assert_eq!((data["code"].as_str(), data["taskId"].as_str()), (Some("task_deleted"), Some("da")), "{data}");
    let changed = update(server.addr, "db", json!({"progress": 40}));
    assert_eq!(next_progress(&mut stream).task, changed, "the stream goes on for db");
    let done = complete(server.addr, "db", json!(null));
    assert_eq!(next_progress(&mut stream).task, done);
    assert_eq!(stream.next(), None, "every task is finished for this stream: it ends");

    let reply = request(server.addr, "GET", &many_target(&["ghost", "phantom"]), &[], None);
    assert_error(&reply, 404, "task_not_found");
}

/// An unthrottled server that requires subscribe tokens (which need a publish token).
fn start_with_subscribe_tokens() -> TestServer {
    start_unthrottled(Config {
        require_subscribe_token: true,
        publish_token: Some("pub".into()),
        threads: 2,
        ..Config::default()
    })
}

/// Creates `id` with the publish token; its subscribe token.
fn create_with_token(addr: SocketAddr, id: &str) -> String {
    let reply =
        request(addr, "POST", TASKS, &[("Authorization", "Bearer pub")], Some(&json!({ "taskId": id }).to_string()));
    json_answer(&reply, 201)["subscribeToken"].as_str().expect("a subscribeToken").to_owned()
}

#[test]
fn with_subscribe_tokens_each_task_is_admitted_or_refused_alone() {
    // Shows `tokens=` in list order: a missing token is `token_required`, a wrong one and an
    // unknown task alike `token_invalid`, each alone on a stream that goes on for the admitted.
    let server = start_with_subscribe_tokens();
    let ta = create_with_token(server.addr, "ta");
    create_with_token(server.addr, "tb");
    create_with_token(server.addr, "tc");
    let target = format!("{}&tokens={ta},wrong,,wrong", many_target(&["ta", "tb", "tc", "ghost"]));
    let mut stream = open_target(server.addr, &target, &[]);
    assert_eq!(stream.status, 200);
    assert_eq!(stream.next().unwrap().event, "connected");
    let mut refused = BTreeMap::new();
    for _ in 0..3 {
        let event = stream.next().unwrap();
        assert_eq!(event.event, "error", "{event:?}");
        let data: Value = serde_json::from_str(&event.data).unwrap();
        refused.insert(data["taskId"].as_str().unwrap().to_owned(), data["code"].as_str().unwrap().to_owned());
    }
    let want: BTreeMap<String, String> =
        [("tb", "token_invalid"), ("tc", "token_required"), ("ghost", "token_invalid")]
            .map(|(t, c)| (t.to_owned(), c.to_owned()))
            .into();
    assert_eq!(refused, want);
    assert_eq!(next_progress(&mut stream).task_id(), "ta", "the admitted task streams");
}

#[test]
fn with_subscribe_tokens_none_admitted_is_401_or_403_and_an_unknown_task_looks_like_a_wrong_token() {
    // Shows the answers when no task is admitted: no tokens 401, a wrong one 403, and a list of
    // unknown tasks answered exactly like a list with wrong tokens (no existence oracle).
    let server = start_with_subscribe_tokens();
    create_with_token(server.addr, "known");
    let no_tokens = request(server.addr, "GET", &many_target(&["known"]), &[], None);
    assert_error(&no_tokens, 401, "token_required");
    let wrong = request(server.addr, "GET", &format!("{}&tokens=nope", many_target(&["known"])), &[], None);
    let unknown = request(server.addr, "GET", &format!("{}&tokens=nope", many_target(&["unknown"])), &[], None);
    assert_error(&wrong, 403, "token_invalid");
    assert_eq!(
        (wrong.status, wrong.headers.clone(), wrong.body.clone()),
        (unknown.status, unknown.headers, unknown.body)
    );
}

#[test]
fn a_hundred_server_made_ids_with_their_tokens_fit_and_a_list_too_long_for_the_head_is_431() {
    // Shows the real limit of a list, the 8 KiB request head: 100 ids the server made, with
    // their tokens, commas sent as `%2C`, are accepted; 100 ids of 128 characters (a 12,933-byte
    // target) get 431 in the JSON error shape, saying the list is what must fit.
    let server = start_with_subscribe_tokens();
    let (mut ids, mut tokens) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let reply = request(server.addr, "POST", TASKS, &[("Authorization", "Bearer pub")], Some("{}"));
        let made = json_answer(&reply, 201);
        ids.push(made["taskId"].as_str().expect("a taskId").to_owned());
        tokens.push(made["subscribeToken"].as_str().expect("a subscribeToken").to_owned());
    }
    let target = format!("{PROGRESS}?tasks={}&tokens={}", ids.join("%2C"), tokens.join("%2C"));
    assert!(get_request(&target, &[]).len() > 7000, "the premise: a list near the limit");
    let mut stream = open_target(server.addr, &target, &[]);
    assert_eq!(stream.status, 200, "{:?}", stream.headers);
    let connected: Value = serde_json::from_str(&stream.next().expect("connected").data).unwrap();
    assert_eq!(connected["taskIds"], json!(ids));
    assert_eq!(next_progress(&mut stream).task_id(), ids[0], "no task refused: the first snapshot");

    let long: Vec<String> = (0..100).map(|i| format!("{i:03}{}", "x".repeat(125))).collect();
    let refs: Vec<&str> = long.iter().map(String::as_str).collect();
    assert_eq!(many_target(&refs).len(), 12_933);
    let reply = request(server.addr, "GET", &many_target(&refs), &[], None);
    let message = assert_error(&reply, 431, "headers_too_large");
    assert!(message.contains("`tasks`"), "the answer says the list must fit: {message}");
}

#[test]
fn the_stream_ends_with_the_chunked_terminator_and_the_connection_goes_on() {
    // Shows the end of a stream of many tasks once all are finished: the last terminal event,
    // the zero-size chunk, then the same connection answering the next request.
    let server = start_default();
    create(server.addr, "ka");
    create(server.addr, "kb");
    let mut raw = RawStream::open(server.addr, &get_request(&many_target(&["ka", "kb"]), &[]));
    assert!(raw.head.starts_with("HTTP/1.1 200 OK\r\n"), "{:?}", raw.head);
    let at = raw.wait_for(0, "\"taskId\":\"ka\"");
    raw.wait_for(at, "\"taskId\":\"kb\"");
    complete(server.addr, "ka", json!(1));
    complete(server.addr, "kb", json!(2));
    raw.read_to_end();
    assert!(raw.wire.ends_with(b"\n\n\r\n0\r\n\r\n"), "{:?}", String::from_utf8_lossy(&raw.wire));
    let last = format!("id: {}\n", server.seq(4));
    assert!(raw.text().contains(&last), "the last change's number: {:?}", raw.text());
    let mut reader = raw.reader;
    let get = "GET /api/brand-monitor/tasks/kb HTTP/1.1\r\nHost: localhost\r\n\r\n";
    reader.get_mut().write_all(get.as_bytes()).unwrap();
    let reply = client::read_reply(&mut reader, false).expect("a reply on the kept-alive connection");
    assert_eq!(json_answer(&reply, 200)["status"], "completed");
}

#[test]
fn head_on_the_route_of_many_tasks_is_405() {
    // Shows the route takes GET (and OPTIONS) only: HEAD is 405 with `Allow`.
    let server = start_default();
    create(server.addr, "h");
    let reply = request(server.addr, "HEAD", &many_target(&["h"]), &[], None);
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET, OPTIONS"));
}

#[test]
fn an_http_1_0_stream_of_many_tasks_is_not_chunked_and_closes_at_the_end() {
    // Shows the two-part events of a stream of many tasks written bare for HTTP/1.0: whole
    // events with the change number as id, and the close as the end.
    let server = start_default();
    create(server.addr, "oa"); // 1
    create(server.addr, "ob"); // 2
    let request = format!("GET {} HTTP/1.0\r\nHost: localhost\r\n\r\n", many_target(&["oa", "ob"]));
    let mut raw = RawStream::open(server.addr, &request);
    assert!(raw.head.contains("Connection: close\r\n") && !raw.chunked, "{:?}", raw.head);
    raw.wait_for(0, "\"taskId\":\"ob\"");
    let a = complete(server.addr, "oa", json!(1)); // 3
    let b = complete(server.addr, "ob", json!(2)); // 4
    raw.read_to_end();
    assert!(raw.body.ends_with(b"\n\n"), "{:?}", raw.text());
    let mut events = EventReader::new(std::io::Cursor::new(raw.body.clone()), false);
    let all: Vec<Event> = std::iter::from_fn(|| events.next_event().unwrap()).collect();
    let last: Vec<Progress> = all[all.len() - 2..].iter().map(Progress::of).collect();
    assert_eq!(last, [Progress { seq: server.seq(3), task: a }, Progress { seq: server.seq(4), task: b }]);
}
