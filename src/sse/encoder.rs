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
//! viewer's write is a single slice in either framing; and the head of the same event labelled
//! with the server-wide change sequence, which streams of many tasks write before its `data:`
//! line.

use std::fmt;

use crate::http::response::{CHUNK_ROOM, Framing, frame_chunk, write_size_line};

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
    /// A task was removed (deleted or expired): an event of the all-tasks stream only.
    Removed,
}

/// Which number a stream writes as the `id:` of a progress event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ids {
    /// The task's `eventId`: the stream of one task.
    EventId,
    /// The server-wide change sequence: streams of many tasks, where `eventId`s of different
    /// tasks would not grow along the stream.
    ChangeSeq,
}

/// Where a form of the event lies in a frame's bytes: as one HTTP/1.1 chunk, and bare.
#[derive(Clone, Copy, Debug, Default)]
struct Spans {
    chunked: (u32, u32),
    plain: (u32, u32),
}

/// One encoded event, shared by every viewer, with HTTP/1.1 chunk framing around it.
///
/// It holds two forms of the event without holding its JSON twice: as the stream of one task
/// sends it (`id: <eventId>`, one slice), and as streams of many tasks send it (`id: <change
/// seq>`): a head of its own (chunk size, `event`, `id`) and a tail that is the first form's
/// `data:` line, so a viewer of many tasks writes two shared slices and copies nothing.
#[derive(Debug)]
pub struct Frame {
    bytes: Box<[u8]>,
    one: Spans,
    head: Spans,
    tail: Spans,
    data: (u32, u32),
    /// What the viewer does after sending it.
    pub kind: FrameKind,
    /// The task's `eventId` (0 for frames without an `id:`).
    pub event_id: u64,
    /// The server-wide change sequence number of the change it shows (0 for frames of no change).
    pub seq: u64,
}

/// Bytes of `data: ` before the JSON of a `data` line.
const DATA_FIELD: usize = b"data: ".len();

impl Frame {
    /// Encodes a `progress` event carrying one line of JSON, with no change sequence number.
    pub fn progress(event_id: u64, json: &str, terminal: bool) -> Frame {
        let kind = if terminal { FrameKind::Terminal } else { FrameKind::Progress };
        let mut out = Vec::with_capacity(CHUNK_ROOM + json.len() + 48);
        let (one, data) = push_chunk(&mut out, "progress", Some(event_id), json);
        Frame::single(out, one, data, kind, event_id, 0)
    }

    /// Encodes the `progress` event of change `seq` of a task, in both forms.
    pub fn change(seq: u64, event_id: u64, json: &str, terminal: bool) -> Frame {
        let kind = if terminal { FrameKind::Terminal } else { FrameKind::Progress };
        let mut out = Vec::with_capacity(2 * CHUNK_ROOM + json.len() + 80);
        let (one, data) = push_chunk(&mut out, "progress", Some(event_id), json);
        // The tail is the `data:` line of the first form, and its chunk's CRLF.
        let from = data.0 - DATA_FIELD as u32;
        let tail = Spans { chunked: (from, one.chunked.1), plain: (from, one.plain.1) };
        let head_start = out.len();
        out.resize(head_start + CHUNK_ROOM, 0);
        push_field(&mut out, "event", "progress");
        out.extend_from_slice(b"id: ");
        push_decimal(&mut out, seq);
        out.push(b'\n');
        let head_plain = head_start + CHUNK_ROOM;
        let size = out.len() - head_plain + (tail.plain.1 - tail.plain.0) as usize;
        let begins = write_size_line(&mut out, head_plain, size);
        let head = Spans { chunked: (begins as u32, out.len() as u32), plain: (head_plain as u32, out.len() as u32) };
        Frame { bytes: out.into_boxed_slice(), one, head, tail, data, kind, event_id, seq }
    }

    /// Encodes an `error` event `{"code","message"}` that ends the stream.
    pub fn closing(code: &str, message: &str) -> Frame {
        let json = serde_json::json!({ "code": code, "message": message }).to_string();
        let mut out = Vec::with_capacity(CHUNK_ROOM + json.len() + 24);
        let (one, data) = push_chunk(&mut out, "error", None, &json);
        Frame::single(out, one, data, FrameKind::Closing, 0, 0)
    }

    /// The viewer could not keep up and is being disconnected.
    pub fn too_slow() -> Frame {
        Frame::closing("too_slow", "The connection could not keep up and is being closed.")
    }

    /// Encodes the end of task `task_id` deleted by change `seq`: `task_deleted`, whose data also
    /// names the task on streams of many tasks (where the stream goes on for the others).
    pub fn deleted(seq: u64, task_id: &str) -> Frame {
        let (code, message) = ("task_deleted", "The task was deleted.");
        let json = serde_json::json!({ "code": code, "message": message }).to_string();
        let named = serde_json::json!({ "code": code, "message": message, "taskId": task_id }).to_string();
        let mut out = Vec::with_capacity(2 * CHUNK_ROOM + json.len() + named.len() + 48);
        let (one, data) = push_chunk(&mut out, "error", None, &json);
        let (head, _) = push_chunk(&mut out, "error", None, &named);
        Frame {
            bytes: out.into_boxed_slice(),
            one,
            head,
            tail: Spans::default(),
            data,
            kind: FrameKind::Closing,
            event_id: 0,
            seq,
        }
    }

    /// Encodes `event: removed` for task `task_id`, removed by change `seq` (the all-tasks stream).
    pub fn removed(seq: u64, task_id: &str) -> Frame {
        let json = serde_json::json!({ "taskId": task_id }).to_string();
        let mut out = Vec::with_capacity(CHUNK_ROOM + json.len() + 48);
        let (one, data) = push_chunk(&mut out, "removed", Some(seq), &json);
        Frame::single(out, one, data, FrameKind::Removed, 0, seq)
    }

