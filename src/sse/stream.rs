//! One viewer's stream: the head, `retry`, `connected`, the snapshot, then every change until
//! the task ends, with heartbeats in between. The same loop serves a stream of many tasks and
//! the stream of all tasks: what differs is the [`Source`] of its frames.
//!
//! The loop holds no queue and no buffer of its own. It waits on four things at once, polled by
//! hand in one `poll_fn` so the wait costs no extra future state: the next frame of its topic,
//! the server's shutdown, its heartbeat deadline on the shared wheel, and the socket turning
//! readable. Readable at end of file means the client left; readable with data means the client
//! sent its next request early (HTTP/1.1 pipelining), which stays in the socket for the request
//! loop after the stream, and the stream stops watching the socket (it would stay readable).
//!
//! Shared bytes are never copied per viewer. A write that completes at once costs no timer; a
//! write that blocks keeps what it still owes as an `Unsent` (`unsent.rs`): the viewer's own few
//! bytes, the shared frames (`Arc`s) and an offset, so a thousand stuck viewers of a 1 MiB result
//! hold one 1 MiB frame between them. It also detaches the viewer from its topics (frames stop
//! waiting for it) and arms one deadline, pushed out by every write that makes progress: a viewer that takes
//! nothing for `unhealthy_after` gets `event: error` `too_slow` if it is between two events and
//! its socket takes it, and is closed; a slow viewer that keeps reading gets the whole event,
//! however long it is.

