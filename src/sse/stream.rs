//! One viewer's stream: the head, `retry`, `connected`, the snapshot, then every change until
//! the task ends, with heartbeats in between.
//!
//! The loop holds no queue and no buffer of its own. It waits on four things at once, polled by
//! hand in one `poll_fn` so the wait costs no extra future state: the next frame of its topic,
//! the server's shutdown, its heartbeat deadline on the shared wheel, and the socket turning
//! readable. Readable at end of file means the client left; readable with data means the client
//! sent its next request early (HTTP/1.1 pipelining), which stays in the socket for the request
//! loop after the stream, and the stream stops watching the socket (it would stay readable).
//!
//! Shared bytes are never copied per viewer. A write that completes at once costs no timer; a
//! write that blocks keeps what it still owes as an [`Unsent`]: the viewer's own few bytes, the
//! shared frames (`Arc`s) and an offset, so a thousand stuck viewers of a 1 MiB result hold one
//! 1 MiB frame between them. It also detaches the viewer from its topic (frames stop waiting for
//! it) and arms one deadline, pushed out by every write that makes progress: a viewer that takes
//! nothing for `unhealthy_after` gets `event: error` `too_slow` if it is between two events and
//! its socket takes it, and is closed; a slow viewer that keeps reading gets the whole event,
//! however long it is.

