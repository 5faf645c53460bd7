//! `bench --head-flood N`: a producer's PATCH round trip while two connections pipeline HEADs of
//! a task with a large result.
//!
//! This is the case of issue 8 where one client stalls everyone else on its executor thread:
//! pipelined requests are served from bytes already read, so a request loop that never yields
//! between them never lets the thread's other connections (a producer's PATCH), accepting or the
//! timers run; and a HEAD that copies the whole task under the tracker's lock makes each of them
//! costly and holds up every change. 150 pipelined HEADs of a task with a 1 MiB result once
//! delayed a PATCH by up to 2 s. What a user feels is the producer's round trip, so that is the
//! figure; the HEADs answered show that the flood really ran alongside.
//!
//! Each flood connection writes a batch of N HEADs at once and reads the N answers before it
//! writes the next batch. A reader thread per connection takes the answers while its writer
//! waits, so neither side of the socket can fill up while the other waits for it.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use super::percentile;
use sse_progress::client::{Client, Url};

/// Connections that flood.
const FLOOD_CONNECTIONS: usize = 2;
/// The large task's result: just under the 1 MiB cap on a result and on a request body.
const RESULT_BYTES: usize = (1 << 20) - 1024;
/// Longest wait for any one answer before the run is called failed.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// What to run.
#[derive(Clone, Debug)]
pub struct Flood {
    /// The server.
    pub url: Url,
    /// Publish token.
    pub token: Option<String>,
    /// HEADs in flight on each flood connection.
    pub depth: usize,
    /// PATCHes to publish.
    pub updates: usize,
    /// Between PATCHes.
    pub interval: Duration,
    /// The running task PATCHed; the large one is `<task>-large`.
    pub task: String,
}

/// The measured figures.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FloodReport {
    /// Always `head-flood`.
    pub mode: String,
    /// Connections that flooded.
    pub flood_connections: usize,
    /// HEADs in flight on each.
    pub pipelined_heads: usize,
    /// Bytes of the large task's result.
    pub result_bytes: usize,
    /// PATCHes published (and answered).
    pub updates: usize,
    /// PATCH round trip from when it was due, µs.
    pub patch_p50_us: u64,
    /// PATCH round trip from when it was due, µs.
    pub patch_p99_us: u64,
    /// PATCH round trip from when it was due, µs.
    pub patch_max_us: u64,
    /// HEADs answered while the PATCHes ran.
    pub heads_answered: u64,
    /// Those per second.
    pub head_rate_per_sec: f64,
    /// What went wrong on the flood connections, if anything.
    pub errors: Vec<String>,
}

/// What the flood threads share.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    answered: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    fn fail(&self, why: String) {
        self.errors.lock().unwrap_or_else(|e| e.into_inner()).push(why);
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Runs `bench --head-flood` and prints the report; returns the exit code (1 when the flood met
/// an error, 2 when the run could not be made).
pub fn main(flood: &Flood, json: bool) -> i32 {
    match run(flood) {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string(&report).expect("a report serializes"));
            } else {
                print_table(&report);
            }
            i32::from(!report.errors.is_empty())
        }
        Err(e) => {
            eprintln!("sse-progress bench: {e}");
            2
        }
    }
}

