//! `ProgressTracker`: the live tasks, their changes, and the topic each change is published to.
//!
//! One std `Mutex` guards the task map; nothing awaits while it is held, and a change holds it
//! only to apply the change, encode the one frame every viewer will share, and hand the frame to
//! the task's topic (which wakes viewers after its own lock is released). The fan-out itself runs
//! in the viewers' tasks, so a producer never waits for it.
//!
//! Readers hold the lock only to copy what they need: an `Arc` of the task (GET, the list, which
//! serialize after the lock is released) or a few fields (HEAD). Counts by status and the bytes of
//! held results are kept as tasks change, so health never walks the map and the result bound is
//! one comparison.
//!
//! Every change of any task also takes the next number of the server-wide change sequence
//! (`State::seq`), which streams of many tasks send as `id:`. Each change is published to its
//! task's topic and to the feed (`feed.rs`), the topic of every change; only then is its
//! number stored in `published`, and only then are the viewers woken. A stream of many tasks
//! that reads that number knows every change up to it is in its topic, which is what lets it
//! merge topics in change order; and a viewer woken finds the change counted.
//!
//! The sequence goes on from where the store says it stood, and never starts below the clock
//! (milliseconds times 1,024): a server that keeps nothing (the memory store) starts again above
//! every number it issued before a restart, unless it averaged more than 1,024 changes a
//! millisecond, so a `Last-Event-ID` from before the restart still places the client before
//! every change the new process made, and no task is left without its snapshot.
//!
//! A viewer is given a task's topic only with the token checked against that same task: both
//! are copied out under one take of the lock and compared after it, so a task deleted and made
//! again with the same id in between cannot be reached with the old task's token. A list of
//! tasks is looked up under one take, whatever its length.

mod commit;
mod feed;
pub(crate) mod probe;

pub(crate) use commit::Ticket;

pub(crate) use feed::FeedStart;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::log::Ns;
use crate::log::debug;
use crate::random::TOKEN_LEN;
use crate::sse::encoder::Frame;
use crate::sse::topic::{Topic, Wakes};
use crate::store::{Loaded, MemoryStore, StoredTask, TaskStore};
use crate::task::{JsonText, NewTask, Task, TaskStatus, TaskUpdate, sanitize_error, validate_result, validate_task_id};

/// Most tasks `list_tasks` returns.
pub const MAX_LIST: usize = 1000;

/// Change sequence numbers stay below this: streams of many tasks order their members by
/// `number << 7 | member` in a `u64` (`sse/multi.rs`). A store that gives a number at or above it
/// is refused at load.
pub(crate) const SEQ_LIMIT: u64 = 1 << 57;
/// Bits below the clock in the first number of a sequence that starts from the clock.
const CLOCK_SHIFT: u32 = 10;
/// The clock, in milliseconds, is taken as at most this, so a sequence started from it keeps
/// half of the numbers below [`SEQ_LIMIT`] for its changes.
const CLOCK_LIMIT_MS: u64 = SEQ_LIMIT >> (CLOCK_SHIFT + 1);

/// The live tasks; cheap to clone (all clones share the same tasks).
#[derive(Clone, Debug)]
pub struct ProgressTracker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    store: Box<dyn TaskStore>,
    /// The store makes changes durable later: they wait in `State::pending` (`commit.rs`).
    deferred: bool,
    state: Mutex<State>,
    /// The newest change sequence number whose frames are in their topics (stored with Release
    /// after the publish, under the lock, so it only grows).
    published: AtomicU64,
    /// Every change of every task, for the stream of all tasks.
    feed: Arc<Topic>,
}

#[derive(Debug, Default)]
struct State {
    tasks: HashMap<String, Entry>,
    /// Finished tasks in the order they finished, with the time they may be removed and the
    /// change number that finished them (a task deleted and made anew under the same id has
    /// another, so an old entry never removes it). Retention is one fixed duration, so finish
    /// order is expiry order.
    expiry: VecDeque<(u64, String, u64)>,
    /// The held tasks by status, kept with every change so health never walks the map.
    counts: TaskCounts,
    /// Bytes of every held `result`, bounded by `Config::max_result_bytes`.
    result_bytes: usize,
    /// The last change sequence number issued.
    seq: u64,
    /// Each held task's newest frame, by the change sequence number of its last change: what a
    /// resync of the stream of all tasks reads from its resume point on, without a walk over
    /// every task.
    changed: BTreeMap<u64, Arc<Frame>>,
    /// Recent removals, for the stream of all tasks.
    removals: feed::Removals,
    /// With a store that commits later: changes accepted, not yet durable, in change order.
    pending: VecDeque<commit::Pending>,
    /// With a store that commits later: the newest accepted state of each task with a pending
    /// change.
    accepted: HashMap<String, commit::Accepted>,
    /// With a store that commits later: bytes of the results of pending changes, and the number
    /// of pending creates, counted with the held ones against `Config::max_result_bytes` and
    /// `Config::max_tasks` (released when published or rolled back), so changes waiting in one
    /// batch cannot pass the limits together.
    reserved_bytes: usize,
    reserved_tasks: usize,
}

impl State {
    /// Counts a task that is now held (created, loaded, or the new state of a change).
    fn hold(&mut self, task: &Task) {
        self.counts.total += 1;
        *self.counts.of(task.status) += 1;
        self.result_bytes += result_len(task);
    }

    /// Stops counting a task that is no longer held (removed, or the old state of a change).
    fn release(&mut self, task: &Task) {
        self.counts.total -= 1;
        *self.counts.of(task.status) -= 1;
        self.result_bytes -= result_len(task);
    }

