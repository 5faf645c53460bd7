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
//! A refused list must cost about what a refused task costs, and needs no credentials to send:
//! `tokens=` is decoded and split once, every task is looked up under one take of the tracker's
//! lock (with its token, so the token is checked against the task whose topic is followed), and
//! a token longer than the server makes is refused before any comparison.
//!
//! Checks come in the order of the one-task route (`progress.rs`): the list (400), the tokens
//! (401/403 when none is admitted), the tasks (404 when none exists), shutdown (503), the resume
//! point (204 when every task is finished and unchanged since), the client's stream cap (429).
//! The stream of all tasks needs the publish token instead (401) and never answers 204.

use std::collections::HashSet;
use std::sync::Arc;

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
use crate::sse::topic::Topic;
use crate::state::Shared;
use crate::task::validate_task_id;
use crate::tracker::ProgressTracker;

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
    let tokens = shared.config.require_subscribe_token.then(|| request.query_param("tokens"));
    let tokens = tokens.as_ref().map(|tokens| tokens.as_deref().unwrap_or(""));
    for (i, admitted) in admit(&shared.tracker, &task_ids, tokens).into_iter().enumerate() {
        match admitted {
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

/// The topic of each task of the list, or why it is refused. `tokens` is the decoded value of
/// `tokens=` when the server asks for tokens (`None`: it asks none).
fn admit(tracker: &ProgressTracker, task_ids: &[String], tokens: Option<&str>) -> Vec<Result<Arc<Topic>, Refusal>> {
    let Some(tokens) = tokens else {
        let wanted: Vec<(&str, Option<&str>)> = task_ids.iter().map(|id| (id.as_str(), None)).collect();
        return tracker.follow(&wanted).into_iter().map(|f| f.map_err(|_| Refusal::NotFound)).collect();
    };
    let mut tokens = tokens.split(',');
    let shown: Vec<Option<&str>> = task_ids.iter().map(|_| tokens.next().filter(|t| !t.is_empty())).collect();
    // A task without a token is refused without a look-up; an unknown task matches no token, and
    // is refused like a wrong one.
    let wanted: Vec<(&str, Option<&str>)> =
        task_ids.iter().zip(&shown).filter_map(|(id, token)| Some((id.as_str(), Some((*token)?)))).collect();
    let mut followed = tracker.follow(&wanted).into_iter();
    shown
        .iter()
        .map(|token| match token {
            None => Err(Refusal::TokenRequired),
            Some(_) => followed.next().expect("one answer per task").map_err(|_| Refusal::TokenInvalid),
        })
        .collect()
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

    /// The tasks a stream started by `start` follows and those it refused, with their codes.
    fn admitted(started: Started) -> (Box<Multi>, Vec<(usize, &'static str)>) {
        let Started::Tasks(start) = started else { panic!("a stream of tasks") };
        let Opening::Tasks(listed) = start.opening else { panic!("a list") };
        (start.source, listed.refused.iter().map(|&(i, code, _)| (i, code)).collect())
    }

    #[test]
    fn a_list_of_a_hundred_tasks_takes_the_tracker_lock_once_and_long_tokens_are_wrong_ones() {
        // Shows the admission of 100 tasks with tokens takes the tracker's lock once, not once or
        // twice per task, and a token longer than the server makes is refused like a wrong one.
        use crate::routes::testing::{CLIENT, get, shared_with_tokens};
        use crate::tracker::probe::counting::taken;
        let shared = shared_with_tokens();
        let ids: Vec<String> = (0..MAX_TASKS).map(|i| format!("t{i:03}")).collect();
        let mut tokens = Vec::new();
        for id in &ids {
            shared.tracker.create_task(id, "").unwrap();
            tokens.push(shared.tracker.subscribe_token(id).unwrap());
        }
        tokens[1] = "0".repeat(1500);
        tokens[2] = format!("{}{}", tokens[2], "0".repeat(1500));
        tokens[3] = "wrong".into();
        tokens[4].clear();
        let target = format!("/api/brand-monitor/progress?tasks={}&tokens={}", ids.join(","), tokens.join(","));
        let request = get(&target);
        let before = taken();
        let (started, _guard) = start(&shared, &request, CLIENT, Vec::new()).expect("a stream");
        assert_eq!(taken() - before, 1, "takes of the tracker's lock");
        let (_, refused) = admitted(started);
        let want = [(1, "token_invalid"), (2, "token_invalid"), (3, "token_invalid"), (4, "token_required")];
        assert_eq!(refused, want, "a long token, even one that starts with the right one, is a wrong one");
    }

    #[test]
    fn a_token_of_a_task_deleted_and_made_again_never_reaches_the_new_task_in_a_list() {
        // Shows that before whichever take of the tracker's lock a task is deleted and made
        // again with the same id, the old task's token gets the old task's snapshot, or is
        // refused, never the new task's.
        use crate::routes::testing::{CLIENT, get, shared_with_tokens};
        use crate::tracker::probe::counting::{before_take, clear};
        let mut stages = Vec::new();
        for n in 1..=4 {
            let shared = shared_with_tokens();
            shared.tracker.create_task("t", "old").unwrap();
            shared.tracker.create_task("u", "other").unwrap();
            let (t, u) = (shared.tracker.subscribe_token("t").unwrap(), shared.tracker.subscribe_token("u").unwrap());
            let tracker = shared.tracker.clone();
            before_take(n, move || {
                tracker.delete_task("t").unwrap();
                tracker.create_task("t", "new").unwrap();
            });
            let started = start(
                &shared,
                &get(&format!("/api/brand-monitor/progress?tasks=t,u&tokens={t},{u}")),
                CLIENT,
                Vec::new(),
            );
            clear();
            let (mut multi, refused) = admitted(started.expect("u is admitted").0);
            let frames = std::iter::from_fn(|| multi.try_frame());
            let stages_seen: Vec<String> = frames
                .map(|f| serde_json::from_str::<serde_json::Value>(f.json()).unwrap())
                .filter(|task| task["taskId"] == "t")
                .map(|task| task["stage"].as_str().unwrap_or("deleted").to_owned())
                .collect();
            assert!(!stages_seen.iter().any(|s| s == "new"), "take {n}: {stages_seen:?}, refused {refused:?}");
            stages.push(stages_seen);
        }
        assert_eq!(stages[3].first().map(String::as_str), Some("old"), "the premise: the token admits its task");
    }
}
