//! `GET /api/brand-monitor/progress?tasks=ID1,ID2,...` (one stream for up to 100 tasks) and
//! `GET /api/brand-monitor/progress` (every task of the server): the admission of both.
//!
//! Browsers open at most six HTTP/1.1 connections per origin, so a page that follows many tasks
//! needs one stream for them all. A task of the list that cannot be followed (unknown, or its
//! subscribe token missing or wrong) is refused alone, with an `error` event naming it, and the
//! stream goes on for the others; only when none is admitted is the whole request refused, as
//! for one task. With subscribe tokens on, an unknown task is refused exactly like a wrong token,
//! so a stream never tells whether a task exists.
//!
//! Checks come in the order of the one-task route (`progress.rs`): the list (400), the tokens
//! (401/403 when none is admitted), the tasks (404 when none exists), shutdown (503), the resume
//! point (204 when every task is finished and unchanged since), the client's stream cap (429).
//! The stream of all tasks needs the publish token instead (401) and never answers 204.

use std::collections::HashSet;

use super::progress::{shutting_down, too_many_streams};
use crate::auth::bearer_matches;
use crate::connections::StreamGuard;
use crate::error::Error;
use crate::http::request::{Request, percent_decode};
use crate::http::response::{Framing, Response};
use crate::sse::feed::Feed;
use crate::sse::multi::Multi;
use crate::sse::source::Source;
use crate::sse::stream::{Listed, Opening, Start};
use crate::state::Shared;
use crate::task::validate_task_id;

/// Most tasks on one stream.
pub const MAX_TASKS: usize = 100;

/// A stream of many tasks about to start: of a list, or of all.
#[derive(Debug)]
pub enum Started {
    /// `?tasks=`.
    Tasks(Start<Box<Multi>>),
    /// Every task of the server.
    All(Start<Box<Feed>>),
}

/// Why one task of a list is not followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// Tokens off: no task has this id.
    NotFound,
    /// Tokens on: no token given for it.
    TokenRequired,
    /// Tokens on: the token does not match, or the task does not exist.
    TokenInvalid,
}

impl Refusal {
    fn code_and_message(self) -> (&'static str, &'static str) {
        match self {
            Refusal::NotFound => ("not_found", "No task has this id."),
            Refusal::TokenRequired => ("token_required", "This task needs its subscribe token in `tokens=`."),
            Refusal::TokenInvalid => ("token_invalid", "The subscribe token does not match this task."),
        }
    }
}

