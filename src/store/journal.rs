//! The journal's file format: framed change records, and the replay that reads them back.
//!
//! A record is `length (u32 LE) | CRC32C of the body (u32 LE) | CRC32C of the head (u32 LE) |
//! body`, and a body is `kind (u8) | change sequence number (u64 LE) | payload`; the head is the
//! length, the body's CRC, the kind and the number (17 bytes). A `put` holds the whole task (its
//! JSON fields, the subscribe token and the ETA anchor), so replay needs no logic: the last record
//! of a task wins, and a `remove` forgets it. A `mark` holds only a number: a snapshot starts with
//! one, so the change sequence survives even when no task is left.
//!
//! The checksum is what tells a record from a torn or damaged one. A write cut short by a crash
//! leaves a partial record at the end; a bad sector or a flipped bit leaves a bad one anywhere.
//! Replay reads records while they check, and at a bad one looks forward, byte by byte, for the
//! next record that checks (a random match of both the length and the CRC32C is one in 2^32 per
//! position): when there is one, what lay between is skipped and reported; when there is none,
//! the rest is a torn tail, cut and reported. It never refuses the file. The head's own checksum
//! keeps that look linear: at a position whose length field merely reads as plausible it costs
//! 17 bytes of CRC, not a CRC over up to 16 MiB (which made a few MiB of damage take a minute).
//!
//! CRC32C (Castagnoli) rather than the zlib CRC32 because it is the one storage uses (iSCSI, ext4,
//! btrfs), with better error detection for these lengths; it is a 1 KiB table computed at compile
//! time and one lookup per byte, far below the cost of the `fsync` a record waits for.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::task::{JsonText, Task, TaskStatus};

/// Bytes before a record's body: its length, its body's checksum and its head's.
pub(crate) const HEADER: usize = 12;
/// Bytes of the header the head checksum covers: the length and the body's checksum.
const HEAD_FIELDS: usize = 8;
/// The largest body replay accepts: a task with a 1 MiB result, every string at its limit and
/// escaped, fits many times over; a larger length is damage.
const MAX_BODY: usize = 16 << 20;
/// Bytes of a body before its payload: the kind and the change number.
const BODY_HEAD: usize = 9;

const PUT: u8 = 1;
const REMOVE: u8 = 2;
const MARK: u8 = 3;

/// The CRC32C table (reflected polynomial 0x82F63B78), built at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The CRC32C of `bytes`.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &b| TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8))
}

/// One change as the journal holds it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Record {
    /// The task's whole new state, with its subscribe token.
    Put { task: Task, token: Option<String>, seq: u64 },
    /// The task is gone.
    Remove { task_id: String, seq: u64 },
    /// Only where the change sequence stands.
    Mark { seq: u64 },
}

/// A task's fields as a `put` stores them. The result is kept as its JSON text in a string, so
/// a `null` result stays apart from no result.
#[derive(Serialize)]
struct PutOut<'a> {
    id: &'a str,
    status: &'a str,
    progress: f64,
    stage: &'a str,
    message: &'a str,
    created: u64,
    updated: u64,
    eta: Option<f64>,
    result: Option<&'a str>,
    error: Option<&'a str>,
    event: u64,
    anchor: Option<(u64, f64)>,
    token: Option<&'a str>,
}

#[derive(Deserialize)]
struct PutIn {
    id: String,
    status: String,
    progress: f64,
    stage: String,
    message: String,
    created: u64,
    updated: u64,
    eta: Option<f64>,
    result: Option<String>,
    error: Option<String>,
    event: u64,
    anchor: Option<(u64, f64)>,
    token: Option<String>,
}

/// Appends the record of `task`'s new state (change `seq`) to `out`.
pub(crate) fn put(out: &mut Vec<u8>, task: &Task, token: Option<&str>, seq: u64) {
    let fields = PutOut {
        id: &task.task_id,
        status: task.status.as_str(),
        progress: task.progress,
        stage: &task.stage,
        message: &task.message,
        created: task.created_at,
        updated: task.updated_at,
        eta: task.estimated_time_remaining,
        result: task.result.as_ref().map(JsonText::as_str),
        error: task.error.as_deref(),
        event: task.event_id,
        anchor: task.rate_anchor,
        token,
    };
    frame(out, PUT, seq, |out| serde_json::to_writer(out, &fields).expect("a task always serializes"));
}

/// Appends the record of `task_id`'s removal (change `seq`) to `out`.
pub(crate) fn remove(out: &mut Vec<u8>, task_id: &str, seq: u64) {
    frame(out, REMOVE, seq, |out| out.extend_from_slice(task_id.as_bytes()));
}

/// Appends a record that only says the change sequence stands at `seq`.
pub(crate) fn mark(out: &mut Vec<u8>, seq: u64) {
    frame(out, MARK, seq, |_| ());
}

