//! A full disk (API.md, "Durable tasks"): a change that cannot be made durable is answered `503`
//! `storage_unavailable` with `Retry-After`, uses up no `eventId` and is shown to no viewer; the
//! server keeps serving reads and streams, and takes changes again once space is back, without a
//! restart. The disk is a tmpfs of 256 KiB mounted for the test (it needs root; without the right
//! to mount, the test says so and checks nothing).

use std::process::Command;

use serde_json::json;

use crate::durable::{Producer, TempDir, serve_durable};
use crate::support::*;

/// Unmounts the test's tmpfs when dropped (after the server using it, declared later, is gone).
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_answers_503_and_writes_work_again_once_space_is_back() {
    // Shows on a filesystem that fills up: 503 storage_unavailable with Retry-After, no crash,
    // reads and an open stream go on, the viewer never sees a refused change, the next accepted
    // change takes the eventId after the last acknowledged one, and after space is freed (no
    // restart) changes are accepted and survive a kill -9.
    let base = TempDir::new("full");
    let mnt = base.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("durable_disk_full: not allowed to mount a tmpfs here; the full-disk test checked nothing");
        return;
    }
    let _mounted = Mounted(mnt.clone());
    // Leaves about 40 KiB for the journal.
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 216 * 1024]).unwrap();
    let dir = TempDir(mnt.join("data"));
    let server = serve_durable(&dir, &[], &[]);
    create(server.addr, "t");
    let mut viewer = open_stream(server.addr, "t", &[]);
    assert_eq!(viewer.next().expect("connected").event, "connected");
    assert_eq!(viewer.next_non_heartbeat().unwrap().id.as_deref(), Some("1"));

    let mut producer = Producer::new(server.addr);
    let path = format!("{TASKS}/t");
    let big = "x".repeat(4000);
    let mut acked = 1;
    let refused = loop {
        let body = json!({ "message": format!("{} {big}", acked + 1) });
        let (status, answer) = producer.call("PATCH", &path, &body).expect("an answer, not a crash");
        if status != 200 {
            break (status, answer);
        }
        assert_eq!(answer["eventId"], acked + 1);
        acked += 1;
        assert!(acked < 200, "the disk never filled up");
    };
    assert!(acked > 2, "some changes fit: {acked}");
    assert_eq!(refused.0, 503, "{}", refused.1);
    assert_eq!(refused.1["error"]["code"], "storage_unavailable");
    let reply = request(server.addr, "PATCH", &path, &[], Some(&json!({ "message": big }).to_string()));
    assert_eq!(reply.status, 503, "still full: {}", reply.text());
    assert!(assert_retry_after(&reply) > 0);
    assert_eq!(current(server.addr, "t")["eventId"], acked, "reads go on and show no refused change");
    assert_eq!(health(server.addr)["status"], "healthy");
    for expected in 2..=acked {
        assert_eq!(viewer.next_non_heartbeat().unwrap().id, Some(expected.to_string()));
    }

    std::fs::remove_file(&filler).unwrap();
    let (status, answer) = producer.call("PATCH", &path, &json!({ "message": "after" })).expect("an answer");
    assert_eq!((status, answer["eventId"].as_u64()), (200, Some(acked + 1)), "no eventId was used up: {answer}");
    let next = viewer.next_non_heartbeat().unwrap();
    assert_eq!(next.id, Some((acked + 1).to_string()), "the viewer's next event is the accepted change");
    assert!(next.data.contains("\"after\""));
    server.signal("KILL");
    let mut server = server;
    server.wait_exit(TIMEOUT);
    let server = serve_durable(&dir, &[], &[]);
    let task = current(server.addr, "t");
    assert_eq!((task["eventId"].as_u64(), task["message"].as_str()), (Some(acked + 1), Some("after")));
    drop(server);
    eprintln!("durable_disk_full: tmpfs full after {acked} changes; 503s; accepted again after space was freed");
}
