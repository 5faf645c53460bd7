//! `sse-progress demo`: the server plus simulated brand analyses, so there is always something
//! to watch.
//!
//! A simulator thread keeps a few tasks running; each walks through the stages of a brand
//! analysis at an uneven pace (so the ETA moves as it would for real), most complete with a
//! small report, some fail with the kind of error a real one meets, and a finished task is
//! replaced by a new one. Pacing uses `thread::sleep`: this is a simulation, not the server.

use std::time::{Duration, Instant};

use serde_json::json;

use sse_progress::{ProgressTracker, Server, TaskUpdate};

use super::flags::{Flag, parse_flags};
use super::serve::{SERVE_FLAGS, serve_settings, termination_signal};

/// Flags of `demo` beyond those of `serve`.
pub const DEMO_FLAGS: &[Flag] = &[
    Flag::new("concurrent", Some("N"), "simulated tasks running at once [default: 3]")
        .or_env("SSE_PROGRESS_CONCURRENT"),
    Flag::new("exit-after-secs", Some("N"), "stop the demo after N seconds [default: run until interrupted]")
        .or_env("SSE_PROGRESS_EXIT_AFTER_SECS"),
];

/// The stages of a simulated analysis, with the share of the work each takes.
const STAGES: &[(&str, f64, &str)] = &[
    ("Initializing analysis", 5.0, "Loading brand profile and competitor list"),
    ("Fetching brand mentions", 30.0, "Collecting mentions from news, forums and social media"),
    ("Analyzing sentiment", 30.0, "Scoring the tone of each mention"),
    ("Comparing competitors", 20.0, "Ranking share of voice against competitors"),
    ("Generating report", 15.0, "Writing the summary and charts"),
];

/// Errors a real analysis meets.
const FAILURES: &[&str] = &[
    "API rate limit exceeded",
    "Upstream search provider timed out",
    "Brand website returned 503 Service Unavailable",
];

const BRANDS: &[&str] = &["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka"];

/// Runs the demo; blocks until interrupted (or `--exit-after-secs`).
pub fn run(args: &[String]) -> Result<(), String> {
    let (flags, positional) = parse_flags(args, &[SERVE_FLAGS, DEMO_FLAGS])?;
    if let Some(extra) = positional.first() {
        return Err(format!("unexpected argument {extra:?}"));
    }
    let (addr, mut config) = serve_settings(&flags)?;
    config.retention = config.retention.min(Duration::from_secs(600));
    let concurrent: usize =
        flags.get("concurrent").map_or(Ok(3), |v| v.parse()).map_err(|_| "--concurrent must be a number")?;
    let exit_after: Option<u64> = flags
        .get("exit-after-secs")
        .map(|v| v.parse())
        .transpose()
        .map_err(|_| "--exit-after-secs must be a number")?;
    let tracker = ProgressTracker::new(config);
    smol::block_on(async {
        let server = Server::bind(addr, tracker.clone()).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = server.local_addr().map_err(|e| e.to_string())?;
        let mut simulator = Simulator::new(tracker.clone(), concurrent.clamp(1, 100));
        simulator.top_up();
        print_banner(local, &simulator.running_ids());
        let deadline = exit_after.map(|s| Instant::now() + Duration::from_secs(s));
        std::thread::Builder::new()
            .name("demo-simulator".into())
            .spawn(move || simulator.run(deadline))
            .map_err(|e| e.to_string())?;
        let signal = termination_signal()?;
        let stop = async move {
            match deadline {
                Some(at) => {
                    smol::future::or(
                        async {
                            async_io::Timer::at(at).await;
                        },
                        signal,
                    )
                    .await;
                }
                None => signal.await,
            }
        };
        server.run_until(stop).await.map_err(|e| e.to_string())
    })
}

