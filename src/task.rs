//! The task model of docs/API.md: what a viewer sees, what a producer may change, and the limits.
//!
//! Everything a producer can send is checked here, once, so the tracker and the HTTP routes
//! share one set of rules (and one set of error messages). Bodies are read, and results kept,
//! as JSON text rather than trees (`task/json.rs` says why).

use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{Error, ErrorKind, Result};

mod json;

use json::typed;
pub use json::{Body, JsonText};

/// Longest task id, in bytes.
pub const MAX_TASK_ID: usize = 128;
/// Longest `stage`, in bytes.
pub const MAX_STAGE: usize = 256;
/// Longest `message`, in bytes.
pub const MAX_MESSAGE: usize = 4096;
/// Longest `error` of a failed task, in bytes (longer ones are cut).
pub const MAX_ERROR: usize = 4096;
/// Largest `result` of a completed task, encoded as JSON.
pub const MAX_RESULT: usize = 1 << 20;

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Created, not started.
    Pending,
    /// Making progress.
    Running,
    /// Finished with a result (terminal).
    Completed,
    /// Finished with an error (terminal).
    Failed,
}

impl TaskStatus {
    /// Completed and failed tasks take no more changes.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Failed)
    }

    /// The name used in JSON and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
        }
    }
}

/// A task as viewers see it: the JSON of docs/API.md, field for field.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// The id, see [`validate_task_id`].
    pub task_id: String,
    /// Where the task is in its life.
    pub status: TaskStatus,
    /// 0 to 100.
    pub progress: f64,
    /// Short label of the current step.
    pub stage: String,
    /// Human-readable detail.
    pub message: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// Milliseconds since the Unix epoch.
    pub updated_at: u64,
    /// Seconds left, estimated from the progress rate; `None` until it can be estimated.
    pub estimated_time_remaining: Option<f64>,
    /// Set by complete: the JSON text the producer sent, compact.
    pub result: Option<JsonText>,
    /// Set by fail.
    pub error: Option<String>,
    /// Sequence number of the last change, from 1.
    pub event_id: u64,
    /// Where the ETA estimate measures from: (time in ms, progress then).
    #[serde(skip)]
    pub(crate) rate_anchor: Option<(u64, f64)>,
}

impl Task {
    /// A new pending task at progress 0, event 1.
    pub fn new(task_id: String, stage: String, message: String, now_ms: u64) -> Task {
        Task {
            task_id,
            status: TaskStatus::Pending,
            progress: 0.0,
            stage,
            message,
            created_at: now_ms,
            updated_at: now_ms,
            estimated_time_remaining: None,
            result: None,
            error: None,
            event_id: 1,
            rate_anchor: None,
        }
    }

    /// Compact one-line JSON, as sent in `data:` and in HTTP bodies.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a task always serializes")
    }

    /// Applies an already validated update at time `now_ms`; the caller bumps `event_id`.
    pub(crate) fn apply(&mut self, update: &TaskUpdate, now_ms: u64) {
        if update.reset {
            self.rate_anchor = None;
        }
        let was_running = self.status == TaskStatus::Running;
        if let Some(status) = update.status {
            self.status = status;
        } else if self.status == TaskStatus::Pending && update.progress.is_some() {
            self.status = TaskStatus::Running;
        }
        if let Some(p) = update.progress {
            // `-0.0` passes the range check; it is the same progress as 0 and is shown as 0.
            let p = if p == 0.0 { 0.0 } else { p };
            // Out-of-order updates from concurrent workers must not make the bar jump back.
            // Nor may a running task go back by way of `pending`: only `reset` moves it back.
            self.progress = if update.reset || !was_running { p } else { p.max(self.progress) };
        }
        if let Some(stage) = &update.stage {
            self.stage.clone_from(stage);
        }
        if let Some(message) = &update.message {
            self.message.clone_from(message);
        }
        self.updated_at = now_ms;
        self.estimate(now_ms);
    }

    /// Updates the ETA from the progress made since the anchor: remaining / rate.
    fn estimate(&mut self, now_ms: u64) {
        if self.status != TaskStatus::Running {
            self.estimated_time_remaining = None;
            self.rate_anchor = None;
            return;
        }
        let Some((t0, p0)) = self.rate_anchor else {
            self.rate_anchor = Some((now_ms, self.progress));
            self.estimated_time_remaining = None;
            return;
        };
        self.estimated_time_remaining = eta_seconds(t0, p0, now_ms, self.progress);
    }

    pub(crate) fn complete(&mut self, result: JsonText, now_ms: u64) {
        self.status = TaskStatus::Completed;
        self.progress = 100.0;
        self.estimated_time_remaining = Some(0.0);
        self.result = Some(result);
        self.updated_at = now_ms;
        self.rate_anchor = None;
    }

    pub(crate) fn fail(&mut self, error: String, now_ms: u64) {
        self.status = TaskStatus::Failed;
        // Finished, so nothing remains: docs/API.md gives 0 for every finished task.
        self.estimated_time_remaining = Some(0.0);
        self.error = Some(error);
        self.updated_at = now_ms;
        self.rate_anchor = None;
    }
}

