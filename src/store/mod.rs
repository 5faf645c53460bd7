//! Where tasks live beyond memory: the seam for a durable journal and a Redis backplane.
//!
//! The tracker keeps every live task in memory (viewers need the current state without I/O)
//! and tells its store about each change after applying it, under the tracker's lock, so the
//! store sees changes in the order viewers do. A store that persists loads its tasks back at
//! start. [`MemoryStore`] persists nothing and is the default.

use std::io;

use crate::task::Task;

/// Receives every change of the tracker, in order.
pub trait TaskStore: Send + Sync + std::fmt::Debug + 'static {
    /// Records the new state of a task (created or changed).
    fn save(&self, task: &Task) -> io::Result<()>;
    /// Records that a task is gone (deleted, or past its retention).
    fn remove(&self, task_id: &str) -> io::Result<()>;
    /// The tasks to start with.
    fn load(&self) -> io::Result<Vec<Task>>;
}

/// Keeps nothing: tasks live as long as the process.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryStore;

impl TaskStore for MemoryStore {
    fn save(&self, _task: &Task) -> io::Result<()> {
        Ok(())
    }
    fn remove(&self, _task_id: &str) -> io::Result<()> {
        Ok(())
    }
    fn load(&self) -> io::Result<Vec<Task>> {
        Ok(Vec::new())
    }
}