fn print_banner(addr: std::net::SocketAddr, ids: &[String]) {
    println!("sse-progress demo on http://{addr}");
    println!();
    println!("  Live page:     http://{addr}/");
    println!("  All tasks:     curl -s http://{addr}/api/brand-monitor/tasks");
    println!("  Health:        curl -s http://{addr}/api/brand-monitor/health");
    println!("  Metrics:       curl -s http://{addr}/metrics");
    println!("  Watch a task:");
    for id in ids {
        println!("    curl -N http://{addr}/api/brand-monitor/progress/{id}");
    }
    println!("  Task ids are brand-<name>-<n>; new tasks start as others finish (list them with the call above).");
    println!();
}

/// One simulated task.
#[derive(Debug)]
struct Sim {
    id: String,
    progress: f64,
    stage: usize,
    /// The task fails when it reaches this progress.
    fails_at: Option<f64>,
    next_step: Instant,
}

#[derive(Debug)]
struct Simulator {
    tracker: ProgressTracker,
    running: Vec<Sim>,
    concurrent: usize,
    made: u64,
}

impl Simulator {
    fn new(tracker: ProgressTracker, concurrent: usize) -> Simulator {
        Simulator { tracker, running: Vec::new(), concurrent, made: 0 }
    }

    fn running_ids(&self) -> Vec<String> {
        self.running.iter().map(|s| s.id.clone()).collect()
    }

    /// Starts tasks until `concurrent` are running.
    fn top_up(&mut self) {
        while self.running.len() < self.concurrent {
            self.made += 1;
            let brand = BRANDS[fastrand::usize(..BRANDS.len())];
            let id = format!("brand-{brand}-{}", self.made);
            if self.tracker.create_task(&id, STAGES[0].0).is_err() {
                continue;
            }
            let fails_at = (fastrand::f64() < 0.2).then(|| 20.0 + fastrand::f64() * 70.0);
            // Stagger starts so the tasks are not in lockstep.
            let next_step = Instant::now() + Duration::from_millis(fastrand::u64(200..1500));
            self.running.push(Sim { id, progress: 0.0, stage: 0, fails_at, next_step });
        }
    }

    fn run(mut self, deadline: Option<Instant>) {
        while deadline.is_none_or(|d| Instant::now() < d) {
            std::thread::sleep(Duration::from_millis(50));
            let now = Instant::now();
            let mut finished = Vec::new();
            for (i, sim) in self.running.iter_mut().enumerate() {
                if sim.next_step > now {
                    continue;
                }
                sim.next_step = now + Duration::from_millis(fastrand::u64(300..1200));
                if step(&self.tracker, sim) {
                    finished.push(i);
                }
            }
            for i in finished.into_iter().rev() {
                self.running.swap_remove(i);
            }
            self.top_up();
        }
    }
}

/// Advances one simulated task; true when it finished.
fn step(tracker: &ProgressTracker, sim: &mut Sim) -> bool {
    let stage_end: f64 = STAGES[..=sim.stage].iter().map(|s| s.1).sum();
    sim.progress = (sim.progress + 1.0 + fastrand::f64() * 4.0).min(stage_end);
    if sim.fails_at.is_some_and(|at| sim.progress >= at) {
        let _ = tracker.fail_task(&sim.id, FAILURES[fastrand::usize(..FAILURES.len())]);
        return true;
    }
    if sim.progress >= 100.0 {
        let report = json!({
            "mentions": fastrand::u32(200..5000),
            "sentiment": { "positive": 0.5 + fastrand::f64() * 0.3, "negative": fastrand::f64() * 0.2 },
            "shareOfVoice": (fastrand::f64() * 40.0 * 10.0).round() / 10.0,
        });
        let _ = tracker.complete_task(&sim.id, report);
        return true;
    }
    if sim.progress >= stage_end && sim.stage + 1 < STAGES.len() {
        sim.stage += 1;
    }
    let (stage, _, message) = STAGES[sim.stage];
    let update = TaskUpdate::running((sim.progress * 10.0).round() / 10.0).stage(stage).message(message);
    // The task may have been deleted by someone through the API: then it is simply dropped.
    tracker.update_task(&sim.id, update).is_err()
}
