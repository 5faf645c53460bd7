//! One viewer's stream: the head, `retry`, `connected`, the snapshot, then every change until
//! the task ends, with heartbeats in between.
//!
//! The loop holds no queue and no buffer of its own. It waits on four things at once, polled by
//! hand in one `poll_fn` so the wait costs no extra future state: the next frame of its topic,
//! the server's shutdown, its heartbeat deadline on the shared wheel, and the socket turning
//! readable (the client left; a stream's client sends nothing). A write that completes at once
//! costs no timer; a write that blocks detaches the viewer from its topic (frames stop waiting
//! for it) and arms one deadline: a viewer still stuck after `unhealthy_after` gets
//! `event: error` `too_slow` if the socket takes it, and is closed.

use std::io::{self, ErrorKind, IoSlice, Write as _};
use std::net::TcpStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use async_io::Async;
use smol::future;

use super::encoder::{self, Frame};
use super::topic::Viewer;
use crate::connections::StreamGuard;
use crate::debug;
use crate::http::conn::{Conn, write_now};
use crate::log::Ns;
use crate::server::Shared;
use crate::tracker::now_ms;

/// How a stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The terminal event was sent and the response finished: the connection may go on.
    Finished,
    /// The client left, a write failed, the viewer was too slow, or the server is stopping.
    Closed,
}

/// What wakes the waiting viewer.
enum Wake {
    Frame(Arc<Frame>),
    Shutdown,
    Heartbeat,
    Peer,
}

/// A stream about to start: what the route decided.
#[derive(Debug)]
pub struct Start {
    /// The task id, for the `connected` event.
    pub task_id: String,
    /// Subscribed before the snapshot was chosen, so no change falls between them.
    pub viewer: Viewer,
    /// The snapshot: the newest frame at subscription.
    pub snapshot: Arc<Frame>,
    /// The client's `Last-Event-ID` is the snapshot's id: do not send it again.
    pub skip_snapshot: bool,
    /// HTTP/1.1 chunked framing (else HTTP/1.0, delimited by the close).
    pub chunked: bool,
    /// The connection may serve another request after a finished stream.
    pub keep_alive: bool,
    /// Extra header lines (CORS), each ending in CRLF.
    pub extra_headers: String,
}

/// Streams to the client until the task ends or the connection does.
pub async fn run(shared: &Shared, conn: &mut Conn, start: Start, guard: &StreamGuard) -> End {
    conn.release_buffer();
    let chunked = start.chunked;
    let mut viewer = start.viewer;
    let writer = Writer { shared, conn, guard, chunked };
    // The head and the opening events go out in one write; the bytes are built outside this
    // async fn so nothing of them stays in its state while the stream idles.
    let (out, ends) =
        opening(shared, guard.id(), start.task_id, start.snapshot, start.skip_snapshot, chunked, start.extra_headers);
    // The response head comes first here: if it never goes out, no event may be put before it.
    if !writer.send(&out, false, &mut viewer).await {
        return End::Closed;
    }
    drop(out);
    if ends {
        return Box::pin(writer.finish()).await;
    }

    // One deadline serves both the heartbeat and the stale cleanup: whichever comes first. The
    // durations are read from the config where used, not copied into this future's state.
    let config = &shared.config;
    let quiet_limit = || config.heartbeat.min(config.stale_after);
    let mut last_write = Instant::now();
    let mut beat = shared.timers.sleep_until(last_write + quiet_limit());
    let socket = writer.conn.stream();
    // One registration for the stream's life, not one per event: the shutdown signal's waker
    // list is shared by every connection.
    let mut shutdown = std::pin::pin!(shared.shutdown.wait());
    loop {
        let wake = future::poll_fn(|cx| {
            if let Poll::Ready(frame) = viewer.poll_next(cx) {
                return Poll::Ready(Wake::Frame(frame));
            }
            if shutdown.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Shutdown);
            }
            if Pin::new(&mut beat).poll(cx).is_ready() {
                return Poll::Ready(Wake::Heartbeat);
            }
            // Readiness only: no read syscall per wake-up.
            if socket.poll_readable(cx).is_ready() {
                return Poll::Ready(Wake::Peer);
            }
            Poll::Pending
        })
        .await;
        match wake {
            Wake::Frame(frame) => {
                let ends = match write_batch(socket, &mut viewer, frame, chunked) {
                    Ok(Batch { ends, rest: None }) => {
                        guard.wrote();
                        ends
                    }
                    Ok(Batch { ends, rest: Some((rest, at_event_start)) }) => {
                        if !Box::pin(writer.send_blocked(&rest, 0, at_event_start, &mut viewer)).await {
                            return End::Closed;
                        }
                        ends
                    }
                    Err(e) => {
                        writer.failed(&e);
                        return End::Closed;
                    }
                };
                if ends {
                    return Box::pin(writer.finish()).await;
                }
                last_write = Instant::now();
            }
            Wake::Shutdown => {
                // A retry hint spread over a few seconds, so reconnects do not arrive at once.
                let retry = shared.config.retry.as_millis() as u64 + fastrand::u64(0..3000);
                let mut event = Vec::with_capacity(160);
                encoder::encode_retry(&mut event, retry);
                let frame = Frame::closing("shutting_down", "The server is restarting; reconnect shortly.");
                event.extend_from_slice(frame.plain());
                let out = if chunked {
                    let mut out = Vec::with_capacity(event.len() + 16);
                    push_chunk(&mut out, &event);
                    out
                } else {
                    event
                };
                return Box::pin(writer.last_words(out, &mut viewer)).await;
            }
            Wake::Heartbeat => {
                let now = Instant::now();
                if now >= last_write + config.stale_after {
                    // Heartbeats set longer than the stale time: the cleanup ends the stream,
                    // telling the viewer why if its socket still takes writes.
                    debug!(Ns::Conn, "stream {} stale: closing", guard.id());
                    let frame =
                        Frame::closing("stale", "The stream was silent too long and is being closed; reconnect.");
                    let bytes = if chunked { frame.chunked() } else { frame.plain() };
                    return Box::pin(writer.last_words(bytes.to_vec(), &mut viewer)).await;
                }
                let due = last_write + quiet_limit();
                if now + shared.config.timer_tick < due {
                    beat.reset(due); // a frame went out since this deadline was set
                    continue;
                }
                if now >= last_write + config.heartbeat {
                    if !writer.send(&heartbeat_bytes(chunked), true, &mut viewer).await {
                        return End::Closed;
                    }
                    last_write = Instant::now();
                }
                beat.reset(last_write + quiet_limit());
            }
            Wake::Peer => {
                // Readiness can be stale (left from reading the request): look before leaving.
                match socket.get_ref().peek(&mut [0u8; 1]) {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                    _ => {
                        debug!(Ns::Conn, "stream {} closed by the client", guard.id());
                        return End::Closed;
                    }
                }
            }
        }
    }
}

