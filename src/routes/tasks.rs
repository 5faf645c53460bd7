//! The producer API: create, update, complete, fail, get, list and delete tasks over HTTP.
//!
//! Every `POST` and `PATCH` must say `Content-Type: application/json`, even with an empty body:
//! a plain HTML form or an untyped `fetch` from another site cannot send that type without a CORS
//! preflight, so no website a user visits can write tasks (415 otherwise). Bodies are read field
//! by field in `task.rs` without building a JSON tree, and tasks are answered from the tracker's
//! shared `Arc`s, serialized after its lock is released.
//!
//! A change's answer comes with the ticket of its change when the store commits later (the
//! journal): the request loop awaits the ticket before it writes the answer, and answers
//! `storage_unavailable` instead if the change could not be made durable (`dispatch.rs`).

use std::sync::Arc;

use super::task_body::TaskBody;
use crate::error::{Error, ErrorKind};
use crate::http::request::{Method, Request};
use crate::http::response::Response;
use crate::state::Shared;
use crate::task::{Body, NewTask, Task, TaskUpdate, parse_complete, parse_fail};
use crate::tracker::{Held, Ticket};

/// An answer, and the ticket of its change to wait on first, if there is one.
pub type Produced = (Response, Option<Arc<Ticket>>);

/// The answer of a held change, or of its error.
fn produced<T>(held: Result<Held<T>, Error>, answer: impl FnOnce(T) -> Response) -> Produced {
    match held {
        Ok((value, ticket)) => (answer(value), ticket),
        Err(e) => (Response::from(&e), None),
    }
}

/// Checks the media type and reads the body (an empty body is `{}`).
pub fn parse_body<'a>(request: &Request, body: &'a [u8]) -> Result<Body<'a>, Error> {
    if !is_json(request.content_type()) {
        return Err(Error::new(ErrorKind::UnsupportedMediaType, "The body must be `application/json`."));
    }
    Body::parse(body)
}

/// Whether a `Content-Type` is `application/json`, with any parameters (`; charset=utf-8`).
/// Other `+json` types are not taken: docs/API.md names this one type.
fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| t.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"))
}

/// `POST /api/brand-monitor/tasks`
pub fn create(shared: &Shared, request: &Request, body: &[u8]) -> Produced {
    let made = parse_body(request, body)
        .and_then(|body| NewTask::from_body(&body))
        .and_then(|new| shared.tracker.create_with_token(new));
    produced(made, |(task, token)| {
        let extra = match token {
            Some(token) => format!(",\"subscribeToken\":{}", serde_json::to_string(&*token).expect("a string")),
            None => String::new(),
        };
        Response::json_pieces(201, TaskBody::one(task, extra))
    })
}

/// `GET /api/brand-monitor/tasks`: `{"tasks":[...]}`, written in pieces from the shared tasks
/// after the tracker's lock is released.
pub fn list(shared: &Shared) -> Response {
    Response::json_pieces(200, TaskBody::list(shared.tracker.list_tasks()))
}

/// A task's answer: its JSON, written from the shared task.
fn task_answer(status: u16, task: Arc<Task>) -> Response {
    Response::json_pieces(status, TaskBody::one(task, String::new()))
}

/// `GET`, `PATCH`, `DELETE /api/brand-monitor/tasks/{id}`
pub fn task(shared: &Shared, request: &Request, body: &[u8], task_id: &str) -> Produced {
    let tracker = &shared.tracker;
    let answer = match request.method {
        Method::Patch => parse_body(request, body)
            .and_then(|body| TaskUpdate::from_body(&body))
            .and_then(|u| tracker.update_held(task_id, u)),
        Method::Delete => return produced(tracker.delete_held(task_id), |()| Response::empty(204)),
        _ => crate::task::validate_task_id(task_id)
            .and_then(|()| tracker.get_task(task_id).ok_or_else(Error::task_not_found))
            .map(|task| (task, None)),
    };
    produced(answer, |task| task_answer(200, task))
}

/// `POST /api/brand-monitor/tasks/{id}/complete`
pub fn complete(shared: &Shared, request: &Request, body: &[u8], task_id: &str) -> Produced {
    let done = parse_body(request, body)
        .and_then(|body| parse_complete(&body))
        .and_then(|result| shared.tracker.complete_held(task_id, result));
    produced(done, |task| task_answer(200, task))
}

/// `POST /api/brand-monitor/tasks/{id}/fail`
pub fn fail(shared: &Shared, request: &Request, body: &[u8], task_id: &str) -> Produced {
    let done = parse_body(request, body)
        .and_then(|body| parse_fail(&body))
        .and_then(|e| shared.tracker.fail_held(task_id, &e));
    produced(done, |task| task_answer(200, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_application_json_is_json() {
        for yes in ["application/json", "Application/JSON", "application/json; charset=utf-8", " application/json ;x=y"]
        {
            assert!(is_json(Some(yes)), "{yes:?}");
        }
        for no in [
            None,
            Some(""),
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("application/problem+json"),
            Some("application/jsonx"),
            Some("text/json"),
        ] {
            assert!(!is_json(no), "{no:?}");
        }
    }
}