use std::future::Future;
use std::io::{ErrorKind, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use smol::future;

use super::encoder::{self, Frame};
use super::source::Source;
use super::unsent::{BATCH, Batch, Begins, Gathered, Unsent, gather, write_batch};
use crate::connections::StreamGuard;
use crate::http::conn::Conn;
use crate::http::response::{Framing, LAST_CHUNK, write_stream_head};
use crate::log::Ns;
use crate::log::debug;
use crate::state::Shared;
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
pub struct Start<S> {
    /// Where its frames come from; subscribed before any snapshot was chosen, so no change falls
    /// between them.
    pub source: S,
    /// What the stream opens with.
    pub opening: Opening,
    /// Chunks for HTTP/1.1, the close for HTTP/1.0.
    pub framing: Framing,
    /// The connection may serve another request after a finished stream.
    pub keep_alive: bool,
    /// Extra headers (CORS).
    pub extra_headers: Vec<(&'static str, String)>,
}

/// What `connected` says, and what follows it before the source's frames.
#[derive(Debug)]
pub enum Opening {
    /// The stream of one task: `connected` names it, then its snapshot (the newest frame at
    /// subscription) unless the client has it already.
    Task {
        /// The task id.
        task_id: String,
        /// The snapshot to send, if any.
        snapshot: Option<Arc<Frame>>,
    },
    /// A stream of many tasks or of all: `connected` lists them, then an `error` for each task
    /// refused; the snapshots come from the source, in change order with what follows them.
    Tasks(Box<Listed>),
}

/// The tasks a stream of many names in `connected`, and those it refused.
#[derive(Debug, Default)]
pub struct Listed {
    /// As the client listed them (or the current tasks, for the stream of all).
    pub task_ids: Vec<String>,
    /// Each refused task: its index in `task_ids`, the error code and message.
    pub refused: Vec<(usize, &'static str, &'static str)>,
}

/// Streams to the client until the tasks end or the connection does.
pub async fn run<S: Source>(shared: &Shared, conn: &mut Conn, mut start: Start<S>, guard: &StreamGuard) -> End {
    conn.release_buffer();
    let framing = start.framing;
    // Used where it is: moved out, the source would be kept twice in this future's state.
    let viewer = &mut start.source;
    let writer = Writer { shared, conn, guard, framing };
    // The head and the opening events go out in one vectored write with the shared snapshots;
    // the bytes are built outside this async fn so nothing of them stays in its state while the
    // stream idles.
    let (first, ends) = opening(shared, guard.id(), start.opening, viewer, framing, start.extra_headers);
    if !writer.send(first, viewer).await {
        return End::Closed;
    }
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
    // Cleared once the client has sent bytes: they wait in the socket for after the stream.
    let mut watch_peer = true;
    // One registration for the stream's life, not one per event: the shutdown signal's waker
    // list is shared by every connection.
    let mut shutdown = std::pin::pin!(shared.shutdown.wait());
    loop {
        let wake = future::poll_fn(|cx| {
            if let Poll::Ready(frame) = viewer.poll_frame(cx) {
                return Poll::Ready(Wake::Frame(frame));
            }
            if shutdown.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Shutdown);
            }
            if Pin::new(&mut beat).poll(cx).is_ready() {
                return Poll::Ready(Wake::Heartbeat);
            }
            // Readiness only: no read syscall per wake-up.
            if watch_peer && socket.poll_readable(cx).is_ready() {
                return Poll::Ready(Wake::Peer);
            }
            Poll::Pending
        })
        .await;
        match wake {
            Wake::Frame(frame) => {
                let ends = match write_batch(socket, viewer, frame, framing) {
                    Ok(Batch { ends, rest: None }) => {
                        guard.wrote();
                        ends
                    }
                    Ok(Batch { ends, rest: Some(rest) }) => {
                        if !Box::pin(writer.send_blocked(rest, viewer)).await {
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
                return Box::pin(writer.last_words(shutdown_bytes(shared, framing), viewer)).await;
            }
            Wake::Heartbeat => {
                let now = Instant::now();
                if now >= last_write + config.stale_after {
                    // Heartbeats set longer than the stale time: the cleanup ends the stream,
                    // telling the viewer why if its socket still takes writes.
                    debug!(Ns::Conn, "stream {} stale: closing", guard.id());
                    let bytes = closing_bytes(
                        "stale",
                        "The stream was silent too long and is being closed; reconnect.",
                        framing,
                    );
                    return Box::pin(writer.last_words(bytes, viewer)).await;
                }
                let due = last_write + quiet_limit();
                if now + shared.config.timer_tick < due {
                    beat.reset(due); // a frame went out since this deadline was set
                    continue;
                }
                if now >= last_write + config.heartbeat {
                    if !writer.send(Unsent::event(heartbeat_bytes(framing), framing), viewer).await {
                        return End::Closed;
                    }
                    last_write = Instant::now();
                }
                beat.reset(last_write + quiet_limit());
            }
            Wake::Peer => {
                // Readiness can be stale (left from reading the request): look before acting.
                match socket.get_ref().peek(&mut [0u8; 1]) {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Ok(0) | Err(_) => {
                        debug!(Ns::Conn, "stream {} closed by the client", guard.id());
                        return End::Closed;
                    }
                    Ok(_) => {
                        // A pipelined request: the request loop reads it after the stream. A
                        // client that leaves from now on is noticed by a failed write.
                        debug!(Ns::Conn, "stream {}: the client sent its next request", guard.id());
                        watch_peer = false;
                    }
                }
            }
        }
    }
}

/// Writes for one stream, keeping its health record.
struct Writer<'a> {
    shared: &'a Shared,
    conn: &'a Conn,
    guard: &'a StreamGuard,
    framing: Framing,
}

impl Writer<'_> {
    /// Writes all of `unsent`; false if the write failed or stayed blocked too long.
    ///
    /// Not an async fn: the first attempt happens in the call, and the future returned holds
    /// only a blocked write's boxed future, so neither the bytes nor the rare wait sit in the
    /// state of every idle stream. Most writes complete at once and cost one syscall, no timer
    /// and no await.
    fn send<'a, S: Source>(&'a self, mut unsent: Unsent, viewer: &'a mut S) -> impl Future<Output = bool> + 'a {
        let blocked = match unsent.write_now(self.conn.stream()) {
            Ok(true) => {
                self.guard.wrote();
                Ok(None)
            }
            Ok(false) => Ok(Some(Box::pin(self.send_blocked(unsent, viewer)))),
            Err(e) => {
                self.failed(&e);
                Err(())
            }
        };
        async move {
            match blocked {
                Ok(None) => true,
                Ok(Some(blocked)) => blocked.await,
                Err(()) => false,
            }
        }
    }

    /// The rest of a write the socket did not take at once. The deadline is time without
    /// progress: a client that reads slowly is not a client that is gone.
    async fn send_blocked<S: Source>(&self, mut unsent: Unsent, viewer: &mut S) -> bool {
        let socket = self.conn.stream();
        self.guard.blocked();
        viewer.detach();
        let config = &self.shared.config;
        let patience = config.unhealthy_after.min(config.stale_after);
        let mut sleep = self.shared.timers.sleep_until(Instant::now() + patience);
        let total = unsent.len();
        while unsent.written < total {
            let step = future::or(async { Some(socket.write_with(|s| unsent.write_once(s)).await) }, async {
                (&mut sleep).await;
                None
            });
            match step.await {
                Some(Ok(n)) => {
                    unsent.written += n;
                    if unsent.written < total {
                        // Still blocked, but since now: the health record and the deadline say so.
                        self.guard.wrote();
                        self.guard.blocked();
                        sleep.reset(Instant::now() + patience);
                    }
                }
                Some(Err(e)) => return self.failed(&e),
                None => {
                    if unsent.at_event_boundary() {
                        // Between two events: tell the viewer why, if its socket takes it now.
                        let _ = socket.get_ref().write(Frame::too_slow().framed(self.framing));
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
    async fn last_words<S: Source>(&self, bytes: Vec<u8>, viewer: &mut S) -> End {
        if self.send(Unsent::event(bytes, self.framing), viewer).await { self.finish().await } else { End::Closed }
    }

    /// Ends the response after the last event: the chunked terminator, or the close.
    async fn finish(&self) -> End {
        debug!(Ns::Conn, "stream {} finished", self.guard.id());
        if self.framing == Framing::CloseDelimited {
            return End::Closed;
        }
        let deadline = Instant::now() + self.shared.config.unhealthy_after;
        match self.conn.write_all(LAST_CHUNK, &self.shared.timers, deadline).await {
            Ok(()) => End::Finished,
            Err(_) => End::Closed,
        }
    }
}

/// The headers of every stream's answer; CORS headers follow them when the origin is allowed.
const HEADERS: [(&str, &str); 3] =
    [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache, no-transform"), ("X-Accel-Buffering", "no")];

/// The opening: the response head, `retry`, `connected` and any per-task refusals (this viewer's
/// own bytes), then the shared snapshot and the source's frames ready now; and whether the
/// stream ends right after them (the last frame sent ends it, or nothing is left to send).
fn opening<S: Source>(
    shared: &Shared,
    id: u64,
    opening: Opening,
    source: &mut S,
    framing: Framing,
    extra_headers: Vec<(&'static str, String)>,
) -> (Unsent, bool) {
    let mut body = Vec::with_capacity(256);
    encoder::encode_retry(&mut body, shared.config.retry.as_millis() as u64);
    let (connection_id, server_time) = (format!("{id:x}"), now_ms());
    let (connected, snapshot, refused) = match opening {
        Opening::Task { task_id, snapshot } => {
            debug!(Ns::Conn, "stream {id} opened for {task_id}");
            let connected =
                serde_json::json!({ "taskId": task_id, "connectionId": connection_id, "serverTime": server_time });
            (connected, snapshot, Vec::new())
        }
        Opening::Tasks(listed) => {
            debug!(Ns::Conn, "stream {id} opened for {} tasks", listed.task_ids.len());
            let refused = listed.refused.iter().map(|&(i, code, message)| {
                serde_json::json!({ "code": code, "message": message, "taskId": listed.task_ids[i] })
            });
            let refused = refused.collect();
            let connected = serde_json::json!({
                "taskIds": listed.task_ids,
                "connectionId": connection_id,
                "serverTime": server_time,
            });
            (connected, None, refused)
        }
    };
    encoder::encode_event(&mut body, Some("connected"), None, &connected.to_string()).expect("fixed event name");
    for error in refused {
        encoder::encode_event(&mut body, Some("error"), None, &error.to_string()).expect("fixed event name");
    }
    let mut own = Vec::with_capacity(body.len() + 256);
    let extra = extra_headers.iter().map(|(name, value)| (*name, value.as_str()));
    write_stream_head(&mut own, 200, HEADERS.into_iter().chain(extra), framing);
    framing.push(&mut own, &body);
    let mut frames: Gathered = [const { None }; BATCH];
    let mut first = (0, false);
    if let Some(snapshot) = snapshot {
        first = (1, source.ends_after(&snapshot));
        frames[0] = Some(snapshot);
    }
    let (n, ends) = gather(source, &mut frames, first.0, first.1);
    let frames = frames.into_iter().take(n).flatten().collect();
    let unsent = Unsent { own, own_begins: Begins::ResponseHead, frames, written: 0, framing, ids: S::IDS };
    (unsent, ends || source.finished())
}

/// `shutting_down`, after a retry hint spread over a few seconds, so reconnects do not arrive
/// at once. Built outside the stream's async fn, so the frame is not kept in its state.
fn shutdown_bytes(shared: &Shared, framing: Framing) -> Vec<u8> {
    let retry = shared.config.retry.as_millis() as u64 + fastrand::u64(0..3000);
    let mut event = Vec::with_capacity(160);
    encoder::encode_retry(&mut event, retry);
    event.extend_from_slice(Frame::closing("shutting_down", "The server is restarting; reconnect shortly.").plain());
    framing.frame(event)
}

/// A stream-level `error` event that ends the stream, as `framing` sends it.
fn closing_bytes(code: &str, message: &str, framing: Framing) -> Vec<u8> {
    Frame::closing(code, message).framed(framing).to_vec()
}

fn heartbeat_bytes(framing: Framing) -> Vec<u8> {
    let mut event = Vec::with_capacity(64);
    encoder::encode_event(&mut event, Some("heartbeat"), None, &format!("{{\"time\":{}}}", now_ms()))
        .expect("fixed name");
    framing.frame(event)
}
