//! The request head: httparse does the tokenizing; this file applies our limits and keeps the
//! few headers the routes use.
//!
//! Three outcomes stay apart, as httparse keeps them: not enough bytes yet (`Ok(None)`, keep
//! reading), bad bytes (400), too many bytes (431). The head is copied out of the read buffer
//! into a small owned [`Request`] so the buffer can be released once a stream starts.
//!
//! Heads that two readers (a front end and this server) could frame differently are refused:
//! `Content-Length` with `Transfer-Encoding`, any `Transfer-Encoding` on HTTP/1.0 (which has
//! none), two `Host` headers, or none on HTTP/1.1 (RFC 9112, 3.2 and 6.1).

use std::borrow::Cow;

use super::HttpError;

/// Longest request head (request line and headers), in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header lines in one request (hyper's default: [`MAX_HEAD`] is the limit that matters,
/// and 64 lines refused real 7 KiB heads of many short headers).
pub const MAX_HEADERS: usize = 100;
/// Largest request body, in bytes.
pub const MAX_BODY: usize = 1 << 20;
/// Longest value kept of a header we use (a longer value is refused with 400).
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

/// Headers whose values the routes use; each is kept at most once (the last one given).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kept {
    LastEventId,
    Authorization,
    ContentType,
    Origin,
    ForwardedFor,
    Host,
}

/// How many headers are kept (`Host` is the last of them).
const KEPT: usize = Kept::Host as usize + 1;

/// A parsed request head.
///
/// Everything kept is copied into one string (the target, then the kept header values), so a
/// request costs one allocation however many headers it has; accessors hand out slices of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// True for HTTP/1.1, false for HTTP/1.0.
    pub http11: bool,
    /// Whether the connection may serve another request after this one.
    pub keep_alive: bool,
    /// How the body is delimited.
    pub body: BodyKind,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    text: String,
    path_end: usize,
    target_end: usize,
    kept: [Option<(usize, usize)>; KEPT],
}

/// How a request that lists tasks to stream starts (`router::PROGRESS_MANY` and a query; not
/// imported, since the router imports this file).
const LIST_REQUEST: &[u8] = b"GET /api/brand-monitor/progress?";

