//! `sse-progress bench`: the load tool. Opens many streams on one task, publishes updates with a
//! send time in each, and reports what a user of the server would feel: connect time, memory
//! per stream, delivery latency over every (viewer, update) pair, losses, publish round trip,
//! and the server's CPU per delivered event.
//!
//! `--tasks-per-stream K` has every viewer follow K tasks over one multi-task stream instead
//! (`tasks`), to measure what a viewer of many tasks costs.
//!
//! `--head-flood N` measures instead a producer's PATCH round trip while two connections pipeline
//! HEADs of a large task (`head_flood`).
//!
//! It talks only to loopback addresses and stops by itself: every phase has a deadline.
//! `--peer nchan` drives an nginx-nchan server with the same method, so both are measured by
//! the same code in the same run.

mod head_flood;
mod producers;
mod publish;
mod report;
mod stats;
mod tasks;
mod viewers;

pub use head_flood::Flood;
pub use report::{Report, print_table};
pub use stats::{cpu_seconds, percentile, rss_kib};
use tasks::{MAX_PER_STREAM, Tasks};

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::cli::flags::{Flag, parse_flags};
use sse_progress::client::{Client, Url};

/// `bench --help`.
pub const HELP: &str = "\
Usage: sse-progress bench [options]

Opens N streams on one task, publishes K updates, and reports connect time, server memory per
stream, delivery latency p50/p99/max over every (viewer, update) pair, updates lost, publish
round trip and server CPU per delivered event. Loopback addresses only.

Options:
  --url URL                 the server [default: http://127.0.0.1:8080]
  --streams N               streams to open [default: 1000]
  --updates K               updates to publish [default: 20]
  --interval-ms MS          time between updates [default: 200]
  --sources A,B,...         local source addresses to spread connections over (127.0.0.x),
                            needed past ~28,000 streams [default: 127.0.0.1]
  --connects-in-flight N    most connects at once [default: 100]
  --server-pid PID[,PID]    the server's processes, for memory and CPU (from /proc)
  --peer sse-progress|nchan the server's protocol [default: sse-progress]
  --task ID                 the task to watch [default: bench-<random>]
  --tasks-per-stream K      every viewer follows K tasks (ID-0 .. ID-{K-1}, 1 to 100) over one
                            multi-task stream (?tasks=), the updates taking the tasks in turn,
                            so each update still reaches every viewer; sse-progress only
                            [default: one task on its own route]
  --token TOKEN             publish token (sse-progress)
  --threads N               the tool's own threads [default: 1]
  --producers N             publish over N keep-alive connections as fast as they go, one
                            request in flight on each, all on one thread (ignores
                            --interval-ms); reports updates per second [default: 1, paced]
  --busy-poll               viewer threads poll without sleeping, each taking a whole core: on
                            loopback a sleeping viewer thread makes every server send pay for
                            waking it, a cost a server never pays for clients on other hosts
  --head-flood N            instead of streams: two connections each keep N pipelined HEADs of
                            a task with a ~1 MiB result in flight while one producer PATCHes
                            another task --updates times, one every --interval-ms; reports the
                            PATCH round trip p50/p99/max and the HEADs answered meanwhile
  --json                    print one JSON line instead of the table

Reads no environment variables: every setting is a flag of this command line.
";

const FLAGS: &[Flag] = &[
    Flag::new("url", Some("URL"), ""),
    Flag::new("streams", Some("N"), ""),
    Flag::new("updates", Some("K"), ""),
    Flag::new("interval-ms", Some("MS"), ""),
    Flag::new("sources", Some("LIST"), "").repeatable(),
    Flag::new("connects-in-flight", Some("N"), ""),
    Flag::new("server-pid", Some("PIDS"), "").repeatable(),
    Flag::new("peer", Some("NAME"), ""),
    Flag::new("task", Some("ID"), ""),
    Flag::new("token", Some("TOKEN"), ""),
    Flag::new("threads", Some("N"), ""),
    Flag::new("json", None, ""),
    Flag::new("producers", Some("N"), ""),
    Flag::new("busy-poll", None, ""),
    Flag::new("head-flood", Some("N"), ""),
    Flag::new("tasks-per-stream", Some("K"), ""),
];

/// The server's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// This server: `/api/brand-monitor/progress/{id}`, publish by `PATCH`.
    SseProgress,
    /// nginx with nchan: subscribe `/sub/{id}` (EventSource), publish `POST /pub?id={id}`.
    Nchan,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The server.
    pub url: Url,
    /// Streams to open.
    pub streams: usize,
    /// Updates to publish.
    pub updates: usize,
    /// Between updates.
    pub interval: Duration,
    /// Source addresses, used in turn.
    pub sources: Vec<IpAddr>,
    /// Most connects at once.
    pub in_flight: usize,
    /// The server's processes.
    pub server_pids: Vec<u32>,
    /// The protocol.
    pub peer: Peer,
    /// The task.
    pub task: String,
    /// Publish token.
    pub token: Option<String>,
    /// The tool's threads.
    pub threads: usize,
    /// Keep-alive producer connections; more than 1 publishes as fast as they go.
    pub producers: usize,
    /// Viewer threads poll without sleeping.
    pub busy_poll: bool,
    /// Measure the PATCH round trip under a flood of this many pipelined HEADs per connection
    /// instead of streams.
    pub head_flood: Option<usize>,
    /// Tasks each viewer follows over one multi-task stream; `None`: one task, its own route.
    pub tasks_per_stream: Option<usize>,
}

