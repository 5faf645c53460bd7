//! The fan-out point of one task: its recent frames and the viewers waiting for the next one.
//!
//! A publish appends one shared [`Frame`] and wakes the waiting viewers; each viewer then copies
//! nothing, it writes the shared bytes and moves its cursor. There is no queue per viewer: a
//! viewer that falls more than [`RECENT`] frames behind skips to the newest frame, which is the
//! whole current state of the task, so memory per viewer stays fixed however slow it is.
//! The last frame of a task (terminal snapshot or closing error) is always the newest, so it is
//! never skipped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::encoder::Frame;
use crate::slab::{Key, Slab};

/// How many frames a topic keeps for viewers that are behind; further behind, they skip.
pub const RECENT: usize = 8;

/// Frames of one task and the viewers of it.
#[derive(Debug)]
pub struct Topic {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Consecutive frames, oldest first; never empty. `seq` numbers them from 1.
    recent: VecDeque<Arc<Frame>>,
    /// Sequence number of the newest frame.
    seq: u64,
    /// One slot per viewer: its waker while it waits.
    viewers: Slab<Option<Waker>>,
}

impl Topic {
    /// A topic whose first frame is `first`.
    pub fn new(first: Frame) -> Topic {
        let mut recent = VecDeque::with_capacity(RECENT);
        recent.push_back(Arc::new(first));
        Topic { inner: Mutex::new(Inner { recent, seq: 1, viewers: Slab::default() }) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere never leaves `Inner` half-changed: every change is one push or pop.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a frame and wakes every waiting viewer.
    pub fn publish(&self, frame: Frame) {
        let wakers: Vec<Waker> = {
            let mut inner = self.lock();
            if inner.recent.len() == RECENT {
                inner.recent.pop_front();
            }
            inner.recent.push_back(Arc::new(frame));
            inner.seq += 1;
            inner.viewers.values_mut().filter_map(Option::take).collect()
        };
        // Outside the lock: a woken viewer on another thread can take the lock at once.
        wakers.into_iter().for_each(Waker::wake);
    }

    /// The newest frame.
    pub fn latest(&self) -> Arc<Frame> {
        self.lock().recent.back().cloned().expect("a topic is never empty")
    }

    /// How many viewers are subscribed.
    pub fn viewers(&self) -> usize {
        self.lock().viewers.len()
    }

    /// Subscribes a viewer positioned at the newest frame, which is returned.
    pub fn subscribe(self: &Arc<Self>) -> (Viewer, Arc<Frame>) {
        let mut inner = self.lock();
        let key = inner.viewers.insert(None);
        let latest = inner.recent.back().cloned().expect("a topic is never empty");
        (Viewer { topic: Arc::clone(self), key, cursor: inner.seq }, latest)
    }
}

/// One viewer's place in a topic; unsubscribes when dropped.
#[derive(Debug)]
pub struct Viewer {
    topic: Arc<Topic>,
    key: Key,
    /// Sequence number of the last frame this viewer has been given.
    cursor: u64,
}

impl Viewer {
    /// The next frame for this viewer, or `Pending` (with the waker registered) when there is none.
    ///
    /// Frames come in order; a viewer more than [`RECENT`] behind gets the newest frame next.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Arc<Frame>> {
        let mut inner = self.topic.lock();
        if inner.seq > self.cursor {
            let behind = (inner.seq - self.cursor) as usize;
            let frame = if behind > inner.recent.len() {
                self.cursor = inner.seq;
                inner.recent.back()
            } else {
                self.cursor += 1;
                inner.recent.get(inner.recent.len() - behind)
            };
            return Poll::Ready(frame.cloned().expect("index within recent"));
        }
        if let Some(slot) = inner.viewers.get_mut(self.key) {
            match slot {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }

    /// The next frame, waiting for a publish if there is none.
    pub fn next(&mut self) -> impl std::future::Future<Output = Arc<Frame>> + '_ {
        std::future::poll_fn(move |cx| self.poll_next(cx))
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.topic.lock().viewers.remove(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn frame(id: u64) -> Frame {
        Frame::progress(id, "{}", false)
    }

    fn next_now(viewer: &mut Viewer) -> Option<u64> {
        match viewer.poll_next(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(f) => Some(f.event_id),
            Poll::Pending => None,
        }
    }

    #[test]
    fn a_viewer_that_keeps_up_gets_every_frame_in_order() {
        let topic = Arc::new(Topic::new(frame(1)));
        let (mut viewer, latest) = topic.subscribe();
        assert_eq!(latest.event_id, 1);
        assert_eq!(next_now(&mut viewer), None);
        for id in 2..=4 {
            topic.publish(frame(id));
        }
        assert_eq!([next_now(&mut viewer), next_now(&mut viewer), next_now(&mut viewer)], [Some(2), Some(3), Some(4)]);
        assert_eq!(next_now(&mut viewer), None);
    }

    #[test]
    fn a_viewer_far_behind_skips_to_the_newest_and_never_loses_the_last() {
        let topic = Arc::new(Topic::new(frame(1)));
        let (mut viewer, _) = topic.subscribe();
        for id in 2..=50 {
            topic.publish(frame(id));
        }
        topic.publish(Frame::progress(51, "{}", true));
        assert_eq!(next_now(&mut viewer), Some(51));
        assert_eq!(next_now(&mut viewer), None);
    }

    #[test]
    fn dropped_viewers_leave_the_topic() {
        let topic = Arc::new(Topic::new(frame(1)));
        let (viewer, _) = topic.subscribe();
        assert_eq!(topic.viewers(), 1);
        drop(viewer);
        assert_eq!(topic.viewers(), 0);
    }
}