fn frame(out: &mut Vec<u8>, kind: u8, seq: u64, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(kind);
    out.extend_from_slice(&seq.to_le_bytes());
    payload(out);
    let body = &out[start + HEADER..];
    let (len, crc) = (body.len() as u32, crc32c(body));
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEAD_FIELDS].copy_from_slice(&crc.to_le_bytes());
    let head = head_crc(&out[start..start + HEAD_FIELDS], &out[start + HEADER..start + HEADER + BODY_HEAD]);
    out[start + HEAD_FIELDS..start + HEADER].copy_from_slice(&head.to_le_bytes());
}

/// The head's checksum: over the length, the body's checksum, the kind and the number.
fn head_crc(fields: &[u8], body_head: &[u8]) -> u32 {
    let mut head = [0; HEAD_FIELDS + BODY_HEAD];
    head[..HEAD_FIELDS].copy_from_slice(fields);
    head[HEAD_FIELDS..].copy_from_slice(body_head);
    crc32c(&head)
}

#[cfg(test)]
thread_local! {
    /// Bytes of bodies this thread has checked, to show the work of a replay.
    static BODY_BYTES_CHECKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The record at the start of `bytes` and its length in bytes, if one is whole and checks.
pub(crate) fn read(bytes: &[u8]) -> Option<(Record, usize)> {
    let header = bytes.get(..HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..HEAD_FIELDS].try_into().expect("4 bytes"));
    let head = u32::from_le_bytes(header[HEAD_FIELDS..].try_into().expect("4 bytes"));
    if !(BODY_HEAD..=MAX_BODY).contains(&len) {
        return None;
    }
    if head_crc(&header[..HEAD_FIELDS], bytes.get(HEADER..HEADER + BODY_HEAD)?) != head {
        return None;
    }
    let body = bytes.get(HEADER..HEADER + len)?;
    #[cfg(test)]
    BODY_BYTES_CHECKED.set(BODY_BYTES_CHECKED.get() + len);
    if crc32c(body) != crc {
        return None;
    }
    let seq = u64::from_le_bytes(body[1..BODY_HEAD].try_into().expect("8 bytes"));
    let payload = &body[BODY_HEAD..];
    let record = match body[0] {
        PUT => {
            let p: PutIn = serde_json::from_slice(payload).ok()?;
            let status = match p.status.as_str() {
                "pending" => TaskStatus::Pending,
                "running" => TaskStatus::Running,
                "completed" => TaskStatus::Completed,
                "failed" => TaskStatus::Failed,
                _ => return None,
            };
            let result = match p.result {
                Some(text) => Some(JsonText::parse(&text).ok()?),
                None => None,
            };
            let task = Task {
                task_id: p.id,
                status,
                progress: p.progress,
                stage: p.stage,
                message: p.message,
                created_at: p.created,
                updated_at: p.updated,
                estimated_time_remaining: p.eta,
                result,
                error: p.error,
                event_id: p.event,
                rate_anchor: p.anchor,
            };
            Record::Put { task, token: p.token, seq }
        }
        REMOVE => Record::Remove { task_id: String::from_utf8(payload.to_vec()).ok()?, seq },
        MARK if payload.is_empty() => Record::Mark { seq },
        _ => return None,
    };
    Some((record, HEADER + len))
}

/// What a replay of a journal found.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// The live tasks: each with its token and the number of its last change.
    pub tasks: HashMap<String, (Task, Option<String>, u64)>,
    /// The highest change number of any record.
    pub last_seq: u64,
    /// Where the last record that checks ends: the file is cut here.
    pub good_len: usize,
    /// Damaged stretches in the middle that were skipped: (offset, bytes).
    pub skipped: Vec<(usize, usize)>,
    /// Bytes of a torn or damaged tail after `good_len`.
    pub dropped: usize,
    /// Records read.
    pub records: usize,
}

/// Reads every record of `bytes`, last record of a task winning (see the module docs).
pub(crate) fn replay(bytes: &[u8]) -> Replay {
    let mut replay = Replay::default();
    let mut pos = 0;
    while pos < bytes.len() {
        if let Some((record, len)) = read(&bytes[pos..]) {
            replay.apply(record);
            pos += len;
            replay.good_len = pos;
            continue;
        }
        match (pos + 1..bytes.len()).find(|&at| read(&bytes[at..]).is_some()) {
            Some(next) => {
                replay.skipped.push((pos, next - pos));
                pos = next;
            }
            None => {
                replay.dropped = bytes.len() - pos;
                break;
            }
        }
    }
    replay
}

