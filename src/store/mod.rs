//! Where tasks live beyond memory: the seam for a durable journal and a Redis backplane.
//!
//! The tracker keeps every live task in memory (viewers need the current state without I/O)
//! and tells its store about each change after applying it, under the tracker's lock, so the
//! store sees changes in the order viewers do. A store that persists loads its tasks back at
//! start. [`MemoryStore`] persists nothing and is the default.
//!
//! Every change of any task (create, update, complete, fail, delete, expiry) takes the next
//! number of one server-wide change sequence, which streams of many tasks send as their `id:`
//! and resume from. So the store is handed that number with each change, and gives back the last
//! one it saw: after a restart (the journal) or on another server (Redis) the sequence goes on
//! where it was, and a browser's `Last-Event-ID` still places it. A store that keeps no sequence
//! (the memory store) gives 0, and the tracker starts from the clock instead, so its numbers still
//! exceed those of the process before the restart (`tracker.rs`). A change the store refuses uses
//! up no number.

//!
//! A store that writes to disk makes changes durable in batches, later than `save` returns (one
//! `fsync` for every change waiting, `file.rs`). Such a store says so by taking a [`Commits`] in
//! [`TaskStore::start`]: the tracker then holds each change back from viewers and from its answer
//! until the store reports it durable, or rolls it back when the store reports a failure.

mod file;
mod journal;

pub use file::{FileStore, Fsync};

use std::io;
use std::sync::Arc;

use crate::task::Task;

/// Receives every change of the tracker, in order.
pub trait TaskStore: Send + Sync + std::fmt::Debug + 'static {
    /// Records the new state of a task (created or changed), with the token its viewers must
    /// show, as change `seq`.
    fn save(&self, task: &Task, subscribe_token: Option<&str>, seq: u64) -> io::Result<()>;
    /// Records that a task is gone (deleted, or past its retention) as change `seq`.
    fn remove(&self, task_id: &str, seq: u64) -> io::Result<()>;
    /// The tasks to start with, and where the change sequence stands.
    fn load(&self) -> io::Result<Loaded>;
    /// Called once, after `load`. A store whose `save` and `remove` are durable when they return
    /// answers false (the default) and the tracker publishes each change at once. A store that
    /// makes them durable later keeps `commits` and answers true: it then calls
    /// [`Commits::durable`] or [`Commits::failed`] for every change it was given, in order, from
    /// a thread of its own, and never while the caller of `save` waits on it.
    fn start(&self, commits: Box<dyn Commits>) -> bool {
        let _ = commits;
        false
    }
}

/// How a store that commits later reports to its tracker.
pub trait Commits: Send + Sync {
    /// Every change up to `seq` is durable: publish them.
    fn durable(&self, seq: u64);
    /// The changes after the last durable one could not be made durable: roll them back. Until
    /// this returns, the store refuses new changes.
    fn failed(&self);
    /// The durable tasks (every change up to the last reported durable), to write a snapshot of;
    /// `None` once the tracker is gone, when there is nothing to write a snapshot of (an empty one
    /// would drop every task the journal holds).
    fn snapshot(&self) -> Option<Snapshot>;
}

/// The live tasks of a tracker, shared, for a store's snapshot.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Each task with its subscribe token and the change sequence number of its last change.
    pub tasks: Vec<(Arc<Task>, Option<Arc<str>>, u64)>,
    /// The last change sequence number published.
    pub last_seq: u64,
}

/// A task as a store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTask {
    /// The task.
    pub task: Task,
    /// The token its viewers must show, if the server asked tokens when it was made.
    pub subscribe_token: Option<String>,
    /// The change sequence number of its last change.
    pub seq: u64,
}

/// What a store holds at start.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Loaded {
    /// Each task with its token and the change sequence number of its last change.
    pub tasks: Vec<StoredTask>,
    /// The last change sequence number issued (at least that of every task): the next change
    /// takes the one after it, or after the clock's start if that is further. Below 2^57, like
    /// every task's number, or the tracker refuses to load.
    pub last_seq: u64,
}

/// Keeps nothing: tasks live as long as the process.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryStore;

impl TaskStore for MemoryStore {
    fn save(&self, _task: &Task, _subscribe_token: Option<&str>, _seq: u64) -> io::Result<()> {
        Ok(())
    }
    fn remove(&self, _task_id: &str, _seq: u64) -> io::Result<()> {
        Ok(())
    }
    fn load(&self) -> io::Result<Loaded> {
        Ok(Loaded::default())
    }
}
