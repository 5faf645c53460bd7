//! `sse-progress watch URL TASK_ID`: one task in the terminal, reconnecting with the defaults the
//! original system's React hook documented (up to 3 attempts, 2 s doubling each time), resuming
//! with `Last-Event-ID`.

use std::io::{BufReader, IsTerminal, Write};
use std::time::Duration;

use sse_progress::client::{EventReader, Url, read_head};

use super::flags::{Flag, parse_flags};

/// `watch --help`.
pub const HELP: &str = "\
Usage: sse-progress watch URL TASK_ID [--token TOKEN]

Follows one task with a progress bar until it completes (exit 0) or fails (exit 1).
Reconnects up to 3 times, 2 s doubling, resuming with Last-Event-ID.
--token TOKEN is the task's subscribe token (sent as ?token=).
Reads no environment variables: every setting is a flag of this command line.
";

const MAX_ATTEMPTS: u32 = 3;

/// Runs `watch`; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    // Command-line only: a publish token exported for `publish` must never go out in a URL.
    let flags = &[Flag::new("token", Some("TOKEN"), "subscribe token")];
    let (flags, positional) = match parse_flags(args, &[flags]) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("sse-progress watch: {e}");
            return 2;
        }
    };
    let [url, task_id] = positional.as_slice() else {
        eprint!("{HELP}");
        return 2;
    };
    let url = match Url::parse(url) {
        Ok(url) => url,
        Err(e) => {
            eprintln!("sse-progress watch: {e}");
            return 2;
        }
    };
    let token = flags.get("token").map(|t| format!("?token={t}")).unwrap_or_default();
    let mut last_id: Option<String> = None;
    let mut attempts = 0;
    loop {
        match follow(&url, task_id, &token, &mut last_id) {
            Ok(Some(code)) => return code,
            Ok(None) => attempts = 0, // the stream ended without a terminal event: reconnect at once
            Err(e) => {
                attempts += 1;
                if attempts > MAX_ATTEMPTS {
                    eprintln!("\nsse-progress watch: giving up after {MAX_ATTEMPTS} attempts: {e}");
                    return 1;
                }
                let delay = Duration::from_millis(2000 << (attempts - 1));
                eprintln!("\nsse-progress watch: {e}; reconnecting in {} s", delay.as_secs());
                std::thread::sleep(delay);
            }
        }
    }
}

/// Follows one connection; `Ok(Some(code))` when the task ended.
fn follow(url: &Url, task_id: &str, token: &str, last_id: &mut Option<String>) -> Result<Option<i32>, String> {
    let mut stream = sse_progress::client::connect(url.addr, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    // Heartbeats come every 30 s by default: 75 s of silence means the connection is gone.
    stream.set_read_timeout(Some(Duration::from_secs(75))).map_err(|e| e.to_string())?;
    let mut head = format!(
        "GET {}/api/brand-monitor/progress/{task_id}{token} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n",
        url.base, url.authority
    );
    if let Some(id) = last_id {
        head.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader).map_err(|e| e.to_string())?;
    match status {
        200 => {}
        204 => return Ok(Some(0)),
        404 => {
            eprintln!("sse-progress watch: task {task_id} not found");
            return Ok(Some(1));
        }
        other => return Err(format!("the server answered {other}")),
    }
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let mut events = EventReader::new(reader, chunked);
    let tty = std::io::stdout().is_terminal();
    while let Some(event) = events.next_event().map_err(|e| e.to_string())? {
        if event.id.is_some() {
            last_id.clone_from(&event.id);
        }
        match event.event.as_str() {
            "progress" => {
                let Ok(task) = serde_json::from_str::<serde_json::Value>(&event.data) else { continue };
                print_task(&task, tty);
                match task["status"].as_str() {
                    Some("completed") => return Ok(Some(0)),
                    Some("failed") => return Ok(Some(1)),
                    _ => {}
                }
            }
            "error" => {
                println!("\n{}", event.data);
                return Ok(Some(1));
            }
            _ => {}
        }
    }
    Ok(None)
}

fn print_task(task: &serde_json::Value, tty: bool) {
    let progress = task["progress"].as_f64().unwrap_or(0.0);
    let filled = (progress / 100.0 * 30.0).round() as usize;
    let bar = format!("[{}{}]", "#".repeat(filled.min(30)), "-".repeat(30 - filled.min(30)));
    let eta = task["estimatedTimeRemaining"].as_f64().map(|s| format!(" ~{s:.0}s left")).unwrap_or_default();
    let detail = task["error"].as_str().or(task["stage"].as_str()).unwrap_or("");
    let line = format!("{bar} {progress:5.1}% {:<9} {detail}{eta}", task["status"].as_str().unwrap_or(""));
    let mut out = std::io::stdout().lock();
    if tty {
        let _ = write!(out, "\r\x1b[2K{line}");
        if matches!(task["status"].as_str(), Some("completed" | "failed")) {
            let _ = writeln!(out);
        }
    } else {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}
