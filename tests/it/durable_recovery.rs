//! A data directory in any state opens (API.md, "Durable tasks"): a torn or damaged tail is cut
//! and reported on stderr with the bytes dropped, a damaged record in the middle is skipped and
//! reported, an empty journal or a missing directory is a fresh start; the server never refuses to
//! start for these. A directory it cannot write, or one another server holds, is a clear error at
//! start. Retention counts from the stored finish time.

use std::process::Command;

use serde_json::json;
use sse_progress::{Config, FileStore, ProgressTracker, TaskUpdate};

use crate::durable::{TempDir, serve_durable};
use crate::support::*;

/// A tracker on a data directory, through the library.
fn open(dir: &std::path::Path) -> ProgressTracker {
    let store = FileStore::open(dir).expect("the directory opens");
    ProgressTracker::with_store(Config::default(), Box::new(store)).expect("the tracker loads")
}

/// A directory whose journal holds tasks a, b, c (a at eventId 3) and ends with the creation of
/// `last`; returns the journal's length before that last record.
fn journal_with_a_last_record(dir: &TempDir) -> u64 {
    let tracker = open(dir.path());
    for id in ["a", "b", "c"] {
        tracker.create_task(id, "made").unwrap();
    }
    tracker.update_task("a", TaskUpdate::running(10.0)).unwrap();
    tracker.update_task("a", TaskUpdate::running(20.0)).unwrap();
    let before = journal_len(dir);
    tracker.create_task("last", "the last record").unwrap();
    drop(tracker);
    before
}

fn journal_len(dir: &TempDir) -> u64 {
    std::fs::metadata(dir.path().join("journal")).unwrap().len()
}

#[test]
fn a_journal_cut_at_any_byte_of_its_last_record_opens_with_the_records_before() {
    // Shows that truncating the journal at every byte offset of its last record (a write torn by
    // a crash) opens with every earlier change and without the torn one, and the cut is made in
    // the file (the next open finds nothing to cut).
    let dir = TempDir::new("torn");
    let before = journal_with_a_last_record(&dir);
    let whole = std::fs::read(dir.path().join("journal")).unwrap();
    assert!(whole.len() as u64 > before);
    for cut in before..whole.len() as u64 {
        let copy = TempDir::new("torn-copy");
        std::fs::create_dir_all(copy.path()).unwrap();
        std::fs::write(copy.path().join("journal"), &whole[..cut as usize]).unwrap();
        let tracker = open(copy.path());
        let ids: Vec<String> = tracker.list_tasks().iter().map(|t| t.task_id.clone()).collect();
        assert_eq!(ids.len(), 3, "cut at {cut}: {ids:?}");
        assert!(tracker.get_task("last").is_none());
        assert_eq!(tracker.get_task("a").unwrap().event_id, 3);
        drop(tracker);
        assert_eq!(journal_len(&copy), before, "cut at {cut}: the torn bytes are cut from the file");
    }
    assert_eq!(open(dir.path()).list_tasks().len(), 4, "the whole journal has all four");
}

#[test]
fn a_torn_tail_and_a_damaged_middle_are_reported_and_the_server_starts() {
    // Shows the server, started on a journal with a torn tail, says on stderr how many bytes it
    // cut and serves the rest; and on one with a flipped byte in a middle record, says it skipped
    // damaged bytes and serves every other task.
    let dir = TempDir::new("report");
    let before = journal_with_a_last_record(&dir);
    let path = dir.path().join("journal");
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..before as usize + 5]).unwrap();
    let mut server = serve_durable(&dir, &[], &[]);
    assert!(
        server.seen.iter().any(|l| l.contains("cut a damaged or partly written tail of 5 bytes")),
        "{:?}",
        server.seen
    );
    assert_eq!(current(server.addr, "a")["eventId"], 3);
    server.signal("KILL");
    server.wait_exit(TIMEOUT);

    let mut flipped = whole.clone();
    // The middle of the journal lies inside one of the first records.
    let middle = whole.len() / 3;
    flipped[middle] ^= 0x55;
    std::fs::write(&path, &flipped).unwrap();
    let server = serve_durable(&dir, &[], &[]);
    assert!(server.seen.iter().any(|l| l.contains("damaged bytes at offset")), "{:?}", server.seen);
    let listed = call(server.addr, "GET", TASKS, None);
    let count = listed["tasks"].as_array().unwrap().len();
    assert!((3..=4).contains(&count), "only the damaged record is lost: {listed}");
    assert_eq!(current(server.addr, "last")["stage"], "the last record");
}

