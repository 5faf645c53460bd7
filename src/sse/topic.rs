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
//!
//! One frame may follow the terminal snapshot: `task_deleted`, when a finished task is deleted.
//! The terminal snapshot is then not the newest, yet a viewer must never be without it: a skip
//! goes to it rather than past it (the viewer's stream ends there), and while a detached viewer
//! may still need it, it is kept even when no attached viewer waits for it. A deleted task's
//! topic takes no more frames, so this keeps one frame at most, and only while its viewers go.
//!
//! A viewer of one task has a waker of its own in its slot, which a publish takes and wakes. A
//! member of a stream of many tasks has instead its stream's shared [`Inbox`] and its number
//! there: a publish marks the member ready and wakes the stream. Such a member also asks two
//! things of its topic that a viewer of one task does not: the change sequence number of the
//! frame it would take next, and to take it only if that number is not above a limit, both under
//! one lock ([`Viewer::take_upto`]), so its stream can merge many topics in change order. The
//! stream of all tasks never skips: it is told of the gap ([`Rule::InOrder`]) and resynchronises
//! from the tracker.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::encoder::{Frame, FrameKind};
use super::inbox::Inbox;
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

/// A subscribed viewer: how a publish tells it of a frame, and whether frames wait for it.
#[derive(Debug)]
enum Slot {
    /// A viewer of this task alone: its waker, taken by the publish that wakes it.
    Task { waker: Option<Waker>, attached: bool },
    /// A member of a stream of many tasks: its stream's inbox and its number there.
    Member { inbox: Arc<Inbox>, member: u8, attached: bool },
}

impl Slot {
    fn attached(&self) -> bool {
        match self {
            Slot::Task { attached, .. } | Slot::Member { attached, .. } => *attached,
        }
    }

    fn set_attached(&mut self, value: bool) {
        match self {
            Slot::Task { attached, .. } | Slot::Member { attached, .. } => *attached = value,
        }
    }

    /// Tells the viewer a frame was published; the waker to wake, if any.
    fn notify(&mut self) -> Option<Waker> {
        match self {
            Slot::Task { waker, .. } => waker.take(),
            Slot::Member { inbox, member, .. } => inbox.notify(usize::from(*member)),
        }
    }
}

/// What a viewer does when the frames after its cursor are not all kept, or it comes back from
/// a stuck write too far behind (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Skip to the newest frame, which is the whole state of the task.
    Skip,
    /// Skip likewise, but take no frame whose change sequence number is above this.
    SkipUpTo(u64),
    /// Never skip: report the gap (the stream of all tasks, whose newest frame is one task's).
    InOrder,
}

/// What a viewer took.
#[derive(Debug)]
pub enum Take {
    /// The next frame; the cursor moved past it.
    Frame(Arc<Frame>),
    /// Under [`Rule::SkipUpTo`]: the frame due has this change sequence number, above the
    /// limit; nothing was taken.
    Later(u64),
    /// Under [`Rule::InOrder`]: the frames due are gone; nothing was taken.
    Gap,
    /// No frame after the cursor.
    Nothing,
}

impl Inner {
    fn first_seq(&self) -> u64 {
        self.seq + 1 - self.frames.len() as u64
    }

    /// The frame a viewer at `cursor` takes next, as an index into `frames`, and whether it is
    /// the one right after the cursor (else it is a skip, to the newest frame or to the terminal
    /// snapshot before it).
    fn due(&self, attached: bool, cursor: u64) -> Option<(usize, bool)> {
        if self.seq == cursor {
            return None;
        }
        let first = self.first_seq();
        let in_order = cursor + 1 >= first && (attached || self.seq - cursor <= BEHIND_BOUND);
        let at = if in_order {
            cursor + 1
        } else if self.terminal_then_closing() && self.seq - 1 > cursor {
            self.seq - 1
        } else {
            self.seq
        };
        Some(((at - first) as usize, in_order))
    }

    /// Whether the newest frame is a closing one (`task_deleted`) after the terminal snapshot.
    fn terminal_then_closing(&self) -> bool {
        let mut newest = self.frames.iter().rev().map(|(frame, _)| frame.kind);
        newest.next() == Some(FrameKind::Closing) && newest.next() == Some(FrameKind::Terminal)
    }

    /// Whether some subscribed viewer is detached (it may come back for frames nobody waits for).
    fn any_detached(&self) -> bool {
        self.viewers.len() > self.attached as usize
    }

    /// The viewer `key` at `cursor` stops counting as attached: frames no longer wait for it.
    fn detach(&mut self, key: Key, cursor: u64) {
        let Some(slot) = self.viewers.get_mut(key) else { return };
        if !slot.attached() {
            return;
        }
        slot.set_attached(false);
        self.attached -= 1;
        self.release_after(cursor);
    }

    /// The change sequence number of the frame the viewer `key` at `cursor` takes next.
    fn due_seq(&self, key: Key, cursor: u64) -> Option<u64> {
        let attached = self.viewers.get(key)?.attached();
        self.due(attached, cursor).map(|(index, _)| self.frames[index].0.seq)
    }

