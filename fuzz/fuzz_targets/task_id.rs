//! `task::validate_task_id` agrees with the rule of API.md, re-implemented here from its words:
//! 1 to 128 chars of `A-Z a-z 0-9 _ - .`, not starting with `.`; and the tracker applies it.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sse_progress::internals::validate_task_id;
use sse_progress::{Config, ErrorKind, ProgressTracker};

static TRACKER: LazyLock<ProgressTracker> = LazyLock::new(|| ProgressTracker::new(Config::default()));

fn contract_allows(id: &str) -> bool {
    let count = id.chars().count();
    let allowed = |c: char| matches!(c, 'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '-' | '.');
    (1..=128).contains(&count) && id.chars().all(allowed) && id.chars().next() != Some('.')
}

fuzz_target!(|id: &str| {
    let want = contract_allows(id);
    let got = validate_task_id(id);
    assert_eq!(got.is_ok(), want, "{id:?}: {got:?}");
    match TRACKER.create_task(id, "") {
        Ok(task) => {
            assert!(want && task.task_id == id);
            TRACKER.delete_task(id).unwrap();
        }
        Err(e) => assert!(!want && e.kind() == ErrorKind::InvalidTaskId, "{id:?}: {e}"),
    }
});
