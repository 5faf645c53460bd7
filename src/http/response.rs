//! Responses the server builds: a status, a few headers, and a body that is either bytes or
//! pieces written as the socket takes them.
//!
//! Pieces exist for answers that carry tasks' results (up to 1 MiB each, 256 MiB in all): built
//! whole, every request of them would copy the results it carries, and a client that asks many
//! times without reading could make the server hold a copy per request. A [`Pieces`] body
//! borrows the large parts from data the server keeps anyway and builds only the small ones, one
//! at a time; for HEAD it is only measured.

use std::fmt::Write as _;

/// A response to write.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Extra headers. `Content-Length` and `Connection` are added on write; no `Date` is sent
    /// (RFC 9110 lets a server without a clock omit it, and no client here needs it).
    pub headers: Vec<(&'static str, String)>,
    /// The body; for HEAD it is measured but not sent.
    pub body: Body,
}

/// What follows the head.
#[derive(Debug)]
pub enum Body {
    /// Bytes built whole (small answers).
    Bytes(Vec<u8>),
    /// Built piece by piece as it is written.
    Pieces(Box<dyn Pieces>),
}

impl Body {
    /// Its length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Body::Bytes(bytes) => bytes.len(),
            Body::Pieces(pieces) => pieces.len(),
        }
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A body written in pieces.
pub trait Pieces: Send + Sync + std::fmt::Debug {
    /// Bytes in all pieces.
    fn len(&self) -> usize;

    /// Whether there are no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Piece `index`: either appended to `out` (small pieces) or lent from data the server
    /// keeps anyway; `None` past the last.
    fn piece<'a>(&'a self, index: usize, out: &mut Vec<u8>) -> Option<Piece<'a>>;
}

/// One piece of a [`Pieces`] body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Appended to the buffer given.
    Built,
    /// These bytes, as they are.
    Lent(&'a [u8]),
}

impl Response {
    /// A response with no body.
    pub fn empty(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Body::Bytes(Vec::new()) }
    }

    /// A JSON body.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response { status, headers: vec![("Content-Type", "application/json".into())], body: Body::Bytes(body.into()) }
    }

    /// A JSON body written in pieces.
    pub fn json_pieces(status: u16, body: impl Pieces + 'static) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body: Body::Pieces(Box::new(body)),
        }
    }

    /// The error shape of API.md: `{"error": {"code", "message"}}`.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        Response::json(status, body.to_string())
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Serializes the head and (unless `head_only`) a body of bytes into `out`; a body of pieces
    /// is left to the caller, which writes them as the socket takes them.
    pub fn write_to(&self, out: &mut Vec<u8>, head_only: bool, keep_alive: bool) {
        let mut head = String::with_capacity(128);
        let _ = write!(head, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        // 204 and 304 carry no Content-Length (RFC 9110, 8.6); every other answer is delimited.
        if !matches!(self.status, 204 | 304) {
            let _ = write!(head, "Content-Length: {}\r\n", self.body.len());
        }
        head.push_str(if keep_alive { "Connection: keep-alive\r\n\r\n" } else { "Connection: close\r\n\r\n" });
        out.extend_from_slice(head.as_bytes());
        if let (false, Body::Bytes(body)) = (head_only, &self.body) {
            out.extend_from_slice(body);
        }
    }
}

/// The reason phrase of each status the server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_the_contract_shape_and_a_length() {
        let mut out = Vec::new();
        Response::error(404, "not_found", "No route.").write_to(&mut out, false, true);
        let text = String::from_utf8(out).unwrap();
        let body = r#"{"error":{"code":"not_found","message":"No route."}}"#;
        assert_eq!(
            text,
            format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
                body.len()
            )
        );
    }

    #[test]
    fn head_answers_keep_the_length_but_not_the_body() {
        let mut out = Vec::new();
        Response::json(200, "{}").write_to(&mut out, true, false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("Content-Length: 2\r\nConnection: close\r\n\r\n"), "{text}");
    }
}
