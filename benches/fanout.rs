//! What it costs to deliver one task change to N viewers in process, excluding socket writes:
//! one [`ProgressTracker::update_task`] (apply, serialize the task JSON, encode the one shared
//! frame, publish it and wake every waiting viewer), then every viewer polling its next frame
//! with [`Viewer::poll_next`] (Ready with the new frame) and polling again (Pending, which
//! registers its waker for the next change, as a viewer's loop does after its write).
//!
//! N is 1, 100 and 10,000 viewers of the same task; throughput is in viewers served.
//! Run with: `cargo bench --bench fanout` (add `-- --quick --noplot` for a short run).

use std::task::{Context, Poll, Waker};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sse_progress::internals::topic::Viewer;
use sse_progress::{Config, ProgressTracker, TaskUpdate};

const TASK: &str = "brand-analysis-7f3a9c2e41d04b8a";

fn bench_fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    for n in [1usize, 100, 10_000] {
        let tracker = ProgressTracker::new(Config::default());
        tracker.create_task(TASK, "Initializing analysis").unwrap();
        let topic = tracker.topic(TASK).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut viewers: Vec<Viewer> = (0..n)
            .map(|_| {
                let (mut viewer, first) = topic.subscribe();
                assert_eq!(first.event_id, 1);
                assert!(viewer.poll_next(&mut cx).is_pending(), "waits with its waker registered");
                viewer
            })
            .collect();
        assert_eq!(topic.viewers(), n);
        let update = TaskUpdate::running(41.95)
            .stage("Analyzing brand mentions")
            .message("Scanned 1,204 of 2,870 sources across news, blogs and social media");

        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| {
                let task = tracker.update_task(TASK, update.clone()).unwrap();
                let mut delivered = 0;
                for viewer in &mut viewers {
                    match viewer.poll_next(&mut cx) {
                        Poll::Ready(frame) if frame.event_id == task.event_id => delivered += 1,
                        other => panic!("viewer got {other:?}, wanted event {}", task.event_id),
                    }
                    assert!(viewer.poll_next(&mut cx).is_pending());
                }
                assert_eq!(delivered, n);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_fanout);
criterion_main!(benches);
