//! The `sse-progress` binary from a shell's point of view: `publish`, `watch`, `serve`'s checks
//! and help, `demo`, and `DEBUG` logging.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// Runs the binary with `args` to its end (bounded).
fn run(args: &[&str]) -> Output {
    run_with_env(args, &[])
}

/// Waits for a child, killing it (and failing) if it overruns.
fn wait_bounded(child: &mut Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the command did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a run printed on stdout.
fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn publish_drives_a_task_through_its_life() {
    // create, update, complete, get and list from the shell, each printing the answer's JSON.
    let server = start_default();
    let url = format!("http://{}", server.addr);
    let out = run(&["publish", &url, "create", "--id", "cli-1", "--stage", "Checking out"]);
    assert!(out.status.success(), "{out:?}");
    let task: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!((task["taskId"].as_str(), task["stage"].as_str()), (Some("cli-1"), Some("Checking out")));
    let out = run(&["publish", &url, "update", "cli-1", "--progress", "40", "--message", "Compiling"]);
    let task: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!((task["progress"].as_f64(), task["eventId"].as_u64()), (Some(40.0), Some(2)));
    let out = run(&["publish", &url, "complete", "cli-1", "--result", r#"{"artifact":"app.tar"}"#]);
    let task: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(task["result"]["artifact"], "app.tar");
    let out = run(&["publish", &url, "update", "cli-1", "--progress", "50"]);
    assert_eq!(out.status.code(), Some(1), "an error answer exits 1");
    assert!(stdout(&out).contains("task_finished"));
    let out = run(&["publish", &url, "list"]);
    assert!(stdout(&out).contains("cli-1"));
    let out = run(&["publish", &url, "fail"]);
    assert_eq!(out.status.code(), Some(2), "a usage error exits 2");
}

#[test]
fn publish_sends_the_token() {
    // --token becomes `Authorization: Bearer`; without it the server answers 401.
    let server = start_server(sse_progress::Config { publish_token: Some("t0k".into()), ..Default::default() });
    let url = format!("http://{}", server.addr);
    assert_eq!(run(&["publish", &url, "create", "--id", "a"]).status.code(), Some(1));
    assert!(run(&["publish", &url, "create", "--id", "a", "--token", "t0k"]).status.success());
}

#[test]
fn watch_follows_a_task_to_its_end() {
    // `watch` prints progress lines and exits 0 when the task completes (1 when it fails).
    let server = start_default();
    server.tracker.create_task("w", "Start").unwrap();
    let mut child = Command::new(BIN)
        .args(["watch", &format!("http://{}", server.addr), "w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first line").unwrap();
    assert!(first.contains("pending"), "{first}");
    server.tracker.update_task("w", sse_progress::TaskUpdate::running(50.0).stage("Half")).unwrap();
    let line = lines.next().unwrap().unwrap();
    assert!(line.contains(" 50.0%") && line.contains("Half"), "{line}");
    server.tracker.complete_task("w", serde_json::Value::Null).unwrap();
    let line = lines.next().unwrap().unwrap();
    assert!(line.contains("100.0%") && line.contains("completed"), "{line}");
    wait_bounded(&mut child, Duration::from_secs(10));
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn serve_explains_itself_and_refuses_unsafe_settings() {
    // --help lists every flag with its variable; a public address without a token is refused.
    let help = stdout(&run(&["serve", "--help"]));
    for flag in [
        "--listen",
        "--publish-token",
        "--heartbeat-secs",
        "--retention-secs",
        "--threads",
        "--max-connections",
        "--max-streams-per-client",
        "--connect-rate-per-client",
        "--trust-proxy",
        "--require-subscribe-token",
        "--cors-origin",
        "--drain-secs",
        "--allow-unauthenticated",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
        let var = format!("SSE_PROGRESS_{}", flag[2..].to_uppercase().replace('-', "_"));
        assert!(help.contains(&var), "{var} missing");
    }
    let out = run(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--publish-token"));
    let out = run(&["serve", "--heartbeat-secs", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(run(&["nonsense"]).status.code(), Some(2));
}

/// A free port on 127.0.0.1 (bound, then released for the child to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn demo_serves_simulated_tasks_that_curl_can_watch() {
    // The demo prints curl commands; following one shows retry, connected and progress events.
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", &format!("127.0.0.1:{port}"), "--exit-after-secs", "20"])
        .env("DEBUG", "sse:http")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    let watch_url = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "the banner ended without a curl line: {banner}");
        banner.push_str(&line);
        if let Some(url) = line.trim().strip_prefix("curl -N ") {
            break url.to_owned();
        }
    };
    let curl = Command::new("curl").args(["-sN", "--max-time", "4", &watch_url]).output().expect("curl runs");
    let text = String::from_utf8_lossy(&curl.stdout);
    assert!(text.starts_with("retry: 2000\n"), "{text}");
    assert!(text.contains("event: connected\n"), "{text}");
    assert!(text.matches("event: progress\n").count() >= 2, "a demo task moves within 4 s: {text}");
    let page = request(format!("127.0.0.1:{port}").parse().unwrap(), "GET", "/", &[], None);
    assert!(page.text().contains("/client/sse-progress.js"), "the live dashboard");
    let _ = child.kill();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let _ = child.wait();
    assert!(stderr.contains("sse:http"), "DEBUG=sse:http logs requests: {stderr}");
}

/// Runs the binary with `args` and the environment variables `env` set.
fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bounded(&mut child, Duration::from_secs(20));
    child.wait_with_output().unwrap()
}

/// What a run printed on stderr.
fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn watch_does_not_send_a_token_from_the_environment() {
    // `SSE_PROGRESS_TOKEN` exported for another command must not go out in watch's stream URL
    // (where proxies log it): the request line a tiny server receives carries no token.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut reader = BufReader::new(socket);
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            assert!(reader.read_line(&mut head).unwrap() > 0, "the request ended early: {head:?}");
        }
        let mut socket = reader.into_inner();
        std::io::Write::write_all(
            &mut socket,
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        head
    });
    let out = run_with_env(&["watch", &url, "some-task"], &[("SSE_PROGRESS_TOKEN", "secret")]);
    let head = server.join().unwrap();
    assert!(head.starts_with("GET /api/brand-monitor/progress/some-task HTTP/1.1\r\n"), "{head}");
    assert!(!head.contains("secret"), "the token went out: {head}");
    assert_eq!(out.status.code(), Some(1), "a task not found exits 1: {out:?}");
}

#[test]
fn publish_and_bench_read_no_environment_variables() {
    // Variables named after publish's and bench's flags change nothing: no message added to a
    // publish, no token sent, no bench setting taken.
    let server = start_server(sse_progress::Config { publish_token: Some("t0k".into()), ..Default::default() });
    let url = format!("http://{}", server.addr);
    let env = [("SSE_PROGRESS_MESSAGE", "injected"), ("SSE_PROGRESS_STAGE", "injected")];
    let out = run_with_env(&["publish", &url, "create", "--id", "e", "--token", "t0k"], &env);
    assert!(out.status.success(), "{out:?}");
    let task: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!((task["message"].as_str(), task["stage"].as_str()), (Some(""), Some("")), "{task}");
    let env = [("SSE_PROGRESS_TOKEN", "t0k"), ("SSE_PROGRESS_PUBLISH_TOKEN", "t0k")];
    let out = run_with_env(&["publish", &url, "create", "--id", "f"], &env);
    assert_eq!(out.status.code(), Some(1), "no token from the environment, so 401: {out:?}");
    assert!(stdout(&out).contains("401") || stdout(&out).contains("unauthorized"), "{}", stdout(&out));
    // A bench setting from the environment would be refused as not a number before any connect.
    let out =
        run_with_env(&["bench", "--url", "http://127.0.0.1:1", "--streams", "1"], &[("SSE_PROGRESS_UPDATES", "x")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot connect") && !stderr(&out).contains("--updates"), "{}", stderr(&out));
}

#[test]
fn help_lists_the_variables_of_serve_and_demo_and_none_elsewhere() {
    // serve and demo name a variable for each flag, the new protection flags included; publish,
    // watch and bench say they read none.
    for (command, flags) in [
        ("serve", &["--max-connections-per-client", "--max-result-bytes", "--allowed-host", "--listen"][..]),
        ("demo", &["--allowed-host", "--concurrent", "--exit-after-secs"][..]),
    ] {
        let help = stdout(&run(&[command, "--help"]));
        for flag in flags {
            let var = format!("SSE_PROGRESS_{}", flag[2..].to_uppercase().replace('-', "_"));
            assert!(help.contains(flag) && help.contains(&format!("[env: {var}]")), "{flag} / {var} in:\n{help}");
        }
    }
    for command in ["publish", "watch", "bench"] {
        let help = stdout(&run(&[command, "--help"]));
        assert!(help.contains("Reads no environment variables") && !help.contains("SSE_PROGRESS"), "{help}");
    }
}

#[test]
fn serve_refuses_numbers_out_of_range_at_start() {
    // Durations past ten years (which would overflow deadlines later) and counts past their type
    // are refused before listening, naming the flag; exit 2.
    for (flag, value) in [
        ("--retention-secs", "99999999999999999"),
        ("--drain-secs", "99999999999999999"),
        ("--drain-secs", "315360001"),
        ("--heartbeat-secs", "99999999999999999999999"),
        ("--max-streams-per-client", "4294967296"),
    ] {
        let out = run(&["serve", "--listen", "127.0.0.1:0", flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {out:?}");
        let message = stderr(&out);
        assert!(message.contains(flag) && !message.contains("listening"), "{flag} {value}: {message}");
    }
    let message = stderr(&run(&["serve", "--listen", "127.0.0.1:0", "--retention-secs", "99999999999999999"]));
    assert!(message.contains("ten years"), "{message}");
}

#[test]
fn serve_refuses_settings_that_protect_nothing() {
    // Subscribe tokens without a publish token, and an empty publish token, are refused at start
    // with a sentence saying why (an empty token used to be dropped, leaving the server open).
    let out = run(&["serve", "--listen", "127.0.0.1:0", "--require-subscribe-token"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("publish token"), "{}", stderr(&out));
    let out = run(&["serve", "--listen", "127.0.0.1:0", "--publish-token", ""]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));
    let out = run_with_env(&["serve", "--listen", "127.0.0.1:0"], &[("SSE_PROGRESS_PUBLISH_TOKEN", "")]);
    assert_eq!(out.status.code(), Some(2), "an empty token from the environment too: {out:?}");
}

#[test]
fn serve_lowers_max_connections_to_the_open_file_limit() {
    // A cap the open-file limit cannot honour is lowered, with a note, and the server starts.
    let binary = Binary::serve(&["--max-connections", "999999999999"]);
    let seen = &binary.seen;
    assert!(
        seen.iter().any(|l| l.contains("--max-connections 999999999999") && l.contains("open-file limit")),
        "{seen:?}"
    );
}