    /// Gives up a viewer's claim on every frame after `cursor`.
    fn release_after(&mut self, cursor: u64) {
        let skip = cursor.saturating_sub(self.first_seq() - 1) as usize;
        for (_, pending) in self.frames.iter_mut().skip(skip) {
            *pending = pending.saturating_sub(1);
        }
        self.trim();
    }

    /// Drops frames nobody waits for (keeping the newest, and a terminal snapshot before it that
    /// a detached viewer may need: see the module docs), and the oldest beyond [`MAX_KEPT`];
    /// then, if that left the queue mostly empty room (after a burst of frames a slow viewer
    /// held), gives the room back. The check runs only when a frame was dropped.
    fn trim(&mut self) {
        let before = self.frames.len();
        while self.frames.len() > 1 && (self.frames[0].1 == 0 || self.frames.len() > MAX_KEPT) {
            if self.frames.len() == 2 && self.terminal_then_closing() && self.any_detached() {
                break;
            }
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
    pub fn new(first: impl Into<Arc<Frame>>) -> Topic {
        let mut frames = VecDeque::with_capacity(1);
        frames.push_back((first.into(), 0));
        Topic { inner: Mutex::new(Inner { frames, seq: 1, attached: 0, viewers: Slab::default() }) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change under this lock is completed before anything can panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a frame and wakes every waiting viewer.
    pub fn publish(&self, frame: impl Into<Arc<Frame>>) {
        self.append(frame).wake();
    }

    /// Appends a frame and marks the members of streams of many tasks ready; the viewers to
    /// wake are returned, so the tracker can count the change as published before any of them
    /// looks (a stream of many tasks woken earlier would find the change not yet counted).
    pub fn append(&self, frame: impl Into<Arc<Frame>>) -> Wakes {
        let mut inner = self.lock();
        let attached = inner.attached;
        inner.frames.push_back((frame.into(), attached));
        inner.seq += 1;
        inner.trim();
        Wakes(inner.viewers.values_mut().filter_map(Slot::notify).collect())
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
        let key = inner.viewers.insert(Slot::Task { waker: None, attached: true });
        inner.attached += 1;
        let latest = Arc::clone(&inner.frames.back().expect("a topic is never empty").0);
        (Viewer { topic: Arc::clone(self), key, cursor: inner.seq }, latest)
    }

    /// Subscribes member `member` of a stream of many tasks, notified through `inbox`. When the
    /// newest frame (returned) shows a change after `after` (a change sequence number), the
    /// member is positioned before it, so it takes it as its snapshot in change order with its
    /// stream's other frames, and is marked ready; else after it.
    pub fn subscribe_member(self: &Arc<Self>, inbox: &Arc<Inbox>, member: usize, after: u64) -> (Viewer, Arc<Frame>) {
        debug_assert!(member < super::inbox::MAX_MEMBERS);
        let mut inner = self.lock();
        let slot = Slot::Member { inbox: Arc::clone(inbox), member: member as u8, attached: true };
        let key = inner.viewers.insert(slot);
        inner.attached += 1;
        let mut cursor = inner.seq;
        let newest = inner.frames.back_mut().expect("a topic is never empty");
        let latest = Arc::clone(&newest.0);
        if latest.seq > after {
            newest.1 += 1;
            cursor -= 1;
            inbox.mark(member);
        }
        (Viewer { topic: Arc::clone(self), key, cursor }, latest)
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
        match self.poll_take(cx, Rule::Skip) {
            Poll::Ready(Take::Frame(frame)) => Poll::Ready(frame),
            _ => Poll::Pending,
        }
    }

    /// The next frame if one is ready, without waiting: to gather several frames into one write.
    pub fn try_next(&mut self) -> Option<Arc<Frame>> {
        match self.try_take(Rule::Skip) {
            Take::Frame(frame) => Some(frame),
            _ => None,
        }
    }

    /// What the viewer takes under `rule`, or `Pending` with the waker registered when there is
    /// nothing (a viewer of one task alone; members are woken through their inbox).
    pub fn poll_take(&mut self, cx: &mut Context<'_>, rule: Rule) -> Poll<Take> {
        let mut guard = self.topic.lock();
        match take(self.key, &mut self.cursor, &mut guard, rule) {
            Take::Nothing => {}
            taken => return Poll::Ready(taken),
        }
        if let Some(Slot::Task { waker, .. }) = guard.viewers.get_mut(self.key) {
            match waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }

    /// What the viewer takes under `rule` now, without waiting.
    pub fn try_take(&mut self, rule: Rule) -> Take {
        take(self.key, &mut self.cursor, &mut self.topic.lock(), rule)
    }

    /// The change sequence number of the frame this viewer would take next, if there is one.
    pub fn next_seq(&self) -> Option<u64> {
        self.topic.lock().due_seq(self.key, self.cursor)
    }

    /// Takes the frame due unless its change sequence number is above `max`
    /// ([`Rule::SkipUpTo`]); with the number of the frame due after it, under the same lock.
    pub fn take_upto(&mut self, max: u64) -> (Take, Option<u64>) {
        let mut guard = self.topic.lock();
        let taken = take(self.key, &mut self.cursor, &mut guard, Rule::SkipUpTo(max));
        let next = match taken {
            Take::Frame(_) => guard.due_seq(self.key, self.cursor),
            _ => None,
        };
        (taken, next)
    }

    /// Moves the cursor to the newest frame without taking anything, attached again; returns
    /// that frame's change sequence number. The stream of all tasks does this when it resyncs.
    pub fn skip_to_newest(&mut self) -> u64 {
        let mut guard = self.topic.lock();
        let inner = &mut *guard;
        if let Some(slot) = inner.viewers.get_mut(self.key) {
            if slot.attached() {
                inner.release_after(self.cursor);
            } else {
                slot.set_attached(true);
                inner.attached += 1;
            }
        }
        self.cursor = inner.seq;
        inner.frames.back().expect("a topic is never empty").0.seq
    }

    /// The viewer's socket stopped taking writes: frames no longer wait for it.
    pub fn detach(&mut self) {
        self.topic.lock().detach(self.key, self.cursor);
    }
}

/// Takes the frame after `cursor` for the viewer `key` (see the module docs for which one).
fn take(key: Key, cursor: &mut u64, inner: &mut Inner, rule: Rule) -> Take {
    let Some(was_attached) = inner.viewers.get(key).map(Slot::attached) else { return Take::Nothing };
    let Some((index, in_order)) = inner.due(was_attached, *cursor) else { return Take::Nothing };
    match rule {
        Rule::SkipUpTo(max) if inner.frames[index].0.seq > max => return Take::Later(inner.frames[index].0.seq),
        Rule::InOrder if !in_order => return Take::Gap,
        _ => {}
    }
    let (index, was_attached) = if was_attached && !in_order {
        // Frames were dropped past MAX_KEPT: give up the rest of the claim, as a stuck viewer
        // does, and skip like one (the frames kept may have changed).
        inner.detach(key, *cursor);
        let (index, _) = inner.due(false, *cursor).expect("the newest frame is after the cursor");
        (index, false)
    } else {
        (index, was_attached)
    };
    if !was_attached {
        // Back from a stuck write: frames wait for this viewer again, from the one it takes on.
        if let Some(slot) = inner.viewers.get_mut(key) {
            slot.set_attached(true);
        }
        inner.attached += 1;
        inner.frames.iter_mut().skip(index).for_each(|(_, pending)| *pending += 1);
    }
    *cursor = inner.first_seq() + index as u64;
    let (frame, pending) = &mut inner.frames[index];
    *pending = pending.saturating_sub(1);
    let frame = Arc::clone(frame);
    inner.trim();
    Take::Frame(frame)
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let mut inner = self.topic.lock();
        inner.detach(self.key, self.cursor);
        inner.viewers.remove(self.key);
        // A terminal snapshot kept for detached viewers may be needed by none now.
        inner.trim();
    }
}

/// Viewers to wake after a publish.
#[derive(Debug)]
#[must_use = "the viewers wait until woken"]
pub struct Wakes(Vec<Waker>);

impl Wakes {
    /// Wakes them, or holds them back for a [`holding_wakes`] running on this thread. Called
    /// outside the topic's lock: a woken viewer on another thread can take the lock at once.
    pub fn wake(self) {
        if let Some(wakers) = hold(self.0) {
            wakers.into_iter().for_each(Waker::wake);
        }
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
    fn a_stuck_viewer_gets_the_terminal_snapshot_of_a_task_deleted_after_it_finished() {
        // Shows a skip goes to the terminal snapshot, not past it to `task_deleted`, for a viewer
        // of one task and a member of many, that the snapshot is kept while a detached viewer
        // may need it, and dropped when none is left.
        let topic = Arc::new(Topic::new(frame(1)));
        let mut viewers: Vec<Viewer> = (0..3).map(|_| topic.subscribe().0).collect();
        viewers.iter_mut().for_each(Viewer::detach);
        for id in 2..=50 {
            topic.publish(frame(id));
        }
        topic.publish(Frame::progress(51, "{}", true));
        topic.publish(Frame::deleted(0, "t"));
        assert_eq!(topic.kept(), 2, "the terminal snapshot is kept for the detached viewers");
        assert_eq!(next_now(&mut viewers[0]), Some(51), "the skip stops at the terminal snapshot");
        match viewers[1].take_upto(u64::MAX) {
            (Take::Frame(f), _) => assert_eq!(f.kind, FrameKind::Terminal),
            other => panic!("{other:?}"),
        }
        assert_eq!(topic.kept(), 2, "kept for the viewer still detached");
        drop(viewers.pop());
        assert_eq!(topic.kept(), 1, "nobody is left who needs the terminal snapshot");
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
    fn a_viewers_slot_is_no_larger_for_members_of_many_tasks() {
        // Shows the per-viewer slot stayed three words (one waker and a flag before).
        assert!(std::mem::size_of::<Slot>() <= 24, "{} bytes", std::mem::size_of::<Slot>());
        assert!(std::mem::size_of::<Viewer>() <= 24);
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
