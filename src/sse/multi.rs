//! The source of a stream of many tasks: one viewer per task, merged in change order.
//!
//! Each task keeps its own topic and each member of the stream is an ordinary [`Viewer`] of it
//! (24 bytes), so every rule of one task holds per task: a member that keeps up takes every
//! frame, a stuck one skips to its task's newest, and the terminal frame, always the newest of
//! its topic, is never skipped. Nothing is queued or copied per viewer.
//!
//! What is added is the order across tasks: `id:` is the server-wide change sequence number and
//! must grow along the stream. A change is published to its topic first and its number stored in
//! the tracker's published counter after (`tracker.rs`); so the stream reads that counter first,
//! then takes its inbox's marks (`inbox.rs`): every frame numbered up to the counter is then in
//! its topic, and its member is marked or already known. Of those, it takes the smallest number,
//! and never one above the counter (a publish in flight: it looks again at once instead of
//! waiting). Members whose next number is known wait in a small heap, smallest first, so a
//! burst over a hundred tasks costs a heap step per event, not a look at every task; the numbers
//! there are lower bounds (a stuck member may skip further), so a member is taken only up to the
//! next smallest number known ([`Viewer::take_upto`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::encoder::{Frame, Ids};
use super::inbox::{Inbox, Members};
use super::source::Source;
use super::topic::{Take, Topic, Viewer};
use crate::tracker::ProgressTracker;

/// Bits of a heap key that hold the member number (up to [`super::inbox::MAX_MEMBERS`]).
const MEMBER_BITS: u32 = 7;
// Every change number fits in a key with a member number below it.
const _: () = assert!(crate::tracker::SEQ_LIMIT <= 1 << (u64::BITS - MEMBER_BITS));
const _: () = assert!(super::inbox::MAX_MEMBERS <= 1 << MEMBER_BITS);

/// The viewers of a stream of many tasks.
#[derive(Debug)]
pub struct Multi {
    /// One viewer per task of the stream, in its number's place; `None` once its task is
    /// finished for this stream (its viewer is then dropped and holds nothing).
    members: Box<[Option<Viewer>]>,
    inbox: Arc<Inbox>,
    /// For the published change number.
    tracker: ProgressTracker,
    /// Members marked ready whose next frame has not been looked up yet.
    pending: Members,
    /// Members whose next frame's change number is known (a lower bound), as keys
    /// `number << MEMBER_BITS | member`, smallest first. Empty, and unallocated, while idle.
    queue: BinaryHeap<Reverse<u64>>,
    /// The members in `queue`.
    queued: Members,
    /// Members not finished.
    live: usize,
}

/// What the merge found.
enum Next {
    Frame(Arc<Frame>),
    /// The smallest frame due is published to its topic but its number is not yet counted as
    /// published: look again at once.
    Unpublished,
    Nothing,
}

fn key(seq: u64, member: usize) -> Reverse<u64> {
    Reverse(seq << MEMBER_BITS | member as u64)
}

fn unkey(Reverse(key): Reverse<u64>) -> (u64, usize) {
    (key >> MEMBER_BITS, (key & ((1 << MEMBER_BITS) - 1)) as usize)
}

impl Multi {
    /// Subscribes one member to each of `topics` (member `i` to `topics[i]`). A task whose last
    /// change is after `after` (a change number; 0 for all) is due its snapshot; a finished task
    /// whose last change is not (the client has seen its end) is finished for this stream.
    pub fn subscribe(tracker: ProgressTracker, topics: &[Arc<Topic>], after: u64) -> Multi {
        debug_assert!(topics.len() <= super::inbox::MAX_MEMBERS);
        let inbox = Arc::new(Inbox::default());
        let members: Box<[Option<Viewer>]> = topics
            .iter()
            .enumerate()
            .map(|(i, topic)| {
                let (viewer, latest) = topic.subscribe_member(&inbox, i, after);
                (latest.seq > after || !latest.ends_stream()).then_some(viewer)
            })
            .collect();
        let live = members.iter().flatten().count();
        Multi {
            members,
            inbox,
            tracker,
            pending: Members::default(),
            queue: BinaryHeap::new(),
            queued: Members::default(),
            live,
        }
    }

    fn push(&mut self, seq: u64, member: usize) {
        self.queue.push(key(seq, member));
        self.queued.insert(member);
    }