/// Runs one measurement: sets up both tasks, floods, publishes, stops the flood, cleans up.
pub fn run(flood: &Flood) -> Result<FloodReport, String> {
    let large = format!("{}-large", flood.task);
    let mut producer = Client::connect(&flood.url, flood.token.clone(), ANSWER_TIMEOUT)
        .map_err(|e| format!("cannot connect to {}: {e}", flood.url.authority))?;
    let subscribe_token = prepare(&mut producer, flood, &large)?;
    let query = subscribe_token.map(|t| format!("?token={t}")).unwrap_or_default();
    let head = format!(
        "HEAD {}/api/brand-monitor/progress/{large}{query} HTTP/1.1\r\nHost: {}\r\n\r\n",
        flood.url.base, flood.url.authority
    );
    let batch = head.repeat(flood.depth).into_bytes();
    let shared = Shared::default();
    let result = std::thread::scope(|scope| {
        let mut warmed = Vec::new();
        for _ in 0..FLOOD_CONNECTIONS {
            let (ready, warm) = mpsc::channel();
            warmed.push(warm);
            let (shared, batch, flood) = (&shared, &batch, flood);
            scope.spawn(move || {
                if let Err(e) = flood_connection(flood, batch, shared, ready) {
                    shared.fail(e);
                }
            });
        }
        // The flood is on once every connection has had a batch answered.
        for warm in warmed {
            if warm.recv_timeout(ANSWER_TIMEOUT).is_err() {
                shared.stop.store(true, Ordering::SeqCst);
                let errors = shared.errors.lock().unwrap_or_else(|e| e.into_inner()).join("; ");
                return Err(format!("the flood did not start: {errors}"));
            }
        }
        let before = (shared.answered.load(Ordering::SeqCst), Instant::now());
        let round_trips = publish(&mut producer, flood);
        let heads = shared.answered.load(Ordering::SeqCst) - before.0;
        let seconds = before.1.elapsed().as_secs_f64();
        shared.stop.store(true, Ordering::SeqCst);
        round_trips.map(|r| (r, heads, seconds))
    });
    for task in [&flood.task, &large] {
        let _ = producer.request("DELETE", &format!("/api/brand-monitor/tasks/{task}"), None);
    }
    let (mut round_trips, heads, seconds) = result?;
    round_trips.sort_unstable();
    Ok(FloodReport {
        mode: "head-flood".into(),
        flood_connections: FLOOD_CONNECTIONS,
        pipelined_heads: flood.depth,
        result_bytes: RESULT_BYTES,
        updates: round_trips.len(),
        patch_p50_us: percentile(&round_trips, 0.5),
        patch_p99_us: percentile(&round_trips, 0.99),
        patch_max_us: round_trips.last().copied().unwrap_or(0),
        heads_answered: heads,
        head_rate_per_sec: heads as f64 / seconds.max(1e-9),
        errors: shared.errors.into_inner().unwrap_or_else(|e| e.into_inner()),
    })
}

/// Creates the large task (completed with its result) and the running one; returns the large
/// task's subscribe token, if the server gives one.
fn prepare(producer: &mut Client, flood: &Flood, large: &str) -> Result<Option<String>, String> {
    for task in [&flood.task, large] {
        let _ = producer.request("DELETE", &format!("/api/brand-monitor/tasks/{task}"), None);
    }
    let mut call = |method: &str, path: &str, body: String, expect: u16| {
        let reply = producer.request(method, path, Some(&body)).map_err(|e| format!("{method} {path}: {e}"))?;
        if reply.status != expect {
            return Err(format!("{method} {path} answered {}: {}", reply.status, reply.text()));
        }
        Ok(reply)
    };
    let created = call("POST", "/api/brand-monitor/tasks", serde_json::json!({ "taskId": large }).to_string(), 201)?;
    let created: serde_json::Value = serde_json::from_slice(&created.body).unwrap_or_default();
    let result = serde_json::json!({ "result": { "blob": "x".repeat(RESULT_BYTES) } }).to_string();
    call("POST", &format!("/api/brand-monitor/tasks/{large}/complete"), result, 200)?;
    let running = serde_json::json!({ "taskId": flood.task, "stage": "bench" }).to_string();
    call("POST", "/api/brand-monitor/tasks", running, 201)?;
    Ok(created["subscribeToken"].as_str().map(str::to_owned))
}

/// One flood connection until `shared.stop`: a batch of HEADs, their answers, again. Sends on
/// `ready` once the first batch is answered.
fn flood_connection(flood: &Flood, batch: &[u8], shared: &Shared, ready: mpsc::Sender<()>) -> Result<(), String> {
    let stream =
        sse_progress::client::connect(flood.url.addr, ANSWER_TIMEOUT).map_err(|e| format!("flood connect: {e}"))?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(|e| e.to_string())?;
    let reader = stream.try_clone().map_err(|e| e.to_string())?;
    let (answered, batches) = mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            if let Err(e) = read_answers(reader, flood.depth, shared, answered) {
                shared.fail(e);
            }
        });
        let mut writer = &stream;
        let mut first = Some(ready);
        let outcome = (|| {
            while !shared.stop.load(Ordering::SeqCst) {
                writer.write_all(batch).map_err(|e| format!("flood write: {e}"))?;
                batches.recv_timeout(ANSWER_TIMEOUT).map_err(|_| "flood: a batch of HEADs went unanswered")?;
                if let Some(ready) = first.take() {
                    let _ = ready.send(());
                }
            }
            Ok(())
        })();
        // Done writing: the server answers what it has and closes, which ends the reader.
        let _ = stream.shutdown(Shutdown::Write);
        outcome
    })
}

