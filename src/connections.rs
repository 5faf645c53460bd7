//! The connection manager: every open stream's health, and the counters of the health route.
//!
//! Each stream owns an `Arc<ConnStats>` of atomics that its own task updates as it writes; the
//! registry only holds the other reference, so recording activity takes no lock. Health is
//! computed when asked (health route, metrics), from the times those atomics hold:
//! healthy while writes succeed and activity is recent, unhealthy when a write has been stuck
//! for `unhealthy_after` or has failed, stale after `stale_after` without successful activity.
//! Closing stale connections is the streams' own deadline on the timer wheel (see
//! `sse::stream`), so no sweeper thread walks the registry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::slab::{Key, Slab};

/// Health of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Writes succeed; recent activity.
    Healthy,
    /// A write is stuck or failed.
    Unhealthy,
    /// No successful activity for too long; about to be closed.
    Stale,
}

/// Counts by health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealthCounts {
    /// Healthy connections.
    pub healthy: usize,
    /// Unhealthy connections.
    pub unhealthy: usize,
    /// Stale connections.
    pub stale: usize,
}

/// The open streams, and how many each client address has.
#[derive(Debug, Default)]
struct Open {
    streams: Slab<Arc<ConnStats>>,
    per_client: HashMap<IpAddr, u32>,
}

/// What one stream records about itself.
#[derive(Debug)]
pub struct ConnStats {
    /// Server-unique id, also sent in the `connected` event.
    pub id: u64,
    opened_ms: u64,
    last_activity_ms: AtomicU64,
    /// When the current write started blocking, +1 (0: not blocked).
    blocked_since_ms: AtomicU64,
    failed: AtomicBool,
}

/// The registry of open streams and the lifetime counters.
#[derive(Debug)]
pub struct Connections {
    start: Instant,
    open: Mutex<Open>,
    max_per_client: u32,
    next_id: AtomicU64,
    total: AtomicU64,
    ended: AtomicU64,
    ended_ms_sum: AtomicU64,
    errors: AtomicU64,
    unhealthy_after: u64,
    stale_after: u64,
}

impl Connections {
    /// A registry that classifies with these two durations and allows each client address
    /// `max_per_client` open streams (0: no limit).
    pub fn new(unhealthy_after: Duration, stale_after: Duration, max_per_client: u32) -> Connections {
        Connections {
            start: Instant::now(),
            open: Mutex::new(Open::default()),
            max_per_client,
            next_id: AtomicU64::new(1),
            total: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            ended_ms_sum: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            unhealthy_after: unhealthy_after.as_millis() as u64,
            stale_after: stale_after.as_millis() as u64,
        }
    }

    /// Milliseconds since the registry was made (a monotonic clock for the atomics).
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new stream of `client`, counted until the guard is dropped; `None` when the
    /// client has its maximum of open streams.
    pub fn open(self: &Arc<Self>, client: IpAddr) -> Option<StreamGuard> {
        let now = self.now_ms();
        let stats = Arc::new(ConnStats {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            opened_ms: now,
            last_activity_ms: AtomicU64::new(now),
            blocked_since_ms: AtomicU64::new(0),
            failed: AtomicBool::new(false),
        });
        let mut open = self.lock();
        let count = open.per_client.entry(client).or_insert(0);
        if self.max_per_client != 0 && *count >= self.max_per_client {
            return None;
        }
        *count += 1;
        let key = open.streams.insert(Arc::clone(&stats));
        drop(open);
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(StreamGuard { connections: Arc::clone(self), key, client, stats })
    }

    /// Health of one connection at `now`.
    pub fn health_of(&self, stats: &ConnStats, now: u64) -> Health {
        let last = stats.last_activity_ms.load(Ordering::Relaxed);
        let blocked = stats.blocked_since_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= self.stale_after {
            Health::Stale
        } else if stats.failed.load(Ordering::Relaxed)
            || (blocked != 0 && now.saturating_sub(blocked - 1) >= self.unhealthy_after)
        {
            Health::Unhealthy
        } else {
            Health::Healthy
        }
    }

