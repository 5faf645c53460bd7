//! `FileStore`: the tasks in a journal file in a data directory, made durable with group commit.
//!
//! `save` and `remove` only encode their record into the pending batch, under the batch's lock,
//! which the tracker's callers hold for the length of a copy; they never touch the disk. One
//! thread of the store owns the file: it takes the whole batch, writes it with one `pwrite` and
//! makes it durable with one `fdatasync`, so every change that arrived while the previous
//! `fdatasync` ran shares the next one (group commit), and no lock is held across either call.
//! Then it tells the tracker (`Commits::durable`), which publishes the changes and answers their
//! producers. With `Fsync::Interval` the batch is published after the `pwrite` (the page cache
//! survives a crash of the process) and `fdatasync` runs at least every 100 ms.
//!
//! A failed write or `fdatasync` (a full disk, an I/O error) cuts the file back to its last
//! durable length, drops the batch that arrived meanwhile, and tells the tracker to roll back
//! every change not yet durable (`Commits::failed`); until that returns, `save` refuses, so no
//! change slips in between. A cut that fails too is retried before the next write, so a record
//! answered with an error is never followed by a durable one. The next batch tries again: writes
//! work once space is back.
//!
//! Compaction keeps the directory small: when the journal is over twice the size of the last
//! snapshot (and over a floor of a few MiB), the thread asks the tracker for its durable tasks,
//! writes them to `journal.new`, `fsync`s it, renames it over `journal` and `fsync`s the
//! directory. A crash before the rename leaves the old journal whole (and `journal.new` is
//! deleted at the next start); after it, the new one. Either holds every durable change.
//!
//! A `flock` on `lock` keeps a second server off the directory; the kernel drops it when the
//! process dies, however it dies.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::journal::{self, Replay};
use super::{Commits, Loaded, StoredTask, TaskStore};
use crate::task::Task;

/// The journal's name in the data directory.
const JOURNAL: &str = "journal";
/// Where a snapshot is written before it replaces the journal.
const NEXT: &str = "journal.new";
/// The lock file.
const LOCK: &str = "lock";
/// The journal is not compacted below this size, so a small live state is not rewritten often.
const COMPACT_FLOOR: u64 = 4 << 20;
/// With `Fsync::Interval`, the longest a written change waits for its `fdatasync`.
const INTERVAL: Duration = Duration::from_millis(100);

/// When a change is made durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fsync {
    /// Before its producer is answered: every acknowledged change survives a power loss.
    #[default]
    Always,
    /// At least every 100 ms: a crash of the machine (not of the process) can lose that much.
    Interval,
}

/// A journal in a data directory; see the module docs.
#[derive(Debug)]
pub struct FileStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    batch: Mutex<Batch>,
    /// Wakes the writer when a batch starts, or the store closes.
    wake: Condvar,
    /// The file, until the writer thread takes it.
    writer: Mutex<Option<Writer>>,
    /// What the journal held at open, given once to `load`.
    loaded: Mutex<Option<Loaded>>,
    /// The writer thread, once started: the store's `Drop` joins it.
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct Batch {
    /// Records waiting for the writer.
    records: Vec<u8>,
    /// The change number of the last of them.
    last_seq: u64,
    /// A write failed and the tracker is rolling back: new changes are refused.
    refusing: bool,
    /// The store was dropped: the writer writes what is left and ends.
    closing: bool,
    /// The writer thread has ended (closed, or died): new changes are refused for good.
    ended: bool,
}

#[derive(Debug)]
struct Writer {
    dir: PathBuf,
    file: File,
    /// Durable bytes of the journal: where the next batch goes, and where a failure cuts back to.
    len: u64,
    /// The last cut back failed; it is tried again before the next write.
    cut_owed: bool,
    /// The directory `fsync` after a compaction's rename failed; it is tried again before the
    /// next write, and that write fails while it does.
    dir_sync_owed: bool,
    /// Compact when the journal is larger than this.
    compact_at: u64,
    floor: u64,
    fsync: Fsync,
    /// With `Fsync::Interval`: when written bytes began to wait for their `fdatasync`.
    unsynced_since: Option<Instant>,
    /// The point at which a test wants the process to die (`SSE_PROGRESS_CRASH_AT`).
    crash_at: Option<String>,
    /// Faults a unit test asked for (I/O errors and panics no real disk gives on demand).
    #[cfg(test)]
    faults: Faults,
    _lock: File,
}

