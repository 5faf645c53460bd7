//! Changes held back until a store that commits later (the journal) says they are durable.
//!
//! With such a store a change is checked, numbered and handed to the store under the tracker's
//! lock, as with any store, but it is not applied to the tasks viewers and readers see: it waits
//! in `State::pending`, in change order, and the newest accepted state of its task is kept apart
//! in `State::accepted`, so a second change of the same task in the same batch builds on the
//! first. The lock is then released and the caller waits on its [`Ticket`] (a producer's request
//! awaits it; a library call blocks). The store's thread reports each durable batch
//! ([`Commits::durable`]): under the lock, the changes up to it are applied and published as the
//! memory store's are at once, and their tickets settled. A failure ([`Commits::failed`]) drops
//! every pending change: their tickets settle with an error, the accepted states go, and the
//! sequence goes back to the last published number, so the numbers and `eventId`s the failed
//! changes took are taken again by the next ones. No lock is held across the store's I/O.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::task::{Poll, Waker};

use super::{Inner, ProgressTracker, State, result_len};
use crate::sse::encoder::Frame;
use crate::sse::topic::Topic;
use crate::store::{Commits, Snapshot};
use crate::task::Task;

/// One change accepted but not yet durable.
#[derive(Debug)]
pub(super) struct Pending {
    pub seq: u64,
    pub change: Change,
    /// Settled when the change is published (true) or rolled back (false); none for expiries.
    pub ticket: Option<Arc<Ticket>>,
}

/// What a pending change does.
#[derive(Debug)]
pub(super) enum Change {
    /// The task's new state (created or changed), with its token.
    Put { task: Arc<Task>, token: Option<Arc<str>> },
    /// The task goes: deleted (its viewers are told), or past its retention.
    Remove { task_id: String, expired: bool },
}

/// The newest accepted state of a task with a pending change.
#[derive(Debug)]
pub(super) struct Accepted {
    /// The number of that change.
    pub seq: u64,
    /// The task and its token, or `None` when the change removes it.
    pub now: Option<(Arc<Task>, Option<Arc<str>>)>,
}

/// The answer to a change waiting to be durable: settled once, waited on by one caller.
#[derive(Debug, Default)]
pub struct Ticket {
    state: Mutex<TicketState>,
    settled: Condvar,
}

#[derive(Debug, Default)]
struct TicketState {
    outcome: Option<bool>,
    /// An awaiting request's waker.
    waker: Option<Waker>,
    /// A blocked library call waits on the condition variable (only then is it notified: a
    /// notify is a system call, and most tickets are awaited).
    blocked: bool,
}

