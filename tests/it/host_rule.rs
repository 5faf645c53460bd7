//! Which hosts are answered (API.md, "Which hosts are answered"): a loopback server answers
//! loopback names only, so a DNS-rebinding page (whose own name is in `Host`) can neither read
//! nor change tasks; `--allowed-host` replaces the default; health and metrics answer any host.

use std::net::SocketAddr;

use crate::support::*;
use sse_progress::Config;

/// The status of `method path` sent with `Host: host` (or no Host when `None`) over `version`.
fn status_for(addr: SocketAddr, method: &str, path: &str, host: Option<&str>, version: &str) -> String {
    let host_line = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    let answer =
        raw_exchange(addr, format!("{method} {path} {version}\r\n{host_line}Connection: close\r\n\r\n").as_bytes());
    answer.lines().next().unwrap_or("").to_owned() + if answer.contains("host_not_allowed") { " host" } else { "" }
}

const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/brand-monitor/tasks"),
    ("GET", "/api/brand-monitor/tasks/t"),
    ("HEAD", "/api/brand-monitor/progress/t"),
    ("DELETE", "/api/brand-monitor/tasks/t"),
    ("GET", "/"),
];

#[test]
fn a_loopback_server_refuses_other_hosts_on_every_route_but_health() {
    // Shows the default rule: another name gets 403 host_not_allowed and changes nothing.
    let server = start_default();
    server.tracker.create_task("t", "").unwrap();
    for (method, path) in ROUTES {
        for host in ["evil.example", "evil.example:8080", "localhost.evil.example", "10.0.0.1"] {
            let status = status_for(server.addr, method, path, Some(host), "HTTP/1.1");
            // A HEAD answer has no body to name the code in.
            let want = if *method == "HEAD" { "HTTP/1.1 403 Forbidden" } else { "HTTP/1.1 403 Forbidden host" };
            assert_eq!(status, want, "{method} {path} for {host}");
        }
    }
    assert!(server.tracker.get_task("t").is_some(), "the DELETE was refused");
    let stream = raw_exchange(
        server.addr,
        b"GET /api/brand-monitor/progress/t HTTP/1.1\r\nHost: rebound.example\r\nConnection: close\r\n\r\n",
    );
    assert!(stream.starts_with("HTTP/1.1 403 ") && !stream.contains("event:"), "{stream}");
    for path in ["/api/brand-monitor/health", "/metrics"] {
        let status = status_for(server.addr, "GET", path, Some("evil.example"), "HTTP/1.1");
        assert_eq!(status, "HTTP/1.1 200 OK", "{path} is for probes and scrapers");
    }
}

#[test]
fn a_loopback_server_answers_its_loopback_names_with_any_port() {
    // Shows which names the default allows, and that HTTP/1.0 without Host is let through.
    let server = start_default();
    server.tracker.create_task("t", "").unwrap();
    let port = server.addr.port().to_string();
    for host in [
        "localhost",
        &format!("localhost:{port}"),
        "LocalHost",
        "app.localhost",
        "127.0.0.1",
        "127.1.2.3:9",
        "[::1]:80",
    ] {
        let status = status_for(server.addr, "GET", "/api/brand-monitor/tasks/t", Some(host), "HTTP/1.1");
        assert_eq!(status, "HTTP/1.1 200 OK", "{host}");
    }
    let status = status_for(server.addr, "GET", "/api/brand-monitor/tasks/t", None, "HTTP/1.0");
    assert_eq!(status, "HTTP/1.1 200 OK", "HTTP/1.0 without Host");
}

#[test]
fn allowed_hosts_replace_the_default() {
    // Shows `--allowed-host`: the list is matched case-insensitively with any port, and `*`
    // allows every host.
    let server = start_server(Config {
        allowed_hosts: vec!["Progress.Example".into(), "other.example".into()],
        threads: 2,
        ..Config::default()
    });
    server.tracker.create_task("t", "").unwrap();
    let path = "/api/brand-monitor/tasks/t";
    assert_eq!(status_for(server.addr, "GET", path, Some("progress.example:8443"), "HTTP/1.1"), "HTTP/1.1 200 OK");
    assert_eq!(status_for(server.addr, "GET", path, Some("OTHER.example"), "HTTP/1.1"), "HTTP/1.1 200 OK");
    assert_eq!(status_for(server.addr, "GET", path, Some("localhost"), "HTTP/1.1"), "HTTP/1.1 403 Forbidden host");
    let any = start_server(Config { allowed_hosts: vec!["*".into()], threads: 2, ..Config::default() });
    any.tracker.create_task("t", "").unwrap();
    assert_eq!(status_for(any.addr, "GET", path, Some("anything.example"), "HTTP/1.1"), "HTTP/1.1 200 OK");
}
