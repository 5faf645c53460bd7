//! The `bench` load tool against a real server: it holds the streams, counts every delivery and
//! reports the figures as one JSON line.
mod support;

use std::process::Command;

use support::*;

#[test]
fn bench_reports_every_delivery_as_json() {
    // 50 viewers x 4 updates over loopback: all 200 deliveries counted, none lost.
    let server = start_default();
    let pid = std::process::id().to_string(); // the server runs in this test process
    let out = Command::new(env!("CARGO_BIN_EXE_sse-progress"))
        .args(["bench", "--url", &format!("http://{}", server.addr), "--streams", "50", "--updates", "4"])
        .args(["--interval-ms", "20", "--sources", "127.0.0.1,127.0.0.2", "--server-pid", &pid, "--json"])
        .output()
        .expect("bench runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(report["streamsHeld"], 50, "{report}");
    assert_eq!((report["delivered"].as_u64(), report["lost"].as_u64()), (Some(200), Some(0)), "{report}");
    assert!(report["latencyP50Us"].as_u64().unwrap() <= report["latencyP99Us"].as_u64().unwrap());
    assert!(report["memoryPerStreamBytes"].is_number() && report["cpuPerEventUs"].is_number(), "{report}");
}

#[test]
fn bench_refuses_addresses_off_this_machine() {
    // A load tool must never be pointed at another host.
    let out = Command::new(env!("CARGO_BIN_EXE_sse-progress"))
        .args(["bench", "--url", "http://192.0.2.1:8080", "--streams", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}
