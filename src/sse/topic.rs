//! The fan-out point of one task: its unsent frames and the viewers waiting for the next one.
//!
//! A publish appends one shared [`Frame`] and wakes the waiting viewers; each viewer then copies
//! nothing, it writes the shared bytes and moves its cursor. There is no queue per viewer.
//!
//! Which frames are kept: each frame counts the *attached* viewers that have not taken it yet,
//! and frames every viewer has taken are dropped, so an idle topic holds only its newest frame.
//! A viewer whose socket stops taking writes *detaches* ([`Viewer::detach`]): frames stop
//! waiting for it. When its write completes it re-attaches; if it is at most [`BEHIND_BOUND`]
//! frames behind and they are still here, it gets them in order, else it skips to the newest
//! frame, which is the whole current state of the task. So a viewer that keeps up receives every
//! change, a stuck viewer costs no memory, and the last frame of a task (terminal snapshot or
//! closing error) is always the newest, so it is never skipped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::encoder::Frame;
use crate::slab::{Key, Slab};

/// How far behind a viewer that was stuck may be and still get every frame it missed.
pub const BEHIND_BOUND: u64 = 16;
/// Most frames a topic keeps, even for attached viewers that are slow to be scheduled.
pub const MAX_KEPT: usize = 4096;
/// Frames a topic keeps room for however few it holds.
const FRAMES_FLOOR: usize = 8;

/// Frames of one task and the viewers of it.
#[derive(Debug)]
pub struct Topic {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Consecutive frames, oldest first, each with the count of attached viewers yet to take
    /// it; never empty.
    frames: VecDeque<(Arc<Frame>, u32)>,
    /// Sequence number of the newest frame (frames are numbered from 1).
    seq: u64,
    /// Viewers that frames wait for.
    attached: u32,
    viewers: Slab<Slot>,
}

#[derive(Debug)]
struct Slot {
    waker: Option<Waker>,
    attached: bool,
}

impl Inner {
    fn first_seq(&self) -> u64 {
        self.seq + 1 - self.frames.len() as u64
    }

    /// Gives up a viewer's claim on every frame after `cursor`.
    fn release_after(&mut self, cursor: u64) {
        let skip = cursor.saturating_sub(self.first_seq() - 1) as usize;
        for (_, pending) in self.frames.iter_mut().skip(skip) {
            *pending = pending.saturating_sub(1);
        }
        self.trim();
    }

    /// Drops frames nobody waits for (keeping the newest), and the oldest beyond [`MAX_KEPT`];
    /// then, if that left the queue mostly empty room (after a burst of frames a slow viewer
    /// held), gives the room back. The check runs only when a frame was dropped.
    fn trim(&mut self) {
        let before = self.frames.len();
        while self.frames.len() > 1 && (self.frames[0].1 == 0 || self.frames.len() > MAX_KEPT) {
            self.frames.pop_front();
        }
        let len = self.frames.len();
        if len < before && self.frames.capacity() > FRAMES_FLOOR.max(4 * len) {
            self.frames.shrink_to(FRAMES_FLOOR.max(2 * len));
        }
    }
}

