//! Server-sent events: the encoder, the per-task fan-out, the sources a stream takes frames from
//! (one task, many tasks, all tasks), how their bytes are written, and the viewer's stream loop.

pub mod encoder;
pub mod feed;
pub mod inbox;
pub mod multi;
pub mod source;
pub mod stream;
pub mod topic;
mod unsent;

/// What the unit tests of the fan-out share.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Waker;

    struct Count(AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A waker, and a function that tells how many times it was woken.
    pub(crate) fn counting_waker() -> (Waker, impl Fn() -> usize) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        (waker, move || count.0.load(Ordering::SeqCst))
    }
}
