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

use std::io;

use crate::task::Task;

/// Receives every change of the tracker, in order.
pub trait TaskStore: Send + Sync + std::fmt::Debug + 'static {
    /// Records the new state of a task (created or changed) as change `seq`.
    fn save(&self, task: &Task, seq: u64) -> io::Result<()>;
    /// Records that a task is gone (deleted, or past its retention) as change `seq`.
    fn remove(&self, task_id: &str, seq: u64) -> io::Result<()>;
    /// The tasks to start with, and where the change sequence stands.
    fn load(&self) -> io::Result<Loaded>;
}

/// What a store holds at start.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Loaded {
    /// Each task with the change sequence number of its last change.
    pub tasks: Vec<(Task, u64)>,
    /// The last change sequence number issued (at least that of every task): the next change
    /// takes the one after it, or after the clock's start if that is further. Below 2^57, like
    /// every task's number, or the tracker refuses to load.
    pub last_seq: u64,
}

/// Keeps nothing: tasks live as long as the process.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryStore;

impl TaskStore for MemoryStore {
    fn save(&self, _task: &Task, _seq: u64) -> io::Result<()> {
        Ok(())
    }
    fn remove(&self, _task_id: &str, _seq: u64) -> io::Result<()> {
        Ok(())
    }
    fn load(&self) -> io::Result<Loaded> {
        Ok(Loaded::default())
    }
}
