//! The sizes of BENCHMARKS.md's "Durable tasks" section, through the library on real files:
//! the time to open a data directory holding 100,000 tasks, and the directory's size after
//! 1,000,000 updates to 1,000 tasks. Measurements, not assertions of speed: ignored in CI, run
//! with `cargo test --release --test it durable_scale -- --ignored --nocapture`.

use std::time::Instant;

use sse_progress::{Config, FileStore, Fsync, ProgressTracker, TaskUpdate};

use crate::durable::TempDir;

fn open(dir: &std::path::Path, fsync: Fsync) -> ProgressTracker {
    let store = FileStore::open_with(dir, fsync).unwrap();
    ProgressTracker::with_store(Config { max_tasks: 1_000_000, ..Config::default() }, Box::new(store)).unwrap()
}

fn dir_size(dir: &TempDir) -> u64 {
    std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

#[test]
#[ignore = "a measurement for BENCHMARKS.md"]
fn restart_time_with_100000_tasks_and_size_after_a_million_updates() {
    // Shows (prints) the open time of 100,000 tasks and the directory size after 1,000,000
    // updates to 1,000 tasks; checks only that everything is there.
    let dir = TempDir::new("scale-restart");
    let tracker = open(dir.path(), Fsync::Interval);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let tracker = tracker.clone();
            std::thread::spawn(move || {
                for i in 0..25_000 {
                    let id = format!("task-{t}-{i:05}");
                    tracker.create_task(&id, "Initializing analysis").unwrap();
                    tracker
                        .update_task(&id, TaskUpdate::running(42.0).message("Scanned 1,204 of 2,870 sources"))
                        .unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    drop(tracker);
    let size = dir_size(&dir);
    let started = Instant::now();
    let tracker = open(dir.path(), Fsync::Always);
    let took = started.elapsed();
    assert_eq!(tracker.counts().total, 100_000);
    eprintln!("durable_scale: opened 100,000 tasks ({size} bytes on disk) in {took:?}");
    drop(tracker);

    let dir = TempDir::new("scale-size");
    let tracker = open(dir.path(), Fsync::Interval);
    for i in 0..1_000 {
        tracker.create_task(&format!("t{i:04}"), "").unwrap();
    }
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let tracker = tracker.clone();
            std::thread::spawn(move || {
                for n in 0..250_000u32 {
                    let id = format!("t{:04}", (n as usize * 4 + t) % 1_000);
                    let update =
                        TaskUpdate::running(f64::from(n % 100)).reset().message("Scanned 1,204 of 2,870 sources");
                    tracker.update_task(&id, update).unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let took = started.elapsed();
    drop(tracker);
    let size = dir_size(&dir);
    let live = {
        let tracker = open(dir.path(), Fsync::Always);
        assert_eq!(tracker.counts().total, 1_000);
        assert_eq!(tracker.get_task("t0000").unwrap().event_id, 1_001);
        drop(tracker);
        dir_size(&dir)
    };
    eprintln!(
        "durable_scale: 1,000,000 updates to 1,000 tasks in {took:?}; directory {size} bytes (live state after a reopen: {live})"
    );
}