use std::future::Future;
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
use crate::http::conn::{Conn, write_now};
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
pub struct Start {
    /// The task id, for the `connected` event.
    pub task_id: String,
    /// Subscribed before the snapshot was chosen, so no change falls between them.
    pub viewer: Viewer,
    /// The snapshot: the newest frame at subscription.
    pub snapshot: Arc<Frame>,
    /// The client's `Last-Event-ID` is the snapshot's id: do not send it again.
    pub skip_snapshot: bool,
    /// Chunks for HTTP/1.1, the close for HTTP/1.0.
    pub framing: Framing,
    /// The connection may serve another request after a finished stream.
    pub keep_alive: bool,
    /// Extra headers (CORS).
    pub extra_headers: Vec<(&'static str, String)>,
}

/// Streams to the client until the task ends or the connection does.
pub async fn run(shared: &Shared, conn: &mut Conn, start: Start, guard: &StreamGuard) -> End {
    conn.release_buffer();
    let framing = start.framing;
    let mut viewer = start.viewer;
    let writer = Writer { shared, conn, guard, framing };
    // The head and the opening events go out in one vectored write with the shared snapshot; the
    // bytes are built outside this async fn so nothing of them stays in its state while the
    // stream idles.
    let (first, ends) =
        opening(shared, guard.id(), start.task_id, start.snapshot, start.skip_snapshot, framing, start.extra_headers);
    if !writer.send(first, &mut viewer).await {
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
            if watch_peer && socket.poll_readable(cx).is_ready() {
                return Poll::Ready(Wake::Peer);
            }
            Poll::Pending
        })
        .await;
        match wake {
            Wake::Frame(frame) => {
                let ends = match write_batch(socket, &mut viewer, frame, framing) {
                    Ok(Batch { ends, rest: None }) => {
                        guard.wrote();
                        ends
                    }
                    Ok(Batch { ends, rest: Some(rest) }) => {
                        if !Box::pin(writer.send_blocked(rest, &mut viewer)).await {
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
                return Box::pin(writer.last_words(framing.frame(event), &mut viewer)).await;
            }
            Wake::Heartbeat => {
                let now = Instant::now();
                if now >= last_write + config.stale_after {
                    // Heartbeats set longer than the stale time: the cleanup ends the stream,
                    // telling the viewer why if its socket still takes writes.
                    debug!(Ns::Conn, "stream {} stale: closing", guard.id());
                    let frame =
                        Frame::closing("stale", "The stream was silent too long and is being closed; reconnect.");
                    return Box::pin(writer.last_words(frame.framed(framing).to_vec(), &mut viewer)).await;
                }
                let due = last_write + quiet_limit();
                if now + shared.config.timer_tick < due {
                    beat.reset(due); // a frame went out since this deadline was set
                    continue;
                }
                if now >= last_write + config.heartbeat {
                    if !writer.send(Unsent::event(heartbeat_bytes(framing), framing), &mut viewer).await {
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

/// Most frames gathered into one write: a viewer that is behind catches up with one syscall.
const BATCH: usize = 64;

/// Most slices in one vectored write: a viewer's own bytes, then a batch of frames.
const MAX_PARTS: usize = BATCH + 1;

/// What `write_batch` did.
struct Batch {
    /// The last frame written ends the stream.
    ends: bool,
    /// What the socket did not take at once: the frames themselves, not a copy.
    rest: Option<Unsent>,
}

/// Writes `first` and every frame ready after it (up to [`BATCH`], stopping after a frame that
/// ends the stream) in one vectored write, without waiting. Synchronous on purpose: the gathered
/// frames never sit in the stream's future while it idles.
fn write_batch(
    socket: &Async<TcpStream>,
    viewer: &mut Viewer,
    first: Arc<Frame>,
    framing: Framing,
) -> io::Result<Batch> {
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
    let filled = frames[..n].iter().flatten().map(|f| f.framed(framing));
    let total: usize = filled.clone().map(<[u8]>::len).sum();
    // The common case, one frame ready: a plain write, without building the slice table.
    let written = if n == 1 {
        write_now(socket, frames[0].as_deref().expect("filled above").framed(framing))?
    } else {
        write_parts(socket.get_ref(), filled, total, 0)?
    };
    if written == total {
        return Ok(Batch { ends, rest: None });
    }
    // Keep the frames not wholly written, and how far into the first of them the socket got.
    let mut offset = written;
    let mut rest = Vec::with_capacity(n);
    for frame in frames.into_iter().take(n).flatten() {
        let len = frame.framed(framing).len();
        if rest.is_empty() && offset >= len {
            offset -= len;
        } else {
            rest.push(frame);
        }
    }
    Ok(Batch {
        ends,
        rest: Some(Unsent { own: Vec::new(), own_begins: Begins::Event, frames: rest, written: offset, framing }),
    })
}

/// What a write still owes the client: this viewer's own bytes first (the response head and
/// `connected`, a heartbeat, a last event), then shared frames, from byte `written` on. Nothing
/// shared is copied: a viewer stuck in a 1 MiB frame holds an `Arc` of it and an offset.
#[derive(Debug)]
struct Unsent {
    own: Vec<u8>,
    /// What `own` begins with.
    own_begins: Begins,
    frames: Vec<Arc<Frame>>,
    written: usize,
    framing: Framing,
}

/// What a viewer's own bytes begin with, which says whether an event of ours may go before them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Begins {
    /// The response head, before which nothing may go.
    ResponseHead,
    /// An event.
    Event,
}

impl Unsent {
    /// One event of this viewer's own (a heartbeat, a last event).
    fn event(bytes: Vec<u8>, framing: Framing) -> Unsent {
        Unsent { own: bytes, own_begins: Begins::Event, frames: Vec::new(), written: 0, framing }
    }

    fn parts(&self) -> impl Iterator<Item = &[u8]> + Clone {
        std::iter::once(&self.own[..]).chain(self.frames.iter().map(|f| f.framed(self.framing)))
    }

    fn len(&self) -> usize {
        self.parts().map(<[u8]>::len).sum()
    }

    /// Writes what the socket takes now, without waiting; true when nothing is left.
    fn write_now(&mut self, socket: &Async<TcpStream>) -> io::Result<bool> {
        let total = self.len();
        self.written = if self.frames.is_empty() {
            self.written + write_now(socket, &self.own[self.written..])?
        } else {
            write_parts(socket.get_ref(), self.parts(), total, self.written)?
        };
        Ok(self.written == total)
    }

    /// One vectored write of the rest (`WouldBlock` when the socket takes nothing): how many
    /// bytes went out.
    fn write_once(&self, socket: &TcpStream) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); MAX_PARTS];
        let count = fill_slices(self.parts(), self.written, &mut slices);
        match (&*socket).write_vectored(&slices[..count]) {
            Ok(0) => Err(ErrorKind::WriteZero.into()),
            other => other,
        }
    }

    /// Whether `written` falls between two events, where an event of ours may go.
    fn at_event_boundary(&self) -> bool {
        if self.written == 0 && !self.own.is_empty() {
            return self.own_begins == Begins::Event;
        }
        let mut at = self.written;
        for part in self.parts() {
            if at == 0 {
                return true;
            }
            if at < part.len() {
                return false;
            }
            at -= part.len();
        }
        true
    }
}

/// Fills `slices` with what is left of `parts` after `skip` bytes; how many it filled.
fn fill_slices<'a>(parts: impl Iterator<Item = &'a [u8]>, mut skip: usize, slices: &mut [IoSlice<'a>]) -> usize {
    let mut count = 0;
    for part in parts {
        if skip >= part.len() {
            skip -= part.len();
            continue;
        }
        if count == slices.len() {
            break;
        }
        slices[count] = IoSlice::new(&part[skip..]);
        skip = 0;
        count += 1;
    }
    count
}

/// Writes `parts` (`total` bytes in all) from byte `written` on with vectored writes until they
/// are all written or the socket takes no more, without waiting; the new `written`.
fn write_parts<'a>(
    socket: &TcpStream,
    parts: impl Iterator<Item = &'a [u8]> + Clone,
    total: usize,
    mut written: usize,
) -> io::Result<usize> {
    while written < total {
        let mut slices = [IoSlice::new(&[]); MAX_PARTS];
        let count = fill_slices(parts.clone(), written, &mut slices);
        match (&*socket).write_vectored(&slices[..count]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(k) => written += k,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
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
    fn send<'a>(&'a self, mut unsent: Unsent, viewer: &'a mut Viewer) -> impl Future<Output = bool> + 'a {
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
    async fn send_blocked(&self, mut unsent: Unsent, viewer: &mut Viewer) -> bool {
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
                        let frame = Frame::closing("too_slow", "The connection could not keep up and is being closed.");
                        let _ = socket.get_ref().write(frame.framed(self.framing));
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

/// The opening: the response head, `retry` and `connected` (this viewer's own bytes), then the
/// shared snapshot frame unless skipped; and whether the stream ends right after them (the
/// snapshot sent is terminal).
fn opening(
    shared: &Shared,
    id: u64,
    task_id: String,
    snapshot: Arc<Frame>,
    skip_snapshot: bool,
    framing: Framing,
    extra_headers: Vec<(&'static str, String)>,
) -> (Unsent, bool) {
    debug!(Ns::Conn, "stream {id} opened for {task_id}");
    let mut body = Vec::with_capacity(256);
    encoder::encode_retry(&mut body, shared.config.retry.as_millis() as u64);
    let connected = serde_json::json!({
        "taskId": task_id,
        "connectionId": format!("{id:x}"),
        "serverTime": now_ms(),
    });
    encoder::encode_event(&mut body, Some("connected"), None, &connected.to_string()).expect("fixed event name");
    let mut own = Vec::with_capacity(body.len() + 256);
    let extra = extra_headers.iter().map(|(name, value)| (*name, value.as_str()));
    write_stream_head(&mut own, 200, HEADERS.into_iter().chain(extra), framing);
    framing.push(&mut own, &body);
    let ends = !skip_snapshot && snapshot.ends_stream();
    let frames = if skip_snapshot { Vec::new() } else { vec![snapshot] };
    (Unsent { own, own_begins: Begins::ResponseHead, frames, written: 0, framing }, ends)
}

fn heartbeat_bytes(framing: Framing) -> Vec<u8> {
    let mut event = Vec::with_capacity(64);
    encoder::encode_event(&mut event, Some("heartbeat"), None, &format!("{{\"time\":{}}}", now_ms()))
        .expect("fixed name");
    framing.frame(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::topic::Topic;
    use std::net::TcpListener;
    use std::task::Context;

    /// A server-side socket whose client never reads, with small buffers on both ends so a
    /// large write blocks early.
    fn unread_socket() -> (Async<TcpStream>, TcpStream) {
        use rustix::net::sockopt;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        sockopt::set_socket_recv_buffer_size(&client, 16 * 1024).unwrap();
        let (server, _) = listener.accept().unwrap();
        sockopt::set_socket_send_buffer_size(&server, crate::server::SEND_BUFFER).unwrap();
        (Async::new(server).unwrap(), client)
    }

    fn big_frame(id: u64, terminal: bool) -> Frame {
        Frame::progress(id, &format!("{{\"result\":\"{}\"}}", "x".repeat(1 << 20)), terminal)
    }

    #[test]
    fn a_blocked_batch_keeps_the_shared_frames_and_an_offset() {
        // Shows that a viewer whose socket stops taking a 1 MiB frame holds that frame (one more
        // reference), not a copy of what is left of it.
        let (socket, _client) = unread_socket();
        let topic = Arc::new(Topic::new(Frame::progress(1, "{}", false)));
        let (mut viewer, _) = topic.subscribe();
        topic.publish(big_frame(2, false));
        topic.publish(big_frame(3, true));
        let Poll::Ready(first) = viewer.poll_next(&mut Context::from_waker(std::task::Waker::noop())) else {
            panic!("a frame is ready");
        };
        let last = topic.latest();
        let held = Arc::strong_count(&last);
        let batch = write_batch(&socket, &mut viewer, Arc::clone(&first), Framing::Chunked).unwrap();
        assert!(batch.ends, "the batch took the terminal frame too");
        let rest = batch.rest.expect("2 MiB do not fit in the socket buffers");
        assert!(rest.own.is_empty());
        assert!(Arc::ptr_eq(&rest.frames[0], &first) && Arc::ptr_eq(&rest.frames[1], &last));
        assert_eq!(Arc::strong_count(&last), held + 1, "one more reference, no copy");
        assert!(rest.written > 0 && rest.written < first.chunked().len(), "stopped inside the first frame");
        assert!(!rest.at_event_boundary(), "no event may be put inside a cut one");
    }

    #[test]
    fn a_blocked_opening_keeps_the_shared_snapshot() {
        // Shows that the opening writes the viewer's own bytes and the shared snapshot with one
        // vectored write, and keeps the snapshot (not a copy) when the socket stops taking it.
        let (socket, _client) = unread_socket();
        let snapshot = Arc::new(big_frame(1, true));
        let own = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        let mut opening = Unsent {
            own: own.clone(),
            own_begins: Begins::ResponseHead,
            frames: vec![Arc::clone(&snapshot)],
            written: 0,
            framing: Framing::Chunked,
        };
        assert!(!opening.write_now(&socket).unwrap(), "1 MiB does not fit in the socket buffers");
        assert_eq!(Arc::strong_count(&snapshot), 2);
        assert!(opening.written > own.len(), "the head and part of the snapshot went out at once");
        assert!(!opening.at_event_boundary());
    }

    #[test]
    fn too_slow_fits_only_between_events() {
        // Shows where a blocked write may be followed by an event of ours: never before the
        // response head or inside an event; at the start of an event of our own or of a frame.
        let frame = Arc::new(Frame::progress(2, "{}", false));
        let len = frame.chunked().len();
        use Begins::{Event, ResponseHead as Head};
        let unsent = |own: &[u8], own_begins, written| Unsent {
            own: own.to_vec(),
            own_begins,
            frames: vec![Arc::clone(&frame), Arc::clone(&frame)],
            written,
            framing: Framing::Chunked,
        };
        let cases = [
            (unsent(b"head", Head, 0), false),
            (unsent(b"head", Head, 2), false),
            (unsent(b"head", Head, 4), true),
            (unsent(b"head", Head, 4 + len - 1), false),
            (unsent(b"head", Head, 4 + len), true),
            (unsent(b"event", Event, 0), true),
            (unsent(b"", Head, 0), true),
            (unsent(b"", Head, 1), false),
            (unsent(b"", Head, len), true),
        ];
        for (i, (unsent, want)) in cases.iter().enumerate() {
            assert_eq!(unsent.at_event_boundary(), *want, "case {i}");
        }
    }
}