#[test]
fn an_empty_journal_and_a_missing_directory_are_a_fresh_start() {
    // Shows an empty journal file opens with no tasks, and a data directory that does not exist
    // (two levels of it) is created, and both take changes that survive a restart.
    let dir = TempDir::new("empty");
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(dir.path().join("journal"), b"").unwrap();
    let server = serve_durable(&dir, &[], &[]);
    assert_eq!(call(server.addr, "GET", TASKS, None)["tasks"], json!([]));
    create(server.addr, "x");
    drop(server);

    let parent = TempDir::new("missing");
    let nested = TempDir(parent.path().join("a").join("b"));
    let server = serve_durable(&nested, &[], &[]);
    create(server.addr, "y");
    drop(server);
    let server = serve_durable(&nested, &[], &[]);
    assert_eq!(current(server.addr, "y")["eventId"], 1);
}

/// Runs `serve --data-dir DIR` expecting it to refuse to start: its exit status and stderr.
fn refused(dir: &str) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", dir])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_directory_that_cannot_be_written_or_is_in_use_is_a_clear_error() {
    // Shows a data directory path that cannot be made (under a regular file), a read-only one
    // (a read-only tmpfs, when this test may mount one), and one another server holds each make
    // the server exit at start with a message that says so.
    let base = TempDir::new("unwritable");
    std::fs::create_dir_all(base.path()).unwrap();
    std::fs::write(base.path().join("file"), b"").unwrap();
    let (ok, stderr) = refused(base.path().join("file").join("data").to_str().unwrap());
    assert!(!ok && stderr.contains("cannot create it"), "{stderr}");

    let ro = base.path().join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", ro.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if mounted {
        let (ok, stderr) = refused(ro.to_str().unwrap());
        let _ = Command::new("umount").arg(&ro).status();
        assert!(!ok && stderr.contains("cannot write in it"), "{stderr}");
    } else {
        eprintln!("durable_recovery: no read-only tmpfs (not allowed to mount); tested the path under a file only");
    }

    let dir = TempDir::new("in-use");
    let first = serve_durable(&dir, &[], &[]);
    let (ok, stderr) = refused(dir.arg());
    assert!(!ok && stderr.contains("another server is using it"), "{stderr}");
    drop(first);
}

#[test]
fn retention_counts_from_the_stored_finish_time() {
    // Shows a task that finished before a restart is removed at start once its retention has
    // passed since it finished (not since the restart), while a running one stays.
    let dir = TempDir::new("retention");
    let server = serve_durable(&dir, &["--retention-secs", "1"], &[]);
    create(server.addr, "done");
    create(server.addr, "running");
    let finished = complete(server.addr, "done", json!(1))["updatedAt"].as_u64().unwrap();
    drop(server);
    wait_until("the retention to pass", || sse_progress::internals::now_ms() > finished + 1_000);
    let server = serve_durable(&dir, &["--retention-secs", "1"], &[]);
    let reply = request(server.addr, "GET", &format!("{TASKS}/done"), &[], None);
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert_eq!(current(server.addr, "running")["status"], "pending");
    drop(server);
    let server = serve_durable(&dir, &["--retention-secs", "1"], &[]);
    assert_eq!(request(server.addr, "GET", &format!("{TASKS}/done"), &[], None).status, 404, "its removal was stored");
}