impl FileStore {
    /// Opens (or creates) the data directory `dir` with `Fsync::Always`.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<FileStore> {
        Self::open_with(dir, Fsync::Always)
    }

    /// Opens (or creates) the data directory `dir`: takes its lock, replays its journal (cutting a
    /// damaged tail, reported on stderr) and holds the tasks for `load`.
    pub fn open_with(dir: impl AsRef<Path>, fsync: Fsync) -> io::Result<FileStore> {
        let dir = dir.as_ref().to_path_buf();
        let shown = dir.display().to_string();
        let failed =
            |what: &str, e: io::Error| io::Error::new(e.kind(), format!("data directory {shown}: {what}: {e}"));
        fs::create_dir_all(&dir).map_err(|e| failed("cannot create it", e))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK))
            .map_err(|e| failed("cannot write in it", e))?;
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("data directory {shown}: another server is using it (its lock file is held)"),
            ));
        }
        match fs::remove_file(dir.join(NEXT)) {
            Ok(()) => eprintln!("sse-progress: data directory {shown}: removed an unfinished snapshot"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed("cannot remove an unfinished snapshot", e)),
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.join(JOURNAL))
            .map_err(|e| failed("cannot open the journal", e))?;
        // The directory (perhaps just made) and the files just made in it survive a power loss.
        // The parent is synced at best: a server may have no right to read it.
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let _ = File::open(parent).and_then(|d| d.sync_all());
        File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| failed("cannot fsync the directory", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| failed("cannot read the journal", e))?;
        let replay = journal::replay(&bytes);
        drop(bytes);
        for (at, len) in &replay.skipped {
            eprintln!(
                "sse-progress: data directory {shown}: skipped {len} damaged bytes at offset {at} of the journal"
            );
        }
        if replay.dropped > 0 {
            eprintln!(
                "sse-progress: data directory {shown}: cut a damaged or partly written tail of {} bytes at offset {}",
                replay.dropped, replay.good_len
            );
            file.set_len(replay.good_len as u64).map_err(|e| failed("cannot cut the journal", e))?;
            file.sync_all().map_err(|e| failed("cannot cut the journal", e))?;
        }
        let floor =
            std::env::var("SSE_PROGRESS_COMPACT_FLOOR").ok().and_then(|v| v.parse().ok()).unwrap_or(COMPACT_FLOOR);
        let Replay { tasks, last_seq, good_len, skipped, .. } = replay;
        let mut writer = Writer {
            dir,
            file,
            len: good_len as u64,
            cut_owed: false,
            dir_sync_owed: false,
            compact_at: 0,
            floor,
            fsync,
            unsynced_since: None,
            crash_at: std::env::var("SSE_PROGRESS_CRASH_AT").ok(),
            #[cfg(test)]
            faults: OPEN_FAULTS.take(),
            _lock: lock,
        };
        let mut stored: Vec<StoredTask> =
            tasks.into_values().map(|(task, subscribe_token, seq)| StoredTask { task, subscribe_token, seq }).collect();
        stored.sort_unstable_by_key(|t| t.seq);
        let snapshot = encode(stored.iter().map(|t| (&t.task, t.subscribe_token.as_deref(), t.seq)), last_seq);
        writer.compact_at = writer.floor.max(2 * snapshot.len() as u64);
        // A journal with damage in its middle is rewritten at once, so the damage is reported
        // once; a merely large one waits for the writer's first batch, so a start stays a read.
        // A rewrite that fails (a full disk) does not stop the start: the journal as it is holds
        // every good record, and the writer's first batch compacts it.
        if !skipped.is_empty()
            && let Err(e) = writer.replace(&snapshot)
        {
            let _ = fs::remove_file(writer.dir.join(NEXT));
            writer.compact_at = 0;
            eprintln!(
                "sse-progress: data directory {shown}: cannot rewrite the damaged journal now, it is compacted at the next change: {e}"
            );
        }
        let shared = Shared {
            batch: Mutex::new(Batch::default()),
            wake: Condvar::new(),
            writer: Mutex::new(Some(writer)),
            loaded: Mutex::new(Some(Loaded { tasks: stored, last_seq })),
            thread: Mutex::new(None),
        };
        Ok(FileStore { shared: Arc::new(shared) })
    }

    fn batch(&self) -> MutexGuard<'_, Batch> {
        self.shared.batch()
    }

    fn append(&self, seq: u64, encode: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        let mut batch = self.batch();
        if batch.ended {
            return Err(io::Error::other("the journal's writer has stopped"));
        }
        if batch.refusing {
            return Err(io::Error::other("the journal is recovering from a failed write"));
        }
        let first = batch.records.is_empty();
        encode(&mut batch.records);
        batch.last_seq = seq;
        drop(batch);
        if first {
            self.shared.wake.notify_one();
        }
        Ok(())
    }
}

