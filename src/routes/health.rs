//! `GET /api/brand-monitor/health` (JSON) and `GET /metrics` (Prometheus text): the same figures.
//!
//! Task counts come from the tracker's running counts, so a probe costs the same with 100,000
//! tasks as with none.

use std::fmt::Write as _;

use crate::connections::HealthCounts;
use crate::http::response::{Body, Response};
use crate::state::Shared;
use crate::tracker::TaskCounts;

/// One reading of every figure, taken once so both routes agree.
struct Figures {
    uptime: f64,
    total: u64,
    active: u64,
    health: HealthCounts,
    average_ms: f64,
    errors: u64,
    tasks: TaskCounts,
}

fn read(shared: &Shared) -> Figures {
    let c = &shared.connections;
    Figures {
        uptime: shared.started.elapsed().as_secs_f64(),
        total: c.total(),
        active: c.active(),
        health: c.health(),
        average_ms: c.average_connection_ms(),
        errors: c.errors(),
        tasks: shared.tracker.counts(),
    }
}

/// `degraded` when more than a tenth of the active streams are not healthy.
fn status(f: &Figures) -> &'static str {
    let not_healthy = f.health.unhealthy + f.health.stale;
    if not_healthy * 10 > f.active as usize { "degraded" } else { "healthy" }
}

/// The health JSON of docs/API.md.
pub fn health(shared: &Shared) -> Response {
    let f = read(shared);
    let body = serde_json::json!({
        "status": status(&f),
        "uptimeSeconds": (f.uptime * 10.0).round() / 10.0,
        "totalConnections": f.total,
        "activeConnections": f.active,
        "connectionHealth": { "healthy": f.health.healthy, "unhealthy": f.health.unhealthy, "stale": f.health.stale },
        "averageConnectionTime": (f.average_ms * 10.0).round() / 10.0,
        "connectionErrors": f.errors,
        "tasks": {
            "total": f.tasks.total, "pending": f.tasks.pending, "running": f.tasks.running,
            "completed": f.tasks.completed, "failed": f.tasks.failed,
        },
    });
    Response::json(200, body.to_string())
}

/// The same figures, and the timer wheel's size, in the Prometheus text format (version 0.0.4).
pub fn metrics(shared: &Shared) -> Response {
    let f = read(shared);
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
        let _ = writeln!(out, "# HELP sse_progress_{name} {help}\n# TYPE sse_progress_{name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "sse_progress_{name}{labels} {value}");
        }
    };
    metric(
        "up",
        "gauge",
        "1 while the server is healthy, 0 when degraded.",
        &[("", f64::from(status(&f) == "healthy"))],
    );
    metric("uptime_seconds", "gauge", "Seconds since the server started.", &[("", f.uptime)]);
    metric("connections_total", "counter", "Streams opened since start.", &[("", f.total as f64)]);
    metric("connections_active", "gauge", "Streams open now.", &[("", f.active as f64)]);
    metric(
        "open_connections",
        "gauge",
        "Connections of any kind open now, closing ones included, bounded by --max-connections.",
        &[("", shared.open_connections.load(std::sync::atomic::Ordering::Relaxed) as f64)],
    );
    metric(
        "connections_by_health",
        "gauge",
        "Open streams by health.",
        &[
            ("{health=\"healthy\"}", f.health.healthy as f64),
            ("{health=\"unhealthy\"}", f.health.unhealthy as f64),
            ("{health=\"stale\"}", f.health.stale as f64),
        ],
    );
    metric("connection_errors_total", "counter", "Streams ended by a failed or stuck write.", &[("", f.errors as f64)]);
    metric("connections_ended_total", "counter", "Streams that ended.", &[("", shared.connections.ended() as f64)]);
    metric("connection_duration_average_ms", "gauge", "Average lifetime of ended streams.", &[("", f.average_ms)]);
    metric(
        "tasks",
        "gauge",
        "Tasks held, by status.",
        &[
            ("{status=\"pending\"}", f.tasks.pending as f64),
            ("{status=\"running\"}", f.tasks.running as f64),
            ("{status=\"completed\"}", f.tasks.completed as f64),
            ("{status=\"failed\"}", f.tasks.failed as f64),
        ],
    );
    metric(
        "result_bytes",
        "gauge",
        "Bytes of the results of held tasks, bounded by --max-result-bytes.",
        &[("", shared.tracker.result_bytes() as f64)],
    );
    metric("timers_pending", "gauge", "Deadlines waiting on the timer wheel.", &[("", shared.timers.pending() as f64)]);
    Response {
        status: 200,
        headers: vec![("Content-Type", "text/plain; version=0.0.4; charset=utf-8".into())],
        body: Body::Bytes(out.into_bytes()),
    }
}
