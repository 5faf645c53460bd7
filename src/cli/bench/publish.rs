//! The load tool's paced publisher: update k goes out at a fixed time whatever became of the
//! updates before it (the throughput mode, `--producers N`, is `producers.rs`).

use std::time::{Duration, Instant};

use sse_progress::client::Client;

use super::tasks::Tasks;
use super::{Peer, Plan, viewers};

/// Connections the paced mode publishes over, taking turns.
const PACED_CONNECTIONS: usize = 4;

/// Publishes update k at `start + k × interval`, whatever became of update k-1, over
/// [`PACED_CONNECTIONS`] keep-alive connections taking turns; returns each round trip in µs.
///
/// A fixed schedule gives every server the same offered load. Over one connection, a server that
/// answers a publish only after its fan-out (nchan) would space the updates out by its own
/// slowness and be measured under less load than one that answers at once (coordinated omission).
pub fn paced(plan: &Plan, tasks: &Tasks) -> Result<Vec<u64>, String> {
    let start = Instant::now() + Duration::from_millis(20);
    let start_micros = viewers::now_micros() + 20_000;
    let threads: Vec<_> = (0..PACED_CONNECTIONS.min(plan.updates))
        .map(|first| {
            let (plan, tasks) = (plan.clone(), tasks.clone());
            std::thread::spawn(move || -> Result<Vec<u64>, String> {
                let mut client = Client::connect(&plan.url, plan.token.clone(), Duration::from_secs(10))
                    .map_err(|e| format!("publisher: {e}"))?;
                let mut round_trips = Vec::new();
                for index in (first..plan.updates).step_by(PACED_CONNECTIONS) {
                    let due = start + plan.interval * index as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    // Latency and round trip count from when the update was due, so an update sent
                    // late (its connection still waiting for an answer) is not measured as on time.
                    let due_micros = start_micros + plan.interval.as_micros() as u64 * index as u64;
                    let (method, path, body) = update(&plan, &tasks, index, due_micros);
                    let reply = client.request(method, &path, Some(&body)).map_err(|e| format!("publish: {e}"))?;
                    round_trips.push(due.elapsed().as_micros() as u64);
                    if reply.status >= 300 {
                        return Err(format!("publish answered {}: {}", reply.status, reply.text()));
                    }
                }
                Ok(round_trips)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(plan.updates);
    for thread in threads {
        all.extend(thread.join().map_err(|_| "a publisher thread panicked".to_owned())??);
    }
    Ok(all)
}

/// The request publishing update `index` (to its task, see [`Tasks::of_update`]), with `sent`
/// (µs since the epoch) in its marker.
pub fn update(plan: &Plan, tasks: &Tasks, index: usize, sent: u64) -> (&'static str, String, String) {
    let task = tasks.of_update(index);
    let message = viewers::marker(index, sent);
    match plan.peer {
        Peer::SseProgress => {
            let progress = (index + 1) as f64 * 100.0 / (plan.updates + 1) as f64;
            let body = serde_json::json!({ "progress": progress, "message": message }).to_string();
            ("PATCH", format!("/api/brand-monitor/tasks/{task}"), body)
        }
        Peer::Nchan => ("POST", format!("/pub?id={task}"), message),
    }
}
