//! `GET` and `HEAD /api/brand-monitor/progress/{taskId}`: the stream, and status in headers.
//!
//! Checks come in this order: the id (400), the subscribe token when required (401/403), the
//! task (404), shutdown (503), the client's stream cap (429). The token comes before the task so
//! that, with tokens on, an unknown task is answered exactly like a wrong token and no answer
//! tells whether a task exists. The token is checked against the task whose topic (or status)
//! is then used, both read in one tracker call: a task deleted and made again with the same id
//! cannot be reached with the old one's token. The viewer subscribes before the snapshot is
//! chosen, under the topic's lock, so no change can fall between the snapshot and the stream.

use std::borrow::Cow;

use crate::client::percent_encode;
use crate::connections::StreamGuard;
use crate::error::Error;
use crate::http::request::Request;
use crate::http::response::{Framing, Response};
use crate::sse::stream::{Opening, Start};
use crate::sse::topic::Viewer;
use crate::state::Shared;
use crate::task::validate_task_id;
use crate::tracker::Denied;

/// The answer to a stream request while the server drains.
pub(super) fn shutting_down() -> Response {
    Response::error(503, "shutting_down", "The server is shutting down; reconnect shortly.").header("Retry-After", "2")
}

/// The answer to a client at its cap of open streams.
pub(super) fn too_many_streams() -> Response {
    Response::error(429, "too_many_streams", "This client has too many open streams.").header("Retry-After", "10")
}

/// Checks the id, and that a token is shown when one is required; the token shown (`None`:
/// none is asked), or the error answer.
fn shown_token<'a>(shared: &Shared, request: &'a Request, task_id: &str) -> Result<Option<Cow<'a, str>>, Response> {
    validate_task_id(task_id).map_err(|e| Response::from(&e))?;
    if !shared.config.require_subscribe_token {
        return Ok(None);
    }
    // An unknown task matches no token: it gets the same 401 or 403 as a known one.
    match request.query_param("token") {
        Some(token) => Ok(Some(token)),
        None => {
            Err(Response::error(401, "token_required", "This stream needs `?token=` with the task's subscribe token."))
        }
    }
}

/// The answer to a viewer the tracker refused.
fn denied(denied: Denied) -> Response {
    match denied {
        Denied::NotFound => Response::from(&Error::task_not_found()),
        Denied::TokenInvalid => Response::error(403, "token_invalid", "The subscribe token does not match this task."),
    }
}

/// Everything a stream needs to start, or the answer (400, 401, 403, 404, 204, 429, 503) that
/// refuses it. The stream is registered with the connection manager from here on.
pub fn start(
    shared: &Shared,
    request: &Request,
    task_id: &str,
    client: std::net::IpAddr,
    cors: Vec<(&'static str, String)>,
) -> Result<(Start<Viewer>, StreamGuard), Response> {
    let shown = shown_token(shared, request, task_id)?;
    let followed = shared.tracker.follow(&[(task_id, shown.as_deref())]).pop().expect("one answer per task");
    let topic = followed.map_err(denied)?;
    if shared.shutdown.is_triggered() {
        return Err(shutting_down());
    }
    let (viewer, snapshot) = topic.subscribe();
    drop(topic);
    // The client has this exact event when its Last-Event-ID (or `lastEventId`) is the id we
    // sent, spelled as we spell it; anything else (`+2`, `02`, garbage) gets the snapshot.
    let up_to_date =
        snapshot.event_id != 0 && request.resume_point().as_deref() == Some(snapshot.event_id.to_string().as_str());
    if up_to_date && snapshot.ends_stream() {
        // The client has seen the terminal event: 204 tells EventSource to stop reconnecting.
        return Err(Response::empty(204));
    }
    let Some(guard) = shared.connections.open(client) else {
        return Err(too_many_streams());
    };
    let start = Start {
        source: viewer,
        opening: Opening::Task { task_id: task_id.to_owned(), snapshot: (!up_to_date).then_some(snapshot) },
        framing: Framing::for_request(request.http11),
        keep_alive: request.keep_alive,
        extra_headers: cors,
    };
    Ok((start, guard))
}

/// Status of a task in headers, no body.
pub fn head(shared: &Shared, request: &Request, task_id: &str) -> Response {
    let shown = match shown_token(shared, request, task_id) {
        Ok(shown) => shown,
        Err(response) => return response,
    };
    let task = match shared.tracker.summary(task_id, shown.as_deref()) {
        Ok(task) => task,
        Err(refused) => return denied(refused),
    };
    Response::empty(200)
        .header("X-Task-Status", task.status.as_str())
        .header("X-Task-Progress", format_number(task.progress))
        .header("X-Task-Stage", percent_encode(&task.stage))
        .header("X-Task-Event-Id", task.event_id.to_string())
        .header("X-Task-Updated-At", task.updated_at.to_string())
}

/// A number as JSON writes it (`50.0`, `12.5`).
fn format_number(n: f64) -> String {
    serde_json::Number::from_f64(n).map_or_else(|| "0".into(), |n| n.to_string())
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

    /// The stage the viewer is shown with the token of task `t` as it was first made, when `t`
    /// is deleted and made again just before take `n` of the tracker's lock while `ask` runs;
    /// `None` when refused (403).
    fn stage_seen_with_an_old_token(
        n: usize,
        ask: fn(&Shared, &Request) -> Result<String, Response>,
    ) -> Option<String> {
        use crate::routes::testing::{get, shared_with_tokens};
        use crate::tracker::probe::counting::{before_take, clear};
        let shared = shared_with_tokens();
        shared.tracker.create_task("t", "old").unwrap();
        let token = shared.tracker.subscribe_token("t").unwrap();
        let tracker = shared.tracker.clone();
        before_take(n, move || {
            tracker.delete_task("t").unwrap();
            tracker.create_task("t", "new").unwrap();
        });
        let seen = ask(&shared, &get(&format!("/api/brand-monitor/progress/t?token={token}")));
        clear();
        match seen {
            Ok(stage) => Some(stage),
            Err(response) => {
                assert_eq!(response.status, 403, "take {n}");
                None
            }
        }
    }

    #[test]
    fn a_token_of_a_task_deleted_and_made_again_never_reaches_the_new_task() {
        // Shows that before whichever take of the tracker's lock a task is deleted and made
        // again with the same id, the old task's token gets the old task's stream and status, or
        // a 403, never the new task's.
        use crate::routes::testing::CLIENT;
        fn stream(shared: &Shared, request: &Request) -> Result<String, Response> {
            let (start, _guard) = start(shared, request, "t", CLIENT, Vec::new())?;
            let Opening::Task { snapshot: Some(snapshot), .. } = start.opening else { panic!("a snapshot") };
            Ok(serde_json::from_str::<serde_json::Value>(snapshot.json()).unwrap()["stage"].to_string())
        }
        fn status(shared: &Shared, request: &Request) -> Result<String, Response> {
            let response = head(shared, request, "t");
            if response.status != 200 {
                return Err(response);
            }
            Ok(response.headers.iter().find(|(name, _)| *name == "X-Task-Stage").expect("a stage").1.clone())
        }
        for n in 1..=4 {
            for ask in [stream, status] {
                let seen = stage_seen_with_an_old_token(n, ask);
                assert!(!seen.as_deref().is_some_and(|stage| stage.contains("new")), "take {n}: {seen:?}");
            }
        }
        let first = stage_seen_with_an_old_token(usize::MAX, stream);
        assert_eq!(first.as_deref(), Some("\"old\""), "the premise: the token admits the task it was made for");
    }
}
