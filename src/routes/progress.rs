//! `GET` and `HEAD /api/brand-monitor/progress/{taskId}`: the stream, and status in headers.

use crate::error::Error;
use crate::http::conn::Conn;
use crate::http::request::Request;
use crate::http::response::Response;
use crate::server::Shared;
use crate::sse::stream::{self, End};
use crate::task::validate_task_id;

/// What a stream request led to.
#[derive(Debug)]
pub enum Outcome {
    /// An answer instead of a stream (400, 404, 204).
    Answer(Response),
    /// The stream ran and ended so.
    Streamed(End),
}

/// Starts a stream, or answers why not.
pub async fn get(shared: &Shared, conn: &mut Conn, request: &Request, task_id: &str) -> Outcome {
    if let Err(e) = validate_task_id(task_id) {
        return Outcome::Answer(error_response(&e));
    }
    let Some(topic) = shared.tracker.topic(task_id) else {
        return Outcome::Answer(error_response(&not_found()));
    };
    let latest = topic.latest();
    let last_seen = request.last_event_id.as_deref().and_then(|v| v.trim().parse::<u64>().ok());
    let up_to_date = last_seen == Some(latest.event_id) && latest.event_id != 0;
    if up_to_date && latest.ends_stream() {
        // The client has seen the terminal event: 204 tells EventSource to stop reconnecting.
        return Outcome::Answer(Response::empty(204));
    }
    drop(latest);
    Outcome::Streamed(stream::run(shared, conn, task_id, topic, up_to_date, request.http11).await)
}

/// Status of a task in headers, no body.
pub fn head(shared: &Shared, task_id: &str) -> Response {
    if let Err(e) = validate_task_id(task_id) {
        return error_response(&e);
    }
    let Some(task) = shared.tracker.get_task(task_id) else {
        return error_response(&not_found());
    };
    Response::empty(200)
        .header("X-Task-Status", task.status.as_str())
        .header("X-Task-Progress", format_number(task.progress))
        .header("X-Task-Stage", percent_encode(&task.stage))
        .header("X-Task-Event-Id", task.event_id.to_string())
        .header("X-Task-Updated-At", task.updated_at.to_string())
}

fn not_found() -> Error {
    Error::new(crate::ErrorKind::TaskNotFound, "No task has this id.")
}

/// The answer for a tracker error.
pub fn error_response(e: &Error) -> Response {
    Response::error(e.kind().status(), e.kind().code(), e.message())
}

/// A number as JSON would write it (`50`, `12.5`).
fn format_number(n: f64) -> String {
    serde_json::Number::from_f64(n).map_or_else(|| "0".into(), |n| n.to_string())
}

/// Percent-encodes everything but unreserved characters (RFC 3986), so any UTF-8 fits a header.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_safe() {
        assert_eq!(percent_encode("Données 2/3\r\n"), "Donn%C3%A9es%202%2F3%0D%0A");
        assert_eq!(format_number(50.0), "50.0");
        assert_eq!(format_number(12.5), "12.5");
    }
}
