//! What `watch` knows of each task it follows: the newest snapshot the server sent, and whether
//! the task has ended for this watcher (completed, failed, deleted, refused). The exit code is
//! read from here, and so is the set of tasks the next connection asks for: only those that
//! have not ended, so a task deleted or expired meanwhile cannot make the whole request fail.

/// How a task ended for this watcher.
#[derive(Clone, Debug, PartialEq)]
pub enum End {
    /// The terminal snapshot said `completed`.
    Completed,
    /// The terminal snapshot said `failed`, with its error.
    Failed(String),
    /// The server ended it on the stream (`task_deleted`) or refused it (unknown task, token
    /// missing or wrong): `code: message`.
    Dropped(String),
}

/// The fields of a snapshot that are shown.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// `pending`, `running`, `completed`, `failed`.
    pub status: String,
    /// 0 to 100.
    pub progress: f64,
    /// The current step.
    pub stage: String,
    /// Seconds left, when the server could estimate it.
    pub eta_secs: Option<f64>,
    /// The error of a failed task.
    pub error: Option<String>,
}

/// One followed task.
#[derive(Clone, Debug)]
pub struct Tracked {
    /// Its id.
    pub id: String,
    /// Its subscribe token (empty: none).
    pub token: String,
    /// The newest snapshot, once one came.
    pub snapshot: Option<Snapshot>,
    /// Set once it ended.
    pub end: Option<End>,
}

/// Every followed task, in the order of the command line.
#[derive(Debug)]
pub struct Board {
    /// The tasks.
    pub tasks: Vec<Tracked>,
}

impl Board {
    /// A board of `tasks` (id, token), none seen yet.
    pub fn new(tasks: Vec<(String, String)>) -> Board {
        Board { tasks: tasks.into_iter().map(|(id, token)| Tracked { id, token, snapshot: None, end: None }).collect() }
    }

    /// The position of task `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.id == id)
    }

    /// Takes a `progress` event's task JSON for the task at `index`. Returns whether it changed
    /// anything (a task that already ended ignores late snapshots).
    pub fn progress(&mut self, index: usize, task: &serde_json::Value) -> bool {
        let tracked = &mut self.tasks[index];
        if tracked.end.is_some() {
            return false;
        }
        let snapshot = Snapshot {
            status: task["status"].as_str().unwrap_or("").to_owned(),
            progress: task["progress"].as_f64().unwrap_or(0.0).clamp(0.0, 100.0),
            stage: task["stage"].as_str().unwrap_or("").to_owned(),
            eta_secs: task["estimatedTimeRemaining"].as_f64(),
            error: task["error"].as_str().map(str::to_owned),
        };
        tracked.end = match snapshot.status.as_str() {
            "completed" => Some(End::Completed),
            "failed" => Some(End::Failed(snapshot.error.clone().unwrap_or_default())),
            _ => None,
        };
        tracked.snapshot = Some(snapshot);
        true
    }

    /// Ends the task at `index` with the server's error `code` and `message`. Returns whether it
    /// changed anything.
    pub fn drop_task(&mut self, index: usize, code: &str, message: &str) -> bool {
        let tracked = &mut self.tasks[index];
        if tracked.end.is_some() {
            return false;
        }
        tracked.end = Some(End::Dropped(format!("{code}: {message}")));
        true
    }

    /// The tasks that have not ended, as (id, token).
    pub fn open(&self) -> Vec<(&str, &str)> {
        self.tasks.iter().filter(|t| t.end.is_none()).map(|t| (t.id.as_str(), t.token.as_str())).collect()
    }

    /// Whether every task has ended.
    pub fn all_ended(&self) -> bool {
        self.tasks.iter().all(|t| t.end.is_some())
    }

    /// The exit code once every task ended: 0 if each completed, 1 otherwise (API.md).
    pub fn exit_code(&self) -> i32 {
        i32::from(self.tasks.iter().any(|t| t.end != Some(End::Completed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_task_ends_once_and_the_exit_code_follows_the_ends() {
        let mut board = Board::new(vec![("a".into(), String::new()), ("b".into(), "t".into())]);
        assert!(board.progress(0, &json!({"status": "running", "progress": 40, "stage": "Half"})));
        assert_eq!(board.open(), vec![("a", ""), ("b", "t")]);
        assert!(board.progress(0, &json!({"status": "completed", "progress": 100})));
        assert!(!board.progress(0, &json!({"status": "running"})), "a late snapshot changes nothing");
        assert_eq!(board.open(), vec![("b", "t")]);
        assert!(!board.all_ended());
        assert!(board.drop_task(1, "task_deleted", "The task was deleted."));
        assert!(!board.drop_task(1, "token_invalid", "x"), "the first end stays");
        assert!(board.all_ended());
        assert_eq!(board.exit_code(), 1);
        assert_eq!(board.tasks[1].end, Some(End::Dropped("task_deleted: The task was deleted.".into())));
        let mut done = Board::new(vec![("a".into(), String::new())]);
        done.progress(0, &json!({"status": "completed"}));
        assert_eq!(done.exit_code(), 0);
        let mut failed = Board::new(vec![("a".into(), String::new())]);
        failed.progress(0, &json!({"status": "failed", "error": "quota"}));
        assert_eq!((failed.exit_code(), failed.tasks[0].end.clone()), (1, Some(End::Failed("quota".into()))));
    }
}
