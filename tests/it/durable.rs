//! Durable tasks (API.md, "Durable tasks"): with `--data-dir`, a `2xx` means the change is on
//! disk, so after a `kill -9` and a restart on the same directory every acknowledged change is
//! there with the same `eventId`s, no viewer ever saw a change the restart forgets, and viewers
//! resume with `Last-Event-ID` as if nothing happened. Real processes, real files.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sse_progress::client;

use crate::support::*;

/// A directory of its own under the system's temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("sse-durable-{}-{name}-{}", std::process::id(), fastrand::u64(..)));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `serve --data-dir DIR ARGS` with `env`.
pub fn serve_durable(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Binary {
    let args = [&["--data-dir", dir.arg()], args].concat();
    Binary::serve_with_env(&args, env)
}

/// One request that may fail (the server may be dying): the status and JSON body, if a whole
/// answer came.
pub fn try_call(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Option<(u16, Value)> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(text.as_bytes()).ok()?;
    let reply = client::read_reply(&mut BufReader::new(stream), method == "HEAD").ok()?;
    let value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    Some((reply.status, value))
}

/// The task's JSON after a restart (it must be there).
fn task_of(addr: SocketAddr, id: &str) -> Value {
    let (status, task) = try_call(addr, "GET", &format!("{TASKS}/{id}"), None).expect("an answer");
    assert_eq!(status, 200, "{id}: {task}");
    task
}

/// One producer's kept-alive connection.
pub struct Producer(Option<BufReader<TcpStream>>);

impl Producer {
    pub fn new(addr: SocketAddr) -> Producer {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).ok();
        Producer(stream.map(|s| {
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            BufReader::new(s)
        }))
    }

    /// `method path body` on the connection: the status and JSON answer, or `None` once the
    /// server is gone.
    pub fn call(&mut self, method: &str, path: &str, body: &Value) -> Option<(u16, Value)> {
        let reader = self.0.as_mut()?;
        let body = body.to_string();
        let text = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let answer = reader
            .get_mut()
            .write_all(text.as_bytes())
            .ok()
            .and_then(|()| client::read_reply(reader, false).ok())
            .map(|reply| (reply.status, serde_json::from_slice(&reply.body).unwrap_or(Value::Null)));
        if answer.is_none() {
            self.0 = None;
        }
        answer
    }
}

/// Updates task `id` with `message` = its next `eventId`, from `acked` on, as fast as the server
/// answers, until `stop` or a failure; returns the last acknowledged `eventId`.
pub fn produce(addr: SocketAddr, id: &str, mut acked: u64, stop: &AtomicBool) -> u64 {
    let mut producer = Producer::new(addr);
    while !stop.load(Ordering::Relaxed) {
        let next = acked + 1;
        let body = json!({ "message": next.to_string() });
        match producer.call("PATCH", &format!("{TASKS}/{id}"), &body) {
            Some((200, task)) => {
                assert_eq!(task["eventId"], next, "{id}: every acknowledged change takes the next eventId");
                acked = next;
            }
            Some((status, body)) => panic!("{id}: {status} {body}"),
            None => break,
        }
    }
    acked
}

/// A viewer of task `id` until its stream ends: the highest `eventId` it was shown.
fn watch(addr: SocketAddr, id: &str) -> std::thread::JoinHandle<u64> {
    let mut stream = open_stream(addr, id, &[]);
    assert_eq!(stream.status, 200);
    std::thread::spawn(move || {
        let mut seen = 0;
        while let Ok(Some(event)) = stream.events.next_event() {
            if let Some(id) = event.id.and_then(|id| id.parse::<u64>().ok()) {
                seen = seen.max(id);
            }
        }
        seen
    })
}

