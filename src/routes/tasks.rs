//! The producer API: create, update, complete, fail, get, list and delete tasks over HTTP.
//!
//! Bodies are JSON objects checked field by field in `task.rs`; a body of another media type is
//! refused (415), which also keeps browsers on other sites from posting to it without a CORS
//! preflight.

use serde_json::Value;

use super::progress::error_response;
use crate::error::{Error, ErrorKind};
use crate::http::request::{Method, Request};
use crate::http::response::Response;
use crate::server::Shared;
use crate::task::{NewTask, TaskUpdate, parse_complete, parse_fail};

/// Parses a request body as JSON; an empty body is `{}`.
pub fn parse_body(request: &Request, body: &[u8]) -> Result<Value, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    let json_type = request.content_type().is_none_or(|t| {
        let essence = t.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
    });
    if !json_type {
        return Err(Error::new(ErrorKind::UnsupportedMediaType, "The body must be `application/json`."));
    }
    serde_json::from_slice(body).map_err(|e| {
        // serde_json's messages quote no input, only positions; still, say it in our words.
        Error::new(
            ErrorKind::InvalidJson,
            format!("The body is not valid JSON (line {}, column {}).", e.line(), e.column()),
        )
    })
}

/// `POST /api/brand-monitor/tasks`
pub fn create(shared: &Shared, request: &Request, body: &[u8]) -> Response {
    let made =
        parse_body(request, body).and_then(|v| NewTask::from_json(&v)).and_then(|new| shared.tracker.create(new));
    match made {
        Ok(task) => match shared.tracker.subscribe_token(&task.task_id) {
            Some(token) => {
                let mut json = serde_json::to_value(&task).expect("a task serializes");
                json["subscribeToken"] = token.into();
                Response::json(201, json.to_string())
            }
            None => Response::json(201, task.to_json()),
        },
        Err(e) => error_response(&e),
    }
}

/// `GET /api/brand-monitor/tasks`
pub fn list(shared: &Shared) -> Response {
    let tasks = shared.tracker.list_tasks();
    Response::json(200, serde_json::json!({ "tasks": tasks }).to_string())
}

/// `GET`, `PATCH`, `DELETE /api/brand-monitor/tasks/{id}`
pub fn task(shared: &Shared, request: &Request, body: &[u8], task_id: &str) -> Response {
    let tracker = &shared.tracker;
    let answer = match request.method {
        Method::Patch => parse_body(request, body)
            .and_then(|v| TaskUpdate::from_json(&v))
            .and_then(|u| tracker.update_task(task_id, u)),
        Method::Delete => {
            return tracker.delete_task(task_id).map_or_else(|e| error_response(&e), |()| Response::empty(204));
        }
        _ => crate::task::validate_task_id(task_id).and_then(|()| {
            tracker.get_task(task_id).ok_or_else(|| Error::new(ErrorKind::TaskNotFound, "No task has this id."))
        }),
    };
    answer.map_or_else(|e| error_response(&e), |task| Response::json(200, task.to_json()))
}

/// `POST /api/brand-monitor/tasks/{id}/complete`
pub fn complete(shared: &Shared, request: &Request, body: &[u8], task_id: &str) -> Response {
    let done = parse_body(request, body)
        .and_then(|v| parse_complete(&v))
        .and_then(|r| shared.tracker.complete_task(task_id, r));
    done.map_or_else(|e| error_response(&e), |task| Response::json(200, task.to_json()))
}

/// `POST /api/brand-monitor/tasks/{id}/fail`
pub fn fail(shared: &Shared, request: &Request, body: &[u8], task_id: &str) -> Response {
    let done =
        parse_body(request, body).and_then(|v| parse_fail(&v)).and_then(|e| shared.tracker.fail_task(task_id, &e));
    done.map_or_else(|e| error_response(&e), |task| Response::json(200, task.to_json()))
}