/// Faults a unit test injects into the writer.
#[cfg(test)]
#[derive(Debug, Default)]
struct Faults {
    /// The next so many directory `fsync`s fail.
    dir_sync_fails: u32,
    /// The writer thread panics at its next write.
    panic_at_write: bool,
    /// The next so many snapshots fail to be written (a full disk).
    replace_fails: u32,
}

#[cfg(test)]
thread_local! {
    /// Faults for the next store this thread opens.
    static OPEN_FAULTS: std::cell::Cell<Faults> = std::cell::Cell::default();
}

#[cfg(test)]
impl FileStore {
    /// Changes the writer before it starts (its thresholds, its faults).
    fn with_writer(&self, change: impl FnOnce(&mut Writer)) {
        change(self.shared.writer.lock().unwrap().as_mut().expect("the writer has not started"));
    }
}

impl Shared {
    fn batch(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A snapshot: a mark of the sequence, then a put of every task.
fn encode<'a>(tasks: impl Iterator<Item = (&'a Task, Option<&'a str>, u64)>, last_seq: u64) -> Vec<u8> {
    let mut out = Vec::new();
    journal::mark(&mut out, last_seq);
    for (task, token, seq) in tasks {
        journal::put(&mut out, task, token, seq);
    }
    out
}

impl TaskStore for FileStore {
    fn save(&self, task: &Task, subscribe_token: Option<&str>, seq: u64) -> io::Result<()> {
        self.append(seq, |out| journal::put(out, task, subscribe_token, seq))
    }

    fn remove(&self, task_id: &str, seq: u64) -> io::Result<()> {
        self.append(seq, |out| journal::remove(out, task_id, seq))
    }

    fn load(&self) -> io::Result<Loaded> {
        Ok(self.shared.loaded.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default())
    }

    fn start(&self, commits: Box<dyn Commits>) -> bool {
        let Some(writer) = self.shared.writer.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return false;
        };
        let shared = Arc::clone(&self.shared);
        let thread = std::thread::Builder::new()
            .name("sse-progress-journal".into())
            .spawn(move || {
                let _ended = Ended { shared: &shared, commits: commits.as_ref() };
                writer.run(&shared, commits.as_ref());
            })
            .expect("the journal's thread starts");
        *self.shared.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread);
        true
    }
}

impl Drop for FileStore {
    /// Writes what is pending and joins the writer thread, so the file and its lock are closed
    /// and the directory can be opened again at once. The writer thread drops the store itself
    /// only when the tracker was dropped while it published a batch nobody waited for (tickets
    /// are settled after its reference is gone, `tracker/commit.rs`); it cannot join itself and
    /// ends right after, without compacting (the tracker, hence the snapshot, is gone).
    fn drop(&mut self) {
        self.batch().closing = true;
        self.shared.wake.notify_one();
        let thread = self.shared.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread.filter(|t| t.thread().id() != std::thread::current().id()) {
            let _ = thread.join();
        }
    }
}

/// Ends the store when the writer thread ends, however it ends: a panic on it would otherwise
/// leave every change accepted, and every later one, waiting for ever. New changes are refused
/// (`503`) and the pending ones rolled back (a tracker gone has none).
struct Ended<'a> {
    shared: &'a Shared,
    commits: &'a dyn Commits,
}

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        {
            let mut batch = self.shared.batch();
            batch.ended = true;
            batch.records.clear();
        }
        if std::thread::panicking() {
            eprintln!("sse-progress: the journal's writer thread died; changes are refused from now on");
        }
        self.commits.failed();
    }
}