/// Send buffer of every accepted socket, set once on the listener (`server::listen`); the kernel
/// doubles it for its bookkeeping.
pub const STREAM_SEND_BUFFER: usize = 64 * 1024;

/// Most frames gathered into one write: a viewer that is behind catches up with one syscall.
const BATCH: usize = 64;

/// What `write_batch` did.
struct Batch {
    /// The last frame written ends the stream.
    ends: bool,
    /// What the socket did not take at once (copied, for the blocked path), and whether it
    /// starts at the beginning of an event.
    rest: Option<(Vec<u8>, bool)>,
}

/// Writes `first` and every frame ready after it (up to [`BATCH`], stopping after a frame that
/// ends the stream) in one vectored write, without waiting. Synchronous on purpose: the gathered
/// frames never sit in the stream's future while it idles.
fn write_batch(socket: &Async<TcpStream>, viewer: &mut Viewer, first: Arc<Frame>, chunked: bool) -> io::Result<Batch> {
    let mut frames: [Option<Arc<Frame>>; BATCH] = [const { None }; BATCH];
    let mut ends = first.ends_stream();
    frames[0] = Some(first);
    let mut n = 1;
    while !ends && n < BATCH {
        let Some(frame) = viewer.try_next() else { break };
        ends = frame.ends_stream();
        frames[n] = Some(frame);
        n += 1;
    }
    fn bytes(f: &Option<Arc<Frame>>, chunked: bool) -> &[u8] {
        let f = f.as_deref().expect("filled above");
        if chunked { f.chunked() } else { f.plain() }
    }
    let total: usize = frames[..n].iter().map(|f| bytes(f, chunked).len()).sum();
    // The common case, one frame ready: a plain write, without building the slice table.
    let mut written = if n == 1 { write_now(socket, bytes(&frames[0], chunked))? } else { 0 };
    while written < total {
        // The slices still to write, from `written` on.
        let mut skip = written;
        let mut slices: [IoSlice<'_>; BATCH] = [IoSlice::new(&[]); BATCH];
        let mut count = 0;
        for frame in &frames[..n] {
            let b = bytes(frame, chunked);
            if skip >= b.len() {
                skip -= b.len();
                continue;
            }
            slices[count] = IoSlice::new(&b[skip..]);
            skip = 0;
            count += 1;
        }
        match (&mut socket.get_ref()).write_vectored(&slices[..count]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(k) => written += k,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if written == total {
        return Ok(Batch { ends, rest: None });
    }
    let mut rest = Vec::with_capacity(total - written);
    let mut skip = written;
    let mut at_event_start = false;
    for frame in &frames[..n] {
        let b = bytes(frame, chunked);
        if skip >= b.len() {
            skip -= b.len();
        } else {
            if rest.is_empty() {
                at_event_start = skip == 0;
            }
            rest.extend_from_slice(&b[skip..]);
            skip = 0;
        }
    }
    Ok(Batch { ends, rest: Some((rest, at_event_start)) })
}

/// Writes for one stream, keeping its health record.
struct Writer<'a> {
    shared: &'a Shared,
    conn: &'a Conn,
    guard: &'a StreamGuard,
    chunked: bool,
}

impl Writer<'_> {
    /// Writes all of `bytes` (which start an event when `at_event_start`); false if the write
    /// failed or stayed blocked too long.
    async fn send(&self, bytes: &[u8], at_event_start: bool, viewer: &mut Viewer) -> bool {
        // Most writes complete at once and cost one syscall, no timer and no await; the rare
        // blocked write is boxed so its future does not sit in every idle stream's state.
        match write_now(self.conn.stream(), bytes) {
            Ok(n) if n == bytes.len() => {
                self.guard.wrote();
                true
            }
            Ok(n) => Box::pin(self.send_blocked(bytes, n, at_event_start, viewer)).await,
            Err(e) => self.failed(&e),
        }
    }

    /// The rest of a write the socket did not take at once. `at_event_start`: `bytes` begins an
    /// event, so if nothing of it goes out, a `too_slow` event can still be framed correctly.
    async fn send_blocked(&self, bytes: &[u8], mut written: usize, at_event_start: bool, viewer: &mut Viewer) -> bool {
        let socket = self.conn.stream();
        self.guard.blocked();
        viewer.detach();
        let config = &self.shared.config;
        let mut sleep = self.shared.timers.sleep_until(Instant::now() + config.unhealthy_after.min(config.stale_after));
        while written < bytes.len() {
            let rest = &bytes[written..];
            let step = future::or(async { Some(socket.write_with(|s| (&*s).write(rest)).await) }, async {
                (&mut sleep).await;
                None
            });
            match step.await {
                Some(Ok(n)) => written += n,
                Some(Err(e)) => return self.failed(&e),
                None => {
                    if written == 0 && at_event_start {
                        // At an event boundary: tell the viewer why, if its socket takes it now.
                        let frame = Frame::closing("too_slow", "The connection could not keep up and is being closed.");
                        let _ = socket.get_ref().write(if self.chunked { frame.chunked() } else { frame.plain() });
                    }
                    debug!(Ns::Conn, "stream {} too slow: closing", self.guard.id());
                    self.guard.failed();
                    return false;
                }
            }
        }
        self.guard.wrote();
        true
    }

    fn failed(&self, e: &std::io::Error) -> bool {
        debug!(Ns::Conn, "stream {} write failed: {e}", self.guard.id());
        self.guard.failed();
        false
    }

    /// Sends a stream's last event (shutting down, stale) and ends the response. Boxed by the
    /// callers: these rare exits must not add their state to every idle stream's future.
    async fn last_words(&self, bytes: Vec<u8>, viewer: &mut Viewer) -> End {
        if self.send(&bytes, true, viewer).await { self.finish().await } else { End::Closed }
    }

    /// Ends the response after the last event: the chunked terminator, or the close.
    async fn finish(&self) -> End {
        debug!(Ns::Conn, "stream {} finished", self.guard.id());
        if !self.chunked {
            return End::Closed;
        }
        let deadline = Instant::now() + self.shared.config.unhealthy_after;
        match self.conn.write_all(b"0\r\n\r\n", &self.shared.timers, deadline).await {
            Ok(()) => End::Finished,
            Err(_) => End::Closed,
        }
    }
}

/// The response head, `retry`, `connected` and (unless skipped) the snapshot; and whether the
/// stream ends right after them (the snapshot sent is terminal).
fn opening(
    shared: &Shared,
    id: u64,
    task_id: String,
    snapshot: Arc<Frame>,
    skip_snapshot: bool,
    chunked: bool,
    extra_headers: String,
) -> (Vec<u8>, bool) {
    debug!(Ns::Conn, "stream {id} opened for {task_id}");
    let mut body = Vec::with_capacity(256 + snapshot.plain().len());
    encoder::encode_retry(&mut body, shared.config.retry.as_millis() as u64);
    let connected = serde_json::json!({
        "taskId": task_id,
        "connectionId": format!("{id:x}"),
        "serverTime": now_ms(),
    });
    encoder::encode_event(&mut body, Some("connected"), None, &connected.to_string()).expect("fixed event name");
    if !skip_snapshot {
        body.extend_from_slice(snapshot.plain());
    }
    let mut out = Vec::with_capacity(body.len() + 256);
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache, no-transform\r\nX-Accel-Buffering: no\r\n",
    );
    out.extend_from_slice(extra_headers.as_bytes());
    if chunked {
        out.extend_from_slice(b"Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n");
        push_chunk(&mut out, &body);
    } else {
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(&body);
    }
    (out, !skip_snapshot && snapshot.ends_stream())
}

fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

fn heartbeat_bytes(chunked: bool) -> Vec<u8> {
    let mut event = Vec::with_capacity(64);
    encoder::encode_event(&mut event, Some("heartbeat"), None, &format!("{{\"time\":{}}}", now_ms()))
        .expect("fixed name");
    if !chunked {
        return event;
    }
    let mut out = Vec::with_capacity(event.len() + 8);
    push_chunk(&mut out, &event);
    out
}