    /// Records that a task's newest change is now `frame`, replacing change `old` if it had one.
    fn changed(&mut self, old: Option<u64>, frame: &Arc<Frame>) {
        if let Some(old) = old {
            self.changed.remove(&old);
        }
        self.changed.insert(frame.seq, Arc::clone(frame));
    }
}

fn result_len(task: &Task) -> usize {
    task.result.as_ref().map_or(0, |r| r.as_str().len())
}

/// A task is held behind an `Arc`: readers clone the `Arc` under the lock and serialize after it,
/// and a change replaces the `Arc` (a result, once set, is never copied again).
#[derive(Debug)]
struct Entry {
    task: Arc<Task>,
    topic: Arc<Topic>,
    /// What a viewer must show when the server requires subscribe tokens (shared, so checking
    /// it copies no bytes under the lock).
    subscribe_token: Option<Arc<str>>,
    /// The change sequence number of the task's last change.
    seq: u64,
    /// The frame of that change (the topic's newest frame, read without the topic's lock).
    frame: Arc<Frame>,
}

/// Counts of tasks by status, for health and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// All tasks held.
    pub total: usize,
    /// Pending.
    pub pending: usize,
    /// Running.
    pub running: usize,
    /// Completed.
    pub completed: usize,
    /// Failed.
    pub failed: usize,
}

impl TaskCounts {
    fn of(&mut self, status: TaskStatus) -> &mut usize {
        match status {
            TaskStatus::Pending => &mut self.pending,
            TaskStatus::Running => &mut self.running,
            TaskStatus::Completed => &mut self.completed,
            TaskStatus::Failed => &mut self.failed,
        }
    }
}

/// What `HEAD` shows of a task, read under the lock without copying the task (or its result).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TaskSummary {
    /// Where the task is in its life.
    pub status: TaskStatus,
    /// 0 to 100.
    pub progress: f64,
    /// Short label of the current step.
    pub stage: String,
    /// Sequence number of the last change.
    pub event_id: u64,
    /// Milliseconds since the Unix epoch.
    pub updated_at: u64,
}