/// Runs `bench` from the command line; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return 0;
    }
    let (plan, json) = match parse(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("sse-progress bench: {e}");
            return 2;
        }
    };
    if let Some(depth) = plan.head_flood {
        let flood = Flood {
            url: plan.url,
            token: plan.token,
            depth,
            updates: plan.updates,
            interval: plan.interval,
            task: plan.task,
        };
        return head_flood::main(&flood, json);
    }
    match run(&plan) {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string(&report).expect("a report serializes"));
            } else {
                print_table(&report);
            }
            i32::from(report.streams_held < report.streams)
        }
        Err(e) => {
            eprintln!("sse-progress bench: {e}");
            2
        }
    }
}

fn parse(args: &[String]) -> Result<(Plan, bool), String> {
    let (flags, positional) = parse_flags(args, &[FLAGS])?;
    if let Some(extra) = positional.first() {
        return Err(format!("unexpected argument {extra:?}"));
    }
    let num = |name: &str, default: usize| -> Result<usize, String> {
        flags.get(name).map_or(Ok(default), |v| v.parse().map_err(|_| format!("--{name} must be a number")))
    };
    let url =
        Url::parse(flags.get("url").map_or("http://127.0.0.1:8080", String::as_str)).map_err(|e| e.to_string())?;
    let sources = match flags.get("sources") {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().parse::<IpAddr>().map_err(|_| format!("--sources: {s:?} is not an IP address")))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    // Loopback only: this tool is a load generator, and it must never point at another host.
    if !url.addr.ip().is_loopback() || sources.iter().any(|s| !s.is_loopback()) {
        return Err("bench only talks to loopback addresses (127.0.0.0/8, ::1)".into());
    }
    let server_pids = match flags.get("server-pid") {
        Some(list) => list
            .split(',')
            .map(|p| p.trim().parse::<u32>().map_err(|_| format!("--server-pid: {p:?} is not a pid")))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let peer = match flags.get("peer").map(String::as_str) {
        None | Some("sse-progress") => Peer::SseProgress,
        Some("nchan") => Peer::Nchan,
        Some(other) => return Err(format!("--peer must be sse-progress or nchan, not {other:?}")),
    };
    let tasks_per_stream = match flags.get("tasks-per-stream") {
        None => None,
        Some(_) if peer == Peer::Nchan => return Err("--tasks-per-stream: nchan has no multi-task streams".into()),
        Some(_) if flags.contains_key("head-flood") => {
            return Err("--tasks-per-stream and --head-flood measure different things: give one".into());
        }
        Some(_) => match num("tasks-per-stream", 0)? {
            k @ 1..=MAX_PER_STREAM => Some(k),
            _ => return Err(format!("--tasks-per-stream must be 1 to {MAX_PER_STREAM}")),
        },
    };
    let plan = Plan {
        url,
        streams: num("streams", 1000)?.max(1),
        updates: num("updates", 20)?.max(1),
        interval: Duration::from_millis(num("interval-ms", 200)? as u64),
        sources,
        in_flight: num("connects-in-flight", 100)?.max(1),
        server_pids,
        peer,
        task: flags.get("task").cloned().unwrap_or_else(|| format!("bench-{}", fastrand::u64(..))),
        token: flags.get("token").cloned(),
        threads: num("threads", 1)?.clamp(1, 64),
        producers: num("producers", 1)?.clamp(1, 256),
        busy_poll: flags.contains_key("busy-poll"),
        head_flood: flags.get("head-flood").map(|_| num("head-flood", 0)).transpose()?.map(|n| n.clamp(1, 10_000)),
        tasks_per_stream,
    };
    Ok((plan, flags.contains_key("json")))
}

/// Runs one measurement.
pub fn run(plan: &Plan) -> Result<Report, String> {
    let mut publisher = Client::connect(&plan.url, plan.token.clone(), Duration::from_secs(10))
        .map_err(|e| format!("cannot connect to {}: {e}", plan.url.authority))?;
    let tasks = Tasks::of(plan);
    if plan.peer == Peer::SseProgress {
        tasks.create(&mut publisher)?;
    }
    let target = viewers::Target {
        addr: plan.url.addr,
        request: format!(
            "GET {}{} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            plan.url.base,
            tasks.subscribe_path(plan.peer),
            plan.url.authority
        ),
        updates: plan.updates,
        busy_poll: plan.busy_poll,
    };

    let rss_before = rss_kib(&plan.server_pids);
    let me = [std::process::id()];
    let (server_cpu_start, tool_cpu_start) = (cpu_seconds(&plan.server_pids), cpu_seconds(&me));
    let progress = Arc::new(viewers::Progress::default());
    let started = Instant::now();
    // Viewer i runs on thread i % threads, so every thread's share spans every source address.
    let threads: Vec<_> = (0..plan.threads)
        .map(|t| {
            let (target, progress, sources) = (target.clone(), Arc::clone(&progress), plan.sources.clone());
            let count = plan.streams / plan.threads + usize::from(t < plan.streams % plan.threads);
            let in_flight = plan.in_flight.div_ceil(plan.threads);
            std::thread::spawn(move || {
                let seen = viewers::run_share(&target, &sources, t, count, in_flight, &progress);
                if seen.is_err() {
                    progress.stop.store(true, Ordering::SeqCst);
                }
                seen
            })
        })
        .collect();
    // However this function returns, the viewer threads stop.
    struct StopOnDrop(Arc<viewers::Progress>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.stop.store(true, Ordering::SeqCst);
        }
    }
    let _stop = StopOnDrop(Arc::clone(&progress));
    let connected = &progress.connected;
    let all_finished = || progress.finished.load(Ordering::SeqCst) >= plan.streams;

    // Connect phase: until every stream started, or nothing moved for 10 s.
    let mut last = (0, Instant::now());
    let connect_seconds = loop {
        let n = connected.load(Ordering::SeqCst);
        if n >= plan.streams {
            break started.elapsed().as_secs_f64();
        }
        if n != last.0 {
            last = (n, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(10) || all_finished() || progress.stop.load(Ordering::SeqCst) {
            break started.elapsed().as_secs_f64();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let held = connected.load(Ordering::SeqCst);
    if progress.stop.load(Ordering::SeqCst) {
        // A viewer thread failed: report it instead of publishing to nobody.
        for thread in threads {
            if let Ok(Err(e)) = thread.join() {
                return Err(format!("viewers: {e}"));
            }
        }
        return Err("viewers: a viewer thread stopped".into());
    }
    let (server_cpu_connected, tool_cpu_connected) = (cpu_seconds(&plan.server_pids), cpu_seconds(&me));
    std::thread::sleep(Duration::from_millis(500)); // let the server settle before reading its memory
    let rss_held = rss_kib(&plan.server_pids);
    let (cpu_before, tool_cpu_before) = (cpu_seconds(&plan.server_pids), cpu_seconds(&me));

    // Publish phase: paced by one producer, or as fast as `producers` keep-alive connections go.
    let publish_started = Instant::now();
    drop(publisher);
    let mut round_trips = if plan.producers <= 1 {
        publish::paced(plan, &tasks)?
    } else {
        let request = |index: usize| {
            let (method, path, body) = publish::update(plan, &tasks, index, viewers::now_micros());
            sse_progress::client::request_bytes(&plan.url, plan.token.as_deref(), method, &path, Some(&body))
        };
        producers::run(plan.url.addr, plan.producers, plan.updates, request, Duration::from_secs(120))?
    };
    let publish_seconds = publish_started.elapsed().as_secs_f64();
    // Let deliveries finish: until every viewer has all updates, or 5 s after the last publish.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !all_finished() && !progress.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (cpu_after, tool_cpu_after) = (cpu_seconds(&plan.server_pids), cpu_seconds(&me));
    progress.stop.store(true, Ordering::SeqCst);
    let mut shares = Vec::with_capacity(plan.threads);
    for thread in threads {
        let share = thread.join().map_err(|_| "a viewer thread panicked".to_owned())?;
        shares.push(share.map_err(|e| format!("viewers: {e}"))?);
    }
    // Back into viewer order (viewer i was the (i / threads)-th of thread i % threads).
    let mut seen: Vec<viewers::Seen> = Vec::with_capacity(plan.streams);
    let mut shares: Vec<_> = shares.into_iter().map(Vec::into_iter).collect();
    for i in 0..plan.streams {
        if let Some(s) = shares[i % plan.threads].next() {
            seen.push(s);
        }
    }

    let mut latencies: Vec<u64> = seen.iter().flat_map(|s| s.latencies.iter().map(|&l| u64::from(l))).collect();
    latencies.sort_unstable();
    round_trips.sort_unstable();
    let delivered: usize = seen.iter().map(|s| s.updates).sum();
    let expected = held * plan.updates;
    let memory_per_stream_bytes = match (rss_before, rss_held) {
        (Some(a), Some(b)) if held > 0 => Some(b.saturating_sub(a) as f64 * 1024.0 / held as f64),
        _ => None,
    };
    let per = |before: Option<f64>, after: Option<f64>, count: usize| match (before, after) {
        (Some(a), Some(b)) if count > 0 => Some((b - a) * 1e6 / count as f64),
        _ => None,
    };
    let mut errors: Vec<String> = seen.iter().filter_map(|s| s.error.clone()).collect();
    errors.sort();
    errors.dedup();
    errors.truncate(5);
    Ok(Report {
        peer: match plan.peer {
            Peer::SseProgress => "sse-progress".into(),
            Peer::Nchan => "nchan".into(),
        },
        streams: plan.streams,
        streams_held: held,
        connect_seconds,
        memory_per_stream_bytes,
        server_rss_kib: rss_held,
        updates: plan.updates,
        delivered,
        lost: expected.saturating_sub(delivered),
        latency_p50_us: percentile(&latencies, 0.5),
        latency_p99_us: percentile(&latencies, 0.99),
        latency_max_us: latencies.last().copied().unwrap_or(0),
        publish_p50_us: percentile(&round_trips, 0.5),
        publish_p99_us: percentile(&round_trips, 0.99),
        publish_max_us: round_trips.last().copied().unwrap_or(0),
        publish_rate_per_sec: plan.updates as f64 / publish_seconds.max(1e-9),
        cpu_per_event_us: per(cpu_before, cpu_after, delivered),
        cpu_per_connect_us: per(server_cpu_start, server_cpu_connected, held),
        tool_cpu_per_connect_us: per(tool_cpu_start, tool_cpu_connected, held),
        tool_cpu_per_event_us: per(tool_cpu_before, tool_cpu_after, delivered),
        cpu_per_update_us: per(cpu_before, cpu_after, plan.updates),
        tasks_per_stream: plan.tasks_per_stream,
        errors,
    })
}
