//! How a stream's bytes reach the socket: every frame ready gathered into one vectored write,
//! and what a write that blocks still owes, held as shared frames and an offset, never a copy.
//!
//! A stream of one task writes each frame as one shared slice; a stream of many tasks writes two
//! (the frame's own head with the change sequence as `id:`, then its `data:` line, shared with
//! the first form: see `encoder.rs`). Either way nothing of a frame is copied per viewer, so a
//! thousand stuck viewers of a 1 MiB result hold one 1 MiB frame between them.

use std::io::{self, ErrorKind, IoSlice, Write as _};
use std::net::TcpStream;
use std::sync::Arc;

use async_io::Async;

use super::encoder::{Frame, Ids};
use super::source::Source;
use crate::http::conn::write_now;
use crate::http::response::Framing;

/// Most frames gathered into one write: a viewer that is behind catches up with one syscall.
pub(super) const BATCH: usize = 64;

/// Most slices in one vectored write: a viewer's own bytes, then a batch of frames of two
/// slices each.
const MAX_PARTS: usize = 2 * BATCH + 1;

/// Frames taken for one write.
pub(super) type Gathered = [Option<Arc<Frame>>; BATCH];

/// Takes frames ready now from `source` into `frames` from `n` on, up to [`BATCH`], stopping
/// after one that ends the stream (`ends` says whether one already did); how many there are
/// then, and whether the last ends the stream.
pub(super) fn gather<S: Source>(source: &mut S, frames: &mut Gathered, mut n: usize, mut ends: bool) -> (usize, bool) {
    while !ends && n < BATCH {
        let Some(frame) = source.try_frame() else { break };
        ends = source.ends_after(&frame);
        frames[n] = Some(frame);
        n += 1;
    }
    (n, ends)
}

/// What `write_batch` did.
pub(super) struct Batch {
    /// The last frame written ends the stream.
    pub ends: bool,
    /// What the socket did not take at once: the frames themselves, not a copy.
    pub rest: Option<Unsent>,
}

/// Writes `first` and every frame ready after it (see [`gather`]) in one vectored write, without
/// waiting. Synchronous on purpose: the gathered frames never sit in the stream's future while
/// it idles.
pub(super) fn write_batch<S: Source>(
    socket: &Async<TcpStream>,
    source: &mut S,
    first: Arc<Frame>,
    framing: Framing,
) -> io::Result<Batch> {
    let mut frames: Gathered = [const { None }; BATCH];
    let ends = source.ends_after(&first);
    frames[0] = Some(first);
    let (n, ends) = gather(source, &mut frames, 1, ends);
    let filled = frames[..n].iter().flatten();
    let total: usize = filled.clone().map(|f| f.len(framing, S::IDS)).sum();
    // The common case, one frame of one slice ready: a plain write, without the slice table.
    let written = match (&frames[..n], S::IDS) {
        ([Some(only)], Ids::EventId) => write_now(socket, only.framed(framing))?,
        _ => write_parts(socket.get_ref(), filled.flat_map(|f| f.parts(framing, S::IDS)), total, 0)?,
    };
    if written == total {
        return Ok(Batch { ends, rest: None });
    }
    // Keep the frames not wholly written, and how far into the first of them the socket got.
    let mut offset = written;
    let mut rest = Vec::with_capacity(n);
    for frame in frames.into_iter().take(n).flatten() {
        let len = frame.len(framing, S::IDS);
        if rest.is_empty() && offset >= len {
            offset -= len;
        } else {
            rest.push(frame);
        }
    }
    let unsent =
        Unsent { own: Vec::new(), own_begins: Begins::Event, frames: rest, written: offset, framing, ids: S::IDS };
    Ok(Batch { ends, rest: Some(unsent) })
}

/// What a write still owes the client: this viewer's own bytes first (the response head and
/// `connected`, a heartbeat, a last event), then shared frames, from byte `written` on. Nothing
/// shared is copied: a viewer stuck in a 1 MiB frame holds an `Arc` of it and an offset.
#[derive(Debug)]
pub(super) struct Unsent {
    pub own: Vec<u8>,
    /// What `own` begins with.
    pub own_begins: Begins,
    pub frames: Vec<Arc<Frame>>,
    pub written: usize,
    pub framing: Framing,
    /// How the frames' progress events are labelled.
    pub ids: Ids,
}

