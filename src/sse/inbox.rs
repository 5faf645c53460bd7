//! Where the topics of a stream of many tasks say which of its tasks have frames waiting.
//!
//! A viewer of 100 tasks must not look at 100 topics for every change of one of them, nor give
//! each topic a waker of its own (an allocation per task per viewer). So every topic slot of
//! such a viewer points at one shared `Inbox` with the slot's member number: a publish sets the
//! member's bit, under the topic's lock, and wakes the viewer's task. The bit is set at the
//! publish itself, never later (wake-ups may be held back until a producer's answer is written,
//! `topic::holding_wakes`): a viewer that sees the server's published change number knows the bit
//! of every change up to it is set.
//!
//! Bits are hints: a bit set for a frame already taken costs one look at that topic, and a
//! member whose bit is clear may still have frames the viewer knows about. The waker follows the
//! usual rule: the viewer registers it, then looks at the bits again, so a publish in between is
//! never missed; a publish that finds bits already set in its word leaves the wake-up to the one
//! that set them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;

/// Most members of one inbox (the tasks of one stream).
pub const MAX_MEMBERS: usize = 128;

const WORDS: usize = MAX_MEMBERS / 64;

/// A set of member numbers (below [`MAX_MEMBERS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Members([u64; WORDS]);

impl Members {
    /// Adds `member`.
    pub fn insert(&mut self, member: usize) {
        self.0[member / 64] |= 1 << (member % 64);
    }

    /// Removes `member`; whether it was there.
    pub fn remove(&mut self, member: usize) -> bool {
        let had = self.contains(member);
        self.0[member / 64] &= !(1 << (member % 64));
        had
    }

    /// Whether `member` is there.
    pub fn contains(&self, member: usize) -> bool {
        self.0[member / 64] & (1 << (member % 64)) != 0
    }

    /// Adds every member of `other`.
    pub fn extend(&mut self, other: Members) {
        for (word, more) in self.0.iter_mut().zip(other.0) {
            *word |= more;
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// The member, when there is exactly one.
    pub fn only(&self) -> Option<usize> {
        let mut copy = *self;
        let member = copy.pop()?;
        copy.is_empty().then_some(member)
    }

    /// Removes and returns the lowest member.
    pub fn pop(&mut self) -> Option<usize> {
        let (i, word) = self.0.iter_mut().enumerate().find(|(_, w)| **w != 0)?;
        let bit = word.trailing_zeros() as usize;
        *word &= *word - 1;
        Some(i * 64 + bit)
    }
}

/// The members with frames waiting, and the task to wake when one gets one.
#[derive(Debug, Default)]
pub struct Inbox {
    ready: [AtomicU64; WORDS],
    waker: Mutex<Option<Waker>>,
}

impl Inbox {
    /// Marks `member` ready without waking anyone (the viewer is not waiting yet).
    pub fn mark(&self, member: usize) {
        self.ready[member / 64].fetch_or(1 << (member % 64), Ordering::AcqRel);
    }

    /// Marks `member` ready, and gives the waker to wake unless a wake-up is already on its way.
    pub fn notify(&self, member: usize) -> Option<Waker> {
        let before = self.ready[member / 64].fetch_or(1 << (member % 64), Ordering::AcqRel);
        // Bits already set in this word: whoever set the first of them took the waker (or found
        // the viewer running, which looks at the bits before it waits).
        if before != 0 {
            return None;
        }
        self.lock().take()
    }

    /// Takes every ready mark.
    pub fn take(&self) -> Members {
        Members(std::array::from_fn(|i| self.ready[i].swap(0, Ordering::AcqRel)))
    }

    /// Registers the task to wake; the caller must look at the marks again afterwards.
    pub fn register(&self, waker: &Waker) {
        let mut slot = self.lock();
        match &*slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Whether any member is marked.
    pub fn any(&self) -> bool {
        self.ready.iter().any(|w| w.load(Ordering::Acquire) != 0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Waker>> {
        // Nothing under this lock can panic.
        self.waker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::testing::counting_waker;

    #[test]
    fn members_are_a_set_popped_lowest_first() {
        let mut set = Members::default();
        for m in [99, 0, 64, 63, 5] {
            set.insert(m);
        }
        assert!(set.contains(64) && !set.contains(65));
        assert!(set.remove(5) && !set.remove(5));
        assert_eq!(set.only(), None);
        let popped: Vec<usize> = std::iter::from_fn(|| set.pop()).collect();
        assert_eq!(popped, [0, 63, 64, 99]);
        assert!(set.is_empty());
        set.insert(70);
        assert_eq!(set.only(), Some(70));
    }

    #[test]
    fn one_wake_per_wait_and_no_mark_is_lost() {
        // Shows the waker is handed out once per registration, and marks set while the viewer
        // runs are seen when it looks again after registering.
        let (waker, woken) = counting_waker();
        let inbox = Inbox::default();
        assert!(inbox.notify(3).is_none(), "nobody registered: the viewer looks before it waits");
        assert!(inbox.any());
        let taken = inbox.take();
        assert!(taken.contains(3) && !inbox.any());
        inbox.register(&waker);
        inbox.notify(70).expect("the registered waker").wake();
        assert!(inbox.notify(71).is_none(), "a wake-up for this word is on its way");
        assert!(inbox.notify(2).is_none(), "the waker was taken");
        assert_eq!(woken(), 1);
        let taken = inbox.take();
        assert!(taken.contains(2) && taken.contains(70) && taken.contains(71));
        inbox.mark(9);
        assert!(inbox.take().contains(9));
    }
}
