//! Request framing is read as strictly as RFC 9112 writes it, so that no front end can read a
//! request's end differently from this server: chunk-size lines are 1-16 hex digits and
//! `;name[=value]` extensions with no whitespace, every line of a chunked body (trailers included)
//! ends with CRLF, trailers carry no control bytes, HTTP/1.0 cannot use `Transfer-Encoding`, a
//! request has one `Host` (HTTP/1.1 must have it), and a head may have 100 lines. Each refusal is
//! a 400 (431 for 101 lines) sent as soon as the bad byte arrives, then the connection closes.

use std::io::{BufReader, Write};
use std::net::SocketAddr;

use serde_json::Value;
use sse_progress::client;
use sse_progress::internals::chunked::Error;

use crate::support::*;

/// [`CHUNKED_CREATE`] with `Connection: close`, so an accepted request ends the connection too.
const CHUNKED_CREATE_CLOSE: &str = "POST /api/brand-monitor/tasks HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                                    Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";

/// The JSON body that creates task `id`.
fn create_body(id: &str) -> String {
    format!(r#"{{"taskId":"{id}"}}"#)
}

/// Asserts that `bytes` on a new connection are answered `status` with the JSON error `message`
/// as the one reply, then the close: a clean EOF, not a reset and not the client's timeout.
fn assert_refused(addr: SocketAddr, case: &str, bytes: &[u8], status: u16, message: &str) {
    let got = exchange(addr, bytes);
    let reply = got.only_reply(false);
    assert_eq!(reply.status, status, "{case}: {}", reply.text());
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("{case}: JSON ({e})"));
    assert_eq!(body["error"]["message"], message, "{case}");
    assert!(got.end.is_ok(), "{case}: the server closes the connection (not the client's timeout): {:?}", got.end);
}

/// A chunked creation of task `id` whose body is `framing` with `{json}` replaced by its JSON;
/// refused with `error`, and the task is not created.
fn assert_chunked_refused(server: &TestServer, id: &str, framing: &str, error: Error) {
    let json = create_body(id);
    let body = framing.replace("{len}", &format!("{:x}", json.len())).replace("{json}", &json);
    let bytes = format!("{CHUNKED_CREATE}{body}");
    assert_refused(server.addr, id, bytes.as_bytes(), 400, error.message());
    assert!(server.tracker.get_task(id).is_none(), "{id}: no task was created");
}

#[test]
fn a_bare_lf_inside_a_chunk_extension_is_400() {
    // A LF without its CR inside a chunk extension ends nothing: it is refused, not skipped.
    let server = start_unthrottled_default();
    assert_chunked_refused(&server, "lf-ext", "{len};a\nb\r\n{json}\r\n0\r\n\r\n", Error::BadLineEnd);
}

#[test]
fn an_empty_chunk_size_line_is_400_not_the_last_chunk() {
    // An empty line where a chunk size belongs is refused, not read as the last chunk.
    let server = start_unthrottled_default();
    assert_chunked_refused(&server, "empty-line", "{len}\r\n{json}\r\n\r\n\r\n", Error::NoSize);
}

#[test]
fn whitespace_after_the_chunk_size_is_400() {
    // A space or tab after the size (the BWS some readers skip) is refused.
    let server = start_unthrottled_default();
    assert_chunked_refused(&server, "space-size", "{len} \r\n{json}\r\n0\r\n\r\n", Error::Whitespace);
    assert_chunked_refused(&server, "tab-ext", "{len}\t;a=b\r\n{json}\r\n0\r\n\r\n", Error::Whitespace);
    assert_chunked_refused(&server, "space-last", "{len}\r\n{json}\r\n0 \r\n\r\n", Error::Whitespace);
}

#[test]
fn control_bytes_in_a_trailer_are_400() {
    // A trailer field value holding a control byte (here SOH, then DEL) is refused.
    let server = start_unthrottled_default();
    assert_chunked_refused(&server, "soh-trailer", "{len}\r\n{json}\r\n0\r\nX-T: a\x01b\r\n\r\n", Error::BadTrailer);
    assert_chunked_refused(&server, "del-trailer", "{len}\r\n{json}\r\n0\r\nX-T: a\x7f\r\n\r\n", Error::BadTrailer);
}

#[test]
fn a_bare_lf_after_the_last_chunk_or_a_chunk_is_400_at_once() {
    // A bare LF where a CRLF must end the body (or a chunk's data) is answered 400 and closed as it
    // arrives: the client does not wait for a CRLF it never sends (this one's reads give up after
    // the support TIMEOUT, so a server that waits fails the `closed` assertion).
    let server = start_unthrottled_default();
    assert_chunked_refused(&server, "lf-end", "{len}\r\n{json}\r\n0\r\n\n", Error::BadLineEnd);
    assert_chunked_refused(&server, "lf-trailer", "{len}\r\n{json}\r\n0\r\nX-T: 1\n", Error::BadLineEnd);
    assert_chunked_refused(&server, "lf-data", "{len}\r\n{json}\n", Error::BadDataEnd);
}