/// Why a viewer may not follow a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No task has this id (said only when the server asks no token).
    NotFound,
    /// The token shown is not the task's, or no task has this id (tokens asked).
    TokenInvalid,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Where the change sequence starts when the store gives no later number: the clock (see the
/// module docs).
fn clock_start() -> u64 {
    now_ms().min(CLOCK_LIMIT_MS) << CLOCK_SHIFT
}

impl ProgressTracker {
    /// A tracker that keeps tasks in memory.
    pub fn new(config: Config) -> ProgressTracker {
        Self::with_store(config, Box::new(MemoryStore)).expect("the memory store loads nothing")
    }

    /// A tracker backed by `store`, starting from the tasks it loads.
    ///
    /// With a store that commits later (`FileStore`), every change call waits until its change
    /// is durable: the library calls (`create_task`, `update_task`...) block their thread for
    /// about one `fdatasync`, so call them from a thread that may block, not from an async task.
    /// Finished tasks loaded past their retention are removed at once.
    pub fn with_store(config: Config, store: Box<dyn TaskStore>) -> std::io::Result<ProgressTracker> {
        let Loaded { tasks, last_seq } = store.load()?;
        let mut state = State { seq: last_seq.max(clock_start()), ..State::default() };
        let now = now_ms();
        for StoredTask { task, subscribe_token, seq } in tasks {
            let terminal = task.status.is_terminal();
            state.seq = state.seq.max(seq);
            if terminal && expires_at(task.updated_at, &config) <= now {
                // Never shown: its removal goes out with the store's first batch.
                state.seq += 1;
                let _ = store.remove(&task.task_id, state.seq);
                continue;
            }
            let frame = Arc::new(Frame::change(seq, task.event_id, &task.to_json(), terminal));
            if terminal {
                state.expiry.push_back((expires_at(task.updated_at, &config), task.task_id.clone(), seq));
            }
            state.hold(&task);
            state.changed(None, &frame);
            let topic = Arc::new(Topic::new(Arc::clone(&frame)));
            let subscribe_token = subscribe_token.map(Arc::from);
            let entry = Entry { topic, task: Arc::new(task), subscribe_token, seq, frame };
            state.tasks.insert(entry.task.task_id.clone(), entry);
        }
        if state.seq >= SEQ_LIMIT {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the store's change sequence is at {}, not below 2^57, the most a stream of many tasks can order",
                    state.seq
                ),
            ));
        }
        let inner = Arc::new_cyclic(|weak| {
            // The store's thread reports nothing before it has been given a change, and none can
            // be given before this returns.
            let deferred = store.start(Box::new(commit::Committer(weak.clone())));
            Inner {
                config,
                store,
                deferred,
                published: AtomicU64::new(state.seq),
                feed: Arc::new(Topic::new(feed::start(state.seq))),
                state: Mutex::new(state),
            }
        });
        Ok(ProgressTracker { inner })
    }

    /// The settings this tracker (and a server of it) runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        probe::taking();
        // Every change is applied whole before anything can panic, so a poisoned lock is usable.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a pending task with a first stage label.
    pub fn create_task(&self, task_id: &str, stage: &str) -> Result<Arc<Task>> {
        let new = NewTask { task_id: Some(task_id.to_owned()), stage: stage.to_owned(), message: String::new() };
        self.create(new)
    }

    /// Creates a task from a producer's request; makes an unguessable id when none is given.
    pub fn create(&self, new: NewTask) -> Result<Arc<Task>> {
        settle(self.create_with_token(new)).map(|(task, _)| task)
    }

    /// Creates a task; gives it with its subscribe token, and the ticket to wait on when the
    /// store commits later.
    pub(crate) fn create_with_token(&self, new: NewTask) -> Result<Held<Created>> {
        let task_id = match new.task_id {
            Some(id) => {
                validate_task_id(&id)?;
                id
            }
            None => crate::random::token(),
        };
        crate::task::validate_len("stage", &new.stage, crate::task::MAX_STAGE)?;
        crate::task::validate_len("message", &new.message, crate::task::MAX_MESSAGE)?;
        let mut state = self.lock();
        self.expire(&mut state, now_ms());
        if self.inner.deferred {
            return self.create_deferred(&mut state, task_id, new.stage, new.message);
        }
        if state.tasks.contains_key(&task_id) {
            return Err(Error::new(ErrorKind::TaskExists, "A task with this id exists already."));
        }
        if state.tasks.len() >= self.inner.config.max_tasks {
            return Err(Error::new(
                ErrorKind::TooManyTasks,
                "The server holds as many tasks as it may; try again later.",
            ));
        }
        // A task that could not keep its result is refused now, not after its work is done.
        if state.result_bytes >= self.inner.config.max_result_bytes {
            return Err(result_space_exhausted());
        }
        let task = Arc::new(Task::new(task_id, new.stage, new.message, now_ms()));
        let subscribe_token: Option<Arc<str>> =
            self.inner.config.require_subscribe_token.then(|| crate::random::token().into());
        let seq = state.seq + 1;
        self.save(&task, subscribe_token.as_deref(), seq)?;
        state.seq = seq;
        let frame = Arc::new(Frame::change(seq, task.event_id, &task.to_json(), false));
        let topic = Arc::new(Topic::new(Arc::clone(&frame)));
        self.announce(seq, None, Arc::clone(&frame));
        debug!(Ns::Tracker, "create {} (change {seq})", task.task_id);
        state.hold(&task);
        state.changed(None, &frame);
        let entry = Entry { task: Arc::clone(&task), topic, subscribe_token: subscribe_token.clone(), seq, frame };
        state.tasks.insert(task.task_id.clone(), entry);
        Ok(((task, subscribe_token), None))
    }

    /// `create` with a store that commits later: checked against the accepted states.
    fn create_deferred(
        &self,
        state: &mut State,
        task_id: String,
        stage: String,
        message: String,
    ) -> Result<Held<Created>> {
        if Self::accepted_task(state, &task_id).is_some() {
            return Err(Error::new(ErrorKind::TaskExists, "A task with this id exists already."));
        }
        if state.tasks.len() + state.reserved_tasks >= self.inner.config.max_tasks {
            return Err(Error::new(
                ErrorKind::TooManyTasks,
                "The server holds as many tasks as it may; try again later.",
            ));
        }
        if state.result_bytes + state.reserved_bytes >= self.inner.config.max_result_bytes {
            return Err(result_space_exhausted());
        }
        let task = Arc::new(Task::new(task_id, stage, message, now_ms()));
        let token: Option<Arc<str>> = self.inner.config.require_subscribe_token.then(|| crate::random::token().into());
        let seq = state.seq + 1;
        self.save(&task, token.as_deref(), seq)?;
        state.seq = seq;
        debug!(Ns::Tracker, "create {} (change {seq}, pending)", task.task_id);
        state.reserved_tasks += 1;
        let ticket = self.accept(state, seq, commit::Change::Put { task: Arc::clone(&task), token: token.clone() });
        Ok(((task, token), Some(ticket)))
    }

    /// Applies a progress update to a pending or running task.
    pub fn update_task(&self, task_id: &str, update: TaskUpdate) -> Result<Arc<Task>> {
        settle(self.update_held(task_id, update))
    }

    /// `update_task`, with the ticket to wait on when the store commits later.
    pub(crate) fn update_held(&self, task_id: &str, update: TaskUpdate) -> Result<Held<Arc<Task>>> {
        update.validate()?;
        self.change(task_id, |task, now| task.apply(&update, now))
    }

    /// Completes a task with a result: progress 100, terminal.
    pub fn complete_task(&self, task_id: &str, result: Value) -> Result<Arc<Task>> {
        self.complete_task_raw(task_id, JsonText::from_value(&result))
    }

    /// Completes a task with a result already held as JSON text (as a producer sent it).
    pub fn complete_task_raw(&self, task_id: &str, result: JsonText) -> Result<Arc<Task>> {
        settle(self.complete_held(task_id, result))
    }

    /// `complete_task_raw`, with the ticket to wait on when the store commits later.
    pub(crate) fn complete_held(&self, task_id: &str, result: JsonText) -> Result<Held<Arc<Task>>> {
        validate_result(&result)?;
        self.change(task_id, |task, now| task.complete(result, now))
    }

    /// Fails a task with an error text (sanitized): terminal, progress kept.
    pub fn fail_task(&self, task_id: &str, error: &str) -> Result<Arc<Task>> {
        settle(self.fail_held(task_id, error))
    }

    /// `fail_task`, with the ticket to wait on when the store commits later.
    pub(crate) fn fail_held(&self, task_id: &str, error: &str) -> Result<Held<Arc<Task>>> {
        let error = sanitize_error(error);
        self.change(task_id, |task, now| task.fail(error, now))
    }

    /// Applies one change: checks, mutates, bumps the event id, stores, publishes.
    fn change(&self, task_id: &str, apply: impl FnOnce(&mut Task, u64)) -> Result<Held<Arc<Task>>> {
        validate_task_id(task_id)?;
        let now = now_ms();
        let mut guard = self.lock();
        self.expire(&mut guard, now);
        let state = &mut *guard;
        if self.inner.deferred {
            return self.change_deferred(state, task_id, now, apply);
        }
        let entry = state.tasks.get_mut(task_id).ok_or_else(Error::task_not_found)?;
        if entry.task.status.is_terminal() {
            return Err(Error::new(ErrorKind::TaskFinished, "The task has finished; it takes no more changes."));
        }
        // Not finished, so the task has no result yet and this copy is small.
        let mut task = Task::clone(&entry.task);
        apply(&mut task, now);
        let added = result_len(&task);
        if added > 0 && state.result_bytes.saturating_add(added) > self.inner.config.max_result_bytes {
            return Err(result_space_exhausted());
        }
        task.event_id += 1;
        let seq = state.seq + 1;
        self.save(&task, entry.subscribe_token.as_deref(), seq)?;
        state.seq = seq;
        let task = Arc::new(task);
        self.publish_held(state, seq, Arc::clone(&task));
        debug!(
            Ns::Tracker,
            "{task_id} event {} (change {seq}) {} {}",
            task.event_id,
            task.status.as_str(),
            task.progress
        );
        Ok((task, None))
    }

    /// `change` with a store that commits later: applied to the task's newest accepted state.
    fn change_deferred(
        &self,
        state: &mut State,
        task_id: &str,
        now: u64,
        apply: impl FnOnce(&mut Task, u64),
    ) -> Result<Held<Arc<Task>>> {
        let (current, token) = Self::accepted_task(state, task_id).ok_or_else(Error::task_not_found)?;
        if current.status.is_terminal() {
            return Err(Error::new(ErrorKind::TaskFinished, "The task has finished; it takes no more changes."));
        }
        let mut task = Task::clone(&current);
        apply(&mut task, now);
        let added = result_len(&task);
        let held = state.result_bytes + state.reserved_bytes;
        if added > 0 && held.saturating_add(added) > self.inner.config.max_result_bytes {
            return Err(result_space_exhausted());
        }
        task.event_id += 1;
        let seq = state.seq + 1;
        self.save(&task, token.as_deref(), seq)?;
        state.seq = seq;
        let task = Arc::new(task);
        debug!(Ns::Tracker, "{task_id} event {} (change {seq}, pending)", task.event_id);
        let ticket = self.accept(state, seq, commit::Change::Put { task: Arc::clone(&task), token });
        Ok((task, Some(ticket)))
    }

    /// The current state of a task.
    pub fn get_task(&self, task_id: &str) -> Option<Arc<Task>> {
        self.lock().tasks.get(task_id).map(|e| Arc::clone(&e.task))
    }

    /// The few fields `HEAD` shows, to a viewer who shows `shown` (`None`: the server asks no
    /// token): read with the task's token under one take of the lock (see the module docs).
    pub(crate) fn summary(&self, task_id: &str, shown: Option<&str>) -> std::result::Result<TaskSummary, Denied> {
        let found = self.lock().tasks.get(task_id).map(|e| {
            let summary = TaskSummary {
                status: e.task.status,
                progress: e.task.progress,
                stage: e.task.stage.clone(),
                event_id: e.task.event_id,
                updated_at: e.task.updated_at,
            };
            (summary, e.subscribe_token.clone())
        });
        admitted(found, shown)
    }

    /// The topics of `wanted`, each a task id with the token its viewer shows (`None`: the server
    /// asks no token), or why each is refused; every task looked up under one take of the lock,
    /// with its token, and the tokens compared after it (see the module docs).
    pub(crate) fn follow(&self, wanted: &[(&str, Option<&str>)]) -> Vec<std::result::Result<Arc<Topic>, Denied>> {
        let mut found = Vec::with_capacity(wanted.len());
        {
            let state = self.lock();
            let entry = |id: &str| state.tasks.get(id).map(|e| (Arc::clone(&e.topic), e.subscribe_token.clone()));
            found.extend(wanted.iter().map(|(id, _)| entry(id)));
        }
        wanted.iter().zip(found).map(|((_, shown), found)| admitted(found, *shown)).collect()
    }

    /// Tasks, newest first, at most 1,000.
    pub fn list_tasks(&self) -> Vec<Arc<Task>> {
        newest(&self.lock()).into_iter().map(|e| Arc::clone(&e.task)).collect()
    }

    /// Removes a task; its open streams get `event: error` `task_deleted` and end.
    pub fn delete_task(&self, task_id: &str) -> Result<()> {
        settle(self.delete_held(task_id))
    }

    /// `delete_task`, with the ticket to wait on when the store commits later.
    pub(crate) fn delete_held(&self, task_id: &str) -> Result<Held<()>> {
        validate_task_id(task_id)?;
        let mut state = self.lock();
        if self.inner.deferred {
            Self::accepted_task(&state, task_id).ok_or_else(Error::task_not_found)?;
            let seq = state.seq + 1;
            self.remove_stored(task_id, seq)?;
            state.seq = seq;
            let change = commit::Change::Remove { task_id: task_id.to_owned(), expired: false };
            return Ok(((), Some(self.accept(&mut state, seq, change))));
        }
        let entry = state.tasks.remove(task_id).ok_or_else(Error::task_not_found)?;
        let seq = state.seq + 1;
        if let Err(e) = self.remove_stored(task_id, seq) {
            state.tasks.insert(task_id.to_owned(), entry);
            return Err(e);
        }
        state.seq = seq;
        state.changed.remove(&entry.seq);
        let wakes = entry.topic.append(Frame::deleted(seq, task_id));
        self.removed(&mut state, seq, task_id, Some(wakes));
        state.release(&entry.task);
        debug!(Ns::Tracker, "delete {task_id} (change {seq})");
        Ok(((), None))
    }

    /// Whether a task with this id is held.
    pub fn contains(&self, task_id: &str) -> bool {
        self.lock().tasks.contains_key(task_id)
    }

    /// The token viewers of this task must show (only with `require_subscribe_token`).
    pub fn subscribe_token(&self, task_id: &str) -> Option<String> {
        self.lock().tasks.get(task_id).and_then(|e| e.subscribe_token.as_deref().map(str::to_owned))
    }

    /// Whether `given` is the task's subscribe token (true for a task that has none), compared
    /// in constant time; false for an unknown task, after a comparison as long as for a known
    /// one, so neither the answer nor its timing tells whether the task exists.
    pub fn subscribe_token_matches(&self, task_id: &str, given: &str) -> bool {
        let found = self.lock().tasks.get(task_id).map(|e| ((), e.subscribe_token.clone()));
        admitted(found, Some(given)).is_ok()
    }

    /// The task's topic, to follow its changes.
    #[doc(hidden)]
    pub fn topic(&self, task_id: &str) -> Option<Arc<Topic>> {
        self.lock().tasks.get(task_id).map(|e| Arc::clone(&e.topic))
    }

    /// The topic of every change of every task (the stream of all tasks follows it).
    #[doc(hidden)]
    pub fn feed_topic(&self) -> Arc<Topic> {
        Arc::clone(&self.inner.feed)
    }

    /// Counts by status, kept as tasks change (no walk over the tasks).
    pub fn counts(&self) -> TaskCounts {
        self.lock().counts
    }

    /// Bytes of every `result` held, as counted against `Config::max_result_bytes`.
    pub fn result_bytes(&self) -> usize {
        self.lock().result_bytes
    }

    /// Removes finished tasks whose retention has passed; returns how many.
    pub fn remove_expired(&self) -> usize {
        let mut state = self.lock();
        self.expire(&mut state, now_ms())
    }

    fn expire(&self, state: &mut State, now: u64) -> usize {
        let mut removed = 0;
        // Entries still due that wait for a pending change of their task, or that the store
        // refused: put back in front afterwards, so they are tried again at the next call.
        let mut kept = Vec::new();
        while let Some((at, _, _)) = state.expiry.front() {
            if *at > now {
                break;
            }
            let (at, id, finished) = state.expiry.pop_front().expect("front checked");
            // Only the finished state the entry was made for is removed: a task deleted (and
            // perhaps made anew, perhaps finished again) since is not this entry's to remove.
            if !state.tasks.get(&id).is_some_and(|e| e.seq == finished && e.task.status.is_terminal()) {
                continue;
            }
            if self.inner.deferred {
                // Removed once durable, like any change. A task with a pending change (a delete,
                // then perhaps a new task of the same id) is decided when that change is: the
                // entry waits, and goes at a later call if the task it was made for is gone.
                if state.accepted.contains_key(&id) || self.inner.store.remove(&id, state.seq + 1).is_err() {
                    kept.push((at, id, finished));
                    continue;
                }
                state.seq += 1;
                let seq = state.seq;
                let change = commit::Change::Remove { task_id: id, expired: true };
                let ticket = self.accept(state, seq, change);
                drop(ticket);
                removed += 1;
                continue;
            }
            let entry = state.tasks.remove(&id).expect("the entry was just seen");
            state.release(&entry.task);
            state.changed.remove(&entry.seq);
            // The task goes from memory whatever the store says, so the change counts.
            state.seq += 1;
            let _ = self.inner.store.remove(&id, state.seq);
            let seq = state.seq;
            self.removed(state, seq, &id, None);
            removed += 1;
        }
        for entry in kept.into_iter().rev() {
            state.expiry.push_front(entry);
        }
        removed
    }

    fn save(&self, task: &Task, subscribe_token: Option<&str>, seq: u64) -> Result<()> {
        self.inner.store.save(task, subscribe_token, seq).map_err(storage_error)
    }

    fn remove_stored(&self, task_id: &str, seq: u64) -> Result<()> {
        self.inner.store.remove(task_id, seq).map_err(storage_error)
    }

    /// Makes a new state of a held task visible: one frame for its topic and the all-tasks feed,
    /// the entry, the counts, and the expiry of a finished task. The memory store's changes and
    /// the journal's durable ones are both published here, so a change becomes visible one way.
    /// False when the task is no longer held.
    fn publish_held(&self, state: &mut State, seq: u64, task: Arc<Task>) -> bool {
        let Some(entry) = state.tasks.get_mut(&task.task_id) else { return false };
        let terminal = task.status.is_terminal();
        let frame = Arc::new(Frame::change(seq, task.event_id, &task.to_json(), terminal));
        let wakes = entry.topic.append(Arc::clone(&frame));
        self.announce(seq, Some(wakes), Arc::clone(&frame));
        let old_seq = std::mem::replace(&mut entry.seq, seq);
        entry.frame = Arc::clone(&frame);
        let old = std::mem::replace(&mut entry.task, Arc::clone(&task));
        state.changed(Some(old_seq), &frame);
        state.release(&old);
        state.hold(&task);
        if terminal {
            // A finished task's `updated_at` is the moment it finished.
            let at = expires_at(task.updated_at, &self.inner.config);
            state.expiry.push_back((at, task.task_id.clone(), seq));
        }
        true
    }

    /// Publishes change `seq` to the feed, after its task's topic (whose viewers to wake are
    /// `topic`), says it is published (see the module docs), and only then wakes the viewers, so
    /// none of them finds the change not yet counted.
    fn announce(&self, seq: u64, topic: Option<Wakes>, frame: Arc<Frame>) {
        let feed = self.inner.feed.append(frame);
        self.inner.published.store(seq, Ordering::Release);
        if let Some(topic) = topic {
            topic.wake();
        }
        feed.wake();
    }

    /// The newest change sequence number whose frames are all in their topics.
    #[doc(hidden)]
    pub fn published_seq(&self) -> u64 {
        self.inner.published.load(Ordering::Acquire)
    }
}