/// What a viewer's own bytes begin with, which says whether an event of ours may go before them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Begins {
    /// The response head, before which nothing may go.
    ResponseHead,
    /// An event.
    Event,
}

impl Unsent {
    /// One event of this viewer's own (a heartbeat, a last event).
    pub fn event(bytes: Vec<u8>, framing: Framing) -> Unsent {
        Unsent { own: bytes, own_begins: Begins::Event, frames: Vec::new(), written: 0, framing, ids: Ids::EventId }
    }

    fn parts(&self) -> impl Iterator<Item = &[u8]> + Clone {
        let frames = self.frames.iter().flat_map(|f| f.parts(self.framing, self.ids));
        std::iter::once(&self.own[..]).chain(frames)
    }

    /// The length of each event in turn (the viewer's own bytes count as one).
    fn events(&self) -> impl Iterator<Item = usize> {
        std::iter::once(self.own.len()).chain(self.frames.iter().map(|f| f.len(self.framing, self.ids)))
    }

    pub fn len(&self) -> usize {
        self.events().sum()
    }

    /// Writes what the socket takes now, without waiting; true when nothing is left.
    pub fn write_now(&mut self, socket: &Async<TcpStream>) -> io::Result<bool> {
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
    pub fn write_once(&self, socket: &TcpStream) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); MAX_PARTS];
        let count = fill_slices(self.parts(), self.written, &mut slices);
        match (&*socket).write_vectored(&slices[..count]) {
            Ok(0) => Err(ErrorKind::WriteZero.into()),
            other => other,
        }
    }

    /// Whether `written` falls between two events, where an event of ours may go.
    pub fn at_event_boundary(&self) -> bool {
        if self.written == 0 && !self.own.is_empty() {
            return self.own_begins == Begins::Event;
        }
        let mut at = self.written;
        for len in self.events() {
            if at == 0 {
                return true;
            }
            if at < len {
                return false;
            }
            at -= len;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::topic::Topic;
    use std::net::TcpListener;
    use std::task::{Context, Poll};

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
            ids: Ids::EventId,
        };
        assert!(!opening.write_now(&socket).unwrap(), "1 MiB does not fit in the socket buffers");
        assert_eq!(Arc::strong_count(&snapshot), 2);
        assert!(opening.written > own.len(), "the head and part of the snapshot went out at once");
        assert!(!opening.at_event_boundary());
    }

    #[test]
    fn too_slow_fits_only_between_events() {
        // Shows where a blocked write may be followed by an event of ours: never before the
        // response head or inside an event (of one slice, or of two on a stream of many tasks);
        // at the start of an event of our own or of a frame.
        let frame = Arc::new(Frame::change(9, 2, "{}", false));
        let len = frame.chunked().len();
        let [head, _] = frame.parts(Framing::Chunked, Ids::ChangeSeq);
        let two = frame.len(Framing::Chunked, Ids::ChangeSeq);
        use Begins::{Event, ResponseHead as Head};
        let unsent = |own: &[u8], own_begins, written, ids| Unsent {
            own: own.to_vec(),
            own_begins,
            frames: vec![Arc::clone(&frame), Arc::clone(&frame)],
            written,
            framing: Framing::Chunked,
            ids,
        };
        let one = Ids::EventId;
        let many = Ids::ChangeSeq;
        let cases = [
            (unsent(b"head", Head, 0, one), false),
            (unsent(b"head", Head, 2, one), false),
            (unsent(b"head", Head, 4, one), true),
            (unsent(b"head", Head, 4 + len - 1, one), false),
            (unsent(b"head", Head, 4 + len, one), true),
            (unsent(b"event", Event, 0, one), true),
            (unsent(b"", Head, 0, one), true),
            (unsent(b"", Head, 1, one), false),
            (unsent(b"", Head, len, one), true),
            (unsent(b"", Head, head.len(), many), false),
            (unsent(b"", Head, two, many), true),
        ];
        for (i, (unsent, want)) in cases.iter().enumerate() {
            assert_eq!(unsent.at_event_boundary(), *want, "case {i}");
        }
    }
}
