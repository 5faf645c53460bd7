//! What it costs to read a request head: [`parse`] (httparse plus our limits and the headers we
//! keep) and then [`route`] on its path, for the two requests the server sees most:
//!
//! - `stream_get`: a browser EventSource reconnecting to a progress stream (Host, Accept,
//!   Last-Event-ID, User-Agent and the other headers a browser sends, with `?token=`);
//! - `patch_update`: a producer's progress update (Content-Type, Content-Length, Authorization).
//!
//! Throughput is the bytes of the head. Run with:
//! `cargo bench --bench request` (add `-- --quick --noplot` for a short run).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sse_progress::internals::request::{BodyKind, Method, parse};
use sse_progress::internals::router::{Route, route};

const STREAM_GET: &[u8] =
    b"GET /api/brand-monitor/progress/brand-analysis-7f3a9c2e41d04b8a?token=q9Zt4mWc1xLr7PbN HTTP/1.1\r\n\
Host: progress.example.com\r\n\
Connection: keep-alive\r\n\
Accept: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
Last-Event-ID: 57\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36\r\n\
Origin: https://app.example.com\r\n\
Referer: https://app.example.com/brands/acme/analysis\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
\r\n";

const PATCH_UPDATE: &[u8] = b"PATCH /api/brand-monitor/tasks/brand-analysis-7f3a9c2e41d04b8a HTTP/1.1\r\n\
Host: 127.0.0.1:8080\r\n\
User-Agent: analysis-worker/2.3\r\n\
Authorization: Bearer 3f1b0c9e8d7a6b5c4d3e2f1a0b9c8d7e\r\n\
Content-Type: application/json\r\n\
Content-Length: 98\r\n\
Accept: application/json\r\n\
\r\n\
{\"progress\":41.95,\"stage\":\"Analyzing brand mentions\",\"message\":\"Scanned 1,204 of 2,870 sources\"}";

fn bench_request(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_route");

    let (_, head) = parse(STREAM_GET).unwrap().unwrap();
    group.throughput(Throughput::Bytes(head as u64));
    group.bench_function("stream_get", |b| {
        b.iter(|| {
            let (request, len) = parse(black_box(STREAM_GET)).unwrap().unwrap();
            assert_eq!(len, STREAM_GET.len());
            assert!(matches!(route(request.path()), Some(Route::Progress(_))));
            assert!(request.method == Method::Get && request.last_event_id().is_some());
            assert!(request.query_param("token").is_some());
            request
        })
    });

    // The floor under `stream_get`: httparse alone on the same bytes, nothing kept or routed.
    group.bench_function("httparse_alone_stream_get", |b| {
        b.iter(|| {
            let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; 64];
            let mut parsed = httparse::Request::new(&mut []);
            let status = parsed.parse_with_uninit_headers(black_box(STREAM_GET), &mut headers).unwrap();
            assert!(status.is_complete());
            black_box((parsed.path, parsed.headers.len(), parsed.headers.last().map(|h| h.value.len())))
        })
    });

    let (_, head) = parse(PATCH_UPDATE).unwrap().unwrap();
    group.throughput(Throughput::Bytes(head as u64));
    group.bench_function("patch_update", |b| {
        b.iter(|| {
            let (request, len) = parse(black_box(PATCH_UPDATE)).unwrap().unwrap();
            assert_eq!(len, head);
            assert!(matches!(route(request.path()), Some(Route::Task(_))));
            assert!(request.method == Method::Patch && request.body == BodyKind::Length(98));
            request
        })
    });
    group.finish();
}

criterion_group!(benches, bench_request);
criterion_main!(benches);
