//! The request head: httparse does the tokenizing; this file applies our limits and keeps the
//! few headers the routes use.
//!
//! Three outcomes stay apart, as httparse keeps them: not enough bytes yet (`Ok(None)`, keep
//! reading), bad bytes (400), too many bytes (431). The head is copied out of the read buffer
//! into a small owned [`Request`] so the buffer can be released once a stream starts.

use super::HttpError;

/// Longest request head (request line and headers), in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header lines in one request.
pub const MAX_HEADERS: usize = 64;
/// Largest request body, in bytes.
pub const MAX_BODY: usize = 1 << 20;
/// Longest value kept of a header we use (longer values are treated as absent or refused).
const MAX_KEPT_VALUE: usize = 1024;

/// The methods the routes know; anything else is `Other` (405 on a known route).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
    /// Any other token.
    Other,
}

/// How the body of a request is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    None,
    /// `Content-Length: n`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query string after `?`, if any.
    pub query: Option<String>,
    /// True for HTTP/1.1, false for HTTP/1.0.
    pub http11: bool,
    /// Whether the connection may serve another request after this one.
    pub keep_alive: bool,
    /// How the body is delimited.
    pub body: BodyKind,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// `Last-Event-ID`.
    pub last_event_id: Option<String>,
    /// `Authorization`.
    pub authorization: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Origin`.
    pub origin: Option<String>,
    /// `X-Forwarded-For`.
    pub forwarded_for: Option<String>,
}

/// Parses a request head from the start of `buf`: `Ok(Some((request, head_len)))` when whole,
/// `Ok(None)` when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => return Err(HttpError::HeadTooLarge),
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(HttpError::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(_) => return Err(HttpError::Malformed("The request is not valid HTTP/1.1.")),
    };
    let method = match parsed.method.unwrap_or("") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        _ => Method::Other,
    };
    let target = parsed.path.unwrap_or("");
    if !target.starts_with('/') {
        return Err(HttpError::Malformed("The request target must be a path starting with `/`."));
    }
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (target, None),
    };
    let http11 = parsed.version == Some(1);
    let mut request = Request {
        method,
        path: path.to_owned(),
        query,
        http11,
        keep_alive: http11,
        body: BodyKind::None,
        expect_continue: false,
        last_event_id: None,
        authorization: None,
        content_type: None,
        origin: None,
        forwarded_for: None,
    };
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for header in parsed.headers.iter() {
        let name = header.name;
        let value = std::str::from_utf8(header.value).map(str::trim);
        let kept = || match value {
            Ok(v) if v.len() <= MAX_KEPT_VALUE => Ok(Some(v.to_owned())),
            Ok(_) => Err(HttpError::Malformed("A header value is too long.")),
            Err(_) => Err(HttpError::Malformed("A header value is not valid UTF-8.")),
        };
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or(HttpError::Malformed("Content-Length is not a number."))?;
            if length.is_some_and(|old| old != n) {
                return Err(HttpError::Malformed("Content-Length is given twice with different values."));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked` alone is understood; anything else cannot be delimited safely.
            if !value.is_ok_and(|v| v.eq_ignore_ascii_case("chunked")) || chunked {
                return Err(HttpError::Malformed("Only `Transfer-Encoding: chunked` is supported."));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            let value = value.unwrap_or("");
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    request.keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && !http11 {
                    request.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if value.is_ok_and(|v| v.eq_ignore_ascii_case("100-continue")) {
                request.expect_continue = true;
            } else {
                return Err(HttpError::ExpectationFailed);
            }
        } else if name.eq_ignore_ascii_case("last-event-id") {
            request.last_event_id = kept()?;
        } else if name.eq_ignore_ascii_case("authorization") {
            request.authorization = kept()?;
        } else if name.eq_ignore_ascii_case("content-type") {
            request.content_type = kept()?;
        } else if name.eq_ignore_ascii_case("origin") {
            request.origin = kept()?;
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            request.forwarded_for = kept()?;
        }
    }
    request.body = match (length, chunked) {
        // Both at once is how requests are smuggled past proxies: refuse it.
        (Some(_), true) => {
            return Err(HttpError::Malformed("Content-Length and Transfer-Encoding must not both be set."));
        }
        (_, true) => BodyKind::Chunked,
        (Some(0) | None, false) => BodyKind::None,
        (Some(n), false) => BodyKind::Length(n),
    };
    Ok(Some((request, len)))
}

impl Request {
    /// The value of query parameter `name`, percent-decoded; `None` if absent or not UTF-8.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then(|| percent_decode(value)).flatten()
        })
    }
}

/// Decodes `%XX` escapes and `+` as space; `None` for bad escapes or non-UTF-8 results.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                // Two hex digits exactly: `from_str_radix` alone would take `%+1` as 0x01.
                let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<(Request, usize)>, HttpError> {
        parse(text.as_bytes())
    }

    #[test]
    fn outcomes_of_parsing_a_head() {
        let table: &[(&str, &str, Result<bool, HttpError>)] = &[
            ("whole", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(true)),
            ("partial", "GET / HTTP/1.1\r\nHost: a\r\n", Ok(false)),
            ("garbage", "\x01\x02 nonsense\r\n\r\n", Err(HttpError::Malformed("The request is not valid HTTP/1.1."))),
            (
                "not a path",
                "GET http://x/ HTTP/1.1\r\n\r\n",
                Err(HttpError::Malformed("The request target must be a path starting with `/`.")),
            ),
            (
                "smuggling",
                "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(HttpError::Malformed("Content-Length and Transfer-Encoding must not both be set.")),
            ),
            (
                "two lengths",
                "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                Err(HttpError::Malformed("Content-Length is given twice with different values.")),
            ),
            (
                "signed length",
                "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
                Err(HttpError::Malformed("Content-Length is not a number.")),
            ),
            (
                "gzip",
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
                Err(HttpError::Malformed("Only `Transfer-Encoding: chunked` is supported.")),
            ),
            ("odd expect", "POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", Err(HttpError::ExpectationFailed)),
        ];
        for (name, text, want) in table {
            let got = head(text).map(|r| r.is_some());
            assert_eq!(&got, want, "{name}");
        }
    }

    #[test]
    fn heads_over_the_limit_are_431_whether_partial_or_whole() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(head(&big), Err(HttpError::HeadTooLarge));
        assert_eq!(head(&format!("{big}\r\n")), Err(HttpError::HeadTooLarge));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        assert_eq!(head(&format!("GET / HTTP/1.1\r\n{many}\r\n")), Err(HttpError::HeadTooLarge));
    }

    #[test]
    fn the_fields_routes_use_are_kept() {
        let text = "PATCH /a/b?token=x%2By&z HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\
                    Last-Event-ID: 7\r\nConnection: close\r\n\r\nrest";
        let (request, len) = head(text).unwrap().unwrap();
        assert_eq!(len, text.len() - 4);
        assert_eq!(request.method, Method::Patch);
        assert_eq!(request.path, "/a/b");
        assert_eq!(request.query_param("token").as_deref(), Some("x+y"));
        assert_eq!(percent_decode("%+1"), None, "a sign is not a hex digit");
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(request.body, BodyKind::Chunked);
        assert!(request.expect_continue && !request.keep_alive);
        assert_eq!(request.last_event_id.as_deref(), Some("7"));
        let (old, _) = head("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!old.http11 && !old.keep_alive);
    }
}