/// Parses a request head from the start of `buf`: `Ok(Some((request, head_len)))` when whole,
/// `Ok(None)` when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, HttpError> {
    // Uninitialized header slots: no 2 KiB memset per request for headers that are not there.
    let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    // The head limit is the same for every request (a connection's buffer is sized by it); one
    // that lists tasks is told what to shrink.
    let too_large = || if buf.starts_with(LIST_REQUEST) { HttpError::ListTooLarge } else { HttpError::HeadTooLarge };
    let len = match parsed.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => return Err(too_large()),
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(too_large()),
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
    let http11 = parsed.version == Some(1);
    let mut text = String::with_capacity(target.len() + 64);
    text.push_str(target);
    let mut request = Request {
        method,
        http11,
        keep_alive: http11,
        body: BodyKind::None,
        expect_continue: false,
        path_end: target.find('?').unwrap_or(target.len()),
        target_end: target.len(),
        text,
        kept: [None; KEPT],
    };
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut host = false;
    for header in parsed.headers.iter() {
        let name = header.name.as_bytes();
        // Dispatch on the length first: most headers (User-Agent, Accept, ...) are skipped
        // after one comparison.
        let is = |wanted: &str| name.eq_ignore_ascii_case(wanted.as_bytes());
        let kept = match name.len() {
            4 if is("host") => {
                // Two Hosts can name two different sites to two readers of the same request.
                if std::mem::replace(&mut host, true) {
                    return Err(HttpError::Malformed("A request must not have two `Host` headers."));
                }
                Some(Kept::Host)
            }
            6 if is("origin") => Some(Kept::Origin),
            6 if is("expect") => {
                if !header.value.eq_ignore_ascii_case(b"100-continue") {
                    return Err(HttpError::ExpectationFailed);
                }
                request.expect_continue = true;
                None
            }
            10 if is("connection") => {
                for token in header.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        request.keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                        request.keep_alive = true;
                    }
                }
                None
            }
            12 if is("content-type") => Some(Kept::ContentType),
            13 if is("last-event-id") => Some(Kept::LastEventId),
            13 if is("authorization") => Some(Kept::Authorization),
            14 if is("content-length") => {
                let value = header.value.trim_ascii();
                let n = std::str::from_utf8(value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .ok_or(HttpError::Malformed("Content-Length is not a number."))?;
                if length.is_some_and(|old| old != n) {
                    return Err(HttpError::Malformed("Content-Length is given twice with different values."));
                }
                length = Some(n);
                None
            }
            15 if is("x-forwarded-for") => Some(Kept::ForwardedFor),
            17 if is("transfer-encoding") => {
                // HTTP/1.0 has no chunked coding: a 1.0 front end would read the body differently
                // (RFC 9112, 6.1).
                if !http11 {
                    return Err(HttpError::Malformed("An HTTP/1.0 request must not have `Transfer-Encoding`."));
                }
                // Only `chunked` alone is understood; anything else cannot be delimited safely.
                if !header.value.trim_ascii().eq_ignore_ascii_case(b"chunked") || chunked {
                    return Err(HttpError::Malformed("Only `Transfer-Encoding: chunked` is supported."));
                }
                chunked = true;
                None
            }
            _ => None,
        };
        if let Some(which) = kept {
            let value = std::str::from_utf8(header.value.trim_ascii())
                .map_err(|_| HttpError::Malformed("A header value is not valid UTF-8."))?;
            if value.len() > MAX_KEPT_VALUE {
                return Err(HttpError::Malformed("A header value is too long."));
            }
            let start = request.text.len();
            request.text.push_str(value);
            request.kept[which as usize] = Some((start, request.text.len()));
        }
    }
    if http11 && !host {
        return Err(HttpError::Malformed("An HTTP/1.1 request must have a `Host` header."));
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
    fn kept(&self, which: Kept) -> Option<&str> {
        self.kept[which as usize].map(|(start, end)| &self.text[start..end])
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        &self.text[..self.path_end]
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&str> {
        (self.path_end < self.target_end).then(|| &self.text[self.path_end + 1..self.target_end])
    }

    /// `Last-Event-ID`.
    pub fn last_event_id(&self) -> Option<&str> {
        self.kept(Kept::LastEventId)
    }

    /// `Authorization`.
    pub fn authorization(&self) -> Option<&str> {
        self.kept(Kept::Authorization)
    }

    /// `Content-Type`.
    pub fn content_type(&self) -> Option<&str> {
        self.kept(Kept::ContentType)
    }

    /// `Origin`.
    pub fn origin(&self) -> Option<&str> {
        self.kept(Kept::Origin)
    }

    /// `X-Forwarded-For`.
    pub fn forwarded_for(&self) -> Option<&str> {
        self.kept(Kept::ForwardedFor)
    }

    /// `Host` (always there on HTTP/1.1; HTTP/1.0 may leave it out).
    pub fn host(&self) -> Option<&str> {
        self.kept(Kept::Host)
    }

    /// The value of query parameter `name`, percent-decoded; `None` if absent or not UTF-8.
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        let query = self.query()?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then(|| percent_decode(value)).flatten()
        })
    }

    /// The value of the first query parameter `name` as sent (not decoded), if present.
    pub fn query_raw(&self, name: &str) -> Option<&str> {
        self.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }

    /// Where the client resumes a stream: `Last-Event-ID`, else the `lastEventId` query parameter
    /// (a new `EventSource` cannot set headers); the header wins when both are there.
    pub fn resume_point(&self) -> Option<Cow<'_, str>> {
        self.last_event_id().map(Cow::Borrowed).or_else(|| self.query_param("lastEventId"))
    }
}

