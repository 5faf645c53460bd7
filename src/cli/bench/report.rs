//! The load tool's report: the figures of one run, as one JSON line (`--json`, what
//! `benches/peers/compare.sh` collects) or as a table for a person.

/// The measured figures.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The protocol measured.
    pub peer: String,
    /// Streams asked for.
    pub streams: usize,
    /// Streams that started.
    pub streams_held: usize,
    /// Seconds from the first connect to the last stream started.
    pub connect_seconds: f64,
    /// Server RSS growth per stream, bytes (when the server's pid is known).
    pub memory_per_stream_bytes: Option<f64>,
    /// Server RSS with all streams open, KiB.
    pub server_rss_kib: Option<u64>,
    /// Updates published.
    pub updates: usize,
    /// (viewer, update) pairs delivered.
    pub delivered: usize,
    /// (viewer, update) pairs not delivered (superseded or lost).
    pub lost: usize,
    /// Delivery latency, µs.
    pub latency_p50_us: u64,
    /// Delivery latency, µs.
    pub latency_p99_us: u64,
    /// Delivery latency, µs.
    pub latency_max_us: u64,
    /// Publish round trip, µs.
    pub publish_p50_us: u64,
    /// Publish round trip, µs.
    pub publish_p99_us: u64,
    /// Publish round trip, µs.
    pub publish_max_us: u64,
    /// Updates published per second over the publish phase.
    pub publish_rate_per_sec: f64,
    /// Server CPU per delivered event, µs (when the server's pid is known).
    pub cpu_per_event_us: Option<f64>,
    /// Server CPU per connect over the connect phase, µs (when the server's pid is known).
    pub cpu_per_connect_us: Option<f64>,
    /// This tool's own CPU per connect, µs: if it is near the connect time per stream, the tool
    /// and not the server is what limits the connect figure.
    pub tool_cpu_per_connect_us: Option<f64>,
    /// This tool's own CPU per delivered event, µs.
    pub tool_cpu_per_event_us: Option<f64>,
    /// Server CPU per published update over the publish phase, µs: the request, and the
    /// fan-out of that update to every viewer that took it.
    pub cpu_per_update_us: Option<f64>,
    /// Tasks each viewer follows on one multi-task stream (`--tasks-per-stream`); absent for
    /// the default one-task stream, whose report is unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks_per_stream: Option<usize>,
    /// The first few viewer errors.
    pub errors: Vec<String>,
}

/// Prints the report as a table for a person.
pub fn print_table(r: &Report) {
    let opt = |v: Option<f64>, unit: &str| v.map_or("n/a (no --server-pid)".to_owned(), |v| format!("{v:.1} {unit}"));
    println!("peer                     {}", r.peer);
    println!("streams held             {} of {}", r.streams_held, r.streams);
    if let Some(k) = r.tasks_per_stream {
        println!("tasks per stream         {k} (one ?tasks= stream per viewer)");
    }
    println!("connect time             {:.3} s", r.connect_seconds);
    println!("server memory per stream {}", opt(r.memory_per_stream_bytes, "bytes"));
    println!("server CPU per event     {}", opt(r.cpu_per_event_us, "µs"));
    println!("server CPU per connect   {}", opt(r.cpu_per_connect_us, "µs"));
    println!("server CPU per update    {}", opt(r.cpu_per_update_us, "µs"));
    println!(
        "tool CPU per connect     {} (per event {})",
        opt(r.tool_cpu_per_connect_us, "µs"),
        opt(r.tool_cpu_per_event_us, "µs")
    );
    println!("delivered                {} of {} (lost {})", r.delivered, r.streams_held * r.updates, r.lost);
    println!(
        "delivery latency         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        r.latency_p50_us as f64 / 1000.0,
        r.latency_p99_us as f64 / 1000.0,
        r.latency_max_us as f64 / 1000.0
    );
    println!(
        "publish round trip       p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({:.0} updates/s)",
        r.publish_p50_us as f64 / 1000.0,
        r.publish_p99_us as f64 / 1000.0,
        r.publish_max_us as f64 / 1000.0,
        r.publish_rate_per_sec
    );
    for e in &r.errors {
        println!("viewer error             {e}");
    }
}
