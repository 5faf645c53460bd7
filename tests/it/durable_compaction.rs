//! Compaction keeps the data directory small and loses nothing (API.md, "Durable tasks"): under
//! producers' load, a crash at any point of writing the snapshot, syncing it, renaming it over
//! the journal or syncing the directory leaves a directory that opens with every acknowledged
//! change. The crash points are reached by the code (`SSE_PROGRESS_CRASH_AT`), not by timing; a
//! low floor (`SSE_PROGRESS_COMPACT_FLOOR`) makes compaction come after a few dozen changes.

use std::sync::atomic::AtomicBool;

use crate::durable::{Producer, TempDir, check_restored, produce, serve_durable};
use crate::support::*;

const FLOOR: &str = "8192";

/// Runs four producers on tasks made on `server` until it dies (or, with `updates`, until each
/// made that many); returns the task ids and each one's last acknowledged `eventId`.
fn load(server: &Binary, updates: Option<u64>) -> (Vec<String>, Vec<u64>) {
    let ids: Vec<String> = (0..4).map(|i| format!("c{i}")).collect();
    for id in &ids {
        create(server.addr, id);
    }
    let producers: Vec<_> = ids
        .iter()
        .map(|id| {
            let (addr, id) = (server.addr, id.clone());
            std::thread::spawn(move || match updates {
                None => produce(addr, &id, 1, &AtomicBool::new(false)),
                Some(n) => {
                    let mut producer = Producer::new(addr);
                    for next in 2..n + 2 {
                        let body = serde_json::json!({ "message": next.to_string() });
                        let (status, task) =
                            producer.call("PATCH", &format!("{TASKS}/{id}"), &body).expect("an answer");
                        assert_eq!((status, task["eventId"].as_u64()), (200, Some(next)), "{task}");
                    }
                    n + 1
                }
            })
        })
        .collect();
    (ids, producers.into_iter().map(|p| p.join().unwrap()).collect())
}

#[test]
fn a_crash_at_any_point_of_compaction_loses_no_acknowledged_change() {
    // Shows, for each crash point of a compaction under load, that the restarted server has
    // every change its producers were acknowledged (and no other state), the unfinished
    // snapshot is gone, and the directory works on.
    for point in ["compact-open", "compact-written", "compact-synced", "compact-renamed", "compact-done"] {
        let dir = TempDir::new(point);
        let mut server =
            serve_durable(&dir, &[], &[("SSE_PROGRESS_COMPACT_FLOOR", FLOOR), ("SSE_PROGRESS_CRASH_AT", point)]);
        let (ids, acked) = load(&server, None);
        server.wait_for_line(&format!("crashing at {point}"));
        assert!(!server.wait_exit(TIMEOUT).success(), "{point}: the server died there");
        let server = serve_durable(&dir, &[], &[("SSE_PROGRESS_COMPACT_FLOOR", FLOOR)]);
        let restored = check_restored(server.addr, &ids, &acked, &vec![0; ids.len()]);
        assert!(acked.iter().sum::<u64>() > 8, "{point}: the crash came after some changes: {acked:?}");
        assert!(!dir.path().join("journal.new").exists(), "{point}: the unfinished snapshot is removed");
        for (id, event) in ids.iter().zip(restored) {
            let task = call(server.addr, "PATCH", &format!("{TASKS}/{id}"), Some(serde_json::json!({"progress": 1})));
            assert_eq!(task["eventId"], event + 1, "{point}: {id} goes on");
        }
    }
}

#[test]
fn the_directory_stays_near_the_live_state_however_many_changes() {
    // Shows 2,000 changes to four tasks leave a journal of at most the floor plus a few times
    // the live tasks (it would be about 60 times that uncompacted), all of them restored.
    let dir = TempDir::new("small");
    let env = [("SSE_PROGRESS_COMPACT_FLOOR", FLOOR)];
    let server = serve_durable(&dir, &[], &env);
    let (ids, acked) = load(&server, Some(500));
    drop(server);
    let len = std::fs::metadata(dir.path().join("journal")).unwrap().len();
    assert!(len <= 3 * 8192, "journal of {len} bytes after 2,000 changes");
    let server = serve_durable(&dir, &[], &env);
    check_restored(server.addr, &ids, &acked, &vec![0; ids.len()]);
}