#[test]
fn a_chunk_size_of_17_hex_digits_is_400_and_16_are_read() {
    // Sixteen hex digits (leading zeros count) are the most a size may have: 17 are refused.
    let server = start_unthrottled_default();
    // The body is 22 bytes, `16` in hex: 15 zeros before it make 17 digits.
    assert_eq!(create_body("digits-17").len(), 0x16);
    assert_chunked_refused(&server, "digits-17", "000000000000000{len}\r\n{json}\r\n0\r\n\r\n", Error::TooManyDigits);
    let json = create_body("digits-16");
    let body = format!("{:016x}\r\n{json}\r\n0\r\n\r\n", json.len());
    let reply = exchange(server.addr, format!("{CHUNKED_CREATE_CLOSE}{body}").as_bytes()).only_reply(false);
    assert_eq!(reply.status, 201, "16 digits: {}", reply.text());
}

#[test]
fn http_1_0_with_transfer_encoding_is_400() {
    // An HTTP/1.0 request with `Transfer-Encoding` (which 1.0 does not define) is refused, chunked or not.
    let server = start_unthrottled_default();
    let json = create_body("old-chunked");
    let bytes = format!(
        "POST /api/brand-monitor/tasks HTTP/1.0\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{json}\r\n0\r\n\r\n",
        json.len()
    );
    let message = "An HTTP/1.0 request must not have `Transfer-Encoding`.";
    assert_refused(server.addr, "chunked", bytes.as_bytes(), 400, message);
    assert!(server.tracker.get_task("old-chunked").is_none(), "no task was created");
    let identity = "POST /api/brand-monitor/tasks HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: identity\r\n\r\n";
    assert_refused(server.addr, "identity", identity.as_bytes(), 400, message);
}

#[test]
fn two_host_headers_are_400() {
    // A second `Host` header is refused, whether it names the same host or another.
    let server = start_unthrottled_default();
    let message = "A request must not have two `Host` headers.";
    for (case, second) in [("same", "localhost"), ("other", "evil.example"), ("HTTP/1.0", "localhost")] {
        let version = if case == "HTTP/1.0" { "1.0" } else { "1.1" };
        let text = format!("GET /api/brand-monitor/tasks HTTP/{version}\r\nHost: localhost\r\nhost: {second}\r\n\r\n");
        assert_refused(server.addr, case, text.as_bytes(), 400, message);
    }
}

#[test]
fn http_1_1_without_host_is_400_and_http_1_0_without_host_is_served() {
    // HTTP/1.1 must name its host; HTTP/1.0, which predates `Host`, is still served without one.
    let server = start_unthrottled_default();
    let text = "GET /api/brand-monitor/tasks HTTP/1.1\r\nConnection: close\r\n\r\n";
    assert_refused(server.addr, "HTTP/1.1", text.as_bytes(), 400, "An HTTP/1.1 request must have a `Host` header.");
    let got = exchange(server.addr, b"GET /api/brand-monitor/tasks HTTP/1.0\r\n\r\n");
    let reply = got.only_reply(false);
    assert_eq!(reply.status, 200, "HTTP/1.0: {}", reply.text());
    assert!(got.end.is_ok(), "{:?}", got.end);
}

#[test]
fn a_head_of_100_lines_is_served_and_101_lines_are_431() {
    // Up to 100 header lines (hyper's default) are read; the 101st answers 431 and closes.
    let server = start_unthrottled_default();
    let head = |lines: usize| {
        let pad: String = (2..lines).map(|i| format!("X-Line-{i}: {i}\r\n")).collect();
        format!("GET /api/brand-monitor/health HTTP/1.1\r\nHost: localhost\r\n{pad}Connection: close\r\n\r\n")
    };
    let hundred = head(100);
    assert_eq!(hundred.matches("\r\n").count(), 1 + 100 + 1, "the request line, 100 header lines, the end");
    let reply = exchange(server.addr, hundred.as_bytes()).only_reply(false);
    assert_eq!(reply.status, 200, "100 lines: {}", reply.text());
    assert_refused(
        server.addr,
        "101 lines",
        head(101).as_bytes(),
        431,
        "The request headers are over 8 KiB or 100 lines.",
    );
}

#[test]
fn a_chunked_body_with_extensions_and_a_trailer_is_accepted() {
    // Token and quoted extensions and a trailer field are read past, and the next request on the
    // connection is answered in turn (the body ended where it should).
    let server = start_unthrottled_default();
    let json = create_body("well-formed");
    let (head, tail) = json.split_at(6);
    let mut bytes = CHUNKED_CREATE.to_owned();
    bytes.push_str(&format!("{:x};a=b;c=\"d e\"\r\n{head}\r\n", head.len()));
    bytes.push_str(&format!("{:X};q=\"\\\"\\\\\"\r\n{tail}\r\n", tail.len()));
    bytes.push_str("0;last\r\nX-Checksum: 1 2\t\r\nX-Empty:\r\n\r\n");
    bytes.push_str("GET /api/brand-monitor/tasks/well-formed HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut stream = connect(server.addr);
    stream.write_all(bytes.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let created = client::read_reply(&mut reader, false).unwrap();
    assert_eq!(created.status, 201, "{}", created.text());
    let task = client::read_reply(&mut reader, false).unwrap();
    assert_eq!(task.status, 200, "{}", task.text());
    let task: Value = serde_json::from_slice(&task.body).unwrap();
    assert_eq!(task["taskId"], "well-formed");
}