impl Ticket {
    fn settle(&self, durable: bool) {
        let (waker, blocked) = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.outcome = Some(durable);
            (state.waker.take(), state.blocked)
        };
        if blocked {
            self.settled.notify_all();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Blocks until the change is durable (true) or rolled back (false).
    pub(crate) fn wait(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(durable) = state.outcome {
                return durable;
            }
            state.blocked = true;
            state = self.settled.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits, without blocking the thread, until the change is durable (true) or rolled back.
    pub(crate) async fn settled(&self) -> bool {
        poll_fn(|cx| {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match state.outcome {
                Some(durable) => Poll::Ready(durable),
                None => {
                    state.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// What the store's thread holds of the tracker: a weak reference, so a tracker dropped ends
/// its store (and the store's thread) rather than being kept alive by it.
///
/// Tickets are settled only after the reference upgraded for the work is dropped again: a
/// caller that drops the tracker once answered then drops the last reference itself, so the
/// store closes on the caller's thread and its `Drop` can wait for the file and lock to close.
pub(super) struct Committer(pub Weak<Inner>);

impl Commits for Committer {
    fn durable(&self, seq: u64) {
        let tickets = match self.0.upgrade() {
            Some(inner) => ProgressTracker { inner }.publish_durable(seq),
            None => return,
        };
        tickets.iter().for_each(|t| t.settle(true));
    }

    fn failed(&self) {
        let tickets = match self.0.upgrade() {
            Some(inner) => ProgressTracker { inner }.roll_back(),
            None => return,
        };
        tickets.iter().for_each(|t| t.settle(false));
    }

    fn snapshot(&self) -> Option<Snapshot> {
        let tracker = ProgressTracker { inner: self.0.upgrade()? };
        let state = tracker.lock();
        let tasks = state.tasks.values().map(|e| (Arc::clone(&e.task), e.subscribe_token.clone(), e.seq)).collect();
        Some(Snapshot { tasks, last_seq: tracker.published_seq() })
    }
}

impl ProgressTracker {
    /// Holds change `seq` back until it is durable (see the module docs); the caller's ticket.
    pub(super) fn accept(&self, state: &mut State, seq: u64, change: Change) -> Arc<Ticket> {
        let (task_id, now) = match &change {
            Change::Put { task, token } => {
                state.reserved_bytes += result_len(task);
                (task.task_id.clone(), Some((Arc::clone(task), token.clone())))
            }
            Change::Remove { task_id, .. } => (task_id.clone(), None),
        };
        state.accepted.insert(task_id, Accepted { seq, now });
        let ticket = Arc::new(Ticket::default());
        state.pending.push_back(Pending { seq, change, ticket: Some(Arc::clone(&ticket)) });
        ticket
    }

    /// The newest accepted state of a task: its pending change's, else the one viewers see.
    /// `None` when there is no such task (or its pending change removes it).
    pub(super) fn accepted_task(state: &State, task_id: &str) -> Option<(Arc<Task>, Option<Arc<str>>)> {
        match state.accepted.get(task_id) {
            Some(accepted) => accepted.now.clone(),
            None => state.tasks.get(task_id).map(|e| (Arc::clone(&e.task), e.subscribe_token.clone())),
        }
    }

    /// Applies and publishes every pending change up to `through`; gives their tickets, to be
    /// settled by the caller once it has let go of the tracker.
    fn publish_durable(&self, through: u64) -> Vec<Arc<Ticket>> {
        let mut tickets = Vec::new();
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            while state.pending.front().is_some_and(|p| p.seq <= through) {
                let Pending { seq, change, ticket } = state.pending.pop_front().expect("front checked");
                let task_id = match &change {
                    Change::Put { task, .. } => task.task_id.as_str(),
                    Change::Remove { task_id, .. } => task_id.as_str(),
                };
                if state.accepted.get(task_id).is_some_and(|a| a.seq == seq) {
                    state.accepted.remove(task_id);
                }
                match change {
                    Change::Put { task, token } => {
                        state.reserved_bytes -= result_len(&task);
                        if !state.tasks.contains_key(&task.task_id) {
                            // Only a create publishes a task not held.
                            state.reserved_tasks -= 1;
                        }
                        self.publish_put(state, seq, task, token)
                    }
                    Change::Remove { task_id, expired } => self.publish_remove(state, seq, &task_id, expired),
                }
                tickets.extend(ticket);
            }
        }
        tickets
    }

    /// Drops every pending change; their numbers are issued again (see the module docs). Gives
    /// their tickets, to be settled as refused by the caller once it has let go of the tracker.
    fn roll_back(&self) -> Vec<Arc<Ticket>> {
        let pending: VecDeque<Pending> = {
            let mut state = self.lock();
            state.accepted.clear();
            state.reserved_bytes = 0;
            state.reserved_tasks = 0;
            state.seq = self.published_seq();
            let pending = std::mem::take(&mut state.pending);
            // An expiry rolled back is due again at once (its task is as it was, published).
            for p in &pending {
                if let Change::Remove { task_id, expired: true } = &p.change
                    && let Some(entry) = state.tasks.get(task_id)
                {
                    let finished = entry.seq;
                    state.expiry.push_front((0, task_id.clone(), finished));
                }
            }
            pending
        };
        pending.into_iter().filter_map(|p| p.ticket).collect()
    }

    /// Applies a durable new state of a task, as the memory store's changes are applied at once.
    fn publish_put(&self, state: &mut State, seq: u64, task: Arc<Task>, token: Option<Arc<str>>) {
        if !self.publish_held(state, seq, Arc::clone(&task)) {
            let frame = Arc::new(Frame::change(seq, task.event_id, &task.to_json(), task.status.is_terminal()));
            let topic = Arc::new(Topic::new(Arc::clone(&frame)));
            self.announce(seq, None, Arc::clone(&frame));
            state.hold(&task);
            state.changed(None, &frame);
            let entry = super::Entry { task: Arc::clone(&task), topic, subscribe_token: token, seq, frame };
            state.tasks.insert(task.task_id.clone(), entry);
        }
    }

    /// Applies a durable removal of a task.
    fn publish_remove(&self, state: &mut State, seq: u64, task_id: &str, expired: bool) {
        let Some(entry) = state.tasks.remove(task_id) else {
            self.removed(state, seq, task_id, None);
            return;
        };
        state.changed.remove(&entry.seq);
        let wakes = (!expired).then(|| entry.topic.append(Frame::deleted(seq, task_id)));
        self.removed(state, seq, task_id, wakes);
        state.release(&entry.task);
    }
}
