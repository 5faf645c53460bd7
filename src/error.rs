//! The one error type of the library, and its HTTP face.
//!
//! Every error has a fixed `snake_case` code (the `code` of docs/API.md's error JSON) and a whole
//! sentence for people. Messages are built here from our own words and from names of our own
//! fields, never from the bytes a client sent, so nothing a client sends is echoed back. The
//! answer an error becomes is built beside the HTTP layer's own errors, in `http/mod.rs`.

use std::fmt;

/// The `Retry-After` of an error that passes.
const RETRY_AFTER_SECS: u32 = 5;

/// What went wrong, as a small enum so callers can match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The task id is not 1-128 characters of `A-Za-z0-9_-.` (or starts with `.`).
    InvalidTaskId,
    /// No task has this id.
    TaskNotFound,
    /// A task with this id exists already.
    TaskExists,
    /// The task has completed or failed; it takes no more changes.
    TaskFinished,
    /// A field of an update has the wrong type, is out of range or too long.
    InvalidField,
    /// The request body is not JSON.
    InvalidJson,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The server holds as many tasks as it may.
    TooManyTasks,
    /// The server holds as many bytes of results as it may (`Config::max_result_bytes`).
    ResultSpaceExhausted,
    /// The task store could not make a change durable (a full disk, an I/O error).
    Storage,
}

impl ErrorKind {
    /// The machine-readable code of docs/API.md.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidTaskId => "invalid_task_id",
            ErrorKind::TaskNotFound => "task_not_found",
            ErrorKind::TaskExists => "task_exists",
            ErrorKind::TaskFinished => "task_finished",
            ErrorKind::InvalidField => "invalid_field",
            ErrorKind::InvalidJson => "invalid_json",
            ErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ErrorKind::TooManyTasks => "too_many_tasks",
            ErrorKind::ResultSpaceExhausted => "result_space_exhausted",
            ErrorKind::Storage => "storage_unavailable",
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidTaskId | ErrorKind::InvalidJson => 400,
            ErrorKind::TaskNotFound => 404,
            ErrorKind::TaskExists | ErrorKind::TaskFinished => 409,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::InvalidField => 422,
            ErrorKind::TooManyTasks | ErrorKind::ResultSpaceExhausted | ErrorKind::Storage => 503,
        }
    }

    /// Seconds to wait before trying again (`Retry-After`), for every error that passes: the
    /// `503`s, where finished tasks expire or a store recovers.
    pub fn retry_after(self) -> Option<u32> {
        (self.status() == 503).then_some(RETRY_AFTER_SECS)
    }
}

/// An error of the tracker or of a producer request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    #[cold]
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }

    #[cold]
    pub(crate) fn field(field: &str, problem: &str) -> Self {
        Error::new(ErrorKind::InvalidField, format!("Field `{field}` {problem}."))
    }

    /// No task has this id: the one sentence for it, whoever looks the task up.
    #[cold]
    pub(crate) fn task_not_found() -> Self {
        Error::new(ErrorKind::TaskNotFound, "No task has this id.")
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The sentence for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when the task does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::TaskNotFound
    }

    /// True when the task has finished and takes no more changes.
    pub fn is_finished(&self) -> bool {
        self.kind == ErrorKind::TaskFinished
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.code())
    }
}

impl std::error::Error for Error {}

/// The result of tracker calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
