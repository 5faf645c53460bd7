//! One connection of `watch`: send the stream request for the tasks that have not ended, read
//! the answer, and apply its events to the board until every task has ended or the connection
//! is of no more use. What to do next (stop, wait and retry, give up) is decided by the caller
//! from the [`Outcome`].

use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

use sse_progress::client::{EventReader, Url, connect, read_head};

use super::board::Board;
use super::display::Display;
use super::request::{Route, stream_request};
use super::retry::{Trouble, retry_after};

/// Heartbeats come every 30 s by default: this long without a byte means the connection is gone.
const SILENCE: Duration = Duration::from_secs(75);

/// The longest a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection open this long was of use even if nothing changed meanwhile, so a proxy that
/// cuts idle streams now and then does not use up the attempts.
const STABLE: Duration = Duration::from_secs(30);

/// The most of an error answer's body that is read to show its message.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// Codes of a stream-level `event: error`: trouble of the connection, not of a task.
const STREAM_LEVEL: &[&str] = &["shutting_down", "too_slow"];

/// How a connection ended.
#[derive(Debug, PartialEq)]
pub enum End {
    /// Every task has ended.
    Done,
    /// Worth another attempt; the text says why.
    Retry(Trouble, String),
    /// Nothing more to try (404, another final answer): the text says why.
    Fatal(String),
}

/// How a connection ended, and whether it was of use (it brought a change, or stayed open long).
#[derive(Debug)]
pub struct Outcome {
    /// How it ended.
    pub end: End,
    /// It made progress: the attempts count from zero again.
    pub useful: bool,
}

/// Follows the open tasks of `board` over one connection to `url`, resuming after `last_id`
/// (updated with every `id:` seen).
pub fn follow(
    url: &Url,
    route: Route,
    board: &mut Board,
    display: &mut Display,
    last_id: &mut Option<String>,
) -> Outcome {
    let opened = Instant::now();
    let mut useful = false;
    let end = match read_stream(url, route, board, display, last_id, &mut useful) {
        Ok(end) => end,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            End::Retry(Trouble::Broken, format!("no bytes for {} s", SILENCE.as_secs()))
        }
        Err(e) => End::Retry(Trouble::Broken, e.to_string()),
    };
    Outcome { end, useful: useful || opened.elapsed() >= STABLE }
}

fn read_stream(
    url: &Url,
    route: Route,
    board: &mut Board,
    display: &mut Display,
    last_id: &mut Option<String>,
    useful: &mut bool,
) -> std::io::Result<End> {
    let stream = connect(url.addr, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(SILENCE))?;
    let head = stream_request(url, route, &board.open(), last_id.as_deref());
    (&stream).write_all(head.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader)?;
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    match status {
        200 => {}
        204 => {
            // Only a resume whose tasks are all terminal and unchanged gets 204, and this
            // watcher stops at each terminal snapshot it sees: the end of these was never seen.
            let open: Vec<&str> = board.open().iter().map(|(id, _)| *id).collect();
            return Ok(End::Fatal(format!("the server answered 204 before the end of {} was seen", open.join(", "))));
        }
        401 | 403 => {
            // No task of the request was admitted: each is refused (API.md).
            let (code, message) = error_of(&mut reader, header("content-length"));
            for index in 0..board.tasks.len() {
                if board.drop_task(index, &code, &message) {
                    display.changed(board, index);
                }
            }
            return Ok(End::Done);
        }
        429 | 503 => {
            let (code, _) = error_of(&mut reader, header("content-length"));
            let wait = retry_after(header("retry-after"));
            return Ok(End::Retry(Trouble::Busy(wait), format!("the server answered {status} {code}")));
        }
        500..=599 => return Ok(End::Retry(Trouble::Broken, format!("the server answered {status}"))),
        _ => {
            let (code, message) = error_of(&mut reader, header("content-length"));
            return Ok(End::Fatal(format!("the server answered {status} {code}: {message}")));
        }
    }
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let mut events = EventReader::new(reader, chunked);
    while let Some(event) = events.next_event()? {
        match event.event.as_str() {
            "progress" => {
                let Ok(task) = serde_json::from_str::<serde_json::Value>(&event.data) else { continue };
                let index = match route {
                    Route::One => Some(0),
                    Route::Many => task["taskId"].as_str().and_then(|id| board.index_of(id)),
                };
                if event.id.is_some() {
                    last_id.clone_from(&event.id);
                }
                *useful = true;
                if let Some(index) = index
                    && board.progress(index, &task)
                {
                    display.changed(board, index);
                }
            }
            "error" => {
                let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
                let code = data["code"].as_str().unwrap_or("error");
                let message = data["message"].as_str().unwrap_or("");
                let index = match (route, data["taskId"].as_str()) {
                    (_, Some(id)) => board.index_of(id),
                    (Route::One, None) if !STREAM_LEVEL.contains(&code) => Some(0),
                    _ => None,
                };
                match index {
                    Some(index) => {
                        if board.drop_task(index, code, message) {
                            display.changed(board, index);
                        }
                    }
                    None => display.notice(&format!("the server says {code}: {message}")),
                }
            }
            _ => {}
        }
        if board.all_ended() {
            return Ok(End::Done);
        }
    }
    Ok(End::Retry(Trouble::Broken, "the stream ended before every task did".into()))
}

/// The `code` and `message` of a JSON error answer (API.md, Errors), read from its body.
fn error_of(reader: &mut impl BufRead, length: Option<&str>) -> (String, String) {
    let length = length.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0).min(MAX_ERROR_BODY);
    let mut body = Vec::new();
    let _ = reader.take(length).read_to_end(&mut body);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let field = |name: &str| json["error"][name].as_str().unwrap_or("").to_owned();
    (field("code"), field("message"))
}
