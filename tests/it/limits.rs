//! Protection settings of `serve` (API.md): the connection cap (503), the per-client stream cap
//! and the per-client connect rate (429), each with `Retry-After` and a JSON error, and how the
//! client address is taken from `X-Forwarded-For` only behind the trusted proxy.

use std::io::{BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sse_progress::client::{self, Reply};
use sse_progress::{Config, TaskUpdate};

use crate::support::*;

/// The address written `text`.
fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Sends one request on `stream` and reads one reply. A write error is ignored: a refused
/// connection may be answered and closed before the request is sent, and the answer is still
/// there to read.
fn request_on(
    mut stream: TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (Reply, BufReader<TcpStream>) {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    let _ = stream.write_all(text.as_bytes());
    let mut reader = BufReader::new(stream);
    let reply =
        client::read_reply(&mut reader, method == "HEAD").unwrap_or_else(|e| panic!("a reply to {method} {path}: {e}"));
    (reply, reader)
}

/// `GET /health` on a new connection from `source` (127.0.0.1 when `None`); the reply.
fn health_from(source: Option<IpAddr>, addr: SocketAddr, headers: &[(&str, &str)]) -> Reply {
    let stream = match source {
        Some(source) => connect_from(source, addr),
        None => connect(addr),
    };
    request_on(stream, "GET", HEALTH, &[&[("Connection", "close")], headers].concat()).0
}

/// Opens a stream of `task` on `stream`; the reply head (for a 200, the stream stays open in
/// the returned reader).
fn stream_on(stream: TcpStream, task: &str, headers: &[(&str, &str)]) -> (u16, Reply, BufReader<TcpStream>) {
    let mut stream = stream;
    let _ = stream.write_all(stream_request(task, headers).as_bytes());
    let mut reader = BufReader::new(stream);
    let (status, head) = client::read_head(&mut reader).expect("a response head");
    if status == 200 {
        let reply = Reply { status, headers: head, body: Vec::new() };
        return (status, reply, reader);
    }
    let length = head.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    std::io::Read::read_exact(&mut reader, &mut body).expect("the error body");
    (status, Reply { status, headers: head, body }, reader)
}

/// Asserts the documented refusal: `status`, a whole-seconds `Retry-After` of at least 1, and
/// the JSON error answer with `code` (any snake_case code when `code` is `None`); returns the
/// `Retry-After`.
fn assert_refusal(reply: &Reply, status: u16, code: Option<&str>) -> u64 {
    let (got, _) = assert_error_shape(reply, status);
    if let Some(code) = code {
        assert_eq!(got, code, "{}", reply.text());
    }
    assert_retry_after(reply)
}

/// Runs `attempt(k)` until one run takes less than `window`, and returns its result. A token
/// bucket refills with time, so a sequence of connections meant to be "rapid" proves nothing
/// about the limit if the machine stalled it for longer than the refill time; each retry gets a
/// fresh `k` so it can use addresses (and so buckets) of its own. The assertions are made by
/// the caller on the returned result, never on the time.
fn rapidly<T>(window: Duration, mut attempt: impl FnMut(u8) -> T) -> T {
    for k in 0..5 {
        let started = Instant::now();
        let result = attempt(k);
        if started.elapsed() < window {
            return result;
        }
        eprintln!("attempt {k} took {:?} (over {window:?}): inconclusive, again", started.elapsed());
    }
    panic!("five attempts were all slower than {window:?}; the machine is too loaded to test a rate")
}

/// The status of each reply.
fn statuses(replies: &[Reply]) -> Vec<u16> {
    replies.iter().map(|r| r.status).collect()
}

#[test]
fn beyond_max_connections_a_connection_gets_503_until_one_closes() {
    // Shows that the N+1th open connection is answered 503 + Retry-After + JSON, the open ones are
    // not disturbed, and a slot freed by a close is served again.
    let server =
        start_server(Config { max_connections: 5, connect_rate_per_client: 0, threads: 2, ..Config::default() });
    server.tracker.create_task("capped", "start").unwrap();
    let mut streams: Vec<Stream> = (0..5)
        .map(|_| {
            let (stream, _) = follow(server.addr, "capped");
            stream
        })
        .collect();

    for _ in 0..3 {
        let reply = health_from(None, server.addr, &[]);
        let retry = assert_refusal(&reply, 503, None);
        assert!(retry <= 60, "a Retry-After of a few seconds, not {retry}");
    }

    // The refusals cost the open streams nothing.
    server.tracker.update_task("capped", TaskUpdate::running(10.0).message("still here")).unwrap();
    for stream in &mut streams {
        let event = stream.next_non_heartbeat().expect("the update");
        assert_eq!(event.id.as_deref(), Some("2"), "{event:?}");
    }

    drop(streams.pop());
    // The new stream itself is the probe (a probe connection of its own could still hold the
    // slot when the stream came).
    let mut extra = None;
    wait_until("a freed slot to be served", || {
        let (status, reply, reader) = stream_on(connect(server.addr), "capped", &[]);
        if status != 200 {
            assert_refusal(&reply, 503, None);
            return false;
        }
        extra = Some(reader);
        true
    });
    // And the cap holds again: 4 streams + the new one fill it.
    assert_refusal(&health_from(None, server.addr, &[]), 503, None);
    drop(extra);
}

#[test]
fn max_streams_per_client_is_counted_per_source_address() {
    // Shows that the 3rd stream from 127.0.0.1 gets 429 `too_many_streams` + Retry-After, while
    // another source address (127.0.0.2) has its own cap, and a closed stream frees its place.
    let server =
        start_server(Config { max_streams_per_client: 2, connect_rate_per_client: 0, threads: 2, ..Config::default() });
    server.tracker.create_task("per-client", "start").unwrap();
    let local = ip("127.0.0.1");
    let other = ip("127.0.0.2");

    let mut ours: Vec<_> = (0..2)
        .map(|_| {
            let (status, reply, reader) = stream_on(connect_from(local, server.addr), "per-client", &[]);
            assert_eq!(status, 200, "{}", reply.text());
            reader
        })
        .collect();
    let (status, reply, _) = stream_on(connect_from(local, server.addr), "per-client", &[]);
    assert_eq!(status, 429);
    assert_refusal(&reply, 429, Some("too_many_streams"));

    // Other requests from the same address are not streams and are not capped.
    assert_eq!(health_from(Some(local), server.addr, &[]).status, 200);

    // 127.0.0.2 has a cap of its own.
    let theirs: Vec<_> = (0..2)
        .map(|_| {
            let (status, reply, reader) = stream_on(connect_from(other, server.addr), "per-client", &[]);
            assert_eq!(status, 200, "from 127.0.0.2: {}", reply.text());
            reader
        })
        .collect();
    let (_, reply, _) = stream_on(connect_from(other, server.addr), "per-client", &[]);
    assert_refusal(&reply, 429, Some("too_many_streams"));

    // Closing one of ours frees a place for 127.0.0.1 only.
    drop(ours.pop());
    let mut replacement = None;
    wait_until("the freed stream place", || {
        let (status, _, reader) = stream_on(connect_from(local, server.addr), "per-client", &[]);
        if status == 200 {
            replacement = Some(reader);
        }
        status == 200
    });
    let (_, reply, _) = stream_on(connect_from(other, server.addr), "per-client", &[]);
    assert_refusal(&reply, 429, Some("too_many_streams"));
    drop((ours, theirs, replacement));
}

#[test]
fn the_connect_rate_refuses_the_connection_past_the_burst() {
    // Shows that with `connect_rate_per_client: 3` the 4th rapid connection gets 429
    // `too_many_connections` with Retry-After >= 1, another address is not affected, and the
    // limit is a rate: the address is served again later.
    let server = start_server(Config { connect_rate_per_client: 3, threads: 2, ..Config::default() });
    // Three tokens refill in one second; a sequence of four must fit in a third of that.
    let (source, replies, other) = rapidly(Duration::from_millis(300), |k| {
        let source = ip(&format!("127.0.1.{}", 10 + k));
        let replies: Vec<Reply> = (0..4).map(|_| health_from(Some(source), server.addr, &[])).collect();
        let other = health_from(Some(ip(&format!("127.0.2.{}", 10 + k))), server.addr, &[]);
        (source, replies, other)
    });
    assert_eq!(statuses(&replies[..3]), [200, 200, 200], "the burst is admitted");
    assert_refusal(&replies[3], 429, Some("too_many_connections"));
    assert_eq!(other.status, 200, "another address has its own bucket: {}", other.text());
    wait_until("the rate to admit the address again", || health_from(Some(source), server.addr, &[]).status == 200);
}

#[test]
fn behind_the_trusted_proxy_the_rightmost_forwarded_address_is_limited() {
    // Shows that with `trust_proxy` the connect rate is counted per `X-Forwarded-For` address
    // (the rightmost entry; entries before it are the client's own claims and are ignored).
    let server = start_server(Config {
        trust_proxy: Some(ip("127.0.0.1")),
        connect_rate_per_client: 2,
        threads: 2,
        ..Config::default()
    });
    let replies = rapidly(Duration::from_millis(400), |k| {
        let a = format!("10.{k}.0.1");
        let b = format!("10.{k}.0.2");
        let fresh = format!("10.{k}.0.3");
        let xff = |value: &str| health_from(None, server.addr, &[("X-Forwarded-For", value)]);
        vec![
            xff(&a),                                // 0: a, admitted
            xff(&a),                                // 1: a, admitted (burst 2)
            xff(&a),                                // 2: a, refused
            xff(&b),                                // 3: b, its own bucket
            xff(&format!("9.9.9.9, {a}")),          // 4: counts as a: refused
            xff(&format!("{a}, {fresh}")),          // 5: counts as fresh: admitted
            xff(&format!("{a},{b}")),               // 6: counts as b (second one): admitted
            xff(&format!("{fresh}, 8.8.8.8, {b}")), // 7: counts as b (third one): refused
        ]
    });
    assert_eq!(statuses(&replies), [200, 200, 429, 200, 429, 200, 200, 429]);
    for i in [2, 4, 7] {
        assert_refusal(&replies[i], 429, Some("too_many_connections"));
    }
}

#[test]
fn behind_the_trusted_proxy_streams_are_capped_per_forwarded_address() {
    // Shows that the per-client stream cap also uses the forwarded address behind the trusted
    // proxy: one claimed address is capped, another one is not.
    let server = start_server(Config {
        trust_proxy: Some(ip("127.0.0.1")),
        max_streams_per_client: 1,
        connect_rate_per_client: 0,
        threads: 2,
        ..Config::default()
    });
    server.tracker.create_task("proxied", "start").unwrap();
    let open = |xff: &str| stream_on(connect(server.addr), "proxied", &[("X-Forwarded-For", xff)]);
    let (status, _, first) = open("10.9.0.1");
    assert_eq!(status, 200);
    let (_, reply, _) = open("10.9.0.1");
    assert_refusal(&reply, 429, Some("too_many_streams"));
    let (_, reply, _) = open("192.0.2.1, 10.9.0.1");
    assert_refusal(&reply, 429, Some("too_many_streams"));
    let (status, reply, second) = open("10.9.0.2");
    assert_eq!(status, 200, "another forwarded address has its own cap: {}", reply.text());
    // A proxy that adds its own header line after the client's: the last line's entry counts.
    let (status, reply, third) =
        stream_on(connect(server.addr), "proxied", &[("X-Forwarded-For", "10.9.0.1"), ("X-Forwarded-For", "10.9.0.3")]);
    assert_eq!(status, 200, "counted as 10.9.0.3, not the client's own 10.9.0.1: {}", reply.text());
    let (_, reply, _) =
        stream_on(connect(server.addr), "proxied", &[("X-Forwarded-For", "10.9.0.4"), ("X-Forwarded-For", "10.9.0.1")]);
    assert_refusal(&reply, 429, Some("too_many_streams"));
    drop((first, second, third));
}

#[test]
fn forwarded_for_is_ignored_unless_the_peer_is_the_trusted_proxy() {
    // Shows that `X-Forwarded-For` cannot dodge the connect rate: without `trust_proxy`, and with
    // a proxy configured but a peer that is not it, connections count for the peer address.
    let untrusting = start_server(Config { connect_rate_per_client: 2, threads: 2, ..Config::default() });
    let proxied = start_server(Config {
        trust_proxy: Some(ip("127.0.0.1")),
        connect_rate_per_client: 2,
        threads: 2,
        ..Config::default()
    });
    for server in [&untrusting, &proxied] {
        let replies = rapidly(Duration::from_millis(400), |k| {
            let source = ip(&format!("127.0.3.{}", 10 + k));
            (1..=3)
                .map(|i| health_from(Some(source), server.addr, &[("X-Forwarded-For", &format!("10.{k}.1.{i}"))]))
                .collect::<Vec<_>>()
        });
        assert_eq!(statuses(&replies), [200, 200, 429]);
        assert_refusal(&replies[2], 429, Some("too_many_connections"));
    }
}

#[test]
fn bodies_being_read_are_bounded_over_all_connections() {
    // Shows memory does not grow with what clients send: bodies announced at 1 MiB each and
    // never sent take room while they are read, and once 64 MiB of room is taken the next body
    // is refused at once with 503 `server_busy` and `Retry-After`, unread, on a closed connection.
    let server = start_server(Config {
        connect_rate_per_client: 0,
        max_connections_per_client: 0,
        threads: 2,
        ..Config::default()
    });
    let head = "POST /api/brand-monitor/tasks HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                Content-Length: 1048576\r\n\r\n{";
    let clients: Vec<TcpStream> = (0..70)
        .map(|_| {
            let mut stream = connect(server.addr);
            stream.write_all(head.as_bytes()).unwrap();
            stream.set_nonblocking(true).unwrap();
            stream
        })
        .collect();
    // 64 bodies fit; the other six are refused as soon as they are seen.
    let refused = |clients: &[TcpStream]| {
        clients
            .iter()
            .filter(|c| {
                let mut first = [0u8; 12];
                matches!(c.peek(&mut first), Ok(12)) && &first == b"HTTP/1.1 503"
            })
            .count()
    };
    wait_until("six refusals", || refused(&clients) == 6);
    for client in &clients {
        let mut answer = [0u8; 4096];
        if let Ok(n) = std::io::Read::read(&mut &*client, &mut answer) {
            let text = String::from_utf8_lossy(&answer[..n]);
            assert!(text.contains("server_busy") && text.contains("Retry-After: 1"), "{text}");
            assert!(text.contains("Connection: close"), "{text}");
        }
    }
    drop(clients);
    // Room is given back with the connections: a small body is read again.
    wait_until("room again", || {
        let reply = request(server.addr, "POST", "/api/brand-monitor/tasks", &[], Some("{}"));
        reply.status == 201
    });
}
