//! Turns events into bytes of the `text/event-stream` format, once per event for every viewer.
//!
//! The grammar this encoder writes (WHATWG HTML, "Server-sent events", 9.2.5):
//!
//! ```text
//! stream        = [ bom ] *event
//! event         = *( comment / field ) end-of-line
//! comment       = colon *any-char end-of-line
//! field         = 1*name-char [ colon [ space ] *any-char ] end-of-line
//! end-of-line   = ( cr lf / cr / lf )
//! any-char      = %x0000-0009 / %x000B-000C / %x000E-10FFFF
//! name-char     = %x0000-0009 / %x000B-000C / %x000E-0039 / %x003B-10FFFF
//! ```
//!
//! So a field value may hold anything but CR and LF. Every field is written `name: value` with
//! the space, because a parser strips exactly one leading space: a value that itself starts with
//! a space survives. `event` and `id` values with CR, LF (or NUL, which a browser refuses in an
//! id) are errors, never truncated or split. A `data` value is split into one `data:` line per
//! line, treating CRLF as one break (a browser rejoins the lines with LF).
//!
//! A [`Frame`] is built once per event and shared (`Arc`) by every viewer of the task. It holds
//! the HTTP/1.1 chunk framing around the event too (framed in place by `http::response`), so a
//! viewer's write is a single slice in either framing.

use std::fmt;
use std::ops::Range;

use crate::http::response::{CHUNK_ROOM, Framing, frame_chunk};

/// An `event` or `id` value that would break the framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// `"event"` or `"id"`.
    pub field: &'static str,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the SSE `{}` field must not contain CR, LF or NUL", self.field)
    }
}

impl std::error::Error for FieldError {}

fn check_field(field: &'static str, value: &str) -> Result<(), FieldError> {
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) { Err(FieldError { field }) } else { Ok(()) }
}

/// Appends one whole event (ending in the blank line) to `out`.
pub fn encode_event(out: &mut Vec<u8>, event: Option<&str>, id: Option<&str>, data: &str) -> Result<(), FieldError> {
    if let Some(event) = event {
        check_field("event", event)?;
    }
    if let Some(id) = id {
        check_field("id", id)?;
    }
    if let Some(event) = event {
        push_field(out, "event", event);
    }
    if let Some(id) = id {
        push_field(out, "id", id);
    }
    for line in split_lines(data) {
        push_field(out, "data", line);
    }
    out.push(b'\n');
    Ok(())
}

/// Appends `retry: ms`, which sets the client's reconnect delay.
pub fn encode_retry(out: &mut Vec<u8>, ms: u64) {
    out.extend_from_slice(b"retry: ");
    push_decimal(out, ms);
    out.extend_from_slice(b"\n\n");
}

/// Appends a comment line, which clients ignore (used to pad or to probe a connection).
pub fn encode_comment(out: &mut Vec<u8>, text: &str) {
    for line in split_lines(text) {
        out.extend_from_slice(b": ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
}

/// Appends `n` in decimal without a temporary string.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// Lines of `text` split on CRLF, CR or LF; an empty text is one empty line.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        // A byte scan: CR and LF are ASCII, so a match is always a char boundary, and this is
        // several times faster than `str::find` with a char set on long JSON lines.
        match text.bytes().position(|b| b == b'\r' || b == b'\n') {
            None => {
                rest = None;
                Some(text)
            }
            Some(i) => {
                let skip = if text[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&text[i + skip..]);
                Some(&text[..i])
            }
        }
    })
}

/// What a frame means to the viewer loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A progress snapshot that a later one may supersede.
    Progress,
    /// The terminal snapshot (completed or failed): sent, then the stream ends.
    Terminal,
    /// A stream-level `error` event after which the stream ends (task deleted).
    Closing,
}

/// One encoded event, shared by every viewer, with HTTP/1.1 chunk framing around it.
#[derive(Debug)]
pub struct Frame {
    bytes: Box<[u8]>,
    chunk: Range<usize>,
    event: Range<usize>,
    data: Range<usize>,
    /// What the viewer does after sending it.
    pub kind: FrameKind,
    /// The task's `eventId` (0 for frames without an `id:`).
    pub event_id: u64,
}

impl Frame {
    /// Encodes a `progress` event carrying one line of JSON.
    pub fn progress(event_id: u64, json: &str, terminal: bool) -> Frame {
        let kind = if terminal { FrameKind::Terminal } else { FrameKind::Progress };
        Frame::build(kind, event_id, "progress", Some(event_id), json)
    }

    /// Encodes an `error` event `{"code","message"}` that ends the stream.
    pub fn closing(code: &str, message: &str) -> Frame {
        let json = serde_json::json!({ "code": code, "message": message }).to_string();
        Frame::build(FrameKind::Closing, 0, "error", None, &json)
    }

