//! The server-wide shutdown signal: a flag, and the wakers of whoever waits for it.
//!
//! Streams and idle keep-alive connections wait on it beside their other futures, so SIGTERM
//! reaches every one of them at once without a task or channel per connection.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Poll, Waker};

use crate::slab::{Key, Slab};

/// Set once, when the server starts draining.
#[derive(Debug, Default)]
pub struct Shutdown {
    triggered: AtomicBool,
    waiters: Mutex<Slab<Waker>>,
}

impl Shutdown {
    /// Sets the flag without waking anyone yet, so steps that must come between the flag and
    /// the wake-ups (closing the listener) can run; `trigger` wakes them after.
    pub fn begin(&self) {
        self.triggered.store(true, Ordering::SeqCst);
    }

    /// Starts the shutdown: every waiter wakes.
    pub fn trigger(&self) {
        self.triggered.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = {
            let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *waiters).values().cloned().collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Whether the shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.triggered.load(Ordering::SeqCst)
    }

    /// Completes when the shutdown starts.
    pub async fn wait(&self) {
        let mut key: Option<Key> = None;
        let guard = Unregister { shutdown: self, key: &mut key };
        std::future::poll_fn(|cx| {
            if self.is_triggered() {
                return Poll::Ready(());
            }
            let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            match guard.key.and_then(|k| waiters.get_mut(k)) {
                Some(w) if w.will_wake(cx.waker()) => {}
                Some(w) => *w = cx.waker().clone(),
                None => *guard.key = Some(waiters.insert(cx.waker().clone())),
            }
            drop(waiters);
            // Checked again after registering: a trigger in between must not be missed.
            if self.is_triggered() { Poll::Ready(()) } else { Poll::Pending }
        })
        .await;
    }
}

struct Unregister<'a> {
    shutdown: &'a Shutdown,
    key: &'a mut Option<Key>,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.shutdown.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_wake_on_trigger_and_leave_no_slot() {
        let shutdown = Shutdown::default();
        smol::block_on(async {
            let waiting = shutdown.wait();
            let trigger = async {
                smol::future::yield_now().await;
                shutdown.trigger();
            };
            smol::future::zip(waiting, trigger).await;
        });
        assert!(shutdown.is_triggered());
        assert!(shutdown.waiters.lock().unwrap().is_empty());
        smol::block_on(shutdown.wait()); // already triggered: ready at once
    }
}
