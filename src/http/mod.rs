//! The hand-rolled HTTP/1.1 layer: parse a head, read a body, write a response.
//!
//! It is small because the server needs little: origin-form targets, a handful of headers,
//! bodies of at most 1 MiB, and responses it builds itself. Every limit is a named constant in
//! [`request`] or [`chunked`], and every failure is an [`HttpError`] that answers with the JSON
//! error shape. Framing is read strictly (chunk lines by our own parser, one `Host`, no
//! `Transfer-Encoding` on HTTP/1.0) because a front end that reads a request's end differently
//! is how requests are smuggled.
//!
//! Both kinds of error become answers here, side by side: an [`HttpError`] (the request could not
//! be read) and a library [`Error`] (the request was read and refused).

pub mod chunked;
pub mod conn;
pub mod request;
pub mod response;
pub mod router;

use response::Response;

use crate::error::Error;

/// Why a request could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// Bytes that are not a request we accept (400), with the sentence to send.
    Malformed(&'static str),
    /// The head (or the trailer section) is over [`request::MAX_HEAD`], or the head has more than
    /// [`request::MAX_HEADERS`] lines (431).
    HeadTooLarge,
    /// [`HttpError::HeadTooLarge`] for a request that lists tasks to stream
    /// (`GET /api/brand-monitor/progress?`): the list, not the headers, is what must shrink.
    ListTooLarge,
    /// The body is over [`request::MAX_BODY`] (413).
    BodyTooLarge,
    /// An `Expect` we do not meet (417).
    ExpectationFailed,
    /// The head or body did not arrive in time (408, then close).
    Timeout,
    /// The peer closed or the socket failed: nothing to answer.
    Closed,
}

impl HttpError {
    /// The answer to send, if the connection can still take one.
    pub fn response(self) -> Option<Response> {
        let (status, code, message) = match self {
            HttpError::Malformed(message) => (400, "bad_request", message),
            HttpError::HeadTooLarge => (431, "headers_too_large", "The request headers are over 8 KiB or 100 lines."),
            HttpError::ListTooLarge => (
                431,
                "headers_too_large",
                "The request head is over 8 KiB: the `tasks` ids and `tokens` must fit in it with the headers; \
                 split the list over two streams.",
            ),
            HttpError::BodyTooLarge => (413, "body_too_large", "The request body is over 1 MiB."),
            HttpError::ExpectationFailed => (417, "expectation_failed", "Only `Expect: 100-continue` is supported."),
            HttpError::Timeout => (408, "request_timeout", "The request did not arrive in time."),
            HttpError::Closed => return None,
        };
        Some(Response::error(status, code, message))
    }
}

/// The answer for a library error, with its status and code; the ones that pass (every `503`)
/// say when to try again.
impl From<&Error> for Response {
    fn from(e: &Error) -> Response {
        let response = Response::error(e.kind().status(), e.kind().code(), e.message());
        match e.kind().retry_after() {
            Some(seconds) => response.header("Retry-After", seconds.to_string()),
            None => response,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn errors_answer_with_their_status_and_code_and_503s_say_when_to_retry() {
        // Shows the conversion keeps the kind's status and code, and adds `Retry-After` to the
        // errors that pass and to no other.
        let not_found = Response::from(&Error::task_not_found());
        assert_eq!(not_found.status, 404);
        assert!(not_found.headers.iter().all(|(name, _)| *name != "Retry-After"));
        let full = Response::from(&Error::new(ErrorKind::TooManyTasks, "Full."));
        assert_eq!(full.status, 503);
        assert!(full.headers.contains(&("Retry-After", "5".to_owned())), "{:?}", full.headers);
        let mut out = Vec::new();
        not_found.write_to(&mut out, response::Part::Whole, response::Connection::Close);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with(r#"{"error":{"code":"task_not_found","message":"No task has this id."}}"#), "{text}");
    }
}