/// What a viewer who shows `shown` (`None`: the server asks no token) gets of a task `found`
/// (with its token) or not: the token compared in constant time, and an unknown task refused
/// after a comparison as long as for a known one, like a wrong token, so neither the answer nor
/// its timing tells whether the task exists.
fn admitted<R>(found: Option<(R, Option<Arc<str>>)>, shown: Option<&str>) -> std::result::Result<R, Denied> {
    const NO_TASK: &str = "00000000000000000000000000000000";
    const _: () = assert!(NO_TASK.len() == TOKEN_LEN);
    match (found, shown) {
        (None, None) => Err(Denied::NotFound),
        (None, Some(shown)) => {
            let _ = token_matches(shown, NO_TASK);
            Err(Denied::TokenInvalid)
        }
        // Tokens are not asked, or the task has none (loaded from a store).
        (Some((read, None)), _) | (Some((read, _)), None) => Ok(read),
        (Some((read, Some(token))), Some(shown)) => {
            if token_matches(shown, &token) {
                Ok(read)
            } else {
                Err(Denied::TokenInvalid)
            }
        }
    }
}

/// Whether `shown` is `token`. Every subscribe token is the server's own, [`TOKEN_LEN`] long, so
/// a longer one is refused before any comparison: a comparison costs no more than a token's
/// length, whatever a client sends (the length of what it sent is no secret).
fn token_matches(shown: &str, token: &str) -> bool {
    shown.len() <= TOKEN_LEN && crate::auth::constant_time_eq(shown.as_bytes(), token.as_bytes())
}