impl Topic {
    /// A topic whose first frame is `first`.
    pub fn new(first: Frame) -> Topic {
        let mut frames = VecDeque::with_capacity(1);
        frames.push_back((Arc::new(first), 0));
        Topic { inner: Mutex::new(Inner { frames, seq: 1, attached: 0, viewers: Slab::default() }) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change under this lock is completed before anything can panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a frame and wakes every waiting viewer.
    pub fn publish(&self, frame: Frame) {
        let wakers: Vec<Waker> = {
            let mut inner = self.lock();
            let attached = inner.attached;
            inner.frames.push_back((Arc::new(frame), attached));
            inner.seq += 1;
            inner.trim();
            inner.viewers.values_mut().filter_map(|s| s.waker.take()).collect()
        };
        // Outside the lock: a woken viewer on another thread can take the lock at once.
        if let Some(wakers) = hold(wakers) {
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    /// The newest frame.
    pub fn latest(&self) -> Arc<Frame> {
        Arc::clone(&self.lock().frames.back().expect("a topic is never empty").0)
    }

    /// How many viewers are subscribed.
    pub fn viewers(&self) -> usize {
        self.lock().viewers.len()
    }

    /// How many frames are kept now.
    pub fn kept(&self) -> usize {
        self.lock().frames.len()
    }

    /// Room allocated for frames and for viewers: what a burst left behind.
    #[cfg(test)]
    fn capacity(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.frames.capacity(), inner.viewers.capacity())
    }

    /// Subscribes a viewer positioned after the newest frame, which is returned with it, so a
    /// snapshot and the changes after it can never miss or repeat a frame.
    pub fn subscribe(self: &Arc<Self>) -> (Viewer, Arc<Frame>) {
        let mut inner = self.lock();
        let key = inner.viewers.insert(Slot { waker: None, attached: true });
        inner.attached += 1;
        let latest = Arc::clone(&inner.frames.back().expect("a topic is never empty").0);
        (Viewer { topic: Arc::clone(self), key, cursor: inner.seq }, latest)
    }
}

/// One viewer's place in a topic; unsubscribes when dropped.
#[derive(Debug)]
pub struct Viewer {
    topic: Arc<Topic>,
    key: Key,
    /// Sequence number of the last frame this viewer has taken.
    cursor: u64,
}

impl Viewer {
    /// The next frame for this viewer, or `Pending` (with the waker registered) when there is none.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Arc<Frame>> {
        let mut guard = self.topic.lock();
        if let Some(frame) = take(self.key, &mut self.cursor, &mut guard) {
            return Poll::Ready(frame);
        }
        if let Some(slot) = guard.viewers.get_mut(self.key) {
            match &slot.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => slot.waker = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }

    /// The next frame if one is ready, without waiting: to gather several frames into one write.
    pub fn try_next(&mut self) -> Option<Arc<Frame>> {
        let mut guard = self.topic.lock();
        take(self.key, &mut self.cursor, &mut guard)
    }

    /// The viewer's socket stopped taking writes: frames no longer wait for it.
    pub fn detach(&mut self) {
        let mut inner = self.topic.lock();
        let Some(slot) = inner.viewers.get_mut(self.key) else { return };
        if !slot.attached {
            return;
        }
        slot.attached = false;
        inner.attached -= 1;
        inner.release_after(self.cursor);
    }
}

/// Takes the frame after `cursor` for the viewer `key` (see the module docs for which one).
fn take(key: Key, cursor: &mut u64, inner: &mut Inner) -> Option<Arc<Frame>> {
    let slot = inner.viewers.get_mut(key)?;
    if inner.seq == *cursor {
        return None;
    }
    let was_attached = slot.attached;
    slot.attached = true;
    let first = inner.first_seq();
    let behind = inner.seq - *cursor;
    let in_order = *cursor + 1 >= first && (was_attached || behind <= BEHIND_BOUND);
    if !was_attached {
        // Back from a stuck write: frames wait for this viewer again.
        inner.attached += 1;
        if in_order {
            let skip = (*cursor + 1 - first) as usize;
            inner.frames.iter_mut().skip(skip).for_each(|(_, pending)| *pending += 1);
        } else {
            *cursor = inner.seq - 1;
            inner.frames.back_mut().expect("never empty").1 += 1;
        }
    } else if !in_order {
        // Frames were dropped past MAX_KEPT: give up the rest of the claim, take the newest.
        inner.release_after(*cursor);
        *cursor = inner.seq - 1;
        inner.frames.back_mut().expect("never empty").1 += 1;
    }
    *cursor += 1;
    let index = (*cursor - inner.first_seq()) as usize;
    let (frame, pending) = &mut inner.frames[index];
    *pending = pending.saturating_sub(1);
    let frame = Arc::clone(frame);
    inner.trim();
    Some(frame)
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.detach();
        self.topic.lock().viewers.remove(self.key);
    }
}

thread_local! {
    /// Wake-ups held back on this thread by [`holding_wakes`], if it is running.
    static HELD: std::cell::RefCell<Option<Vec<Waker>>> = const { std::cell::RefCell::new(None) };
}

/// Keeps `wakers` for a [`holding_wakes`] running on this thread; gives them back otherwise.
fn hold(wakers: Vec<Waker>) -> Option<Vec<Waker>> {
    HELD.with_borrow_mut(|held| match held {
        Some(held) => {
            held.extend(wakers);
            None
        }
        None => Some(wakers),
    })
}

/// Viewers' wake-ups held back; dropping this wakes them.
#[derive(Debug, Default)]
pub struct HeldWakes(Vec<Waker>);

impl Drop for HeldWakes {
    fn drop(&mut self) {
        std::mem::take(&mut self.0).into_iter().for_each(Waker::wake);
    }
}

/// Runs `f` (synchronous: nothing else runs on this thread meanwhile) with the wake-ups of every
/// viewer it publishes to held back, and returns them with its result.
///
/// Waking 19,000 viewers takes a couple of milliseconds; the producer's request handler uses this
/// to send its answer first and start the fan-out right after.
pub fn holding_wakes<R>(f: impl FnOnce() -> R) -> (R, HeldWakes) {
    /// Ends the hold even if `f` panics, so later publishes on this thread are never held.
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            if let Some(wakers) = HELD.with_borrow_mut(Option::take) {
                drop(HeldWakes(wakers));
            }
        }
    }
    HELD.with_borrow_mut(|held| {
        debug_assert!(held.is_none(), "holds do not nest");
        *held = Some(held.take().unwrap_or_default());
    });
    let release = Release;
    let result = f();
    let held = HeldWakes(HELD.with_borrow_mut(Option::take).unwrap_or_default());
    drop(release);
    (result, held)
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
    fn held_wakes_go_out_when_released_and_only_on_the_holding_call() {
        struct Count(std::sync::atomic::AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(Default::default()));
        let woken = || count.0.load(std::sync::atomic::Ordering::SeqCst);
        let waker = Waker::from(Arc::clone(&count));
        let topic = Arc::new(Topic::new(frame(1)));
        let (mut viewer, _) = topic.subscribe();
        assert!(viewer.poll_next(&mut Context::from_waker(&waker)).is_pending());
        let ((), held) = holding_wakes(|| topic.publish(frame(2)));
        assert_eq!(woken(), 0, "held back");
        drop(held);
        assert_eq!(woken(), 1, "released");
        assert_eq!(next_now(&mut viewer), Some(2));
        assert!(viewer.poll_next(&mut Context::from_waker(&waker)).is_pending());
        topic.publish(frame(3));
        assert_eq!(woken(), 2, "outside a hold, a publish wakes at once");
        // A panic inside the hold releases what it held and ends the hold.
        assert_eq!(next_now(&mut viewer), Some(3));
        assert!(viewer.poll_next(&mut Context::from_waker(&waker)).is_pending());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            holding_wakes(|| {
                topic.publish(frame(4));
                panic!("a handler panics (this message is expected)");
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(woken(), 3, "released by the unwind");
        assert_eq!(next_now(&mut viewer), Some(4));
        assert!(viewer.poll_next(&mut Context::from_waker(&waker)).is_pending());
        topic.publish(frame(5));
        assert_eq!(woken(), 4, "no hold is left behind");
    }

    #[test]
    fn a_viewer_that_keeps_up_gets_every_frame_in_order_however_many() {
        let topic = Arc::new(Topic::new(frame(1)));
        let (mut viewer, latest) = topic.subscribe();
        assert_eq!(latest.event_id, 1);
        assert_eq!(next_now(&mut viewer), None);
        for id in 2..=500 {
            topic.publish(frame(id));
        }
        for id in 2..=500 {
            assert_eq!(next_now(&mut viewer), Some(id));
        }
        assert_eq!(next_now(&mut viewer), None);
        assert_eq!(topic.kept(), 1, "frames every viewer took are dropped");
    }

    #[test]
    fn a_stuck_viewer_costs_no_frames_and_skips_to_the_newest() {
        let topic = Arc::new(Topic::new(frame(1)));
        let (mut stuck, _) = topic.subscribe();
        let (mut prompt, _) = topic.subscribe();
        stuck.detach();
        for id in 2..=50 {
            topic.publish(frame(id));
            assert_eq!(next_now(&mut prompt), Some(id));
        }
        assert_eq!(topic.kept(), 1, "nobody attached waits for old frames");
        topic.publish(Frame::progress(51, "{}", true));
        assert_eq!(next_now(&mut stuck), Some(51), "the terminal frame is never skipped");
        assert_eq!(next_now(&mut stuck), None);
        assert_eq!(next_now(&mut prompt), Some(51));
    }

    #[test]
    fn a_briefly_stuck_viewer_within_the_bound_gets_every_frame() {
        let topic = Arc::new(Topic::new(frame(1)));
        let (mut viewer, _) = topic.subscribe();
        let (mut other, _) = topic.subscribe();
        viewer.detach();
        for id in 2..=5 {
            topic.publish(frame(id));
        }
        // `other` has not taken them yet, so they are still kept.
        assert_eq!((2..=5).map(|_| next_now(&mut viewer)).collect::<Vec<_>>(), [Some(2), Some(3), Some(4), Some(5)]);
        assert_eq!((2..=5).map(|_| next_now(&mut other)).collect::<Vec<_>>(), [Some(2), Some(3), Some(4), Some(5)]);
        assert_eq!(topic.kept(), 1);
    }

    #[test]
    fn dropped_viewers_release_their_frames() {
        let topic = Arc::new(Topic::new(frame(1)));
        let (viewer, _) = topic.subscribe();
        topic.publish(frame(2));
        topic.publish(frame(3));
        assert_eq!(topic.kept(), 2, "frame 1 was published before the viewer came");
        drop(viewer);
        assert_eq!((topic.viewers(), topic.kept()), (0, 1));
    }

    #[test]
    fn a_topic_gives_memory_back_after_a_burst() {
        // A viewer from before the burst, slow to take frames, and a crowd that comes and goes.
        let topic = Arc::new(Topic::new(frame(1)));
        let (mut slow, _) = topic.subscribe();
        let crowd: Vec<Viewer> = (0..10_000).map(|_| topic.subscribe().0).collect();
        for id in 2..=300 {
            topic.publish(frame(id));
        }
        let (frames, viewers) = topic.capacity();
        assert!(frames >= 299 && viewers >= 10_001, "the burst: room for {frames} frames, {viewers} viewers");
        drop(crowd);
        assert_eq!((2..=300).map(|_| next_now(&mut slow)).filter(Option::is_some).count(), 299);
        assert_eq!((topic.kept(), topic.viewers()), (1, 1));
        let (frames, viewers) = topic.capacity();
        assert!(frames <= FRAMES_FLOOR && viewers <= 64, "after: room for {frames} frames, {viewers} viewers");
    }

    #[test]
    fn past_the_cap_even_an_attached_viewer_skips() {
        let topic = Arc::new(Topic::new(frame(1)));
        let (mut viewer, _) = topic.subscribe();
        for id in 2..=(MAX_KEPT as u64 + 10) {
            topic.publish(frame(id));
        }
        assert_eq!(topic.kept(), MAX_KEPT);
        assert_eq!(next_now(&mut viewer), Some(MAX_KEPT as u64 + 10));
        assert_eq!(topic.kept(), 1);
    }
}
