//! The source of the stream of all tasks: one viewer of the tracker's feed (every change of
//! every task, and `removed`), after the snapshots it opened with.
//!
//! The feed never skips to its newest frame, which is only one task's: a viewer that comes back
//! from a stuck write further behind than the feed keeps resyncs instead, from the tracker's
//! current snapshots (`tracker/feed.rs`), and one that cannot be resynced is told `too_slow`
//! and ends, so its client resumes. The stream never ends otherwise.
//!
//! The snapshots to send first (up to 1,000 at the opening, up to about 2,000 after a resync)
//! wait in a queue whose room is given back as soon as it empties: a dashboard open for days
//! holds no room sized by the largest catch-up it ever had.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::encoder::{Frame, FrameKind, Ids};
use super::source::Source;
use super::topic::{Rule, Take, Viewer};
use crate::tracker::{FeedStart, ProgressTracker};

/// A viewer of all tasks.
#[derive(Debug)]
pub struct Feed {
    viewer: Viewer,
    /// For resyncs.
    tracker: ProgressTracker,
    /// Frames to send before the feed's next: the opening snapshots, or a resync; unallocated
    /// when empty.
    queue: VecDeque<Arc<Frame>>,
    /// Every change up to this number was taken, or is shown by a frame taken or queued: where
    /// a resync starts from.
    last: u64,
}

impl Feed {
    /// A viewer of the feed that starts with `start`'s snapshots; with the tasks to list in
    /// `connected`.
    pub fn new(tracker: ProgressTracker, start: FeedStart) -> (Feed, Vec<String>) {
        let FeedStart { viewer, task_ids, snapshots, position } = start;
        (Feed { viewer, tracker, queue: snapshots.into(), last: position }, task_ids)
    }

    /// What a feed's take gave: a frame, or the resync of a gap.
    fn took(&mut self, taken: Take) -> Option<Arc<Frame>> {
        match taken {
            Take::Frame(frame) => Some(self.sent(frame)),
            Take::Gap => match self.tracker.resync(&mut self.viewer, self.last) {
                Some((frames, position)) => {
                    // Everything up to the new position is in these frames or was sent.
                    self.last = self.last.max(position);
                    self.queue = frames.into();
                    self.queued()
                }
                // It cannot be told what it missed: it starts again.
                None => Some(Arc::new(Frame::too_slow())),
            },
            Take::Later(_) | Take::Nothing => None,
        }
    }

    fn sent(&mut self, frame: Arc<Frame>) -> Arc<Frame> {
        self.last = self.last.max(frame.seq);
        frame
    }

    /// The next queued frame; the queue's room goes back when it empties.
    fn queued(&mut self) -> Option<Arc<Frame>> {
        let frame = self.queue.pop_front()?;
        if self.queue.is_empty() {
            self.queue = VecDeque::new();
        }
        Some(frame)
    }
}

impl Source for Feed {
    const IDS: Ids = Ids::ChangeSeq;

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Arc<Frame>> {
        if let Some(frame) = self.queued() {
            return Poll::Ready(self.sent(frame));
        }
        loop {
            let Poll::Ready(taken) = self.viewer.poll_take(cx, Rule::InOrder) else { return Poll::Pending };
            if let Some(frame) = self.took(taken) {
                return Poll::Ready(frame);
            }
        }
    }

    fn try_frame(&mut self) -> Option<Arc<Frame>> {
        if let Some(frame) = self.queued() {
            return Some(self.sent(frame));
        }
        let taken = self.viewer.try_take(Rule::InOrder);
        self.took(taken)
    }

    fn ends_after(&self, frame: &Frame) -> bool {
        // Only the feed's own `too_slow`: no task's end ends this stream.
        frame.kind == FrameKind::Closing
    }

    fn detach(&mut self) {
        self.viewer.detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::task::TaskUpdate;

    #[test]
    fn a_stuck_feed_viewer_resyncs_with_the_newest_snapshot_of_each_task() {
        // Shows a viewer of all tasks that was detached while many changes went by gets, when it
        // takes again, each changed task's newest snapshot and the removals, in change order,
        // then the changes after them.
        let tracker = ProgressTracker::new(Config::default());
        let base = tracker.published_seq();
        for id in ["a", "b", "c"] {
            tracker.create_task(id, "").unwrap(); // 1, 2, 3 after the base
        }
        let (mut feed, _) = Feed::new(tracker.clone(), tracker.open_feed(None));
        assert_eq!(std::iter::from_fn(|| feed.try_frame()).map(|f| f.seq - base).collect::<Vec<_>>(), [1, 2, 3]);
        feed.detach();
        for i in 0..40 {
            tracker.update_task("a", TaskUpdate::running(f64::from(i))).unwrap(); // 4..=43
        }
        tracker.delete_task("b").unwrap(); // 44
        tracker.update_task("a", TaskUpdate::running(50.0)).unwrap(); // 45
        let got: Vec<(u64, FrameKind)> =
            std::iter::from_fn(|| feed.try_frame()).map(|f| (f.seq - base, f.kind)).collect();
        assert_eq!(got, [(44, FrameKind::Removed), (45, FrameKind::Progress)]);
        tracker.update_task("c", TaskUpdate::running(1.0)).unwrap();
        assert_eq!(feed.try_frame().map(|f| f.seq - base), Some(46), "then the feed again, in order");
    }

    #[test]
    fn a_viewer_of_all_tasks_gives_back_the_room_of_each_catch_up() {
        // Shows the queue of 1,000 opening snapshots, and of a resync of 1,000 tasks, holds no
        // room once sent: a viewer's memory does not keep the size of its largest catch-up.
        let tracker = ProgressTracker::new(Config::default());
        let ids: Vec<String> = (0..1000).map(|i| format!("t{i:04}")).collect();
        for id in &ids {
            tracker.create_task(id, "").unwrap();
        }
        let (mut feed, _) = Feed::new(tracker.clone(), tracker.open_feed(None));
        assert!(feed.queue.capacity() >= 1000, "the premise: the snapshots wait in the queue");
        assert_eq!(std::iter::from_fn(|| feed.try_frame()).count(), 1000);
        assert_eq!(feed.queue.capacity(), 0, "the opening's room is given back");
        feed.detach();
        for id in &ids {
            tracker.update_task(id, TaskUpdate::running(1.0)).unwrap();
        }
        let first = feed.try_frame().expect("the resync");
        assert!(feed.queue.capacity() >= 999, "the premise: a resync of every task");
        assert_eq!(1 + std::iter::from_fn(|| feed.try_frame()).count(), 1000, "{first:?}");
        assert_eq!(feed.queue.capacity(), 0, "the resync's room is given back");
    }
}
