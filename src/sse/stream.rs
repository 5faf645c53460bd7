//! One viewer's stream: the head, `retry`, `connected`, the snapshot, then every change until
//! the task ends, with heartbeats in between.
//!
//! The loop holds no queue and no buffer of its own: it waits on three things at once (the next
//! frame of its topic, its heartbeat deadline on the shared wheel, and the socket becoming
//! readable, which means the client left) and writes shared frames as they come. A write that
//! completes at once costs no timer; only a write that blocks arms a deadline, and a viewer
//! whose write stays blocked until the stale timeout is closed.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use smol::future;
use smol::io::{AsyncReadExt, AsyncWriteExt};

use super::encoder::{self, Frame};
use super::topic::Topic;
use crate::connections::StreamGuard;
use crate::debug;
use crate::http::conn::Conn;
use crate::log::Ns;
use crate::server::Shared;
use crate::tracker::now_ms;

/// How a stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The terminal event was sent and the response finished: the connection may go on.
    Finished,
    /// The client left, a write failed, or the viewer was too slow: close the connection.
    Closed,
}

/// What wakes the waiting viewer.
enum Wake {
    Frame(Arc<Frame>),
    Heartbeat,
    Peer,
}

/// Streams `topic` to the client. `skip_snapshot` when the client's `Last-Event-ID` is current.
pub async fn run(shared: &Shared, conn: &mut Conn, task_id: &str, topic: Arc<Topic>, skip_snapshot: bool, chunked: bool) -> End {
    conn.release_buffer();
    let guard = shared.connections.open();
    let (mut viewer, latest) = topic.subscribe();
    drop(topic);
    debug!(Ns::Conn, "stream {} opened for {task_id}", guard.id());
    let writer = Writer { shared, conn, guard: &guard, chunked };

    // The head and the opening events go out in one write.
    let mut body = Vec::with_capacity(256 + latest.plain().len());
    encoder::encode_retry(&mut body, shared.config.retry.as_millis() as u64);
    let connected = serde_json::json!({
        "taskId": task_id,
        "connectionId": format!("{:x}", guard.id()),
        "serverTime": now_ms(),
    });
    encoder::encode_event(&mut body, Some("connected"), None, &connected.to_string()).expect("fixed event name");
    if !skip_snapshot {
        body.extend_from_slice(latest.plain());
    }
    let mut out = Vec::with_capacity(body.len() + 256);
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache, no-transform\r\nX-Accel-Buffering: no\r\n");
    if chunked {
        out.extend_from_slice(b"Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n");
        let _ = write!(out, "{:x}\r\n", body.len());
        out.extend_from_slice(&body);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(&body);
    }
    drop(body);
    if !writer.send(&out).await {
        return End::Closed;
    }
    drop(out);
    if !skip_snapshot && latest.ends_stream() {
        return writer.finish().await;
    }
    drop(latest);

    let heartbeat = shared.config.heartbeat;
    let mut last_write = Instant::now();
    let mut beat = shared.timers.sleep_until(last_write + heartbeat);
    let mut probe = [0u8; 1];
    loop {
        let wake = future::or(
            future::or(async { Wake::Frame(viewer.next().await) }, async {
                (&mut beat).await;
                Wake::Heartbeat
            }),
            async {
                // A stream's client sends nothing: readable means it closed (or misbehaves).
                let _ = (&*writer.conn.stream()).read(&mut probe).await;
                Wake::Peer
            },
        )
        .await;
        match wake {
            Wake::Frame(frame) => {
                let bytes = if chunked { frame.chunked() } else { frame.plain() };
                if !writer.send(bytes).await {
                    return End::Closed;
                }
                if frame.ends_stream() {
                    return writer.finish().await;
                }
                last_write = Instant::now();
            }
            Wake::Heartbeat => {
                let due = last_write + heartbeat;
                if Instant::now() + shared.config.timer_tick < due {
                    beat.reset(due); // a frame went out since this deadline was set
                    continue;
                }
                if !writer.send(&heartbeat_bytes(chunked)).await {
                    return End::Closed;
                }
                last_write = Instant::now();
                beat.reset(last_write + heartbeat);
            }
            Wake::Peer => {
                debug!(Ns::Conn, "stream {} closed by the client", guard.id());
                return End::Closed;
            }
        }
    }
}

/// Writes for one stream, keeping its health record.
struct Writer<'a> {
    shared: &'a Shared,
    conn: &'a Conn,
    guard: &'a StreamGuard<'a>,
    chunked: bool,
}

impl Writer<'_> {
    /// Writes all of `bytes`; false if the write failed or stayed blocked past the stale timeout.
    async fn send(&self, bytes: &[u8]) -> bool {
        let mut stream = self.conn.stream();
        let mut write = std::pin::pin!(stream.write_all(bytes));
        // Most writes complete at once; only a blocked one costs a deadline on the wheel.
        let result = match future::poll_once(&mut write).await {
            Some(result) => result,
            None => {
                self.guard.blocked();
                let deadline = Instant::now() + self.shared.config.stale_after;
                let mut sleep = self.shared.timers.sleep_until(deadline);
                future::or(write, async {
                    (&mut sleep).await;
                    Err(std::io::ErrorKind::TimedOut.into())
                })
                .await
            }
        };
        match result {
            Ok(()) => {
                self.guard.wrote();
                true
            }
            Err(e) => {
                debug!(Ns::Conn, "stream {} write failed: {e}", self.guard.id());
                self.guard.failed();
                false
            }
        }
    }

    /// Ends the response after the last event: the chunked terminator, or the close.
    async fn finish(&self) -> End {
        debug!(Ns::Conn, "stream {} finished", self.guard.id());
        if self.chunked && self.send(b"0\r\n\r\n").await { End::Finished } else { End::Closed }
    }
}

fn heartbeat_bytes(chunked: bool) -> Vec<u8> {
    let mut event = Vec::with_capacity(64);
    encoder::encode_event(&mut event, Some("heartbeat"), None, &format!("{{\"time\":{}}}", now_ms())).expect("fixed name");
    if !chunked {
        return event;
    }
    let mut out = Vec::with_capacity(event.len() + 8);
    let _ = write!(out, "{:x}\r\n", event.len());
    out.extend_from_slice(&event);
    out.extend_from_slice(b"\r\n");
    out
}
