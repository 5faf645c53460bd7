//! The producer bodies of API.md, one JSON body per line: every parser takes any JSON without a
//! panic, what it accepts is within the limits, and a tracker applying the accepted updates in
//! order moves `eventId` by exactly 1 per change and never moves `progress` back without reset.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sse_progress::internals::task::{
    Body, MAX_ERROR, MAX_MESSAGE, MAX_STAGE, NewTask, parse_complete, parse_fail, sanitize_error,
};
use sse_progress::{Config, ErrorKind, ProgressTracker, TaskStatus, TaskUpdate};

static CONFIG: LazyLock<Config> = LazyLock::new(Config::default);
const ID: &str = "fuzz-task";

fuzz_target!(|data: &[u8]| {
    let tracker = ProgressTracker::new(CONFIG.clone());
    let mut task = tracker.create_task(ID, "start").unwrap();
    for line in data.split(|&b| b == b'\n').take(64) {
        let Ok(body) = Body::parse(line) else { continue };

        if let Ok(new) = NewTask::from_body(&body) {
            assert!(new.stage.len() <= MAX_STAGE && new.message.len() <= MAX_MESSAGE);
            match tracker.create(new.clone()) {
                Ok(created) => {
                    assert_eq!((created.status, created.progress, created.event_id), (TaskStatus::Pending, 0.0, 1));
                    assert_eq!((&created.stage, &created.message), (&new.stage, &new.message));
                    assert!(new.task_id.is_none_or(|id| id == created.task_id));
                }
                Err(e) => assert_eq!(e.kind(), ErrorKind::TaskExists, "{e}"),
            }
        }

        if let Ok(update) = TaskUpdate::from_body(&body) {
            assert!(update.validate().is_ok(), "{update:?}");
            assert!(update.progress.is_none_or(|p| (0.0..=100.0).contains(&p)), "{update:?}");
            let result = tracker.update_task(ID, update.clone());
            if task.status.is_terminal() {
                assert!(result.unwrap_err().is_finished());
                assert_eq!(tracker.get_task(ID).unwrap().event_id, task.event_id);
                continue;
            }
            let next = result.unwrap();
            assert_eq!(next.event_id, task.event_id + 1);
            assert!((0.0..=100.0).contains(&next.progress));
            if let Some(status) = update.status {
                assert_eq!(next.status, status);
            }
            if task.status == TaskStatus::Running && next.status == TaskStatus::Running && !update.reset {
                assert!(next.progress >= task.progress, "{} -> {} by {update:?}", task.progress, next.progress);
            }
            if let Some(p) = update.progress {
                assert!(next.progress == p || next.progress == task.progress.max(p));
            }
            assert!(next.estimated_time_remaining.is_none_or(|s| s.is_finite() && s >= 0.0));
            task = next;
        }

        // Only a body naming `result` or `error` is taken as a complete or fail call.
        let finish = if body.has("result") {
            parse_complete(&body)
                .ok()
                .map(|result| tracker.complete_task_raw(ID, result.clone()).map(|t| (t, Some(result), None)))
        } else if body.has("error") {
            parse_fail(&body).ok().map(|error| tracker.fail_task(ID, &error).map(|t| (t, None, Some(error))))
        } else {
            let _ = (parse_complete(&body), parse_fail(&body));
            None
        };
        match finish {
            None => {}
            Some(Err(e)) => assert!(task.status.is_terminal() && e.is_finished(), "{e}"),
            Some(Ok((done, result, error))) => {
                assert!(!task.status.is_terminal());
                assert_eq!(done.event_id, task.event_id + 1);
                if let Some(result) = result {
                    assert_eq!((done.status, done.progress), (TaskStatus::Completed, 100.0));
                    assert_eq!((done.result.as_ref(), done.estimated_time_remaining), (Some(&result), Some(0.0)));
                } else {
                    let error = sanitize_error(&error.unwrap());
                    assert_eq!((done.status, done.progress), (TaskStatus::Failed, task.progress));
                    let sent = done.error.as_deref().unwrap();
                    assert!(sent == error && sent.len() <= MAX_ERROR && !sent.chars().any(char::is_control));
                }
                task = tracker.get_task(ID).unwrap();
            }
        }
    }
    // Every change went out as one frame: the topic's newest frame is the task as it is now.
    let latest = tracker.topic(ID).unwrap().latest();
    assert_eq!(latest.event_id, task.event_id);
    assert_eq!(latest.json(), task.to_json());
});
