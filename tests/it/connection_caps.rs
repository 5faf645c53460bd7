//! Per-client limits on connections (API.md, protection settings): one address cannot fill the
//! server with idle keep-alive sockets (`--max-connections-per-client`), and behind a trusted
//! proxy every request charges the forwarded client, not the proxy's connection once.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sse_progress::Config;

use crate::support::*;

/// A keep-alive health request.
const HEALTH_REQUEST: &str = "GET /api/brand-monitor/health HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// A kept-alive connection that has been answered once (so the server has counted it).
fn held(addr: SocketAddr) -> TcpStream {
    let stream = connect(addr);
    assert_eq!(ask(&stream, HEALTH_REQUEST).status, 200);
    stream
}

#[test]
fn idle_keep_alive_connections_are_capped_per_client() {
    // Shows the cap counts every open connection, not just streams, and frees a slot on close.
    let server = start_server(Config {
        max_connections_per_client: 3,
        connect_rate_per_client: 0,
        threads: 2,
        ..Config::default()
    });
    let mut open: Vec<TcpStream> = (0..3).map(|_| held(server.addr)).collect();
    let refused = raw_exchange(server.addr, HEALTH_REQUEST.as_bytes());
    assert!(refused.starts_with("HTTP/1.1 429 "), "{refused}");
    assert!(refused.contains("too_many_connections") && refused.contains("Retry-After: "), "{refused}");
    drop(open.pop());
    // The server notices the close on its own time: wait for the slot, with a deadline.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let answer =
            raw_exchange(server.addr, HEALTH_REQUEST.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n").as_bytes());
        if answer.starts_with("HTTP/1.1 200 ") {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never freed: {answer}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(open);
}

#[test]
fn behind_a_trusted_proxy_every_request_charges_the_forwarded_client() {
    // Shows the connect rate applies per forwarded client and per request: one proxy connection
    // carrying many requests of one client is limited like that client's own connections.
    let server = start_server(Config {
        trust_proxy: Some("127.0.0.1".parse().unwrap()),
        connect_rate_per_client: 2,
        max_connections_per_client: 1,
        threads: 2,
        ..Config::default()
    });
    let proxy = connect(server.addr);
    let from = |client: &str| {
        format!("GET /api/brand-monitor/health HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: {client}\r\n\r\n")
    };
    assert_eq!(ask(&proxy, &from("10.0.0.1")).status, 200);
    assert_eq!(ask(&proxy, &from("10.0.0.1")).status, 200);
    let refused = ask(&proxy, &from("10.0.0.1"));
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(error_code(&refused), "too_many_connections");
    // The proxy itself is not capped at one connection: it carries many clients.
    let other = connect(server.addr);
    assert_eq!(ask(&other, &from("10.0.0.2")).status, 200);
}

/// The server's `sse_progress_open_connections`, asked from 127.0.0.2 so that the request is not
/// counted with the others.
fn open_connections(addr: SocketAddr) -> f64 {
    let stream = connect_from("127.0.0.2".parse().unwrap(), addr);
    let reply = ask(&stream, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let text = reply.text();
    let line = text.lines().find(|l| l.starts_with("sse_progress_open_connections ")).expect("the gauge");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn refused_connections_hold_few_sockets() {
    // Shows that refusals cannot fill the server: a client at its cap that keeps opening
    // connections (and never closes them) gets its 429s, but only a few of those sockets linger.
    let server = start_server(Config {
        max_connections_per_client: 1,
        connect_rate_per_client: 0,
        threads: 2,
        ..Config::default()
    });
    let _held = held(server.addr);
    let refused: Vec<TcpStream> = (0..100).map(|_| connect(server.addr)).collect();
    for stream in &refused {
        let mut head = [0u8; 12];
        std::io::Read::read_exact(&mut &*stream, &mut head).expect("a refusal");
        assert_eq!(&head, b"HTTP/1.1 429");
    }
    let open = open_connections(server.addr);
    // The held one, the metrics request, and at most 32 lingering refusals.
    assert!(open <= 34.0, "{open} connections open");
    drop(refused);
}