    /// Takes from `member` the frame due, if its number is at most `limit`.
    fn take(&mut self, member: usize, limit: u64) -> Option<Arc<Frame>> {
        let viewer = self.members[member].as_mut()?;
        match viewer.take_upto(limit) {
            (Take::Frame(frame), next) => {
                if frame.ends_stream() {
                    self.members[member] = None;
                    self.live -= 1;
                } else if let Some(next) = next {
                    self.push(next, member);
                }
                Some(frame)
            }
            (Take::Later(seq), _) => {
                self.push(seq, member);
                None
            }
            _ => None,
        }
    }

    /// The frame with the smallest change number of all members, if it is published.
    fn next(&mut self) -> Next {
        // The counter first, then the marks: see the module docs.
        let published = self.tracker.published_seq();
        self.pending.extend(self.inbox.take());
        // One member ready and none known: take its frame without looking its number up first.
        if self.queue.is_empty()
            && let Some(member) = self.pending.only()
        {
            self.pending = Members::default();
            if let Some(frame) = self.take(member, published) {
                return Next::Frame(frame);
            }
        }
        while let Some(member) = self.pending.pop() {
            // A member known already keeps its number, a lower bound still.
            if !self.queued.contains(member)
                && let Some(seq) = self.members[member].as_ref().and_then(Viewer::next_seq)
            {
                self.push(seq, member);
            }
        }
        while let Some(&top) = self.queue.peek() {
            let (seq, member) = unkey(top);
            if seq > published {
                return Next::Unpublished;
            }
            self.queue.pop();
            self.queued.remove(member);
            let limit = self.queue.peek().map_or(published, |&k| published.min(unkey(k).0));
            if let Some(frame) = self.take(member, limit) {
                return Next::Frame(frame);
            }
        }
        Next::Nothing
    }
}

