//! Round trip through `sse::encoder`: what it writes, an independent WHATWG parser reads back
//! as exactly the event that was encoded; what it refuses really would break the framing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_progress::internals::encoder::{Frame, FrameKind, encode_comment, encode_event};

/// The input, split so seeds stay readable: a flags byte (1: `event` given, 2: `id` given,
/// 4: terminal frame), then `event`, `id`, `data` and a free text separated by 0xFF (a byte
/// UTF-8 never uses). The text is also the comment; the frame's event id is `id` as a number.
#[derive(Debug)]
struct Input {
    event: Option<String>,
    id: Option<String>,
    data: String,
    text: String,
    event_id: u64,
    terminal: bool,
}

impl Input {
    fn split(bytes: &[u8]) -> Option<Input> {
        let (&flags, rest) = bytes.split_first()?;
        let mut parts = rest.splitn(4, |&b| b == 0xff).map(|p| String::from_utf8_lossy(p).into_owned());
        let mut next = || parts.next().unwrap_or_default();
        let (event, id, data, text) = (next(), next(), next(), next());
        let event_id = id.parse().unwrap_or(data.len() as u64);
        let event = (flags & 1 != 0).then_some(event);
        let id = (flags & 2 != 0).then_some(id);
        Some(Input { event, id, data, text, event_id, terminal: flags & 4 != 0 })
    }
}

/// One dispatched event; `event` and `id` are `None` when no such field line was seen.
#[derive(Debug, PartialEq)]
struct Event {
    event: Option<String>,
    id: Option<String>,
    data: String,
}

// The grammar (WHATWG HTML, "Server-sent events", 9.2.5 Parsing an event stream):
//
//   stream        = [ bom ] *event
//   event         = *( comment / field ) end-of-line
//   comment       = colon *any-char end-of-line
//   field         = 1*name-char [ colon [ space ] *any-char ] end-of-line
//   end-of-line   = ( cr lf / cr / lf )
//
// and its interpretation (9.2.6): a blank line dispatches the event; a line starting with a
// colon is ignored; otherwise the field name is up to the first colon and the value is after it,
// with one leading space removed (no colon: the whole line is the name, the value is empty).
// `event` sets the event type buffer, `data` appends the value and a LF to the data buffer, `id`
// sets the last event ID unless the value contains NUL, anything else is ignored. On dispatch an
// empty data buffer dispatches nothing; otherwise one trailing LF is removed. Bytes after the
// last blank line are an incomplete event, which is discarded.
//
/// Parses a whole stream: the events dispatched and whether an incomplete event was left over.
fn parse_stream(bytes: &[u8]) -> (Vec<Event>, bool) {
    let text = std::str::from_utf8(bytes).expect("the encoder writes UTF-8");
    let mut rest = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut events = Vec::new();
    let (mut event, mut id, mut data) = (None::<String>, None::<String>, String::new());
    let mut pending = false;
    while let Some(end) = rest.find(['\r', '\n']) {
        let line = &rest[..end];
        let eol = if rest[end..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[end + eol..];
        if line.is_empty() {
            if !data.is_empty() {
                data.pop(); // the trailing LF
                events.push(Event { event: event.take(), id: id.clone(), data: std::mem::take(&mut data) });
            }
            event = None;
            pending = false;
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        pending = true;
        match name {
            "event" => event = Some(value.to_owned()),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => id = Some(value.to_owned()),
            _ => {}
        }
    }
    (events, pending || !rest.is_empty())
}

fn breaks_framing(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.contains(['\r', '\n', '\0']))
}

fuzz_target!(|bytes: &[u8]| {
    let Some(input) = Input::split(bytes) else { return };
    let (event, id) = (input.event.as_deref(), input.id.as_deref());

    let mut out = b"retry: 2000\n\n".to_vec();
    match encode_event(&mut out, event, id, &input.data) {
        Err(e) => {
            let field = if breaks_framing(event) { "event" } else { "id" };
            assert!(breaks_framing(event) || breaks_framing(id), "refused {input:?}");
            assert_eq!(e.field, field);
            assert_eq!(out, b"retry: 2000\n\n", "a refused event writes nothing");
        }
        Ok(()) => {
            assert!(!breaks_framing(event) && !breaks_framing(id), "accepted {input:?}");
            let (events, incomplete) = parse_stream(&out);
            let data = input.data.replace("\r\n", "\n").replace('\r', "\n");
            let want = Event { event: event.map(str::to_owned), id: id.map(str::to_owned), data };
            assert_eq!(events, [want]);
            assert!(!incomplete);
        }
    }

    // A comment never dispatches or starts an event, whatever its text.
    let mut out = Vec::new();
    encode_comment(&mut out, &input.text);
    assert_eq!(parse_stream(&out), (Vec::new(), false));

    // A progress frame of compact JSON made from arbitrary text.
    let json = serde_json::json!({ "taskId": "t", "message": input.text }).to_string();
    let frame = Frame::progress(input.event_id, &json, input.terminal);
    assert_eq!(frame.json(), json);
    assert_eq!(frame.event_id, input.event_id);
    assert_eq!(frame.kind, if input.terminal { FrameKind::Terminal } else { FrameKind::Progress });
    assert_eq!(frame.ends_stream(), input.terminal);
    let want = Event { event: Some("progress".into()), id: Some(input.event_id.to_string()), data: json };
    assert_eq!(parse_stream(frame.plain()), (vec![want], false));
    // chunk = chunk-size CRLF chunk-data CRLF, exactly one chunk holding the plain event.
    let chunked = frame.chunked();
    let size_end = chunked.windows(2).position(|w| w == b"\r\n").expect("a chunk-size line");
    let size = std::str::from_utf8(&chunked[..size_end]).unwrap();
    assert!(!size.is_empty() && size.bytes().all(|b| b.is_ascii_hexdigit()), "{size:?}");
    let size = usize::from_str_radix(size, 16).unwrap();
    assert_eq!(size, frame.plain().len());
    assert_eq!(chunked.len(), size_end + 2 + size + 2);
    assert_eq!(&chunked[size_end + 2..size_end + 2 + size], frame.plain());
    assert!(chunked.ends_with(b"\r\n"));
});