    /// Counts of open streams by health.
    pub fn health(&self) -> HealthCounts {
        let now = self.now_ms();
        let open = self.lock();
        let mut counts = HealthCounts::default();
        for stats in open.streams.values() {
            match self.health_of(stats, now) {
                Health::Healthy => counts.healthy += 1,
                Health::Unhealthy => counts.unhealthy += 1,
                Health::Stale => counts.stale += 1,
            }
        }
        counts
    }

    /// Streams open now.
    pub fn active(&self) -> u64 {
        self.lock().streams.len() as u64
    }

    /// Streams ever opened.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Streams that ended.
    pub fn ended(&self) -> u64 {
        self.ended.load(Ordering::Relaxed)
    }

    /// Average lifetime in ms of the streams that ended (0 before any ended).
    pub fn average_connection_ms(&self) -> f64 {
        let ended = self.ended.load(Ordering::Relaxed);
        if ended == 0 { 0.0 } else { self.ended_ms_sum.load(Ordering::Relaxed) as f64 / ended as f64 }
    }

    /// Streams that ended in a failed or timed-out write.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

/// A registered stream; records activity and unregisters on drop.
#[derive(Debug)]
pub struct StreamGuard {
    connections: Arc<Connections>,
    key: Key,
    client: IpAddr,
    stats: Arc<ConnStats>,
}

impl StreamGuard {
    /// The connection id.
    pub fn id(&self) -> u64 {
        self.stats.id
    }

    /// A write completed.
    pub fn wrote(&self) {
        self.stats.last_activity_ms.store(self.connections.now_ms(), Ordering::Relaxed);
        self.stats.blocked_since_ms.store(0, Ordering::Relaxed);
    }

    /// A write could not complete at once: the socket is full.
    pub fn blocked(&self) {
        let now = self.connections.now_ms();
        let _ = self.stats.blocked_since_ms.compare_exchange(0, now + 1, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A write failed or timed out; counted in `connectionErrors`.
    pub fn failed(&self) {
        if !self.stats.failed.swap(true, Ordering::Relaxed) {
            self.connections.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let c = &self.connections;
        let mut open = c.lock();
        open.streams.remove(self.key);
        if let Some(count) = open.per_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.per_client.remove(&self.client);
            }
        }
        drop(open);
        c.ended.fetch_add(1, Ordering::Relaxed);
        c.ended_ms_sum.fetch_add(c.now_ms().saturating_sub(self.stats.opened_ms), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_the_write_record() {
        let c = Arc::new(Connections::new(Duration::from_millis(30), Duration::from_millis(120), 0));
        let guard = c.open(LOCAL).unwrap();
        let stats = Arc::clone(&guard.stats);
        assert_eq!(c.health_of(&stats, 10), Health::Healthy);
        stats.blocked_since_ms.store(11, Ordering::Relaxed); // blocked at 10
        assert_eq!(c.health_of(&stats, 39), Health::Healthy);
        assert_eq!(c.health_of(&stats, 40), Health::Unhealthy);
        assert_eq!(c.health_of(&stats, 120), Health::Stale);
        guard.failed();
        guard.failed();
        assert_eq!(c.errors(), 1, "one connection fails once");
        assert_eq!((c.total(), c.active()), (1, 1));
        drop(guard);
        assert_eq!((c.total(), c.active(), c.ended()), (1, 0, 1));
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn streams_are_capped_per_client_address() {
        let c = Arc::new(Connections::new(Duration::from_secs(30), Duration::from_secs(120), 2));
        let (a, b) = (c.open(LOCAL).unwrap(), c.open(LOCAL).unwrap());
        assert!(c.open(LOCAL).is_none());
        assert!(c.open("127.0.0.2".parse().unwrap()).is_some(), "other addresses have their own cap");
        drop(a);
        assert!(c.open(LOCAL).is_some());
        drop(b);
    }
}