/// Seconds left at the average rate since `(t0, p0)`, or `None` while there is no rate yet.
///
/// The average since the task started running is steadier than the rate of the last step, which
/// swings with every uneven stage; it is rounded to 0.1 s so viewers do not see noise.
pub fn eta_seconds(t0_ms: u64, p0: f64, now_ms: u64, progress: f64) -> Option<f64> {
    let elapsed = now_ms.checked_sub(t0_ms)? as f64 / 1000.0;
    let made = progress - p0;
    if elapsed <= 0.0 || made <= 0.0 {
        return None;
    }
    let remaining = (100.0 - progress).max(0.0) * elapsed / made;
    Some((remaining * 10.0).round() / 10.0)
}

/// A change to a running task: what `PATCH` carries, and what [`crate::ProgressTracker::update_task`] takes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskUpdate {
    /// `Pending` or `Running` only.
    pub status: Option<TaskStatus>,
    /// 0 to 100.
    pub progress: Option<f64>,
    /// New label of the current step.
    pub stage: Option<String>,
    /// New detail.
    pub message: Option<String>,
    /// Lets progress move backwards (a retry from the start).
    pub reset: bool,
}

impl TaskUpdate {
    /// Running at `progress` percent.
    pub fn running(progress: f64) -> Self {
        TaskUpdate { status: Some(TaskStatus::Running), progress: Some(progress), ..Self::default() }
    }

    /// Progress only; a pending task becomes running.
    pub fn progress(progress: f64) -> Self {
        TaskUpdate { progress: Some(progress), ..Self::default() }
    }

    /// Sets the stage label.
    pub fn stage(mut self, stage: impl Into<String>) -> Self {
        self.stage = Some(stage.into());
        self
    }

    /// Sets the message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Allows progress to move backwards.
    pub fn reset(mut self) -> Self {
        self.reset = true;
        self
    }

    /// Checks every limit of docs/API.md.
    pub fn validate(&self) -> Result<()> {
        if matches!(self.status, Some(TaskStatus::Completed | TaskStatus::Failed)) {
            return Err(Error::field(
                "status",
                "may only be `pending` or `running`; use complete or fail to finish a task",
            ));
        }
        if let Some(p) = self.progress {
            validate_progress(p)?;
        }
        if let Some(stage) = &self.stage {
            validate_len("stage", stage, MAX_STAGE)?;
        }
        if let Some(message) = &self.message {
            validate_len("message", message, MAX_MESSAGE)?;
        }
        Ok(())
    }

    /// Parses a `PATCH` body: a JSON object of the fields above, nothing else.
    #[doc(hidden)]
    pub fn from_body(body: &Body<'_>) -> Result<TaskUpdate> {
        let mut update = TaskUpdate::default();
        for (name, value) in body.fields() {
            match name {
                "status" => {
                    update.status = Some(match typed::<String>(value).as_deref() {
                        Some("pending") => TaskStatus::Pending,
                        Some("running") => TaskStatus::Running,
                        Some("completed" | "failed") => TaskStatus::Completed,
                        _ => return Err(Error::field("status", "must be \"pending\" or \"running\"")),
                    })
                }
                "progress" => {
                    update.progress =
                        Some(typed(value).ok_or_else(|| Error::field("progress", "must be a number from 0 to 100"))?)
                }
                "stage" => update.stage = Some(string_field("stage", value)?),
                "message" => update.message = Some(string_field("message", value)?),
                "reset" => update.reset = typed(value).ok_or_else(|| Error::field("reset", "must be true or false"))?,
                _ => return Err(unknown_field("progress, stage, message, status, reset")),
            }
        }
        update.validate()?;
        Ok(update)
    }
}