impl Writer {
    /// The writer thread: takes each batch, makes it durable, reports it (see the module docs).
    fn run(mut self, shared: &Shared, commits: &dyn Commits) {
        let mut spare = Vec::new();
        loop {
            let (mut records, last_seq) = {
                let mut batch = shared.batch();
                loop {
                    if !batch.records.is_empty() {
                        break;
                    }
                    if batch.closing {
                        drop(batch);
                        let _ = self.sync();
                        // Closes the file and releases the lock.
                        drop(self);
                        return;
                    }
                    match self.unsynced_since {
                        Some(since) => {
                            let left = INTERVAL.saturating_sub(since.elapsed());
                            if left.is_zero() {
                                drop(batch);
                                self.sync_reporting();
                                batch = shared.batch();
                                continue;
                            }
                            batch = shared.wake.wait_timeout(batch, left).unwrap_or_else(|e| e.into_inner()).0;
                        }
                        None => batch = shared.wake.wait(batch).unwrap_or_else(|e| e.into_inner()),
                    }
                }
                (std::mem::replace(&mut batch.records, std::mem::take(&mut spare)), batch.last_seq)
            };
            match self.append(&records) {
                Ok(()) => {
                    commits.durable(last_seq);
                    if self.len > self.compact_at && !shared.batch().closing {
                        self.compact(commits);
                    }
                }
                Err(e) => {
                    eprintln!(
                        "sse-progress: data directory {}: a write failed, changes refused: {e}",
                        self.dir.display()
                    );
                    self.cut();
                    {
                        let mut batch = shared.batch();
                        batch.refusing = true;
                        batch.records.clear();
                    }
                    commits.failed();
                    shared.batch().refusing = false;
                }
            }
            records.clear();
            spare = records;
        }
    }

