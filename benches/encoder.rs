//! What it costs to turn one task change into the bytes every viewer writes.
//!
//! - `frame/progress`: [`Frame::progress`] for a realistic ~300-byte task JSON, the work the
//!   tracker does once per change under its lock (allocation, `id` formatting, chunk framing).
//! - `encode_event/*`: [`encode_event`] alone into a reused buffer: the one-line JSON of a
//!   progress event, and a multi-line `data` value that has to be split on CR, LF and CRLF.
//!
//! Throughput is the bytes of the encoded event. Run with:
//! `cargo bench --bench encoder` (add `-- --quick --noplot` for a short run).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sse_progress::internals::encoder::{Frame, encode_event};
use sse_progress::{Task, TaskStatus};

/// The JSON of a running task mid-analysis, as the tracker serializes it (about 300 bytes).
fn task_json() -> String {
    let mut task = Task::new(
        "brand-analysis-7f3a9c2e41d04b8a".to_owned(),
        "Analyzing brand mentions".to_owned(),
        "Scanned 1,204 of 2,870 sources across news, blogs and social media".to_owned(),
        1_718_000_000_000,
    );
    task.status = TaskStatus::Running;
    task.progress = 41.95;
    task.updated_at = 1_718_000_093_512;
    task.estimated_time_remaining = Some(129.4);
    task.event_id = 57;
    task.to_json()
}

fn bench_encoder(c: &mut Criterion) {
    let json = task_json();
    assert!((250..=350).contains(&json.len()), "fixture is {} bytes", json.len());

    let mut group = c.benchmark_group("frame");
    let sample = Frame::progress(57, &json, false);
    group.throughput(Throughput::Bytes(sample.plain().len() as u64));
    group.bench_function("progress", |b| {
        b.iter(|| {
            let frame = Frame::progress(black_box(57), black_box(&json), false);
            assert!(frame.chunked().len() > frame.plain().len() && frame.json().len() == json.len());
            frame
        })
    });
    group.finish();

    let mut group = c.benchmark_group("encode_event");
    let mut out = Vec::with_capacity(1024);
    encode_event(&mut out, Some("progress"), Some("57"), &json).unwrap();
    group.throughput(Throughput::Bytes(out.len() as u64));
    group.bench_function("one_line_json", |b| {
        b.iter(|| {
            out.clear();
            encode_event(&mut out, Some("progress"), Some(black_box("57")), black_box(&json)).unwrap();
            assert!(out.len() > json.len());
        })
    });

    // Ten lines with mixed line breaks, about the same size as the JSON.
    let text: String = (0..10).map(|i| format!("line {i} of a log excerpt{}", ["\n", "\r\n", "\r"][i % 3])).collect();
    out.clear();
    encode_event(&mut out, Some("log"), None, &text).unwrap();
    group.throughput(Throughput::Bytes(out.len() as u64));
    group.bench_function("multi_line_data", |b| {
        b.iter(|| {
            out.clear();
            encode_event(&mut out, Some("log"), None, black_box(&text)).unwrap();
            assert!(out.len() > text.len());
        })
    });
    group.finish();
}

criterion_group!(benches, bench_encoder);
criterion_main!(benches);