/// The body of `POST /tasks`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewTask {
    /// The id to use; `None` lets the server make one.
    pub task_id: Option<String>,
    /// The first stage label.
    pub stage: String,
    /// The first message.
    pub message: String,
}

impl NewTask {
    /// Parses and checks a creation body.
    #[doc(hidden)]
    pub fn from_body(body: &Body<'_>) -> Result<NewTask> {
        let mut new = NewTask::default();
        for (name, value) in body.fields() {
            match name {
                "taskId" => {
                    let id: String = typed(value).ok_or_else(|| Error::field("taskId", "must be a string"))?;
                    validate_task_id(&id)?;
                    new.task_id = Some(id);
                }
                "stage" => new.stage = string_field("stage", value)?,
                "message" => new.message = string_field("message", value)?,
                _ => return Err(unknown_field("taskId, stage, message")),
            }
        }
        validate_len("stage", &new.stage, MAX_STAGE)?;
        validate_len("message", &new.message, MAX_MESSAGE)?;
        Ok(new)
    }
}

/// The body of `POST .../complete`: `{"result": any}`; an empty object means a null result.
/// The result is kept as the text that was sent, compact; it is never built into a tree.
pub fn parse_complete(body: &Body<'_>) -> Result<JsonText> {
    let mut result = None;
    for (name, value) in body.fields() {
        match name {
            "result" => result = Some(value),
            _ => return Err(unknown_field("result")),
        }
    }
    let result = match result {
        Some(value) => JsonText::parse(value.get())?,
        None => JsonText::null(),
    };
    validate_result(&result)?;
    Ok(result)
}

/// The body of `POST .../fail`: `{"error": "text"}`.
pub fn parse_fail(body: &Body<'_>) -> Result<String> {
    let mut error = String::new();
    for (name, value) in body.fields() {
        match name {
            "error" => error = string_field("error", value)?,
            _ => return Err(unknown_field("error")),
        }
    }
    Ok(error)
}

/// Checks a task id against docs/API.md: 1-128 of `A-Za-z0-9_-.`, not starting with `.`.
pub fn validate_task_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_TASK_ID
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidTaskId,
            "A task id is 1 to 128 characters of A-Z, a-z, 0-9, `_`, `-` and `.`, not starting with `.`.",
        ))
    }
}

/// Makes a failure text safe to show: control characters become spaces, at most [`MAX_ERROR`] bytes.
pub fn sanitize_error(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_ERROR));
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_ERROR {
            break;
        }
        out.push(c);
    }
    out
}

pub(crate) fn validate_progress(p: f64) -> Result<()> {
    if (0.0..=100.0).contains(&p) { Ok(()) } else { Err(Error::field("progress", "must be a number from 0 to 100")) }
}

pub(crate) fn validate_len(field: &str, value: &str, max: usize) -> Result<()> {
    if value.len() <= max { Ok(()) } else { Err(Error::field(field, &format!("must be at most {max} bytes"))) }
}

pub(crate) fn validate_result(result: &JsonText) -> Result<()> {
    if result.as_str().len() <= MAX_RESULT {
        Ok(())
    } else {
        Err(Error::field("result", "must be at most 1 MiB as JSON"))
    }
}

fn string_field(field: &str, value: &RawValue) -> Result<String> {
    typed(value).ok_or_else(|| Error::field(field, "must be a string"))
}