    /// `json` must be one line, as serde_json's compact output always is (it escapes CR and LF
    /// inside strings and writes no whitespace), so the data needs no splitting and the frame is
    /// written straight, with no scan of the JSON: this runs once per change on the hot path.
    fn build(kind: FrameKind, event_id: u64, event: &str, id: Option<u64>, json: &str) -> Frame {
        debug_assert!(!json.contains(['\r', '\n']), "compact JSON is one line");
        debug_assert!(!event.contains(['\r', '\n']), "our event names are one line");
        let mut out = Vec::with_capacity(CHUNK_ROOM + event.len() + json.len() + 40);
        out.resize(CHUNK_ROOM, 0);
        push_field(&mut out, "event", event);
        if let Some(id) = id {
            out.extend_from_slice(b"id: ");
            push_decimal(&mut out, id);
            out.push(b'\n');
        }
        out.extend_from_slice(b"data: ");
        let data = out.len()..out.len() + json.len();
        out.extend_from_slice(json.as_bytes());
        out.extend_from_slice(b"\n\n");
        let event_range = CHUNK_ROOM..out.len();
        let chunk_start = frame_chunk(&mut out, CHUNK_ROOM);
        Frame { chunk: chunk_start..out.len(), event: event_range, data, bytes: out.into_boxed_slice(), kind, event_id }
    }

    /// The event as one HTTP/1.1 chunk.
    pub fn chunked(&self) -> &[u8] {
        &self.bytes[self.chunk.clone()]
    }

    /// The bare event, for a close-delimited (HTTP/1.0) response.
    pub fn plain(&self) -> &[u8] {
        &self.bytes[self.event.clone()]
    }

    /// The event as `framing` sends it: one slice either way.
    pub fn framed(&self, framing: Framing) -> &[u8] {
        match framing {
            Framing::Chunked => self.chunked(),
            Framing::CloseDelimited => self.plain(),
        }
    }

    /// The JSON carried in `data:` (the task JSON for progress frames).
    pub fn json(&self) -> &str {
        std::str::from_utf8(&self.bytes[self.data.clone()]).expect("built from a str")
    }

    /// Whether the stream ends after this frame.
    pub fn ends_stream(&self) -> bool {
        self.kind != FrameKind::Progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(event: Option<&str>, id: Option<&str>, data: &str) -> Result<String, FieldError> {
        let mut out = Vec::new();
        encode_event(&mut out, event, id, data).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn fields_are_written_with_the_space() {
        let cases: &[(Option<&str>, Option<&str>, &str, &str)] = &[
            (Some("progress"), Some("7"), "{}", "event: progress\nid: 7\ndata: {}\n\n"),
            (None, None, "", "data: \n\n"),
            (None, None, " lead", "data:  lead\n\n"),
            (None, None, "a\nb", "data: a\ndata: b\n\n"),
            (None, None, "a\r\nb", "data: a\ndata: b\n\n"),
            (None, None, "a\rb", "data: a\ndata: b\n\n"),
            (None, None, "a\n\nb", "data: a\ndata: \ndata: b\n\n"),
            (None, None, "a\n", "data: a\ndata: \n\n"),
        ];
        for (event, id, data, want) in cases {
            assert_eq!(encoded(*event, *id, data).as_deref(), Ok(*want), "{data:?}");
        }
    }

    #[test]
    fn event_and_id_never_break_framing() {
        assert_eq!(encoded(Some("a\nb"), None, ""), Err(FieldError { field: "event" }));
        assert_eq!(encoded(None, Some("1\r"), ""), Err(FieldError { field: "id" }));
        assert_eq!(encoded(None, Some("1\0"), ""), Err(FieldError { field: "id" }));
    }

    #[test]
    fn decimals_and_chunk_sizes_are_written_by_hand_correctly() {
        for n in [0u64, 7, 10, 99, 1000, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        for len in [0usize, 1, 15, 16, 255, 4096, 70_000] {
            let json = format!("\"{}\"", "x".repeat(len));
            let frame = Frame::progress(1, &json, false);
            let want = format!("{:x}\r\n", frame.plain().len());
            assert!(frame.chunked().starts_with(want.as_bytes()), "{len}");
        }
    }

    #[test]
    fn frames_carry_chunk_framing_and_the_json() {
        let frame = Frame::progress(3, r#"{"a":1}"#, false);
        let event = "event: progress\nid: 3\ndata: {\"a\":1}\n\n";
        assert_eq!(frame.plain(), event.as_bytes());
        assert_eq!(frame.chunked(), format!("{:x}\r\n{event}\r\n", event.len()).as_bytes());
        assert_eq!(frame.json(), r#"{"a":1}"#);
        assert!(!frame.ends_stream());
        let closing = Frame::closing("task_deleted", "The task was deleted.");
        assert!(closing.ends_stream());
        assert_eq!(closing.json(), r#"{"code":"task_deleted","message":"The task was deleted."}"#);
        assert!(!String::from_utf8_lossy(closing.plain()).contains("id:"));
    }

    #[test]
    fn a_frame_gives_the_slice_of_the_framing_asked() {
        // Shows `framed` picks the chunk for chunked streams and the bare event for HTTP/1.0 ones.
        let frame = Frame::progress(3, r#"{"a":1}"#, false);
        assert_eq!(frame.framed(Framing::Chunked), frame.chunked());
        assert_eq!(frame.framed(Framing::CloseDelimited), frame.plain());
        assert_ne!(frame.chunked(), frame.plain());
    }
}