/// Decodes `%XX` escapes and `+` as space; `None` for bad escapes or non-UTF-8 results. Text
/// without either (a token, usually) is handed back as it is, without an allocation.
pub fn percent_decode(text: &str) -> Option<Cow<'_, str>> {
    let bytes = text.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return Some(Cow::Borrowed(text));
    }
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
    String::from_utf8(out).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<(Request, usize)>, HttpError> {
        parse(text.as_bytes())
    }

    #[test]
    fn outcomes_of_parsing_a_head() {
        let hundred: String = (1..MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        let hundred = format!("GET / HTTP/1.1\r\nHost: a\r\n{hundred}\r\n");
        let table: &[(&str, &str, Result<bool, HttpError>)] = &[
            ("whole", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(true)),
            ("partial", "GET / HTTP/1.1\r\nHost: a\r\n", Ok(false)),
            ("garbage", "\x01\x02 nonsense\r\n\r\n", Err(HttpError::Malformed("The request is not valid HTTP/1.1."))),
            (
                "not a path",
                "GET http://x/ HTTP/1.1\r\nHost: a\r\n\r\n",
                Err(HttpError::Malformed("The request target must be a path starting with `/`.")),
            ),
            (
                "smuggling",
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(HttpError::Malformed("Content-Length and Transfer-Encoding must not both be set.")),
            ),
            (
                "two lengths",
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                Err(HttpError::Malformed("Content-Length is given twice with different values.")),
            ),
            (
                "signed length",
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
                Err(HttpError::Malformed("Content-Length is not a number.")),
            ),
            (
                "gzip",
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                Err(HttpError::Malformed("Only `Transfer-Encoding: chunked` is supported.")),
            ),
            ("odd expect", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", Err(HttpError::ExpectationFailed)),
            (
                "HTTP/1.0 chunked",
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(HttpError::Malformed("An HTTP/1.0 request must not have `Transfer-Encoding`.")),
            ),
            (
                "HTTP/1.0 gzip",
                "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                Err(HttpError::Malformed("An HTTP/1.0 request must not have `Transfer-Encoding`.")),
            ),
            (
                "two Hosts",
                "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                Err(HttpError::Malformed("A request must not have two `Host` headers.")),
            ),
            (
                "the same Host twice",
                "GET / HTTP/1.0\r\nhost: a\r\nHOST: a\r\n\r\n",
                Err(HttpError::Malformed("A request must not have two `Host` headers.")),
            ),
            (
                "no Host on HTTP/1.1",
                "GET / HTTP/1.1\r\nX-Host: a\r\n\r\n",
                Err(HttpError::Malformed("An HTTP/1.1 request must have a `Host` header.")),
            ),
            ("no Host on HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", Ok(true)),
            ("an empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", Ok(true)),
            ("100 lines", &hundred, Ok(true)),
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
        let many: String = (1..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        assert_eq!(
            head(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")),
            Err(HttpError::HeadTooLarge),
            "101 lines"
        );
        // A list of tasks to stream is told the list is what must fit.
        assert_eq!(LIST_REQUEST, format!("GET {}?", super::super::router::PROGRESS_MANY).as_bytes());
        let list = format!("GET /api/brand-monitor/progress?tasks={} HTTP/1.1\r\n", "a,".repeat(MAX_HEAD / 2));
        assert_eq!(head(&list), Err(HttpError::ListTooLarge));
        assert_eq!(head(&format!("{list}Host: a\r\n\r\n")), Err(HttpError::ListTooLarge));
    }

    #[test]
    fn the_fields_routes_use_are_kept() {
        let text = "PATCH /a/b?token=x%2By&z HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\
                    Last-Event-ID: 7\r\nHost: Example.com:8080\r\nConnection: close\r\n\r\nrest";
        let (request, len) = head(text).unwrap().unwrap();
        assert_eq!(len, text.len() - 4);
        assert_eq!(request.method, Method::Patch);
        assert_eq!(request.path(), "/a/b");
        assert_eq!(request.query(), Some("token=x%2By&z"));
        assert_eq!(request.query_param("token").as_deref(), Some("x+y"));
        assert_eq!(
            (request.query_raw("token"), request.query_raw("z"), request.query_raw("y")),
            (Some("x%2By"), Some(""), None)
        );
        assert_eq!(percent_decode("%+1"), None, "a sign is not a hex digit");
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(request.body, BodyKind::Chunked);
        assert!(request.expect_continue && !request.keep_alive);
        assert_eq!(request.last_event_id(), Some("7"));
        assert_eq!(request.origin(), None);
        assert_eq!(request.host(), Some("Example.com:8080"));
        let (old, _) = head("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!old.http11 && !old.keep_alive);
        assert_eq!(old.host(), None);
    }

    #[test]
    fn the_resume_point_is_the_header_else_the_query() {
        // Shows `lastEventId` stands in for `Last-Event-ID` only when the header is absent.
        let resume = |text: &str| head(text).unwrap().unwrap().0.resume_point().map(Cow::into_owned);
        let get = |target: &str, header: &str| format!("GET {target} HTTP/1.1\r\nHost: a\r\n{header}\r\n");
        assert_eq!(resume(&get("/p?lastEventId=5", "")), Some("5".into()));
        assert_eq!(resume(&get("/p?lastEventId=5", "Last-Event-ID: 7\r\n")), Some("7".into()));
        assert_eq!(resume(&get("/p", "Last-Event-ID: 7\r\n")), Some("7".into()));
        assert_eq!(resume(&get("/p?lastEventId=%31%32", "")), Some("12".into()));
        assert_eq!(resume(&get("/p?other=1", "")), None);
    }
}
