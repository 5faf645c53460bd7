//! The `bench` load tool against a real server: it holds the streams, counts every delivery and
//! reports the figures as one JSON line.

use std::fmt::Display;
use std::process::{Command, Output};

use crate::support::*;
use sse_progress::Config;

/// Runs `sse-progress bench --url http://ADDR ARGS...` and waits for it.
fn bench(addr: impl Display, args: &[&str]) -> Output {
    Command::new(BIN).args(["bench", "--url", &format!("http://{addr}")]).args(args).output().expect("bench runs")
}

#[test]
fn bench_reports_every_delivery_as_json() {
    // 50 viewers x 4 updates over loopback: all 200 deliveries counted, none lost.
    let server = start_default();
    let pid = std::process::id().to_string(); // the server runs in this test process
    // 50 viewers over 3 epoll threads: the shares are uneven.
    let out = bench(
        server.addr,
        &[
            "--streams",
            "50",
            "--updates",
            "4",
            "--interval-ms",
            "20",
            "--sources",
            "127.0.0.1,127.0.0.2",
            "--server-pid",
            &pid,
            "--json",
            "--threads",
            "3",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(report["streamsHeld"], 50, "{report}");
    assert_eq!((report["delivered"].as_u64(), report["lost"].as_u64()), (Some(200), Some(0)), "{report}");
    assert!(report["latencyP50Us"].as_u64().unwrap() <= report["latencyP99Us"].as_u64().unwrap());
    assert!(report["memoryPerStreamBytes"].is_number() && report["cpuPerEventUs"].is_number(), "{report}");
    for figure in ["cpuPerConnectUs", "toolCpuPerConnectUs", "toolCpuPerEventUs"] {
        assert!(report[figure].is_number(), "{figure}: {report}");
    }
}

#[test]
fn bench_reports_refused_streams_and_fails() {
    // Every subscribe is refused (401: the server wants a token): the tool says why, at once,
    // and exits 1, instead of waiting out its connect deadline.
    // (Subscribe tokens come with a publish token: one without the other is refused at start.)
    let server = start_server(Config {
        require_subscribe_token: true,
        publish_token: Some("p".into()),
        connect_rate_per_client: 0,
        ..Config::default()
    });
    let started = std::time::Instant::now();
    let out = bench(
        server.addr,
        &["--streams", "20", "--updates", "2", "--interval-ms", "10", "--threads", "2", "--token", "p", "--json"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(report["streamsHeld"], 0, "{report}");
    let errors = report["errors"].to_string();
    assert!(errors.contains("answer: HTTP/1.1 401"), "{report}");
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "the tool waited for nothing");
}

#[test]
fn bench_refuses_addresses_off_this_machine() {
    // A load tool must never be pointed at another host.
    let out = bench("192.0.2.1:8080", &["--streams", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn bench_publishes_as_fast_as_its_producers_go() {
    // 4 keep-alive producers, one request in flight each: every update is answered, and every
    // delivery is counted or reported lost (a viewer that falls behind may skip to the newest).
    let server = start_default();
    let out = bench(server.addr, &["--streams", "10", "--updates", "400", "--producers", "4", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    let (delivered, lost) = (report["delivered"].as_u64().unwrap(), report["lost"].as_u64().unwrap());
    assert_eq!(delivered + lost, 4000, "{report}");
    assert!(delivered >= 10, "every viewer got at least the newest update: {report}");
    assert!(report["publishRatePerSec"].as_f64().unwrap() > 0.0, "{report}");
}

#[test]
fn bench_stops_when_publishing_is_refused() {
    let server =
        start_server(Config { publish_token: Some("right".into()), connect_rate_per_client: 0, ..Config::default() });
    let out = bench(server.addr, &["--streams", "2", "--updates", "10", "--producers", "2", "--token", "right"]);
    assert!(out.status.success(), "the right token publishes: {}", String::from_utf8_lossy(&out.stderr));
    let out = bench(server.addr, &["--streams", "2", "--updates", "10", "--producers", "2", "--token", "wrong"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("401") || stderr.contains("403"), "{stderr}");
}

#[test]
fn bench_reports_viewers_that_cannot_connect_at_once() {
    // An IPv6 source for an IPv4 server: every viewer fails before its connect, and the tool
    // says so and exits 1 without waiting out its connect deadline.
    let server = start_default();
    let started = std::time::Instant::now();
    let out =
        bench(server.addr, &["--streams", "5", "--updates", "1", "--interval-ms", "10", "--sources", "::1", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(report["streamsHeld"], 0, "{report}");
    assert!(report["errors"].to_string().contains("connect: "), "{report}");
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "the tool waited for nothing");
}

#[test]
fn bench_measures_patches_under_a_head_flood() {
    // `--head-flood`: two connections pipeline HEADs of a task with a ~1 MiB result while one
    // producer PATCHes another; the report has every PATCH's round trip and the HEADs answered,
    // and the tool cleans up both tasks.
    let server = start_default();
    let out = bench(
        server.addr,
        &["--head-flood", "20", "--updates", "10", "--interval-ms", "10", "--task", "flood", "--json"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!((report["mode"].as_str(), report["updates"].as_u64()), (Some("head-flood"), Some(10)), "{report}");
    assert_eq!((report["floodConnections"].as_u64(), report["pipelinedHeads"].as_u64()), (Some(2), Some(20)));
    assert!(report["resultBytes"].as_u64().unwrap() > 1_000_000, "{report}");
    let (p50, p99, max) = (report["patchP50Us"].as_u64(), report["patchP99Us"].as_u64(), report["patchMaxUs"].as_u64());
    assert!(p50 > Some(0) && p50 <= p99 && p99 <= max, "{report}");
    assert!(report["headsAnswered"].as_u64().unwrap() > 0, "the flood ran alongside: {report}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert!(server.tracker.get_task("flood").is_none() && server.tracker.get_task("flood-large").is_none());
}

#[test]
fn bench_follows_several_tasks_per_stream() {
    // `--tasks-per-stream 5`: every viewer follows the 5 tasks over one `?tasks=` stream and the
    // 10 updates take the tasks in turn, so each update still reaches all 20 viewers; the report
    // says K and carries memory and CPU per event.
    let server = start_default();
    let pid = std::process::id().to_string();
    let args = ["--streams", "20", "--updates", "10", "--interval-ms", "10", "--task", "multi", "--server-pid", &pid];
    let out = bench(server.addr, &[&args[..], &["--tasks-per-stream", "5", "--json"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!((report["tasksPerStream"].as_u64(), report["streamsHeld"].as_u64()), (Some(5), Some(20)), "{report}");
    assert_eq!((report["delivered"].as_u64(), report["lost"].as_u64()), (Some(200), Some(0)), "{report}");
    assert!(report["memoryPerStreamBytes"].is_number() && report["cpuPerEventUs"].is_number(), "{report}");
    for i in 0..5 {
        let task = server.tracker.get_task(&format!("multi-{i}")).expect("each of the K tasks exists");
        assert_eq!(task.event_id, 3, "created, then 2 of the 10 updates: {i}");
    }
    // Without the flag the report is what it always was: no tasksPerStream field.
    let out = bench(server.addr, &["--streams", "2", "--updates", "1", "--interval-ms", "10", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert!(report.get("tasksPerStream").is_none() && report["delivered"] == 2, "{report}");
}

#[test]
fn bench_refuses_tasks_per_stream_where_it_cannot_mean_anything() {
    // nchan has no multi-task streams, K is 1 to 100, and a head flood has no viewers.
    for args in [
        &["--peer", "nchan", "--tasks-per-stream", "10"][..],
        &["--tasks-per-stream", "0"],
        &["--tasks-per-stream", "101"],
        &["--tasks-per-stream", "2", "--head-flood", "10"],
    ] {
        let out = bench("127.0.0.1:1", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--tasks-per-stream"), "{args:?}");
    }
}
