//! The stream and HEAD as the real `curl` sees them: a clean end (exit 0) after the terminal
//! event, and the task status in headers. Skipped, with a note, when `curl` is not installed.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;

use serde_json::{Value, json};

use crate::support::*;

/// Whether `curl` is missing (then the test is skipped, with a note).
fn curl_missing() -> bool {
    let found = Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("note: `curl` is not installed; skipping this test");
    }
    !found
}

/// Runs curl to its end (every call passes `--max-time`, so this is bounded).
fn curl(args: &[&str]) -> Output {
    Command::new("curl").args(args).stdin(Stdio::null()).output().expect("curl runs")
}

/// The URL of `task_id`'s stream.
fn progress_url(addr: SocketAddr, task_id: &str) -> String {
    format!("http://{addr}/api/brand-monitor/progress/{task_id}")
}

#[test]
fn curl_follows_a_stream_to_its_clean_end() {
    // Shows `curl -sN` printing retry, connected and every progress event, then exiting 0.
    if curl_missing() {
        return;
    }
    let server = start_default();
    let addr = server.addr;
    call(addr, "POST", "/api/brand-monitor/tasks", Some(json!({"taskId": "curled", "stage": "Init"})));
    let url = progress_url(addr, "curled");
    let mut child = Command::new("curl")
        .args(["-sN", "--max-time", "10", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl starts");
    let stdout = child.stdout.take().unwrap();
    let (line_tx, lines) = mpsc::channel::<String>();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut output = Vec::new();
    let mut next_line = || {
        let line = lines.recv_timeout(2 * TIMEOUT);
        if let Ok(line) = &line {
            output.push(line.clone());
        }
        line
    };
    // Wait for the snapshot, so the producer's changes all happen while curl is connected.
    while next_line().expect("curl prints the snapshot") != "id: 1" {}

    let producer = thread::spawn(move || {
        for progress in [20, 40, 60, 80] {
            let body = json!({"progress": progress, "stage": format!("at {progress}")});
            call(addr, "PATCH", "/api/brand-monitor/tasks/curled", Some(body));
        }
        call(addr, "POST", "/api/brand-monitor/tasks/curled/complete", Some(json!({"result": {"ok": true}})))
    });
    while next_line().is_ok() {}
    let done = producer.join().unwrap();
    let status = child.wait().expect("curl exits (it has --max-time 10)");
    assert!(status.success(), "curl ends cleanly, not by timeout or a broken body: {status}");

    let text = output.join("\n");
    assert_eq!(output.first().map(String::as_str), Some("retry: 2000"), "{text}");
    assert!(text.contains("\nevent: connected\ndata: {"), "{text}");
    let ids: Vec<&str> = output.iter().filter_map(|l| l.strip_prefix("id: ")).collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5", "6"], "{text}");
    assert_eq!(output.iter().filter(|l| *l == "event: progress").count(), 6, "{text}");
    let last = output.iter().rev().find_map(|l| l.strip_prefix("data: ")).expect("a data line");
    assert_eq!(serde_json::from_str::<Value>(last).unwrap(), done);
    assert_eq!(done["status"], "completed");
}

#[test]
fn curl_head_shows_the_task_status() {
    // Shows `curl -sI` (HEAD): 200 with X-Task-Status and the other X-Task-* headers, or 404.
    if curl_missing() {
        return;
    }
    let server = start_default();
    call(server.addr, "POST", "/api/brand-monitor/tasks", Some(json!({"taskId": "headed"})));
    let task = call(
        server.addr,
        "PATCH",
        "/api/brand-monitor/tasks/headed",
        Some(json!({"progress": 40, "stage": "Données 2/3"})),
    );
    let out = curl(&["-sI", "--max-time", "10", &progress_url(server.addr, "headed")]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let headers: Vec<(String, String)> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {name}: {text}"))
    };
    assert_eq!(header("x-task-status"), "running");
    assert_eq!(header("x-task-progress").parse::<f64>().ok(), Some(40.0));
    assert_eq!(header("x-task-stage"), "Donn%C3%A9es%202%2F3");
    assert_eq!(header("x-task-event-id"), "2");
    assert_eq!(header("x-task-updated-at"), task["updatedAt"].to_string());

    call(server.addr, "POST", "/api/brand-monitor/tasks/headed/complete", Some(json!({})));
    let out = curl(&["-sI", "--max-time", "10", &progress_url(server.addr, "headed")]);
    let text = String::from_utf8(out.stdout).unwrap().to_ascii_lowercase();
    assert!(text.contains("\nx-task-status: completed\r\n"), "{text}");

    let out = curl(&["-sI", "--max-time", "10", &progress_url(server.addr, "nobody")]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
}

#[test]
fn curl_gets_204_for_a_finished_task_it_has_seen_to_the_end() {
    // Shows the answer EventSource stops on, and a finished stream over HTTP/1.0, through curl.
    if curl_missing() {
        return;
    }
    let server = start_default();
    call(server.addr, "POST", "/api/brand-monitor/tasks", Some(json!({"taskId": "seen"})));
    let done = call(server.addr, "POST", "/api/brand-monitor/tasks/seen/complete", Some(json!({})));
    let url = progress_url(server.addr, "seen");
    let out = curl(&["-s", "--max-time", "10", "-H", "Last-Event-ID: 2", "-w", "%{http_code}", &url]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "204", "no body, only the code");

    let out = curl(&["-sN", "--http1.0", "--max-time", "10", &url]);
    assert!(out.status.success(), "a close-delimited stream ends cleanly too: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("retry: 2000\n"), "{text}");
    let data = text.lines().rev().find_map(|l| l.strip_prefix("data: ")).unwrap();
    assert_eq!(serde_json::from_str::<Value>(data).unwrap(), done);
}
