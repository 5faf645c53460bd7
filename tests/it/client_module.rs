//! `GET /client/sse-progress.js` (API.md, "The browser client"): the package's module byte for
//! byte, as JavaScript, revalidated on every use, and answered only for the hosts the page at
//! `/` is.

use crate::support::*;

/// The file the server embeds.
const MODULE: &[u8] = include_bytes!("../../clients/js/sse-progress.js");

#[test]
fn the_module_is_the_package_file_byte_for_byte() {
    // Shows the body equals `clients/js/sse-progress.js`, with a JavaScript type and no-cache.
    let server = start_default();
    let reply = request(server.addr, "GET", "/client/sse-progress.js", &[], None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, MODULE);
    assert_eq!(reply.header("content-type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(reply.header("cache-control"), Some("no-cache"));
    let head = request(server.addr, "HEAD", "/client/sse-progress.js", &[], None);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(MODULE.len().to_string().as_str()));
}

#[test]
fn the_module_follows_the_host_rule() {
    // Shows a request naming another host (DNS rebinding) is refused, as for the page at `/`.
    let server = start_default();
    let reply = raw_exchange(
        server.addr,
        b"GET /client/sse-progress.js HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 403 "), "{reply}");
    assert!(reply.contains("host_not_allowed"), "{reply}");
}