impl Replay {
    fn apply(&mut self, record: Record) {
        self.records += 1;
        let seq = match record {
            Record::Put { task, token, seq } => {
                self.tasks.insert(task.task_id.clone(), (task, token, seq));
                seq
            }
            Record::Remove { task_id, seq } => {
                self.tasks.remove(&task_id);
                seq
            }
            Record::Mark { seq } => seq,
        };
        self.last_seq = self.last_seq.max(seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskUpdate;

    #[test]
    fn a_replay_over_damage_checks_a_body_only_where_a_head_checks() {
        // Shows the look for the next record over a stretch of damage is linear: over 1 MiB of
        // random bytes after good records, fewer bytes of bodies are checked than the file
        // holds (a length field read as plausible at some position cost a CRC over that many
        // bytes: about 45 MB here, and 64 times that over 4 MiB).
        let mut bytes = Vec::new();
        for i in 0..100 {
            put(&mut bytes, &sample(&format!("t{i}"), None), None, i + 1);
        }
        let good = bytes.len();
        bytes.extend((0..1 << 20).map(|_| fastrand::u8(..)));
        BODY_BYTES_CHECKED.set(0);
        let replay = replay(&bytes);
        assert_eq!((replay.tasks.len(), replay.good_len), (100, good));
        assert!(BODY_BYTES_CHECKED.get() < bytes.len(), "checked {} bytes of bodies", BODY_BYTES_CHECKED.get());
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // Shows the table and the reflection are CRC32C's: the check value of RFC 3720 / the
        // catalogue of CRCs, and an iSCSI test vector (32 bytes of zeros).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(b""), 0);
    }

    fn sample(id: &str, result: Option<&str>) -> Task {
        let mut task = Task::new(id.into(), "stage \"one\"".into(), "line\nbreak é".into(), 1_000);
        task.apply(&TaskUpdate::running(12.5), 2_000);
        task.event_id = 7;
        if let Some(r) = result {
            task.complete(JsonText::parse(r).unwrap(), 3_000);
        }
        task
    }

    #[test]
    fn records_round_trip_with_token_anchor_and_a_null_result() {
        // Shows every field of a task, its token and each record kind come back as written, and
        // a `null` result stays apart from no result.
        let mut out = Vec::new();
        let a = sample("a", None);
        let b = sample("b", Some("null"));
        let c = sample("c", Some(r#"{"k":[1,2.5,"x"]}"#));
        put(&mut out, &a, Some("tok"), 5);
        put(&mut out, &b, None, 6);
        put(&mut out, &c, None, 7);
        remove(&mut out, "a", 8);
        mark(&mut out, 9);
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((record, len)) = read(&out[at..]) {
            got.push(record);
            at += len;
        }
        assert_eq!(at, out.len());
        assert_eq!(
            got,
            [
                Record::Put { task: a, token: Some("tok".into()), seq: 5 },
                Record::Put { task: b.clone(), token: None, seq: 6 },
                Record::Put { task: c, token: None, seq: 7 },
                Record::Remove { task_id: "a".into(), seq: 8 },
                Record::Mark { seq: 9 },
            ]
        );
        assert!(b.result.is_some());
    }

    #[test]
    fn replay_keeps_the_last_record_and_the_highest_number() {
        // Shows replay needs no logic: the last put of a task wins, a remove forgets it, and the
        // sequence is the highest number seen, a mark's included.
        let mut out = Vec::new();
        let mut t = sample("t", None);
        put(&mut out, &t, None, 10);
        t.event_id = 8;
        put(&mut out, &t, None, 11);
        put(&mut out, &sample("gone", None), None, 12);
        remove(&mut out, "gone", 13);
        mark(&mut out, 20);
        let replay = replay(&out);
        assert_eq!(replay.tasks.len(), 1);
        assert_eq!(replay.tasks["t"].0.event_id, 8);
        assert_eq!(replay.tasks["t"].2, 11);
        assert_eq!((replay.last_seq, replay.good_len, replay.dropped, replay.records), (20, out.len(), 0, 5));
    }

    #[test]
    fn a_torn_tail_is_cut_at_every_offset_and_a_bad_middle_record_is_skipped() {
        // Shows a journal cut at any byte of its last record replays to the records before it
        // with the rest counted as dropped, and a flipped byte in a middle record loses that
        // record only.
        let mut out = Vec::new();
        for i in 0..3 {
            put(&mut out, &sample(&format!("t{i}"), None), None, i + 1);
        }
        let last_start = out.len();
        put(&mut out, &sample("last", Some("[1]")), None, 4);
        for cut in last_start..out.len() {
            let replay = replay(&out[..cut]);
            assert_eq!(
                (replay.tasks.len(), replay.good_len, replay.dropped),
                (3, last_start, cut - last_start),
                "{cut}"
            );
        }
        let mut flipped = out.clone();
        let second = read(&out).unwrap().1;
        flipped[second + 20] ^= 0x40;
        let replay = replay(&flipped);
        assert_eq!(replay.tasks.len(), 3);
        assert!(!replay.tasks.contains_key("t1"));
        assert_eq!(replay.skipped.len(), 1);
        assert_eq!((replay.good_len, replay.dropped), (out.len(), 0));
        let empty = super::replay(&[]);
        assert_eq!((empty.tasks.len(), empty.last_seq, empty.good_len), (0, 0, 0));
    }
}
