//! What the one timer wheel costs per deadline, along the axis that grows: the number of entries
//! already in the wheel (one per open stream in the server: its heartbeat).
//!
//! - `insert_cancel/N`: arm a heartbeat deadline and cancel it (what a stream does when it
//!   writes an event and pushes its heartbeat back), with 0 and 100,000 entries present.
//!   Cancelled keys stay in their bucket until a tick visits it, so every 10,000 iterations the
//!   wheel moves one tick forward outside the timed region, as the driver would.
//! - `advance_one_tick/N`: one tick of the driver with 0 and 100,000 heartbeats spread over a
//!   30 s interval (300 ticks of 100 ms): about N/300 fire each tick. Only `advance` is timed;
//!   re-arming the fired heartbeats happens outside the timed region.
//!
//! Run with: `cargo bench --bench timer_wheel` (add `-- --quick --noplot` for a short run).

use std::hint::black_box;
use std::task::Waker;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sse_progress::internals::timer_wheel::TimerWheel;

/// The heartbeat interval in ticks: 30 s at the default 100 ms tick.
const HEARTBEAT: u64 = 300;
/// Entries present, as in API.md's scale: none, and a busy server.
const PRESENT: [u64; 2] = [0, 100_000];
/// Insert+cancel pairs between two (untimed) ticks.
const CHUNK: u64 = 10_000;

/// A wheel with `n` heartbeats spread evenly over the next interval.
fn wheel_with(n: u64) -> TimerWheel<Waker> {
    let mut wheel = TimerWheel::new();
    for i in 0..n {
        wheel.insert(1 + i % HEARTBEAT, Waker::noop().clone());
    }
    assert_eq!(wheel.len() as u64, n);
    wheel
}

/// Moves one tick forward and re-arms what fired one interval later, keeping `len` constant.
fn tick(wheel: &mut TimerWheel<Waker>, fired: &mut Vec<Waker>) {
    let now = wheel.now() + 1;
    wheel.advance(now, |w| fired.push(w));
    for waker in fired.drain(..) {
        wheel.insert(now + HEARTBEAT, waker);
    }
}

fn bench_timer_wheel(c: &mut Criterion) {
    let mut group = c.benchmark_group("timer_wheel");
    for n in PRESENT {
        group.bench_with_input(BenchmarkId::new("insert_cancel", n), &n, |b, &n| {
            let mut wheel = wheel_with(n);
            let mut fired = Vec::new();
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let chunk = left.min(CHUNK);
                    let deadline = wheel.now() + HEARTBEAT;
                    let start = Instant::now();
                    for _ in 0..chunk {
                        let key = wheel.insert(black_box(deadline), Waker::noop().clone());
                        assert!(wheel.cancel(black_box(key)).is_some());
                    }
                    timed += start.elapsed();
                    left -= chunk;
                    tick(&mut wheel, &mut fired);
                }
                assert_eq!(wheel.len() as u64, n);
                timed
            })
        });
    }
    for n in PRESENT {
        group.bench_with_input(BenchmarkId::new("advance_one_tick", n), &n, |b, &n| {
            let mut wheel = wheel_with(n);
            let mut fired = Vec::with_capacity(1024);
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let to = wheel.now() + 1;
                    let start = Instant::now();
                    wheel.advance(black_box(to), |w| fired.push(w));
                    timed += start.elapsed();
                    // Every tick of the interval holds n / 300 heartbeats (give or take one).
                    assert!(fired.len() as u64 >= n / HEARTBEAT);
                    for waker in fired.drain(..) {
                        wheel.insert(to + HEARTBEAT, waker);
                    }
                }
                timed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_timer_wheel);
criterion_main!(benches);
