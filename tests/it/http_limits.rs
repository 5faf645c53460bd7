//! The HTTP/1.1 layer at the byte level: limits (431, 413), bodies (Content-Length, chunked,
//! 100-continue), connection handling (pipelining, keep-alive, close, HTTP/1.0, 408) and the
//! JSON answers for malformed requests, unknown routes and wrong methods.

use std::collections::BTreeSet;
use std::io::{BufReader, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use sse_progress::Config;
use sse_progress::client::{self, Reply};

use crate::support::*;

const MIB: usize = 1 << 20;

/// A request with a JSON body as raw text (`extra` is more header lines, each ending in CRLF).
fn json_request(method: &str, path: &str, extra: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A chunked body: the given chunks and the last-chunk, no trailers.
fn chunked(chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn headers_over_8_kib_are_431_json_and_under_it_work() {
    // A request head over 8 KiB answers 431 with the JSON error and closes; a 7 KiB head is served.
    let server = start_unthrottled_default();
    // (case, header lines to add, expected status)
    let cases: Vec<(&str, String, u16)> = vec![
        ("one 7000-byte header", format!("X-Pad: {}\r\n", "a".repeat(7000)), 200),
        ("one 9000-byte header", format!("X-Pad: {}\r\n", "a".repeat(9000)), 431),
        ("40 headers of 250 bytes", (0..40).map(|i| format!("X-Pad-{i}: {}\r\n", "b".repeat(250))).collect(), 431),
        ("one 64 KiB header", format!("X-Pad: {}\r\n", "c".repeat(64 * 1024)), 431),
    ];
    for (case, lines, status) in &cases {
        let text = format!("GET {HEALTH} HTTP/1.1\r\nHost: localhost\r\n{lines}Connection: close\r\n\r\n");
        let got = exchange(server.addr, text.as_bytes());
        assert!(!got.bytes.is_empty(), "{case}: an answer");
        let reply = got.only_reply(false);
        if *status == 200 {
            assert_eq!(reply.status, 200, "{case}: {}", reply.text());
        } else {
            assert_error_shape(&reply, *status);
            assert!(got.closed(), "{case}: the connection closes");
        }
    }
}

#[test]
fn a_body_over_1_mib_by_content_length_is_413_and_1_mib_is_fine() {
    // Content-Length over 1 MiB answers 413 before any body is sent; exactly 1 MiB is read and served.
    let server = start_unthrottled_default();
    let head = format!(
        "POST /api/brand-monitor/tasks HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        MIB + 1
    );
    let got = exchange(server.addr, head.as_bytes());
    assert_error_shape(&got.only_reply(false), 413);
    assert!(got.closed(), "the connection closes after 413");

    let json = r#"{"taskId":"big"}"#;
    let body = format!("{json}{}", " ".repeat(MIB - json.len()));
    assert_eq!(body.len(), MIB);
    let text = json_request("POST", "/api/brand-monitor/tasks", "Connection: close\r\n", &body);
    let got = exchange(server.addr, text.as_bytes());
    let reply = got.only_reply(false);
    assert_eq!(reply.status, 201, "{}", reply.text());
}

#[test]
fn a_chunked_body_over_1_mib_is_413() {
    // A chunked body whose chunks go past 1 MiB answers 413 as soon as the size line says so.
    let server = start_unthrottled_default();
    let block = vec![b' '; 64 * 1024];
    let mut sixteen = Vec::new();
    for _ in 0..16 {
        sixteen.extend_from_slice(format!("{:x}\r\n", block.len()).as_bytes());
        sixteen.extend_from_slice(&block);
        sixteen.extend_from_slice(b"\r\n");
    }
    // Each case ends right after the size line that goes over, so the server has read all of it.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("one chunk of 1 MiB + 1", format!("{:x}\r\n", MIB + 1).into_bytes()),
        ("16 chunks of 64 KiB and one more byte", [sixteen, b"1\r\n".to_vec()].concat()),
        ("a chunk size too big for any integer", b"ffffffffffffffffffff\r\n".to_vec()),
    ];
    for (case, body) in &cases {
        let mut stream = connect(server.addr);
        stream.write_all(CHUNKED_CREATE.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let got = read_until_close(&mut stream);
        let reply = got.only_reply(false);
        if *case == "a chunk size too big for any integer" {
            assert!(matches!(reply.status, 400 | 413), "{case}: {}", reply.text());
            assert_error_shape(&reply, reply.status);
        } else {
            assert_error_shape(&reply, 413);
        }
        assert!(got.closed(), "{case}: the connection closes");
    }
}

#[test]
fn chunked_bodies_under_the_limit_work_and_the_connection_goes_on() {
    // A chunked body (several chunks, extensions, trailers) is decoded and the next request on the connection is served.
    let server = start_unthrottled_default();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("three chunks", chunked(&[br#"{"taskId":"#, br#""ch-a""#, b"}"])),
        ("one byte at a time", chunked(&br#"{"taskId":"ch-b"}"#.iter().map(std::slice::from_ref).collect::<Vec<_>>())),
        ("uppercase hex and an extension", b"A;name=value\r\n{\"taskId\":\r\n7\r\n\"ch-c\"}\r\n0\r\n\r\n".to_vec()),
        ("a trailer field", b"11\r\n{\"taskId\":\"ch-d\"}\r\n0\r\nX-Checksum: 1\r\n\r\n".to_vec()),
    ];
    for (i, (case, body)) in cases.iter().enumerate() {
        let id = ["ch-a", "ch-b", "ch-c", "ch-d"][i];
        let mut bytes = CHUNKED_CREATE.as_bytes().to_vec();
        bytes.extend_from_slice(body);
        bytes.extend_from_slice(
            format!("GET /api/brand-monitor/tasks/{id} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let got = exchange(server.addr, &bytes);
        let replies = replies_in(&got.bytes, &[false, false]);
        assert_eq!(replies[0].status, 201, "{case}: {}", replies[0].text());
        assert_eq!(replies[1].status, 200, "{case}: {}", replies[1].text());
        let task: Value = serde_json::from_slice(&replies[1].body).unwrap();
        assert_eq!(task["taskId"], id, "{case}");
    }
    // Exactly 1 MiB in chunks is within the limit.
    let json = br#"{"taskId":"ch-big"}"#;
    let pad = vec![b' '; MIB - json.len()];
    let mut bytes = CHUNKED_CREATE.as_bytes().to_vec();
    bytes.extend_from_slice(&chunked(&[json, &pad]));
    let mut stream = connect(server.addr);
    stream.write_all(&bytes).unwrap();
    let reply = client::read_reply(&mut BufReader::new(stream), false).unwrap();
    assert_eq!(reply.status, 201, "exactly 1 MiB chunked: {}", reply.text());
}

#[test]
fn expect_100_continue_gets_100_before_the_final_answer() {
    // With `Expect: 100-continue` the server sends `HTTP/1.1 100 Continue` after the head, then reads the body and answers.
    let server = start_unthrottled_default();
    let body = r#"{"taskId":"cont"}"#;
    let head = format!(
        "POST /api/brand-monitor/tasks HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut stream = connect(server.addr);
    stream.write_all(head.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut interim = [0u8; 25];
    reader.read_exact(&mut interim).expect("an interim answer before the body is sent");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n", "{:?}", String::from_utf8_lossy(&interim));
    stream.write_all(body.as_bytes()).unwrap();
    let reply = client::read_reply(&mut reader, false).unwrap();
    assert_eq!(reply.status, 201, "{}", reply.text());
    let task: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(task["taskId"], "cont");
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    // Six requests in one write (a POST with a body among them) get six answers, in order, then the close.
    let server = start_unthrottled_default();
    let mut text = String::new();
    text.push_str(&json_request("POST", "/api/brand-monitor/tasks", "", r#"{"taskId":"pipe"}"#));
    text.push_str("GET /api/brand-monitor/tasks/pipe HTTP/1.1\r\nHost: localhost\r\n\r\n");
    text.push_str(&json_request("PATCH", "/api/brand-monitor/tasks/pipe", "", r#"{"progress":10}"#));
    text.push_str("HEAD /api/brand-monitor/progress/pipe HTTP/1.1\r\nHost: localhost\r\n\r\n");
    text.push_str("GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n");
    text.push_str("GET /api/brand-monitor/tasks/pipe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let got = exchange(server.addr, text.as_bytes());
    assert!(got.closed(), "closed after the last request: {}", got.text());
    let replies = replies_in(&got.bytes, &[false, false, false, true, false, false]);
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [201, 200, 200, 200, 404, 200], "{}", got.text());
    let event_id = |r: &Reply| serde_json::from_slice::<Value>(&r.body).unwrap()["eventId"].as_u64();
    assert_eq!(event_id(&replies[0]), Some(1));
    assert_eq!(event_id(&replies[1]), Some(1), "the GET sees the task before the PATCH");
    assert_eq!(event_id(&replies[2]), Some(2));
    assert_eq!(replies[3].header("x-task-event-id"), Some("2"), "the HEAD sees the PATCH");
    assert_eq!(event_id(&replies[5]), Some(2));
}

#[test]
fn keep_alive_serves_sequential_requests_on_one_connection() {
    // An HTTP/1.1 connection stays open: request, answer, next request, answer, on the same socket.
    let server = start_unthrottled_default();
    let mut stream = connect(server.addr);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let steps: Vec<(String, bool, u16)> = vec![
        (format!("GET {HEALTH} HTTP/1.1\r\nHost: localhost\r\n\r\n"), false, 200),
        (json_request("POST", "/api/brand-monitor/tasks", "", r#"{"taskId":"ka"}"#), false, 201),
        ("HEAD /api/brand-monitor/progress/ka HTTP/1.1\r\nHost: localhost\r\n\r\n".into(), true, 200),
        (
            json_request("PATCH", "/api/brand-monitor/tasks/ka", "Connection: keep-alive\r\n", r#"{"progress":3}"#),
            false,
            200,
        ),
        ("GET /api/brand-monitor/tasks/ka HTTP/1.1\r\nHost: localhost\r\n\r\n".into(), false, 200),
    ];
    for (text, head_only, status) in &steps {
        stream.write_all(text.as_bytes()).unwrap();
        let reply = client::read_reply(&mut reader, *head_only).expect("an answer on the same connection");
        assert_eq!(reply.status, *status, "{text}: {}", reply.text());
        assert_eq!(reply.header("connection"), Some("keep-alive"), "{text}");
    }
}

#[test]
fn connection_close_is_honoured() {
    // `Connection: close` gets one answer saying so, then the close, even with another request already sent.
    let server = start_unthrottled_default();
    let text = format!(
        "GET {HEALTH} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\nGET {HEALTH} HTTP/1.1\r\nHost: localhost\r\n\r\n"
    );
    let got = exchange(server.addr, text.as_bytes());
    assert!(got.closed(), "the server closes");
    let reply = got.only_reply(false);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("connection"), Some("close"));
}

#[test]
fn malformed_requests_are_400_json_and_close() {
    // Bytes that are not a valid request answer 400 with the JSON error, then the connection closes.
    let server = start_unthrottled_default();
    let cases: &[(&str, &[u8])] = &[
        ("garbage", b"\x01\x02 nonsense\r\n\r\n"),
        ("non-UTF-8 method", b"\xff\xfe / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        ("a space in a header name", b"GET / HTTP/1.1\r\nBad Header: 1\r\n\r\n"),
        ("a header line without a colon", b"GET / HTTP/1.1\r\nNoColon\r\n\r\n"),
        ("an unknown HTTP version", b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n"),
        ("not HTTP at all", b"GET / SMTP/1.1\r\nHost: localhost\r\n\r\n"),
        ("Content-Length not a number", b"POST /api/brand-monitor/tasks HTTP/1.1\r\nContent-Length: abc\r\n\r\n"),
        ("Content-Length negative", b"POST /api/brand-monitor/tasks HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
        ("Content-Length signed", b"POST /api/brand-monitor/tasks HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}"),
        ("two different Content-Lengths", b"POST /api/brand-monitor/tasks HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
        ("Transfer-Encoding gzip", b"POST /api/brand-monitor/tasks HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
        ("a bad chunk size", b"POST /api/brand-monitor/tasks HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        ("a chunk without its CRLF", b"POST /api/brand-monitor/tasks HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX"),
    ];
    for (case, bytes) in cases {
        let got = exchange(server.addr, bytes);
        assert!(!got.bytes.is_empty(), "{case}: an answer");
        assert_error_shape(&got.only_reply(false), 400);
        assert!(got.closed(), "{case}: the connection closes");
    }
}

#[test]
fn content_length_together_with_transfer_encoding_is_400() {
    // Both Content-Length and Transfer-Encoding (a smuggling vector) answer 400 and close; the body is never run.
    let server = start_unthrottled_default();
    let smuggled = "GET /api/brand-monitor/tasks/x HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let cases = [
        ("length first", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
        ("chunked first", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
    ];
    for (case, headers) in cases {
        let text = format!(
            "POST /api/brand-monitor/tasks HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{headers}\r\n0\r\n\r\n{smuggled}"
        );
        let got = exchange(server.addr, text.as_bytes());
        assert!(got.closed(), "{case}: the connection closes");
        assert_error_shape(&got.only_reply(false), 400);
    }
}

#[test]
fn unknown_routes_are_404_json() {
    // A path no route matches answers 404 with the JSON error, whatever the method.
    let server = start_unthrottled_default();
    let cases = [
        ("GET", "/nope"),
        ("GET", "/api/brand-monitor/tasksx"),
        ("GET", "/api/brand-monitor/tasks/t1/other"),
        ("POST", "/api/brand-monitor/tasks/t1/complete/more"),
        ("GET", "/api/brand-monitor/progress/a/b"),
        ("GET", "/api/brand-monitor/healthz"),
        ("DELETE", "/api/brand-monitor"),
        ("GET", "/metrics/"),
    ];
    for (method, path) in cases {
        let reply = request(server.addr, method, path, &[], None);
        assert_error_shape(&reply, 404);
    }
}

#[test]
fn a_known_route_with_the_wrong_method_is_405_with_allow() {
    // A known route answers another method with 405, the JSON error and an Allow header listing what it takes.
    let server = start_unthrottled_default();
    // (method, path, methods Allow must list)
    let cases: &[(&str, &str, &[&str])] = &[
        ("POST", HEALTH, &["GET", "HEAD"]),
        ("DELETE", "/api/brand-monitor/progress/t1", &["GET", "HEAD"]),
        ("POST", "/api/brand-monitor/progress/t1", &["GET", "HEAD"]),
        ("GET", "/api/brand-monitor/tasks/t1/complete", &["POST"]),
        ("PATCH", "/api/brand-monitor/tasks/t1/fail", &["POST"]),
        ("PUT", "/api/brand-monitor/tasks", &["GET", "POST"]),
        ("DELETE", "/api/brand-monitor/tasks", &["GET", "POST"]),
        ("POST", "/api/brand-monitor/tasks/t1", &["GET", "PATCH", "DELETE"]),
        ("PUT", "/api/brand-monitor/tasks/t1", &["GET", "PATCH", "DELETE"]),
        ("PATCH", "/metrics", &["GET"]),
        ("BREW", "/", &["GET"]),
    ];
    for (method, path, listed) in cases {
        let reply = request(server.addr, method, path, &[], None);
        assert_error_shape(&reply, 405);
        let allow = reply.header("allow").unwrap_or_else(|| panic!("{method} {path}: an Allow header"));
        let allowed: BTreeSet<&str> = allow.split(',').map(str::trim).collect();
        for m in *listed {
            assert!(allowed.contains(m), "{method} {path}: Allow {allow:?} lists {m}");
        }
        assert!(!allowed.contains(method), "{method} {path}: Allow {allow:?} must not list {method}");
    }
}

#[test]
fn options_is_204_with_allow_and_no_body() {
    // OPTIONS on a known route answers 204 with an Allow header and no body.
    let server = start_unthrottled_default();
    let cases: &[(&str, &[&str])] = &[
        (HEALTH, &["GET", "HEAD"]),
        ("/api/brand-monitor/progress/t1", &["GET", "HEAD"]),
        ("/api/brand-monitor/tasks", &["GET", "POST"]),
        ("/api/brand-monitor/tasks/t1", &["GET", "PATCH", "DELETE"]),
        ("/api/brand-monitor/tasks/t1/complete", &["POST"]),
        ("/api/brand-monitor/tasks/t1/fail", &["POST"]),
        ("/metrics", &["GET"]),
    ];
    for (path, listed) in cases {
        let text = format!("OPTIONS {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let got = exchange(server.addr, text.as_bytes());
        assert!(got.closed(), "{path}");
        let reply = got.only_reply(false);
        assert_eq!(reply.status, 204, "{path}: {}", got.text());
        let allow = reply.header("allow").unwrap_or_else(|| panic!("OPTIONS {path}: an Allow header"));
        let allowed: BTreeSet<&str> = allow.split(',').map(str::trim).collect();
        for m in *listed {
            assert!(allowed.contains(m), "{path}: Allow {allow:?} lists {m}");
        }
    }
}

#[test]
fn head_of_health_has_a_content_length_but_no_body() {
    // HEAD /health answers 200 with the Content-Length of the JSON it would send, and not one body byte.
    let server = start_unthrottled_default();
    let got = exchange(
        server.addr,
        format!("HEAD {HEALTH} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(got.closed());
    let end = got.bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head") + 4;
    assert_eq!(&got.bytes[end..], b"", "no body after the head");
    let reply = got.only_reply(true);
    assert_eq!(reply.status, 200);
    let length: usize = reply.header("content-length").expect("Content-Length").parse().expect("a number");
    let get = request(server.addr, "GET", HEALTH, &[], None);
    // uptimeSeconds may gain a digit between the two requests.
    assert!(length > 50 && length.abs_diff(get.body.len()) <= 2, "HEAD {length}, GET {}", get.body.len());
}

/// A server whose header timeout is short, so the 408 tests are quick.
fn impatient_server() -> TestServer {
    start_unthrottled(Config { header_timeout: Duration::from_millis(300), threads: 2, ..Config::default() })
}

#[test]
fn a_never_finished_header_block_gets_408_and_close() {
    // A head that stops before its blank line is answered 408 (JSON) and closed, well before the client gives up.
    let server = impatient_server();
    let cases: &[(&str, &[u8])] = &[
        ("a request line only", b"GET /api/brand-monitor/health HTTP/1.1\r\n"),
        (
            "headers without the blank line",
            b"GET /api/brand-monitor/health HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n",
        ),
        ("half a request line", b"GET /api/bra"),
    ];
    for (case, bytes) in cases {
        let got = exchange(server.addr, bytes);
        assert!(got.closed(), "{case}: closed before the client's timeout: {}", got.text());
        let reply = got.only_reply(false);
        assert_error_shape(&reply, 408);
    }
}

#[test]
fn a_head_trickling_in_is_still_cut_at_the_header_timeout() {
    // Bytes that keep coming without ever ending the head do not extend the header timeout: 408 and close.
    let server = impatient_server();
    let mut stream = connect(server.addr);
    let mut writer = stream.try_clone().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&done);
    let trickle = std::thread::spawn(move || {
        let _ = writer.write_all(b"GET /api/brand-monitor/health HTTP/1.1\r\n");
        // Pacing, not synchronisation: one header line every 50 ms until the reader is done.
        for i in 0..200 {
            if stop.load(Ordering::Relaxed) || writer.write_all(format!("X-{i}: 1\r\n").as_bytes()).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let got = read_until_close(&mut stream);
    done.store(true, Ordering::Relaxed);
    trickle.join().unwrap();
    assert!(got.closed(), "closed before the client's timeout: {}", got.text());
    assert_error_shape(&got.only_reply(false), 408);
}

#[test]
fn a_connection_that_sends_nothing_gets_408_and_close() {
    // A client that connects and stays silent is answered 408 and closed.
    let server = impatient_server();
    let mut stream = connect(server.addr);
    let got = read_until_close(&mut stream);
    assert!(got.closed(), "closed before the client's timeout");
    assert_error_shape(&got.only_reply(false), 408);
}

#[test]
fn http_1_0_requests_are_answered_and_closed() {
    // An HTTP/1.0 request without keep-alive is answered whole and the connection closes.
    let server = start_unthrottled_default();
    let cases: &[(&str, &[u8], u16)] = &[
        ("GET health", b"GET /api/brand-monitor/health HTTP/1.0\r\n\r\n", 200),
        ("GET with a Host", b"GET /api/brand-monitor/tasks HTTP/1.0\r\nHost: localhost\r\n\r\n", 200),
        ("POST with a body", b"POST /api/brand-monitor/tasks HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"taskId\":\"old\"}", 201),
        ("unknown route", b"GET /nope HTTP/1.0\r\n\r\n", 404),
    ];
    for (case, bytes, status) in cases {
        let got = exchange(server.addr, bytes);
        assert!(got.closed(), "{case}: the connection closes");
        let reply = got.only_reply(false);
        assert_eq!(reply.status, *status, "{case}: {}", got.text());
        assert!(serde_json::from_slice::<Value>(&reply.body).is_ok(), "{case}: a whole JSON body");
        assert_ne!(reply.header("connection"), Some("keep-alive"), "{case}");
    }
}
