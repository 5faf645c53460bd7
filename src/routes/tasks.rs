//! The producer API: create, update, complete, fail, get, list and delete tasks over HTTP.
//!
//! Every `POST` and `PATCH` must say `Content-Type: application/json`, even with an empty body:
//! a plain HTML form or an untyped `fetch` from another site cannot send that type without a CORS
//! preflight, so no website a user visits can write tasks (415 otherwise). Bodies are read field
//! by field in `task.rs` without building a JSON tree, and tasks are answered from the tracker's
//! shared `Arc`s, serialized after its lock is released.

use std::sync::Arc;

use super::task_body::TaskBody;
use crate::error::{Error, ErrorKind};
use crate::http::request::{Method, Request};
use crate::http::response::Response;
use crate::state::Shared;
use crate::task::{Body, NewTask, Task, TaskUpdate, parse_complete, parse_fail};

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
pub fn create(shared: &Shared, request: &Request, body: &[u8]) -> Response {
    let made =
        parse_body(request, body).and_then(|body| NewTask::from_body(&body)).and_then(|new| shared.tracker.create(new));
    match made {
        Ok(task) => {
            let extra = match shared.tracker.subscribe_token(&task.task_id) {
                Some(token) => format!(",\"subscribeToken\":{}", serde_json::to_string(&token).expect("a string")),
                None => String::new(),
            };
            Response::json_pieces(201, TaskBody::one(task, extra))
        }
        Err(e) => Response::from(&e),
    }
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
pub fn task(shared: &Shared, request: &Request, body: &[u8], task_id: &str) -> Response {
    let tracker = &shared.tracker;
    let answer = match request.method {
        Method::Patch => parse_body(request, body)
            .and_then(|body| TaskUpdate::from_body(&body))
            .and_then(|u| tracker.update_task(task_id, u)),
        Method::Delete => {
            return tracker.delete_task(task_id).map_or_else(|e| Response::from(&e), |()| Response::empty(204));
        }
        _ => crate::task::validate_task_id(task_id)
            .and_then(|()| tracker.get_task(task_id).ok_or_else(Error::task_not_found)),
    };
    answer.map_or_else(|e| Response::from(&e), |task| task_answer(200, task))
}

/// `POST /api/brand-monitor/tasks/{id}/complete`
pub fn complete(shared: &Shared, request: &Request, body: &[u8], task_id: &str) -> Response {
    let done = parse_body(request, body)
        .and_then(|body| parse_complete(&body))
        .and_then(|result| shared.tracker.complete_task_raw(task_id, result));
    done.map_or_else(|e| Response::from(&e), |task| task_answer(200, task))
}

/// `POST /api/brand-monitor/tasks/{id}/fail`
pub fn fail(shared: &Shared, request: &Request, body: &[u8], task_id: &str) -> Response {
    let done = parse_body(request, body)
        .and_then(|body| parse_fail(&body))
        .and_then(|e| shared.tracker.fail_task(task_id, &e));
    done.map_or_else(|e| Response::from(&e), |task| task_answer(200, task))
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
