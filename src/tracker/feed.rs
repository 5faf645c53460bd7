//! The feed: every change of every task, for the stream of all tasks (dashboards, operators).
//!
//! Every change publishes its frame, the same `Arc` its task's topic got, to one more topic,
//! and a removal (delete, expiry) publishes `event: removed` there. A viewer of all tasks is one
//! viewer of that topic; with none attached, the topic keeps one frame.
//!
//! A viewer that fell further behind than the topic keeps frames for cannot skip to the newest
//! frame (it is one task's); instead it resyncs from the tracker: the current snapshot of every
//! task changed after its last change, in change order, and `removed` for every task removed
//! after it, from a bounded list of recent removals. Older than that list, it is told it is too
//! slow and resumes, and its `connected` event then lists the tasks there are.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Entry, MAX_LIST, ProgressTracker, State, newest};
use crate::sse::encoder::Frame;
use crate::sse::topic::{Viewer, Wakes};

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
        let state = self.lock();
        let (viewer, _) = self.inner.feed.subscribe();
        let entries = newest(&state);
        let task_ids = entries.iter().map(|e| e.task.task_id.clone()).collect();
        let changed = entries.into_iter().filter(|e| after.is_none_or(|after| e.seq > after));
        let snapshots = in_change_order(changed.map(snapshot).collect());
        FeedStart { viewer, task_ids, snapshots, position: state.seq }
    }

    /// The frames that bring a viewer of all tasks whose last change was `after` up to the
    /// newest, with `viewer` moved there, and the number of that newest change; `None` when that
    /// cannot be told (removals forgotten, or more than [`MAX_LIST`] tasks changed): the viewer
    /// must start again.
    pub(crate) fn resync(&self, viewer: &mut Viewer, after: u64) -> Option<(Vec<Arc<Frame>>, u64)> {
        let state = self.lock();
        if after < state.removals.forgotten {
            return None;
        }
        // Under the tracker's lock no change is published, so the feed's newest frame is the
        // last change and every task's snapshot is at or before it.
        let position = viewer.skip_to_newest();
        let changed: Vec<(u64, Arc<Frame>)> = state.tasks.values().filter(|e| e.seq > after).map(snapshot).collect();
        if changed.len() > MAX_LIST {
            return None;
        }
        let removals = state.removals.recent.iter().filter(|(seq, _)| *seq > after).cloned();
        Some((in_change_order(changed.into_iter().chain(removals).collect()), position))
    }
}

/// The task's current snapshot with its change sequence number.
fn snapshot(entry: &Entry) -> (u64, Arc<Frame>) {
    (entry.seq, entry.topic.latest())
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

    fn seqs(frames: &[Arc<Frame>]) -> Vec<u64> {
        frames.iter().map(|f| f.seq).collect()
    }

    #[test]
    fn every_change_takes_the_next_number_and_the_feed_gets_it() {
        // Shows creations, changes, deletes and expiries each take one number, in order, and
        // are published to the feed (removals as `removed`).
        let tracker = ProgressTracker::new(Config { retention: std::time::Duration::ZERO, ..Config::default() });
        let FeedStart { mut viewer, task_ids, snapshots, .. } = tracker.open_feed(None);
        assert!(task_ids.is_empty() && snapshots.is_empty());
        tracker.create_task("a", "").unwrap();
        tracker.create_task("b", "").unwrap();
        tracker.update_task("a", TaskUpdate::running(5.0)).unwrap();
        tracker.delete_task("b").unwrap();
        tracker.complete_task("a", serde_json::Value::Null).unwrap();
        assert_eq!(tracker.remove_expired(), 1);
        assert_eq!(tracker.published_seq(), 6);
        let mut got = Vec::new();
        while let Take::Frame(frame) = viewer.try_take(Rule::InOrder) {
            got.push((frame.seq, frame.kind));
        }
        use FrameKind::*;
        assert_eq!(got, [(1, Progress), (2, Progress), (3, Progress), (4, Removed), (5, Terminal), (6, Removed)]);
    }

    #[test]
    fn a_resync_gives_newest_snapshots_and_removals_after_the_point() {
        let tracker = ProgressTracker::new(Config::default());
        for id in ["a", "b", "c"] {
            tracker.create_task(id, "").unwrap(); // 1, 2, 3
        }
        let FeedStart { mut viewer, snapshots, .. } = tracker.open_feed(Some(1));
        assert_eq!(seqs(&snapshots), [2, 3], "only tasks changed after the resume point");
        tracker.update_task("a", TaskUpdate::running(1.0)).unwrap(); // 4
        tracker.update_task("a", TaskUpdate::running(2.0)).unwrap(); // 5
        tracker.delete_task("b").unwrap(); // 6
        tracker.update_task("c", TaskUpdate::running(1.0)).unwrap(); // 7
        let (frames, position) = tracker.resync(&mut viewer, 3).unwrap();
        assert_eq!(position, 7);
        assert_eq!(seqs(&frames), [5, 6, 7], "a's newest only, b's removal, c");
        assert_eq!(frames[1].kind, FrameKind::Removed);
        assert!(matches!(viewer.try_take(Rule::InOrder), Take::Nothing), "moved to the newest");
        tracker.update_task("c", TaskUpdate::running(2.0)).unwrap();
        assert!(matches!(viewer.try_take(Rule::InOrder), Take::Frame(f) if f.seq == 8));
    }

    #[test]
    fn a_resync_older_than_the_removals_kept_cannot_be_told() {
        let tracker = ProgressTracker::new(Config::default());
        let FeedStart { mut viewer, .. } = tracker.open_feed(None);
        for i in 0..=REMOVALS_KEPT {
            tracker.create_task(&format!("t{i}"), "").unwrap();
            tracker.delete_task(&format!("t{i}")).unwrap();
        }
        assert!(tracker.resync(&mut viewer, 1).is_none());
        assert!(tracker.resync(&mut viewer, 2).is_some(), "the first removal forgotten was change 2");
    }
}