/// Reads HEAD answers until the server closes; sends on `batches` after every `depth` of them.
fn read_answers(mut stream: TcpStream, depth: usize, shared: &Shared, batches: mpsc::Sender<()>) -> Result<(), String> {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut in_batch = 0;
    loop {
        let mut consumed = 0;
        while let Some((status, length)) = answer_head(&buf[consumed..])? {
            if status != 200 {
                return Err(format!("HEAD answered {status}"));
            }
            consumed += length;
            shared.answered.fetch_add(1, Ordering::Relaxed);
            in_batch += 1;
            if in_batch == depth {
                in_batch = 0;
                let _ = batches.send(());
            }
        }
        buf.drain(..consumed);
        match stream.read(&mut chunk) {
            Ok(0) if shared.stop.load(Ordering::SeqCst) => return Ok(()),
            Ok(0) => return Err("the server closed a flood connection".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Once stopping, how the server ends the connection does not matter.
            Err(_) if shared.stop.load(Ordering::SeqCst) => return Ok(()),
            Err(e) => return Err(format!("flood read: {e}")),
        }
    }
}

/// The status and length of the HEAD answer at the start of `buf` (a head only: an answer to
/// HEAD has no body, whatever its `Content-Length` says), once it is all there.
fn answer_head(buf: &[u8]) -> Result<Option<(u16, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(length)) => Ok(Some((response.code.unwrap_or(0), length))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(format!("flood: a bad answer ({e})")),
    }
}

/// PATCHes the running task `flood.updates` times, the k-th due at `start + k × interval`;
/// returns each round trip in µs, counted from when the PATCH was due (a PATCH sent late because
/// the one before was slow is not measured as on time).
fn publish(producer: &mut Client, flood: &Flood) -> Result<Vec<u64>, String> {
    let start = Instant::now();
    let path = format!("/api/brand-monitor/tasks/{}", flood.task);
    let mut round_trips = Vec::with_capacity(flood.updates);
    for index in 0..flood.updates {
        let due = start + flood.interval * index as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let progress = (index + 1) as f64 * 100.0 / (flood.updates + 1) as f64;
        let body = serde_json::json!({ "status": "running", "progress": progress }).to_string();
        let reply = producer.request("PATCH", &path, Some(&body)).map_err(|e| format!("PATCH: {e}"))?;
        round_trips.push(due.elapsed().as_micros() as u64);
        if reply.status != 200 {
            return Err(format!("PATCH answered {}: {}", reply.status, reply.text()));
        }
    }
    Ok(round_trips)
}

fn print_table(r: &FloodReport) {
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "head flood               {} connections x {} pipelined HEADs of a {}-byte result",
        r.flood_connections, r.pipelined_heads, r.result_bytes
    );
    println!(
        "PATCH round trip         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} PATCHes)",
        ms(r.patch_p50_us),
        ms(r.patch_p99_us),
        ms(r.patch_max_us),
        r.updates
    );
    println!("HEADs answered           {} meanwhile ({:.0}/s)", r.heads_answered, r.head_rate_per_sec);
    for e in &r.errors {
        println!("flood error              {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_answer_ends_at_its_blank_line_whatever_its_length_says() {
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 900\r\n\r\nHTTP/1.1 404 Not Found\r\n\r\n";
        assert_eq!(answer_head(two), Ok(Some((200, 40))));
        assert_eq!(answer_head(&two[40..]), Ok(Some((404, 26))));
        assert_eq!(answer_head(&two[..30]), Ok(None));
        assert!(answer_head(b"\x00garbage\r\n\r\n").is_err());
    }
}
