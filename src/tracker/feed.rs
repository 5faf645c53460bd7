//! The feed: every change of every task, for the stream of all tasks (dashboards, operators).
//!
//! Every change publishes its frame, the same `Arc` its task's topic got, to one more topic,
//! and a removal (delete, expiry) publishes `event: removed` there. A viewer of all tasks is one
//! viewer of that topic; with none attached, the topic keeps one frame.
//!
//! A viewer that fell further behind than the topic keeps frames for cannot skip to the newest
//! frame (it is one task's); instead it resyncs from the tracker: the current snapshot of every
//! task changed after its last change, in change order, and `removed` for every task removed
//! after it, from a bounded list of recent removals. Older than that list, or with more than
//! [`MAX_LIST`] tasks changed since, it is told it is too slow and resumes, and its `connected`
//! event then lists the tasks there are.
//!
//! Both run under the tracker's lock, which every change of every task waits for, so they do
//! there only what must be consistent with the subscription: an opening copies each task's
//! newest frame and number out (no sort, no topic's lock), a resync reads the index of tasks by
//! their last change from its resume point on, at most [`MAX_LIST`] + 1 of them, however many
//! tasks there are. Selecting, sorting and merging happen after the lock is released.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use super::{MAX_LIST, ProgressTracker, State, keep_newest};
use crate::sse::encoder::Frame;
use crate::sse::topic::{Viewer, Wakes};
use crate::task::Task;

/// Removals remembered for resyncs.
const REMOVALS_KEPT: usize = 1024;

/// Recent removals with their change sequence numbers, oldest first.
#[derive(Debug, Default)]
pub(super) struct Removals {
    recent: VecDeque<(u64, Arc<Frame>)>,
    /// The newest change sequence number of a removal no longer in `recent` (0: none).
    forgotten: u64,
}

/// The feed's first frame, which no viewer takes (they start after the newest): it only marks
/// where the change sequence stood when the tracker started.
pub(super) fn start(seq: u64) -> Frame {
    Frame::removed(seq, "")
}

/// What a viewer of all tasks starts with.
#[derive(Debug)]
pub(crate) struct FeedStart {
    /// Subscribed to the feed under the tracker's lock, so no change falls between it and the
    /// snapshots.
    pub viewer: Viewer,
    /// The current tasks (newest [`MAX_LIST`]), newest first.
    pub task_ids: Vec<String>,
    /// The snapshots of those changed after the resume point, in change order.
    pub snapshots: Vec<Arc<Frame>>,
    /// The last change at subscription: everything up to it is in the snapshots or was seen.
    pub position: u64,
}

impl ProgressTracker {
    /// Records removal `seq` of `task_id` and publishes it to the feed (after the task's topic,
    /// whose viewers to wake are `topic`).
    pub(super) fn removed(&self, state: &mut State, seq: u64, task_id: &str, topic: Option<Wakes>) {
        let frame = Arc::new(Frame::removed(seq, task_id));
        let removals = &mut state.removals;
        if removals.recent.len() == REMOVALS_KEPT
            && let Some((old, _)) = removals.recent.pop_front()
        {
            removals.forgotten = old;
        }
        removals.recent.push_back((seq, Arc::clone(&frame)));
        self.announce(seq, topic, frame);
    }

    /// Subscribes a viewer of all tasks; `after` is the resume point (`None`: every snapshot).
    pub(crate) fn open_feed(&self, after: Option<u64>) -> FeedStart {
        let (viewer, position, mut tasks) = {
            let state = self.lock();
            let (viewer, _) = self.inner.feed.subscribe();
            // Two pointers and a number per task: the selection and the sort wait for the release.
            let tasks: Vec<(Arc<Task>, u64, Arc<Frame>)> =
                state.tasks.values().map(|e| (Arc::clone(&e.task), e.seq, Arc::clone(&e.frame))).collect();
            (viewer, self.published_seq(), tasks)
        };
        keep_newest(&mut tasks, |(task, ..)| task);
        let task_ids = tasks.iter().map(|(task, ..)| task.task_id.clone()).collect();
        let changed = tasks.into_iter().filter(|(_, seq, _)| after.is_none_or(|after| *seq > after));
        let snapshots = in_change_order(changed.map(|(_, seq, frame)| (seq, frame)).collect());
        FeedStart { viewer, task_ids, snapshots, position }
    }