/// The newest [`MAX_LIST`] tasks (by creation), newest first.
fn newest(state: &State) -> Vec<&Entry> {
    let mut entries: Vec<&Entry> = state.tasks.values().collect();
    keep_newest(&mut entries, |e| &e.task);
    entries
}

/// Keeps the [`MAX_LIST`] of `items` whose tasks are the newest (by creation), newest first.
fn keep_newest<T>(items: &mut Vec<T>, task: impl Fn(&T) -> &Task) {
    // Ids are unique, so this is a total order and an unstable sort is exact.
    let newest_first = |a: &T, b: &T| {
        let (a, b) = (task(a), task(b));
        b.created_at.cmp(&a.created_at).then_with(|| a.task_id.cmp(&b.task_id))
    };
    if items.len() > MAX_LIST {
        items.select_nth_unstable_by(MAX_LIST - 1, newest_first);
        items.truncate(MAX_LIST);
    }
    items.sort_unstable_by(newest_first);
}

/// When a task finished at `finished_ms` may be removed; a retention too long to add is
/// "never" (a library caller may set any `Duration`; the server refuses over ten years).
fn expires_at(finished_ms: u64, config: &Config) -> u64 {
    let retention = u64::try_from(config.retention.as_millis()).unwrap_or(u64::MAX);
    finished_ms.saturating_add(retention)
}