/// Everything a stream of many tasks needs to start, or the answer that refuses it. The stream
/// is registered with the connection manager from here on.
pub fn start(
    shared: &Shared,
    request: &Request,
    client: std::net::IpAddr,
    cors: Vec<(&'static str, String)>,
) -> Result<(Started, StreamGuard), Response> {
    match request.query_raw("tasks") {
        Some(list) => start_tasks(shared, request, list, client, cors),
        None => start_all(shared, request, client, cors),
    }
}

fn start_tasks(
    shared: &Shared,
    request: &Request,
    list: &str,
    client: std::net::IpAddr,
    cors: Vec<(&'static str, String)>,
) -> Result<(Started, StreamGuard), Response> {
    let task_ids = task_list(list)?;
    let mut topics = Vec::with_capacity(task_ids.len());
    let mut refused = Vec::new();
    for (i, task_id) in task_ids.iter().enumerate() {
        match admit(shared, request, i, task_id) {
            Ok(topic) => topics.push(topic),
            Err(refusal) => refused.push((i, refusal)),
        }
    }
    if topics.is_empty() {
        return Err(none_admitted(&refused));
    }
    if shared.shutdown.is_triggered() {
        return Err(shutting_down());
    }
    let after = resume_point(shared, request).unwrap_or(0);
    let multi = Multi::subscribe(shared.tracker.clone(), &topics, after);
    drop(topics);
    if refused.is_empty() && multi.finished() {
        // Every task ended, and the client saw it: 204 tells EventSource to stop reconnecting.
        return Err(Response::empty(204));
    }
    let guard = shared.connections.open(client).ok_or_else(too_many_streams)?;
    let refused = refused
        .into_iter()
        .map(|(i, refusal)| {
            let (code, message) = refusal.code_and_message();
            (i, code, message)
        })
        .collect();
    let opening = Opening::Tasks(Box::new(Listed { task_ids, refused }));
    Ok((Started::Tasks(stream_start(Box::new(multi), opening, request, cors)), guard))
}

fn start_all(
    shared: &Shared,
    request: &Request,
    client: std::net::IpAddr,
    cors: Vec<(&'static str, String)>,
) -> Result<(Started, StreamGuard), Response> {
    if let Some(token) = &shared.config.publish_token
        && !bearer_matches(request.authorization(), token)
    {
        return Err(Response::error(
            401,
            "unauthorized",
            "The stream of all tasks needs `Authorization: Bearer <publish token>`.",
        )
        .header("WWW-Authenticate", "Bearer"));
    }
    if shared.shutdown.is_triggered() {
        return Err(shutting_down());
    }
    let guard = shared.connections.open(client).ok_or_else(too_many_streams)?;
    let start = shared.tracker.open_feed(resume_point(shared, request));
    let (feed, task_ids) = Feed::new(shared.tracker.clone(), start);
    let opening = Opening::Tasks(Box::new(Listed { task_ids, refused: Vec::new() }));
    Ok((Started::All(stream_start(Box::new(feed), opening, request, cors)), guard))
}

fn stream_start<S>(source: S, opening: Opening, request: &Request, cors: Vec<(&'static str, String)>) -> Start<S> {
    Start {
        source,
        opening,
        framing: Framing::for_request(request.http11),
        keep_alive: request.keep_alive,
        extra_headers: cors,
    }
}

/// The ids of `?tasks=`: percent-decoded, then split on commas (`URLSearchParams` sends commas
/// as `%2C`); 1 to [`MAX_TASKS`] distinct valid ids, else 400.
fn task_list(list: &str) -> Result<Vec<String>, Response> {
    let bad_list = || Response::error(400, "bad_request", "`tasks` lists 1 to 100 distinct task ids, comma separated.");
    let decoded = percent_decode(list)
        .ok_or_else(|| Response::error(400, "invalid_task_id", "`tasks` is not percent-encoded UTF-8."))?;
    let ids: Vec<&str> = decoded.split(',').collect();
    if ids.len() > MAX_TASKS {
        return Err(bad_list());
    }
    let mut seen = HashSet::with_capacity(ids.len());
    for id in &ids {
        validate_task_id(id).map_err(|e| Response::from(&e))?;
        if !seen.insert(*id) {
            return Err(bad_list());
        }
    }
    Ok(ids.into_iter().map(str::to_owned).collect())
}

/// The topic of task `i` of the list, or why it is refused.
fn admit(
    shared: &Shared,
    request: &Request,
    i: usize,
    task_id: &str,
) -> Result<std::sync::Arc<crate::sse::topic::Topic>, Refusal> {
    let tracker = &shared.tracker;
    if !shared.config.require_subscribe_token {
        return tracker.topic(task_id).ok_or(Refusal::NotFound);
    }
    // Decoded and split each time: at most 100 tasks, and only with tokens on.
    let tokens = request.query_param("tokens");
    let token = tokens.as_deref().and_then(|t| t.split(',').nth(i)).filter(|t| !t.is_empty());
    let Some(token) = token else { return Err(Refusal::TokenRequired) };
    // An unknown task matches no token: refused like a wrong token.
    if !tracker.subscribe_token_matches(task_id, token) {
        return Err(Refusal::TokenInvalid);
    }
    tracker.topic(task_id).ok_or(Refusal::TokenInvalid)
}

/// The answer when no task of the list is admitted: as for one task.
fn none_admitted(refused: &[(usize, Refusal)]) -> Response {
    let all = |which| refused.iter().all(|(_, r)| *r == which);
    if all(Refusal::NotFound) {
        Response::from(&Error::task_not_found())
    } else if all(Refusal::TokenRequired) {
        Response::error(401, "token_required", "This stream needs `?tokens=` with the tasks' subscribe tokens.")
    } else {
        Response::error(403, "token_invalid", "The subscribe tokens do not match these tasks.")
    }
}

/// The change number the client resumes after, when the server can place it: written as the
/// server writes numbers, and not above the last change published. Anything else gets every
/// snapshot.
fn resume_point(shared: &Shared, request: &Request) -> Option<u64> {
    let given = request.resume_point()?;
    let n: u64 = given.parse().ok()?;
    (n.to_string() == *given && n <= shared.tracker.published_seq()).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(response: Response) -> (u16, String) {
        let crate::http::response::Body::Bytes(body) = &response.body else { panic!("bytes") };
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        (response.status, json["error"]["code"].as_str().unwrap().to_owned())
    }

    #[test]
    fn task_lists_are_one_to_a_hundred_distinct_valid_ids() {
        let hundred: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
        assert_eq!(task_list(&hundred.join(",")).unwrap().len(), 100);
        assert_eq!(task_list("a%2Cb").unwrap(), ["a", "b"], "percent-decoded, then split");
        let table: &[(&str, &str)] = &[
            ("", "invalid_task_id"),
            ("a,,b", "invalid_task_id"),
            ("a,", "invalid_task_id"),
            ("a,b%2Fc", "invalid_task_id"),
            ("a,a", "bad_request"),
            ("%ZZ", "invalid_task_id"),
        ];
        for (list, want) in table {
            assert_eq!(code(task_list(list).unwrap_err()), (400, (*want).to_owned()), "{list:?}");
        }
        let many = format!("{},x", hundred.join(","));
        assert_eq!(code(task_list(&many).unwrap_err()), (400, "bad_request".to_owned()));
    }

    #[test]
    fn when_none_is_admitted_the_answer_is_that_of_one_task() {
        use Refusal::*;
        assert_eq!(code(none_admitted(&[(0, NotFound), (1, NotFound)])), (404, "task_not_found".into()));
        assert_eq!(code(none_admitted(&[(0, TokenRequired)])), (401, "token_required".into()));
        assert_eq!(code(none_admitted(&[(0, TokenRequired), (1, TokenInvalid)])), (403, "token_invalid".into()));
    }
}