    /// The frames that bring a viewer of all tasks whose last change was `after` up to the
    /// newest, with `viewer` moved there, and the number of that newest change; `None` when that
    /// cannot be told (removals forgotten, or more than [`MAX_LIST`] tasks changed): the viewer
    /// must start again.
    pub(crate) fn resync(&self, viewer: &mut Viewer, after: u64) -> Option<(Vec<Arc<Frame>>, u64)> {
        let (frames, position) = {
            let state = self.lock();
            if after < state.removals.forgotten {
                return None;
            }
            let since = (Bound::Excluded(after), Bound::Unbounded);
            let mut frames: Vec<(u64, Arc<Frame>)> =
                state.changed.range(since).take(MAX_LIST + 1).map(|(seq, frame)| (*seq, Arc::clone(frame))).collect();
            if frames.len() > MAX_LIST {
                return None;
            }
            // Under the tracker's lock no change is published, so the feed's newest frame is the
            // last change and every task's snapshot is at or before it.
            let position = viewer.skip_to_newest();
            let recent = &state.removals.recent;
            let from = recent.partition_point(|(seq, _)| *seq <= after);
            frames.extend(recent.range(from..).cloned());
            (frames, position)
        };
        Some((in_change_order(frames), position))
    }
}

fn in_change_order(mut frames: Vec<(u64, Arc<Frame>)>) -> Vec<Arc<Frame>> {
    frames.sort_unstable_by_key(|(seq, _)| *seq);
    frames.into_iter().map(|(_, frame)| frame).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::sse::encoder::FrameKind;
    use crate::sse::topic::{Rule, Take};
    use crate::task::TaskUpdate;

    /// The change numbers of `frames`, counted from `base` (where the sequence started).
    fn seqs(base: u64, frames: &[Arc<Frame>]) -> Vec<u64> {
        frames.iter().map(|f| f.seq - base).collect()
    }

    #[test]
    fn every_change_takes_the_next_number_and_the_feed_gets_it() {
        // Shows creations, changes, deletes and expiries each take one number, in order, and
        // are published to the feed (removals as `removed`).
        let tracker = ProgressTracker::new(Config { retention: std::time::Duration::ZERO, ..Config::default() });
        let base = tracker.published_seq();
        let FeedStart { mut viewer, task_ids, snapshots, .. } = tracker.open_feed(None);
        assert!(task_ids.is_empty() && snapshots.is_empty());
        tracker.create_task("a", "").unwrap();
        tracker.create_task("b", "").unwrap();
        tracker.update_task("a", TaskUpdate::running(5.0)).unwrap();
        tracker.delete_task("b").unwrap();
        tracker.complete_task("a", serde_json::Value::Null).unwrap();
        assert_eq!(tracker.remove_expired(), 1);
        assert_eq!(tracker.published_seq(), base + 6);
        let mut got = Vec::new();
        while let Take::Frame(frame) = viewer.try_take(Rule::InOrder) {
            got.push((frame.seq - base, frame.kind));
        }
        use FrameKind::*;
        assert_eq!(got, [(1, Progress), (2, Progress), (3, Progress), (4, Removed), (5, Terminal), (6, Removed)]);
    }

    #[test]
    fn a_resync_gives_newest_snapshots_and_removals_after_the_point() {
        let tracker = ProgressTracker::new(Config::default());
        let base = tracker.published_seq();
        for id in ["a", "b", "c"] {
            tracker.create_task(id, "").unwrap(); // 1, 2, 3 after the base
        }
        let FeedStart { mut viewer, snapshots, .. } = tracker.open_feed(Some(base + 1));
        assert_eq!(seqs(base, &snapshots), [2, 3], "only tasks changed after the resume point");
        tracker.update_task("a", TaskUpdate::running(1.0)).unwrap(); // 4
        tracker.update_task("a", TaskUpdate::running(2.0)).unwrap(); // 5
        tracker.delete_task("b").unwrap(); // 6
        tracker.update_task("c", TaskUpdate::running(1.0)).unwrap(); // 7
        let (frames, position) = tracker.resync(&mut viewer, base + 3).unwrap();
        assert_eq!(position, base + 7);
        assert_eq!(seqs(base, &frames), [5, 6, 7], "a's newest only, b's removal, c");
        assert_eq!(frames[1].kind, FrameKind::Removed);
        assert!(matches!(viewer.try_take(Rule::InOrder), Take::Nothing), "moved to the newest");
        tracker.update_task("c", TaskUpdate::running(2.0)).unwrap();
        assert!(matches!(viewer.try_take(Rule::InOrder), Take::Frame(f) if f.seq == base + 8));
    }

    #[test]
    fn a_resync_older_than_the_removals_kept_cannot_be_told() {
        let tracker = ProgressTracker::new(Config::default());
        let base = tracker.published_seq();
        let FeedStart { mut viewer, .. } = tracker.open_feed(None);
        for i in 0..=REMOVALS_KEPT {
            tracker.create_task(&format!("t{i}"), "").unwrap();
            tracker.delete_task(&format!("t{i}")).unwrap();
        }
        assert!(tracker.resync(&mut viewer, base + 1).is_none());
        assert!(tracker.resync(&mut viewer, base + 2).is_some(), "the first removal forgotten was change 2");
    }
}