    /// Writes `records` at the durable end and, with `Fsync::Always`, makes them durable.
    fn append(&mut self, records: &[u8]) -> io::Result<()> {
        if self.cut_owed {
            self.file.set_len(self.len)?;
            self.cut_owed = false;
        }
        if self.dir_sync_owed {
            self.sync_dir()?;
            self.dir_sync_owed = false;
        }
        self.crash("append");
        #[cfg(test)]
        if self.faults.panic_at_write {
            panic!("a test asked the writer thread to die");
        }
        self.file.write_all_at(records, self.len)?;
        self.crash("written");
        match self.fsync {
            Fsync::Always => self.file.sync_data()?,
            Fsync::Interval => {
                self.unsynced_since.get_or_insert_with(Instant::now);
            }
        }
        self.len += records.len() as u64;
        if self.unsynced_since.is_some_and(|since| since.elapsed() >= INTERVAL) {
            self.sync_reporting();
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.unsynced_since = None;
        self.file.sync_data()
    }

    fn sync_reporting(&mut self) {
        if let Err(e) = self.sync() {
            eprintln!("sse-progress: data directory {}: fdatasync failed: {e}", self.dir.display());
        }
    }

    /// Cuts the file back to its durable length after a failed write.
    fn cut(&mut self) {
        if self.file.set_len(self.len).is_err() {
            self.cut_owed = true;
        }
    }

    /// Replaces the journal with a snapshot of the durable tasks; on failure the journal stays
    /// and compaction waits until the journal has grown by the floor again.
    fn compact(&mut self, commits: &dyn Commits) {
        // A tracker gone has no snapshot: the journal stays as it is.
        let Some(snapshot) = commits.snapshot() else { return };
        let tasks = snapshot.tasks.iter().map(|(task, token, seq)| (&**task, token.as_deref(), *seq));
        let bytes = encode(tasks, snapshot.last_seq);
        drop(snapshot);
        if let Err(e) = self.replace(&bytes) {
            let _ = fs::remove_file(self.dir.join(NEXT));
            self.compact_at = self.len + self.floor;
            eprintln!("sse-progress: data directory {}: compaction failed: {e}", self.dir.display());
        }
    }

    /// Writes `bytes` as the new journal: to `journal.new`, `fsync`, rename, `fsync` the directory.
    /// Once the rename is done the writer is on the new file whatever follows (the old one is
    /// unlinked); a directory `fsync` that fails then is owed, and retried before the next write,
    /// which fails while it does, so no change is answered before the rename is durable.
    fn replace(&mut self, bytes: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        if self.faults.replace_fails > 0 {
            self.faults.replace_fails -= 1;
            return Err(io::Error::other("a test failed the snapshot's write"));
        }
        let next = self.dir.join(NEXT);
        // A stale one is removed, and the new one made afresh: `create_new` follows no link.
        match fs::remove_file(&next) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let file = OpenOptions::new().create_new(true).read(true).write(true).open(&next)?;
        self.crash("compact-open");
        file.write_all_at(bytes, 0)?;
        self.crash("compact-written");
        file.sync_all()?;
        self.crash("compact-synced");
        fs::rename(&next, self.dir.join(JOURNAL))?;
        self.crash("compact-renamed");
        self.file = file;
        self.len = bytes.len() as u64;
        self.cut_owed = false;
        self.unsynced_since = None;
        self.compact_at = self.floor.max(2 * self.len);
        if let Err(e) = self.sync_dir() {
            self.dir_sync_owed = true;
            eprintln!(
                "sse-progress: data directory {}: fsync of the directory failed after a compaction, retried before the next write: {e}",
                self.dir.display()
            );
            return Ok(());
        }
        self.crash("compact-done");
        Ok(())
    }

    /// `fsync`s the directory, so a file created or renamed in it survives a power loss.
    fn sync_dir(&mut self) -> io::Result<()> {
        #[cfg(test)]
        if self.faults.dir_sync_fails > 0 {
            self.faults.dir_sync_fails -= 1;
            return Err(io::Error::other("a test failed the directory fsync"));
        }
        File::open(&self.dir)?.sync_all()
    }

    /// Ends the process at `point` when a test asked (`SSE_PROGRESS_CRASH_AT`): the crash points
    /// of the tests, reached by the code rather than by timing. Like `kill -9`, nothing is flushed
    /// or cleaned up.
    fn crash(&self, point: &str) {
        if self.crash_at.as_deref() == Some(point) {
            eprintln!("sse-progress: crashing at {point} (SSE_PROGRESS_CRASH_AT)");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, ProgressTracker, TaskUpdate};

    fn test_dir(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("sse-file-store-{tag}-{}-{}", std::process::id(), fastrand::u64(..)))
    }

    /// Opens `dir`, retrying while the lock is still held by a writer thread that is ending.
    fn reopen(dir: &Path) -> FileStore {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            match FileStore::open(dir) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                opened => return opened.unwrap(),
            }
        }
    }

    #[test]
    fn a_tracker_dropped_as_its_journal_compacts_keeps_its_tasks() {
        // Shows a tracker dropped right after a change that makes the journal compact keeps
        // every task (the writer compacted with the snapshot of a tracker gone: an empty one),
        // whether or not its caller waited for the change.
        for wait in [true, false] {
            let dir = test_dir("drop");
            let config = Config { max_result_bytes: 64 << 20, ..Config::default() };
            let store = FileStore::open(&dir).unwrap();
            store.with_writer(|w| {
                w.floor = 100_000;
                w.compact_at = 100_000;
            });
            let tracker = ProgressTracker::with_store(config.clone(), Box::new(store)).unwrap();
            for id in ["keep", "big"] {
                tracker.create_task(id, "").unwrap();
            }
            tracker.update_task("keep", TaskUpdate::running(10.0)).unwrap();
            let big = crate::task::JsonText::parse(&format!("\"{}\"", "x".repeat(900_000))).unwrap();
            let (_, ticket) = tracker.complete_held("big", big).unwrap();
            if wait {
                assert!(ticket.unwrap().wait());
            } else {
                drop(ticket);
            }
            drop(tracker);
            // The writer thread may still hold the last reference for a moment after the ticket
            // settles (CI saw it with `wait`), so both cases reopen with a bounded retry.
            let store = reopen(&dir);
            let tracker = ProgressTracker::with_store(config, Box::new(store)).unwrap();
            let keep = tracker.get_task("keep").map(|t| t.event_id);
            drop(tracker);
            let _ = fs::remove_dir_all(&dir);
            assert_eq!(keep, Some(2), "wait={wait}: the running task acknowledged twice is kept");
        }
    }

    #[test]
    fn changes_after_a_failed_directory_fsync_of_a_compaction_survive_a_reopen() {
        // Shows that once the rename of a compaction succeeded, a failed directory fsync does
        // not leave the writer on the old, unlinked journal: every change acknowledged after it
        // is in the journal a reopen reads.
        let dir = test_dir("dirsync");
        let store = FileStore::open(&dir).unwrap();
        store.with_writer(|w| {
            w.floor = 2000;
            w.compact_at = 2000;
            w.faults.dir_sync_fails = 1;
        });
        let tracker = ProgressTracker::with_store(Config::default(), Box::new(store)).unwrap();
        tracker.create_task("a", "").unwrap();
        let mut last = 0;
        for i in 0..12 {
            last = tracker.update_task("a", TaskUpdate::running(f64::from(i))).unwrap().event_id;
        }
        drop(tracker);
        let tracker = ProgressTracker::with_store(Config::default(), Box::new(reopen(&dir))).unwrap();
        let got = tracker.get_task("a").map(|t| t.event_id);
        drop(tracker);
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(got, Some(last), "the last acknowledged change is in the journal");
    }

    #[test]
    fn a_dead_writer_thread_refuses_changes_rather_than_leaving_them_waiting() {
        // Shows that when the writer thread dies (a panic), the change it held and every later
        // one are answered as refused, not left waiting for ever, and the store can be dropped.
        let dir = test_dir("panic");
        let store = FileStore::open(&dir).unwrap();
        store.with_writer(|w| w.faults.panic_at_write = true);
        let tracker = ProgressTracker::with_store(Config::default(), Box::new(store)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let creator = tracker.clone();
        std::thread::spawn(move || {
            let first = creator.create_task("a", "").is_ok();
            let _ = tx.send((first, creator.create_task("b", "").is_ok()));
        });
        let answers = rx.recv_timeout(Duration::from_secs(10));
        drop(tracker);
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(answers, Ok((false, false)), "both changes are refused");
    }

    #[test]
    fn a_damaged_journal_that_cannot_be_rewritten_still_opens() {
        // Shows a journal with a damaged record in its middle opens although its rewrite fails
        // (a full disk): every other task is loaded, and the next change compacts it.
        let dir = test_dir("damaged");
        let tracker = ProgressTracker::with_store(Config::default(), Box::new(FileStore::open(&dir).unwrap())).unwrap();
        for i in 0..100 {
            tracker.create_task(&format!("t{i}"), "").unwrap();
        }
        drop(tracker);
        let mut bytes = fs::read(dir.join(JOURNAL)).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        fs::write(dir.join(JOURNAL), &bytes).unwrap();
        OPEN_FAULTS.set(Faults { replace_fails: 1, ..Faults::default() });
        let opened = FileStore::open(&dir);
        let loaded: Result<usize, String> = match &opened {
            Ok(store) => Ok(store.shared.loaded.lock().unwrap().as_ref().unwrap().tasks.len()),
            Err(e) => Err(e.to_string()),
        };
        let tracker = opened.map(|store| ProgressTracker::with_store(Config::default(), Box::new(store)).unwrap());
        if let Ok(tracker) = &tracker {
            // The writer compacts after the first batch, before it takes the second.
            tracker.create_task("new", "").unwrap();
            tracker.create_task("next", "").unwrap();
        }
        drop(tracker);
        let reopened = fs::read(dir.join(JOURNAL)).map(|b| journal::replay(&b));
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(loaded, Ok(99), "opens with every undamaged task");
        let reopened = reopened.unwrap();
        assert!(reopened.skipped.is_empty(), "compacted at the next change");
        assert_eq!(reopened.tasks.len(), 101);
    }

    #[test]
    fn concurrent_changes_of_one_task_build_on_each_other_and_survive_a_reopen() {
        // Shows eight threads changing one task at once (so several changes of it wait in one
        // batch) each get a distinct eventId, the last is 1 + every change, every token is kept,
        // and a reopened store has the same task, token and change sequence.
        let dir = std::env::temp_dir().join(format!("sse-file-store-{}-{}", std::process::id(), fastrand::u64(..)));
        let config = Config { require_subscribe_token: true, ..Config::default() };
        let tracker = ProgressTracker::with_store(config.clone(), Box::new(FileStore::open(&dir).unwrap())).unwrap();
        tracker.create_task("t", "").unwrap();
        let token = tracker.subscribe_token("t").unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let tracker = tracker.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| tracker.update_task("t", TaskUpdate::running(f64::from(i))).unwrap().event_id)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut ids: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        ids.sort_unstable();
        assert_eq!(ids, (2..=401).collect::<Vec<_>>());
        let seq = tracker.published_seq();
        drop(tracker);
        let tracker = ProgressTracker::with_store(config, Box::new(FileStore::open(&dir).unwrap())).unwrap();
        assert_eq!(tracker.get_task("t").unwrap().event_id, 401);
        assert_eq!(tracker.subscribe_token("t"), Some(token));
        assert!(tracker.published_seq() >= seq);
        drop(tracker);
        let _ = fs::remove_dir_all(&dir);
    }
}