    /// A frame whose event is the same on every stream.
    fn single(out: Vec<u8>, one: Spans, data: (u32, u32), kind: FrameKind, event_id: u64, seq: u64) -> Frame {
        Frame { bytes: out.into_boxed_slice(), one, head: one, tail: Spans::default(), data, kind, event_id, seq }
    }

    fn span(&self, span: (u32, u32)) -> &[u8] {
        &self.bytes[span.0 as usize..span.1 as usize]
    }

    fn form(&self, spans: Spans, framing: Framing) -> &[u8] {
        match framing {
            Framing::Chunked => self.span(spans.chunked),
            Framing::CloseDelimited => self.span(spans.plain),
        }
    }

    /// The event as one HTTP/1.1 chunk.
    pub fn chunked(&self) -> &[u8] {
        self.span(self.one.chunked)
    }

    /// The bare event, for a close-delimited (HTTP/1.0) response.
    pub fn plain(&self) -> &[u8] {
        self.span(self.one.plain)
    }

    /// The event as `framing` sends it: one slice either way.
    pub fn framed(&self, framing: Framing) -> &[u8] {
        self.form(self.one, framing)
    }

    /// The event as a stream labelling ids with `ids` sends it in `framing`: one slice, or two
    /// (the second may be empty).
    pub fn parts(&self, framing: Framing, ids: Ids) -> [&[u8]; 2] {
        match ids {
            Ids::EventId => [self.framed(framing), &[]],
            Ids::ChangeSeq => [self.form(self.head, framing), self.form(self.tail, framing)],
        }
    }

    /// Bytes of [`Frame::parts`].
    pub fn len(&self, framing: Framing, ids: Ids) -> usize {
        self.parts(framing, ids).iter().map(|p| p.len()).sum()
    }

    /// The JSON carried in `data:` (the task JSON for progress frames).
    pub fn json(&self) -> &str {
        std::str::from_utf8(self.span(self.data)).expect("built from a str")
    }

    /// Whether the stream of this task ends after this frame.
    pub fn ends_stream(&self) -> bool {
        matches!(self.kind, FrameKind::Terminal | FrameKind::Closing)
    }
}

/// Appends one whole event as a chunk (its size line in room kept in front, CRLF after):
/// `json` must be one line, as serde_json's compact output always is (it escapes CR and LF inside
/// strings and writes no whitespace), so the data needs no splitting and the event is written
/// straight, with no scan of the JSON: this runs once per change on the hot path. Returns where
/// the event lies and where its JSON does.
fn push_chunk(out: &mut Vec<u8>, event: &str, id: Option<u64>, json: &str) -> (Spans, (u32, u32)) {
    debug_assert!(!json.contains(['\r', '\n']), "compact JSON is one line");
    debug_assert!(!event.contains(['\r', '\n']), "our event names are one line");
    let start = out.len() + CHUNK_ROOM;
    out.resize(start, 0);
    push_field(out, "event", event);
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        push_decimal(out, id);
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    let data = (out.len() as u32, (out.len() + json.len()) as u32);
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(b"\n\n");
    let plain = (start as u32, out.len() as u32);
    let begins = frame_chunk(out, start);
    (Spans { chunked: (begins as u32, out.len() as u32), plain }, data)
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

    #[test]
    fn a_change_is_written_with_its_event_id_or_its_change_number_without_a_copy() {
        // Shows the two forms of a change: one slice with `id: <eventId>`, or a head with
        // `id: <seq>` and the same `data:` line (a slice of the first form), in either framing.
        let frame = Frame::change(1234, 7, r#"{"a":1}"#, true);
        assert_eq!((frame.kind, frame.seq, frame.event_id), (FrameKind::Terminal, 1234, 7));
        assert_eq!(frame.plain(), b"event: progress\nid: 7\ndata: {\"a\":1}\n\n");
        let seq_event = "event: progress\nid: 1234\ndata: {\"a\":1}\n\n";
        let joined = |framing, ids| frame.parts(framing, ids).concat();
        assert_eq!(joined(Framing::CloseDelimited, Ids::ChangeSeq), seq_event.as_bytes());
        let chunk = format!("{:x}\r\n{seq_event}\r\n", seq_event.len());
        assert_eq!(joined(Framing::Chunked, Ids::ChangeSeq), chunk.as_bytes());
        assert_eq!(frame.len(Framing::Chunked, Ids::ChangeSeq), chunk.len());
        assert_eq!(joined(Framing::Chunked, Ids::EventId), frame.chunked());
        let [_, tail] = frame.parts(Framing::Chunked, Ids::ChangeSeq);
        assert!(std::ptr::eq(&tail[tail.len() - 2..], &frame.chunked()[frame.chunked().len() - 2..]), "shared");
    }

    #[test]
    fn a_deletion_names_its_task_only_on_streams_of_many() {
        let frame = Frame::deleted(9, "t1");
        assert!(frame.ends_stream());
        assert_eq!(frame.json(), r#"{"code":"task_deleted","message":"The task was deleted."}"#);
        let many = frame.parts(Framing::CloseDelimited, Ids::ChangeSeq).concat();
        let want = "event: error\ndata: {\"code\":\"task_deleted\",\"message\":\"The task was deleted.\",\"taskId\":\"t1\"}\n\n";
        assert_eq!(String::from_utf8(many).unwrap(), want);
        let removed = Frame::removed(10, "t1");
        assert!(!removed.ends_stream());
        assert_eq!(removed.plain(), b"event: removed\nid: 10\ndata: {\"taskId\":\"t1\"}\n\n");
        assert_eq!(removed.parts(Framing::Chunked, Ids::ChangeSeq).concat(), removed.chunked());
    }
}