/// Checks each task after a restart against what its producer was acknowledged and what its
/// viewer saw; returns the restored `eventId`s.
pub fn check_restored(addr: SocketAddr, ids: &[String], acked: &[u64], seen: &[u64]) -> Vec<u64> {
    ids.iter()
        .zip(acked.iter().zip(seen))
        .map(|(id, (&acked, &seen))| {
            let task = task_of(addr, id);
            let event = task["eventId"].as_u64().unwrap();
            // A change in flight at the kill may be on disk without its answer having arrived.
            assert!(event == acked || event == acked + 1, "{id}: acknowledged {acked}, restored {event}");
            assert!(seen <= event, "{id}: a viewer saw {seen}, the restart has {event}");
            if event > 1 {
                assert_eq!(task["message"], event.to_string(), "{id}: the state is that of change {event}");
            }
            event
        })
        .collect()
}

#[test]
fn every_acknowledged_change_survives_kill_9_at_random_moments() {
    // Shows, over 20 random kill points (SSE_PROGRESS_CRASH_ROUNDS for more): every change a
    // producer got a 2xx for is there after the restart, with its own state, none duplicated,
    // no viewer was shown a change the restart lost, and eventIds go on from there.
    let rounds: usize = std::env::var("SSE_PROGRESS_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let dir = TempDir::new("crash");
    let ids: Vec<String> = (0..4).map(|i| format!("p{i}")).collect();
    let mut server = serve_durable(&dir, &[], &[]);
    for id in &ids {
        create(server.addr, id);
    }
    let mut acked = vec![1; ids.len()];
    let mut total = 0;
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let viewers: Vec<_> = ids.iter().map(|id| watch(server.addr, id)).collect();
        let producers: Vec<_> = ids
            .iter()
            .zip(&acked)
            .map(|(id, &from)| {
                let (addr, id, stop) = (server.addr, id.clone(), Arc::clone(&stop));
                std::thread::spawn(move || produce(addr, &id, from, &stop))
            })
            .collect();
        // The random moment of the kill: timing is the point here, nothing waits on it.
        std::thread::sleep(Duration::from_millis(fastrand::u64(5..150)));
        server.signal("KILL");
        server.wait_exit(TIMEOUT);
        stop.store(true, Ordering::Relaxed);
        let now: Vec<u64> = producers.into_iter().map(|p| p.join().unwrap()).collect();
        let seen: Vec<u64> = viewers.into_iter().map(|v| v.join().unwrap()).collect();
        total += now.iter().zip(&acked).map(|(n, a)| n - a).sum::<u64>();
        server = serve_durable(&dir, &[], &[]);
        acked = check_restored(server.addr, &ids, &now, &seen);
        let _ = round;
    }
    for (id, &event) in ids.iter().zip(&acked) {
        let task = update(server.addr, id, json!({ "message": "after" }));
        assert_eq!(task["eventId"], event + 1, "{id}: eventIds go on after the restarts");
    }
    eprintln!("durable crash test: {rounds} kill -9 rounds, {total} acknowledged changes, all restored");
}

/// The events of a stream opened with `Last-Event-ID: last` up to a marker change made after the
/// opening (which shows nothing else is coming).
fn resumed(addr: SocketAddr, id: &str, last: u64) -> (Vec<u64>, u64) {
    let mut stream = open_stream(addr, id, &[("Last-Event-ID", &last.to_string())]);
    assert_eq!(stream.status, 200);
    assert_eq!(stream.next().expect("connected").event, "connected");
    let marker = update(addr, id, json!({ "message": "marker" }))["eventId"].as_u64().unwrap();
    let mut got = Vec::new();
    loop {
        let event = stream.next_non_heartbeat().expect("an event");
        let event_id: u64 = event.id.unwrap().parse().unwrap();
        if event_id == marker {
            return (got, marker);
        }
        got.push(event_id);
    }
}