#[cold]
fn result_space_exhausted() -> Error {
    Error::new(
        ErrorKind::ResultSpaceExhausted,
        "The server holds as many bytes of results as it may; try again when finished tasks have gone.",
    )
}

#[cold]
fn storage_error(e: std::io::Error) -> Error {
    debug!(Ns::Tracker, "store failed: {e}");
    storage_unavailable()
}

/// A change the store could not make durable.
#[cold]
pub(crate) fn storage_unavailable() -> Error {
    Error::new(ErrorKind::Storage, "The change could not be made durable; try again.")
}

/// A task just made, with its subscribe token.
pub(crate) type Created = (Arc<Task>, Option<Arc<str>>);

/// A change's answer, with the ticket to wait on before giving it when the store commits later.
pub(crate) type Held<T> = (T, Option<Arc<Ticket>>);

/// Waits (blocking) for a held change: its answer once durable, `storage_unavailable` if not.
fn settle<T>(held: Result<Held<T>>) -> Result<T> {
    let (value, ticket) = held?;
    match ticket {
        Some(ticket) if !ticket.wait() => Err(storage_unavailable()),
        _ => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_library_calls_of_the_contract_work() {
        let tracker = ProgressTracker::new(Config::default());
        let t = tracker.create_task("task-123", "Initializing analysis").unwrap();
        assert_eq!((t.status, t.event_id, t.progress), (TaskStatus::Pending, 1, 0.0));
        let t = tracker
            .update_task(
                "task-123",
                TaskUpdate::running(50.0).stage("Processing data").message("Analyzing brand mentions..."),
            )
            .unwrap();
        assert_eq!(
            (t.status, t.event_id, t.progress, t.stage.as_str()),
            (TaskStatus::Running, 2, 50.0, "Processing data")
        );
        let t = tracker.complete_task("task-123", json!({"results": "Analysis complete"})).unwrap();
        assert_eq!((t.status, t.event_id, t.progress), (TaskStatus::Completed, 3, 100.0));
        assert!(tracker.update_task("task-123", TaskUpdate::progress(1.0)).unwrap_err().is_finished());
        assert!(tracker.fail_task("task-456", "API rate limit exceeded").unwrap_err().is_not_found());
        tracker.create_task("task-456", "").unwrap();
        let t = tracker.fail_task("task-456", "API rate limit exceeded").unwrap();
        assert_eq!((t.status, t.error.as_deref()), (TaskStatus::Failed, Some("API rate limit exceeded")));
        assert_eq!(tracker.counts(), TaskCounts { total: 2, completed: 1, failed: 1, ..TaskCounts::default() });
    }

    #[test]
    fn a_retention_too_long_to_add_keeps_tasks_and_does_not_overflow() {
        let tracker = ProgressTracker::new(Config { retention: std::time::Duration::MAX, ..Config::default() });
        tracker.create_task("a", "").unwrap();
        tracker.complete_task("a", Value::Null).unwrap();
        assert_eq!(tracker.remove_expired(), 0);
        assert!(tracker.get_task("a").is_some());
    }

    #[test]
    fn finished_tasks_go_after_the_retention() {
        let config = Config { retention: std::time::Duration::ZERO, ..Config::default() };
        let tracker = ProgressTracker::new(config);
        tracker.create_task("a", "").unwrap();
        tracker.create_task("b", "").unwrap();
        tracker.complete_task("a", Value::Null).unwrap();
        assert_eq!(tracker.remove_expired(), 1);
        assert!(tracker.get_task("a").is_none());
        assert!(tracker.get_task("b").is_some(), "running tasks are kept");
    }

    #[test]
    fn made_up_ids_are_valid_and_distinct() {
        let tracker = ProgressTracker::new(Config::default());
        let a = tracker.create(NewTask::default()).unwrap().task_id.clone();
        let b = tracker.create(NewTask::default()).unwrap().task_id.clone();
        assert_ne!(a, b);
        assert!(validate_task_id(&a).is_ok() && a.len() >= 22, "{a}");
    }

    #[test]
    fn result_bytes_are_bounded_and_freed_with_their_task() {
        let tracker = ProgressTracker::new(Config { max_result_bytes: 10, ..Config::default() });
        for id in ["a", "b"] {
            tracker.create_task(id, "").unwrap();
        }
        tracker.complete_task("a", json!("12345678")).unwrap();
        assert_eq!(tracker.result_bytes(), 10, "the result's JSON text, quotes included");
        let full = tracker.create_task("c", "").unwrap_err();
        assert_eq!((full.kind(), full.kind().retry_after()), (ErrorKind::ResultSpaceExhausted, Some(5)));
        assert_eq!(tracker.complete_task("b", json!(1)).unwrap_err().kind(), ErrorKind::ResultSpaceExhausted);
        assert_eq!(tracker.get_task("b").unwrap().event_id, 1, "a refused complete changes nothing");
        tracker.delete_task("a").unwrap();
        assert_eq!(tracker.result_bytes(), 0);
        tracker.create_task("c", "").unwrap();
        tracker.complete_task("b", json!([1, 2])).unwrap();
        assert_eq!(tracker.counts(), TaskCounts { total: 2, pending: 1, completed: 1, ..TaskCounts::default() });
    }

    #[test]
    fn counts_survive_a_delete_and_a_new_task_of_the_same_id() {
        let tracker = ProgressTracker::new(Config { retention: std::time::Duration::ZERO, ..Config::default() });
        tracker.create_task("a", "").unwrap();
        tracker.complete_task("a", json!("done")).unwrap();
        tracker.delete_task("a").unwrap();
        // The old task's expiry comes due during this create; it must not touch the new task.
        tracker.create_task("a", "").unwrap();
        assert_eq!(tracker.remove_expired(), 0);
        assert_eq!(tracker.counts(), TaskCounts { total: 1, pending: 1, ..TaskCounts::default() });
        assert_eq!(tracker.result_bytes(), 0);
    }

    /// A store that commits when the test says so.
    #[derive(Clone, Default)]
    struct Later(Arc<Mutex<Option<Box<dyn crate::store::Commits>>>>);
    impl std::fmt::Debug for Later {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Later")
        }
    }
    impl TaskStore for Later {
        fn save(&self, _: &Task, _: Option<&str>, _: u64) -> std::io::Result<()> {
            Ok(())
        }
        fn remove(&self, _: &str, _: u64) -> std::io::Result<()> {
            Ok(())
        }
        fn load(&self) -> std::io::Result<Loaded> {
            Ok(Loaded::default())
        }
        fn start(&self, commits: Box<dyn crate::store::Commits>) -> bool {
            *self.0.lock().unwrap() = Some(commits);
            true
        }
    }
    impl Later {
        fn durable(&self) {
            self.0.lock().unwrap().as_ref().unwrap().durable(u64::MAX);
        }
        fn failed(&self) {
            self.0.lock().unwrap().as_ref().unwrap().failed();
        }
    }

    /// Accepts a change through `Later` and waits for it: the change is published.
    fn durable<T>(store: &Later, held: Result<Held<T>>) -> T {
        let (value, ticket) = held.unwrap();
        store.durable();
        assert!(ticket.unwrap().wait());
        value
    }

    fn new_task(id: &str) -> NewTask {
        NewTask { task_id: Some(id.into()), ..NewTask::default() }
    }

    #[test]
    fn an_old_expiry_spares_a_task_deleted_and_made_anew_in_the_same_batch() {
        // Shows the expiry of a finished task, due while its DELETE and a POST of the same id
        // wait for their fdatasync, does not remove the new task once all are durable.
        let store = Later::default();
        let tracker = ProgressTracker::with_store(Config::default(), Box::new(store.clone())).unwrap();
        durable(&store, tracker.create_with_token(new_task("a")));
        durable(&store, tracker.complete_held("a", JsonText::from_value(&json!(1))));
        let ((), delete) = tracker.delete_held("a").unwrap();
        let (_, create) = tracker.create_with_token(new_task("a")).unwrap();
        // The old task's retention passes now, with both changes pending.
        tracker.lock().expiry.iter_mut().for_each(|e| e.0 = 0);
        assert_eq!(tracker.remove_expired(), 0);
        store.durable();
        assert!(delete.unwrap().wait() && create.unwrap().wait(), "both acknowledged (204, 201)");
        assert_eq!(tracker.remove_expired(), 0);
        assert_eq!(tracker.get_task("a").map(|t| t.status), Some(crate::task::TaskStatus::Pending));
    }

    #[test]
    fn an_expiry_waiting_for_a_delete_that_rolls_back_comes_due_again() {
        // Shows the expiry of a finished task whose DELETE is pending is kept, not dropped: the
        // delete fails (503) and the task still goes once past its retention.
        let store = Later::default();
        let config = Config { retention: std::time::Duration::ZERO, ..Config::default() };
        let tracker = ProgressTracker::with_store(config, Box::new(store.clone())).unwrap();
        durable(&store, tracker.create_with_token(new_task("b")));
        durable(&store, tracker.complete_held("b", JsonText::from_value(&json!(1))));
        let ((), delete) = tracker.delete_held("b").unwrap();
        assert_eq!(tracker.remove_expired(), 0, "left to the pending delete");
        store.failed();
        assert!(!delete.unwrap().wait(), "the delete is refused (503)");
        assert_eq!(tracker.remove_expired(), 1);
        store.durable();
        assert!(tracker.get_task("b").is_none(), "the finished task goes after its retention");
    }

    #[test]
    fn completes_waiting_in_one_batch_stay_within_max_result_bytes() {
        // Shows completes waiting for one fdatasync are counted together against
        // max_result_bytes: the one that would pass it is refused, not held once durable.
        let store = Later::default();
        let config = Config { max_result_bytes: 20, ..Config::default() };
        let tracker = ProgressTracker::with_store(config, Box::new(store.clone())).unwrap();
        for id in ["a", "b", "c"] {
            durable(&store, tracker.create_with_token(new_task(id)));
        }
        let held: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|id| tracker.complete_held(id, JsonText::from_value(&json!("12345678"))))
            .collect();
        assert!(held[0].is_ok() && held[1].is_ok(), "two results of 10 bytes fit");
        assert_eq!(held[2].as_ref().err().map(|e| e.kind()), Some(ErrorKind::ResultSpaceExhausted));
        store.durable();
        assert_eq!(tracker.result_bytes(), 20);
    }

    #[test]
    fn creates_waiting_in_one_batch_stay_within_max_tasks() {
        // Shows creates waiting for one fdatasync are counted together against max_tasks, and
        // a rolled back create frees its place.
        let store = Later::default();
        let tracker =
            ProgressTracker::with_store(Config { max_tasks: 2, ..Config::default() }, Box::new(store.clone())).unwrap();
        let held: Vec<_> = ["a", "b", "c"].iter().map(|id| tracker.create_with_token(new_task(id))).collect();
        assert!(held[0].is_ok() && held[1].is_ok());
        assert_eq!(held[2].as_ref().err().map(|e| e.kind()), Some(ErrorKind::TooManyTasks));
        store.failed();
        durable(&store, tracker.create_with_token(new_task("c")));
        durable(&store, tracker.create_with_token(new_task("d")));
        assert_eq!(tracker.counts().total, 2);
    }

    #[derive(Debug)]
    struct Holding(Loaded);

    impl TaskStore for Holding {
        fn save(&self, _: &Task, _: Option<&str>, _: u64) -> std::io::Result<()> {
            Ok(())
        }
        fn remove(&self, _: &str, _: u64) -> std::io::Result<()> {
            Ok(())
        }
        fn load(&self) -> std::io::Result<Loaded> {
            Ok(self.0.clone())
        }
    }

    #[test]
    fn the_change_sequence_starts_from_the_clock_or_the_store_and_stays_below_the_limit() {
        // Shows a fresh tracker numbers its changes above the clock times 1,024 (so above every
        // number a process that started earlier issued), a store further on is followed, and a
        // store at or past 2^57 is refused at load with a clear error.
        let before = now_ms() << CLOCK_SHIFT;
        let tracker = ProgressTracker::new(Config::default());
        let start = tracker.published_seq();
        assert!(start >= before && start <= now_ms() << CLOCK_SHIFT, "{before} <= {start}");
        assert!(start < 1 << 53, "a number JavaScript holds exactly: {start}");
        tracker.create_task("a", "").unwrap();
        assert_eq!(tracker.published_seq(), start + 1);

        let ahead = Loaded { tasks: Vec::new(), last_seq: start + 1_000_000_000 };
        let tracker = ProgressTracker::with_store(Config::default(), Box::new(Holding(ahead))).unwrap();
        assert_eq!(tracker.published_seq(), start + 1_000_000_000);
        let task = Task::new("b".into(), String::new(), String::new(), now_ms());
        let loaded = Loaded { tasks: vec![StoredTask { task, subscribe_token: None, seq: start + 7 }], last_seq: 0 };
        let tracker = ProgressTracker::with_store(Config::default(), Box::new(Holding(loaded))).unwrap();
        assert!(tracker.published_seq() >= start + 7);

        for (tasks, last_seq) in [(Vec::new(), SEQ_LIMIT), (vec![("c", SEQ_LIMIT + 1)], 5)] {
            let tasks = tasks.into_iter().map(|(id, seq)| StoredTask {
                task: Task::new(id.into(), String::new(), String::new(), 0),
                subscribe_token: None,
                seq,
            });
            let store = Holding(Loaded { tasks: tasks.collect(), last_seq });
            let error = ProgressTracker::with_store(Config::default(), Box::new(store)).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
            assert!(error.to_string().contains("2^57"), "{error}");
        }
    }

    #[test]
    fn the_list_is_the_newest_thousand_in_order() {
        let tracker = ProgressTracker::new(Config::default());
        for i in 0..MAX_LIST + 5 {
            tracker.create_task(&format!("t{i:04}"), "").unwrap();
        }
        let listed = tracker.list_tasks();
        assert_eq!(listed.len(), MAX_LIST);
        let mut sorted = listed.clone();
        sorted.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.task_id.cmp(&b.task_id)));
        assert_eq!(listed, sorted);
        let mut all: Vec<Arc<Task>> =
            (0..MAX_LIST + 5).map(|i| tracker.get_task(&format!("t{i:04}")).unwrap()).collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.task_id.cmp(&b.task_id)));
        assert_eq!(listed, all[..MAX_LIST]);
    }
}
