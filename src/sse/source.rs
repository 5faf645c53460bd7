//! What a stream takes its frames from: one task's viewer, the merge of many tasks' viewers
//! (`multi.rs`), or the feed of all tasks (`feed.rs`). The stream loop, its writes and its
//! health record are the same for the three (`stream.rs`, `unsent.rs`): only where frames come
//! from, how their `id:` is written and when the stream ends differ, and those are this trait.

use std::sync::Arc;
use std::task::{Context, Poll};

use super::encoder::{Frame, Ids};
use super::topic::Viewer;

/// A stream's frames, in the order the stream sends them.
pub trait Source: Send {
    /// The number progress events carry as `id:` on this stream.
    const IDS: Ids;

    /// The next frame, or `Pending` with the task's waker registered.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Arc<Frame>>;

    /// The next frame if one is ready now: to gather several into one write.
    fn try_frame(&mut self) -> Option<Arc<Frame>>;

    /// Whether the stream ends after `frame`, just taken.
    fn ends_after(&self, frame: &Frame) -> bool;

    /// Whether nothing is left to send (a stream of tasks all finished for this viewer before it
    /// opened).
    fn finished(&self) -> bool {
        false
    }

    /// The socket stopped taking writes: frames stop waiting for this viewer (see `topic.rs`).
    fn detach(&mut self);
}

/// The stream of one task.
impl Source for Viewer {
    const IDS: Ids = Ids::EventId;

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Arc<Frame>> {
        self.poll_next(cx)
    }

    fn try_frame(&mut self) -> Option<Arc<Frame>> {
        self.try_next()
    }

    fn ends_after(&self, frame: &Frame) -> bool {
        frame.ends_stream()
    }

    fn detach(&mut self) {
        Viewer::detach(self);
    }
}

/// A source kept on the heap: a stream's future holds its source more than once (the task's
/// argument, the loop's), so a source of several words is boxed to keep idle streams small.
impl<S: Source> Source for Box<S> {
    const IDS: Ids = S::IDS;

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Arc<Frame>> {
        S::poll_frame(self, cx)
    }

    fn try_frame(&mut self) -> Option<Arc<Frame>> {
        S::try_frame(self)
    }

    fn ends_after(&self, frame: &Frame) -> bool {
        S::ends_after(self, frame)
    }

    fn finished(&self) -> bool {
        S::finished(self)
    }

    fn detach(&mut self) {
        S::detach(self);
    }
}