/// The error for a field name that is not one of `known`; the name that was sent is never
/// repeated, so nothing a client sends is echoed back.
#[cold]
fn unknown_field(known: &str) -> Error {
    Error::new(ErrorKind::InvalidField, format!("The body has a field that is not known; known fields: {known}."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn task_ids_follow_the_contract() {
        for good in ["a", "task-123", "A_b.c-9", &"x".repeat(128)] {
            assert!(validate_task_id(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "a/b", "a%2Fb", "a b", "ü", &"x".repeat(129), "a\r\nb"] {
            assert_eq!(validate_task_id(bad).unwrap_err().kind(), ErrorKind::InvalidTaskId, "{bad:?}");
        }
    }

    #[test]
    fn eta_is_remaining_over_average_rate() {
        // 10 % -> 30 % in 4 s: 5 %/s, 70 % left: 14 s.
        assert_eq!(eta_seconds(1_000, 10.0, 5_000, 30.0), Some(14.0));
        assert_eq!(eta_seconds(1_000, 10.0, 1_000, 30.0), None, "no time has passed");
        assert_eq!(eta_seconds(1_000, 30.0, 5_000, 30.0), None, "no progress made");
        assert_eq!(eta_seconds(1_000, 0.0, 2_000, 100.0), Some(0.0));
    }

    #[test]
    fn the_eta_starts_null_and_follows_the_rate() {
        let mut task = Task::new("t".into(), String::new(), String::new(), 0);
        task.apply(&TaskUpdate::running(10.0), 1_000);
        assert_eq!(task.estimated_time_remaining, None, "one point is no rate");
        task.apply(&TaskUpdate::running(20.0), 2_000);
        assert_eq!(task.estimated_time_remaining, Some(8.0));
        task.complete(JsonText::null(), 3_000);
        assert_eq!(task.estimated_time_remaining, Some(0.0));
        assert_eq!(task.progress, 100.0);
    }

    #[test]
    fn negative_zero_progress_is_stored_as_zero() {
        let mut task = Task::new("t".into(), String::new(), String::new(), 0);
        task.apply(&TaskUpdate::progress(-0.0), 1);
        assert!(task.progress == 0.0 && task.progress.is_sign_positive(), "{}", task.progress);
        assert!(task.to_json().contains(r#""progress":0.0,"#), "{}", task.to_json());
    }

    #[test]
    fn progress_never_moves_back_without_reset() {
        let mut task = Task::new("t".into(), String::new(), String::new(), 0);
        task.apply(&TaskUpdate::running(50.0), 1);
        task.apply(&TaskUpdate::running(40.0), 2);
        assert_eq!(task.progress, 50.0);
        task.apply(&TaskUpdate { status: Some(TaskStatus::Pending), ..TaskUpdate::progress(30.0) }, 3);
        assert_eq!(task.progress, 50.0, "not back by way of pending either");
        task.apply(&TaskUpdate::running(40.0).reset(), 4);
        assert_eq!(task.progress, 40.0);
    }

    #[test]
    fn patch_bodies_are_checked_field_by_field() {
        let unknown = "The body has a field that is not known; known fields: progress, stage, message, status, reset.";
        let cases: &[(Value, Option<&str>)] = &[
            (json!({"progress": 50, "stage": "s", "message": "m", "status": "running", "reset": false}), None),
            (json!({"progress": 101}), Some("Field `progress` must be a number from 0 to 100.")),
            (json!({"progress": "50"}), Some("Field `progress` must be a number from 0 to 100.")),
            (
                json!({"status": "completed"}),
                Some("Field `status` may only be `pending` or `running`; use complete or fail to finish a task."),
            ),
            (json!({"stage": "x".repeat(257)}), Some("Field `stage` must be at most 256 bytes.")),
            (json!({"message": 5}), Some("Field `message` must be a string.")),
            (json!({"colour": "red"}), Some(unknown)),
            (json!({"<script>": 1}), Some(unknown)),
            (json!({"progress": 101, "colour": "red"}), Some(unknown)),
            (json!([1]), Some("The body must be a JSON object.")),
        ];
        for (body, expected) in cases {
            let text = body.to_string();
            let got = Body::parse(text.as_bytes()).and_then(|body| TaskUpdate::from_body(&body));
            match expected {
                None => assert!(got.is_ok(), "{body}: {got:?}"),
                Some(message) => {
                    let err = got.unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::InvalidField, "{body}");
                    assert_eq!(err.message(), *message, "{body}");
                }
            }
        }
    }

    #[test]
    fn failure_text_is_sanitized_and_cut() {
        assert_eq!(sanitize_error("rate\r\nlimit\u{7}"), "rate  limit ");
        let long = "é".repeat(MAX_ERROR);
        let cut = sanitize_error(&long);
        assert!(cut.len() <= MAX_ERROR && cut.len() > MAX_ERROR - 2);
    }
}