#[test]
fn a_viewer_resumes_across_kill_9_with_exactly_what_it_missed() {
    // Shows a viewer connected before a kill -9 resumes after the restart with Last-Event-ID:
    // it gets the newest state when it missed changes, nothing when it had everything, and 204
    // after the terminal snapshot.
    let dir = TempDir::new("resume");
    let server = serve_durable(&dir, &[], &[]);
    create(server.addr, "t");
    let mut viewer = open_stream(server.addr, "t", &[]);
    assert_eq!(viewer.next().expect("connected").event, "connected");
    assert_eq!(viewer.next_non_heartbeat().unwrap().id.as_deref(), Some("1"));
    update(server.addr, "t", json!({ "progress": 10 }));
    assert_eq!(viewer.next_non_heartbeat().unwrap().id.as_deref(), Some("2"));
    // Missed while the viewer was away: 3 and 4; then the server dies.
    drop(viewer);
    update(server.addr, "t", json!({ "progress": 20 }));
    update(server.addr, "t", json!({ "progress": 30 }));
    server.signal("KILL");
    let mut server = server;
    server.wait_exit(TIMEOUT);

    let server = serve_durable(&dir, &[], &[]);
    let (got, marker) = resumed(server.addr, "t", 2);
    assert_eq!(got, [4], "the newest state of what it missed, with its eventId");
    assert_eq!(task_of(server.addr, "t")["progress"], 30.0);
    let (got, _) = resumed(server.addr, "t", marker);
    assert_eq!(got, Vec::<u64>::new(), "nothing when it had everything");
    let done = complete(server.addr, "t", json!({"ok": true}))["eventId"].as_u64().unwrap();
    server.signal("KILL");
    let mut server = server;
    server.wait_exit(TIMEOUT);

    let server = serve_durable(&dir, &[], &[]);
    let stream = open_stream(server.addr, "t", &[("Last-Event-ID", &done.to_string())]);
    assert_eq!(stream.status, 204, "a finished task's viewer is told to stop");
}

#[test]
fn subscribe_tokens_and_the_change_sequence_survive_a_restart() {
    // Shows the subscribe token a task was made with still admits its viewers after a restart,
    // another token does not, and the change sequence (the ids of the stream of all tasks)
    // goes on above where it stood.
    let dir = TempDir::new("tokens");
    let args = ["--require-subscribe-token", "--publish-token", "pt"];
    let auth = [("Authorization", "Bearer pt")];
    let server = serve_durable(&dir, &args, &[]);
    let reply = request(server.addr, "POST", TASKS, &auth, Some(r#"{"taskId":"s"}"#));
    let token = json_answer(&reply, 201)["subscribeToken"].as_str().unwrap().to_owned();
    request(server.addr, "PATCH", &format!("{TASKS}/s"), &auth, Some(r#"{"progress":5}"#));
    let mut all = open_target(server.addr, &format!("{PROGRESS}?tasks=s&tokens={token}"), &[]);
    all.next().expect("connected");
    let before: u64 = all.next_non_heartbeat().unwrap().id.unwrap().parse().unwrap();
    drop(all);
    server.signal("KILL");
    let mut server = server;
    server.wait_exit(TIMEOUT);

    let server = serve_durable(&dir, &args, &[]);
    let mut stream = open_stream(server.addr, &format!("s?token={token}"), &[]);
    assert_eq!(stream.status, 200, "the stored token admits");
    assert_eq!(stream.next().expect("connected").event, "connected");
    assert_eq!(stream.next_non_heartbeat().unwrap().id.as_deref(), Some("2"));
    let wrong = open_stream(server.addr, "s?token=00000000000000000000000000000000", &[]);
    assert!(wrong.status == 401 || wrong.status == 403, "{}", wrong.status);
    request(server.addr, "PATCH", &format!("{TASKS}/s"), &auth, Some(r#"{"progress":6}"#));
    let mut all = open_target(server.addr, &format!("{PROGRESS}?tasks=s&tokens={token}"), &[]);
    all.next().expect("connected");
    let after: u64 = all.next_non_heartbeat().unwrap().id.unwrap().parse().unwrap();
    assert!(after > before, "the change sequence goes on: {before} then {after}");
}
