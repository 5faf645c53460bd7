//! `http::request::parse` then `http::router::route` on arbitrary bytes: never a panic, a whole
//! head is never longer than the input or `MAX_HEAD`, pipelined requests parse one by one, and
//! `Request::query_param("token")` decodes as RFC 3986 says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_progress::internals::request::{BodyKind, MAX_HEAD, parse};
use sse_progress::internals::router::{Route, route};

/// `pct-encoded = "%" HEXDIG HEXDIG` (RFC 3986 2.1), and `+` as a space (HTML forms);
/// `None` for a malformed escape or a result that is not UTF-8.
fn decode(text: &str) -> Option<String> {
    let hex = |b: Option<u8>| char::from(b?).to_digit(16);
    let mut bytes = text.bytes();
    let mut out = Vec::new();
    while let Some(b) = bytes.next() {
        out.push(match b {
            b'%' => (hex(bytes.next())? * 16 + hex(bytes.next())?) as u8,
            b'+' => b' ',
            b => b,
        });
    }
    String::from_utf8(out).ok()
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    // Each complete head is followed by its body (when its length is known) and maybe another request.
    for _ in 0..8 {
        let (request, len) = match parse(rest) {
            Ok(Some(whole)) => whole,
            Ok(None) => {
                assert!(rest.len() < MAX_HEAD, "a partial head of {} bytes must be 431", rest.len());
                return;
            }
            Err(_) => return,
        };
        assert!(len <= rest.len() && len <= MAX_HEAD, "head {len} of {} bytes", rest.len());
        // The head alone is the same request: nothing after it was looked at.
        assert_eq!(parse(&rest[..len]), Ok(Some((request.clone(), len))));
        assert!(request.path().starts_with('/') && !request.path().contains('?'));
        if let Some(r) = route(request.path()) {
            let id = match r {
                Route::Progress(id) | Route::Task(id) | Route::Complete(id) | Route::Fail(id) => id,
                Route::Index | Route::ProgressMany | Route::ClientJs | Route::Health | Route::Metrics | Route::Tasks => "",
            };
            assert!(!id.contains('/') && request.path().contains(id));
            assert!(!r.allow().is_empty());
            let _ = r.allows(request.method);
        }
        let token = request.query_param("token");
        let query = request.query();
        let pairs = query.iter().flat_map(|q| q.split('&')).map(|p| p.split_once('=').unwrap_or((p, "")));
        let values: Vec<&str> = pairs.filter(|(key, _)| *key == "token").map(|(_, value)| value).collect();
        // Repeated parameters are left unspecified; a single one must decode exactly.
        if values.len() <= 1 {
            let expected = values.first().and_then(|v| decode(v));
            assert_eq!(token.as_deref(), expected.as_deref(), "query {:?}", request.query());
        }
        rest = &rest[len..];
        match request.body {
            BodyKind::None => {}
            BodyKind::Length(n) if n <= rest.len() => rest = &rest[n..],
            BodyKind::Length(_) | BodyKind::Chunked => return,
        }
    }
});