impl Source for Multi {
    const IDS: Ids = Ids::ChangeSeq;

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Arc<Frame>> {
        loop {
            match self.next() {
                Next::Frame(frame) => return Poll::Ready(frame),
                Next::Unpublished => {
                    // The publisher stores the counter right after, under the tracker's lock.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Next::Nothing => {}
            }
            self.inbox.register(cx.waker());
            // A mark set before the registration would wake nobody: look once more.
            if !self.inbox.any() {
                // Give back the room a burst took.
                self.queue = BinaryHeap::new();
                return Poll::Pending;
            }
        }
    }

    fn try_frame(&mut self) -> Option<Arc<Frame>> {
        match self.next() {
            Next::Frame(frame) => Some(frame),
            Next::Unpublished | Next::Nothing => None,
        }
    }

    fn ends_after(&self, _frame: &Frame) -> bool {
        self.live == 0
    }

    fn finished(&self) -> bool {
        self.live == 0
    }

    fn detach(&mut self) {
        self.members.iter_mut().flatten().for_each(Viewer::detach);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::sse::encoder::FrameKind;
    use crate::sse::testing::counting_waker;
    use crate::task::TaskUpdate;

    /// A tracker with tasks `ids`, their topics, and where its change sequence started (the
    /// tasks' creations are the changes after it).
    fn tracker_with(ids: &[&str]) -> (ProgressTracker, Vec<Arc<Topic>>, u64) {
        let tracker = ProgressTracker::new(Config::default());
        let base = tracker.published_seq();
        for id in ids {
            tracker.create_task(id, "").unwrap();
        }
        let topics = ids.iter().map(|id| tracker.topic(id).unwrap()).collect();
        (tracker, topics, base)
    }

    fn drain(multi: &mut Multi) -> Vec<(u64, String)> {
        std::iter::from_fn(|| multi.try_frame())
            .map(|f| (f.seq, serde_json::from_str::<serde_json::Value>(f.json()).unwrap()["taskId"].to_string()))
            .collect()
    }

    fn seqs(got: &[(u64, String)]) -> Vec<u64> {
        got.iter().map(|(seq, _)| *seq).collect()
    }

    fn bump(tracker: &ProgressTracker, id: &str, progress: f64) -> u64 {
        tracker.update_task(id, TaskUpdate::running(progress)).unwrap();
        tracker.published_seq()
    }

    #[test]
    fn snapshots_and_changes_come_in_change_order() {
        // Shows snapshots are merged with the changes after them by change number, whatever
        // the order of the members, and each change comes once.
        let (tracker, topics, base) = tracker_with(&["a", "b", "c"]); // 1, 2, 3 after the base
        bump(&tracker, "a", 1.0); // 4
        let mut multi = Multi::subscribe(tracker.clone(), &topics, 0);
        let b5 = bump(&tracker, "b", 1.0);
        let a6 = bump(&tracker, "a", 2.0);
        let c7 = bump(&tracker, "c", 1.0);
        let got = drain(&mut multi);
        let want = [base + 2, base + 3, base + 4, b5, a6, c7];
        assert_eq!(seqs(&got), want, "the snapshots b 2, c 3, a 4, then the changes");
        assert!(drain(&mut multi).is_empty());
        let c = bump(&tracker, "c", 2.0);
        let b = bump(&tracker, "b", 2.0);
        assert_eq!(seqs(&drain(&mut multi)), [c, b]);
    }

    #[test]
    fn a_resume_point_skips_tasks_unchanged_since_and_ends_finished_ones() {
        let (tracker, topics, base) = tracker_with(&["a", "b"]); // 1, 2 after the base
        tracker.complete_task("a", serde_json::Value::Null).unwrap(); // 3
        let multi = Multi::subscribe(tracker.clone(), &topics, base + 3);
        assert_eq!((multi.live, multi.members[0].is_some()), (1, false), "a ended at 3, seen");
        let mut multi = Multi::subscribe(tracker.clone(), &topics, base + 2);
        assert_eq!(seqs(&drain(&mut multi)), [base + 3], "only a changed after 2");
        assert!(multi.ends_after(&Frame::too_slow()) == (multi.live == 0) && multi.live == 1);
        tracker.complete_task("b", serde_json::Value::Null).unwrap();
        let last = multi.try_frame().unwrap();
        assert_eq!(last.kind, FrameKind::Terminal);
        assert!(multi.ends_after(&last) && multi.finished());
    }

    #[test]
    fn a_frame_not_yet_counted_as_published_waits() {
        // Shows the merge never takes a frame above the published counter: one in a topic
        // before its number is counted (a publish in flight) waits, and what is counted goes by.
        let (tracker, topics, base) = tracker_with(&["a", "b"]);
        let mut multi = Multi::subscribe(tracker.clone(), &topics, base + 2);
        topics[0].publish(Frame::change(base + 99, 9, r#"{"taskId":"a"}"#, false));
        assert!(matches!(multi.next(), Next::Unpublished));
        let b = bump(&tracker, "b", 1.0);
        assert_eq!(seqs(&drain(&mut multi)), [b], "b's change 3 goes before a's frame 99");
        let (waker, woken) = counting_waker();
        assert!(multi.poll_frame(&mut Context::from_waker(&waker)).is_pending());
        assert_eq!(woken(), 1, "it polls again at once rather than sleep");
    }

    #[test]
    fn a_change_of_any_member_wakes_the_stream_once() {
        let (tracker, topics, base) = tracker_with(&["a", "b"]);
        let mut multi = Multi::subscribe(tracker.clone(), &topics, base + 2);
        let (waker, woken) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(multi.poll_frame(&mut cx).is_pending());
        bump(&tracker, "b", 1.0);
        bump(&tracker, "a", 1.0);
        assert_eq!(woken(), 1, "one wake-up for both");
        assert!(matches!(multi.poll_frame(&mut cx), Poll::Ready(f) if f.seq == base + 3));
        assert!(matches!(multi.poll_frame(&mut cx), Poll::Ready(f) if f.seq == base + 4));
        assert!(multi.poll_frame(&mut cx).is_pending());
        assert_eq!(multi.queue.capacity(), 0, "an idle stream holds no heap");
    }

    #[test]
    fn stuck_members_skip_to_each_tasks_newest_in_order_and_hold_nothing() {
        // Shows a detached stream (its write blocked) costs its topics no frames, and when it
        // comes back gets per task only the newest snapshot, in change order, terminal included.
        let ids: Vec<String> = (0..100).map(|i| format!("t{i:03}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (tracker, topics, _) = tracker_with(&refs);
        let mut multi = Multi::subscribe(tracker.clone(), &topics, tracker.published_seq());
        multi.detach();
        let mut newest = std::collections::BTreeMap::new();
        for round in 0..30 {
            for (i, id) in ids.iter().enumerate() {
                if (i + round) % 3 == 0 {
                    newest.insert(id.clone(), bump(&tracker, id, round as f64));
                }
            }
        }
        tracker.complete_task("t007", serde_json::Value::Null).unwrap();
        newest.insert("t007".into(), tracker.published_seq());
        assert!(topics.iter().all(|t| t.kept() == 1), "nothing waits for a stuck stream");
        let got = drain(&mut multi);
        let mut want: Vec<u64> = newest.values().copied().collect();
        want.sort_unstable();
        assert_eq!(seqs(&got), want, "the newest of each task, in change order");
        assert_eq!(multi.live, 99, "t007 ended with its terminal snapshot");
    }
}
