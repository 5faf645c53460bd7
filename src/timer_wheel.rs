//! One timer wheel for every deadline of every connection.
//!
//! A server holding 19,000 streams must not keep 19,000 OS timers (or 19,000 entries in the
//! reactor's timer heap) just to send a heartbeat every 30 s. Instead every deadline (heartbeats,
//! the header-read timeout, idle keep-alive, stuck writes) is an entry in this wheel, and one
//! driver task ([`Timers::run`]) advances it once per tick and wakes whoever is due.
//!
//! The wheel is hashed: `SLOTS` buckets of one tick each; an entry further away than one turn
//! stays in its bucket until a later turn reaches its deadline. Insert and cancel are O(1)
//! whatever the number of entries: cancel removes the entry from the slab and leaves a stale key
//! in its bucket, which the next visit of that bucket drops.
//!
//! After a burst (10,000 streams connecting within one tick put 10,000 keys in one bucket) the
//! memory goes back: a bucket visited with most of its room unused is shrunk there, which costs
//! the driver one comparison per bucket, and the entries' slab shrinks itself (`slab`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::slab::{Key, Slab};

/// Buckets in one turn of the wheel.
const SLOTS: usize = 1024;
/// Keys a bucket keeps room for however empty it gets.
const BUCKET_FLOOR: usize = 8;

/// The pure data structure: deadlines in ticks, values of any type.
#[derive(Debug)]
pub struct TimerWheel<T> {
    buckets: Vec<Vec<Key>>,
    entries: Slab<(u64, T)>,
    /// Every deadline up to and including this tick has fired.
    now: u64,
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TimerWheel<T> {
    /// An empty wheel at tick 0.
    pub fn new() -> Self {
        TimerWheel { buckets: (0..SLOTS).map(|_| Vec::new()).collect(), entries: Slab::default(), now: 0 }
    }

    /// Adds `value` to fire at tick `deadline` (a deadline already past fires on the next advance).
    pub fn insert(&mut self, deadline: u64, value: T) -> Key {
        let deadline = deadline.max(self.now + 1);
        let key = self.entries.insert((deadline, value));
        self.buckets[(deadline % SLOTS as u64) as usize].push(key);
        key
    }

    /// Removes an entry that has not fired; `None` if it fired or was cancelled already.
    pub fn cancel(&mut self, key: Key) -> Option<T> {
        self.entries.remove(key).map(|(_, value)| value)
    }

    /// The value of a pending entry.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        self.entries.get_mut(key).map(|(_, value)| value)
    }

    /// Whether `key` is still waiting to fire.
    pub fn is_pending(&self, key: Key) -> bool {
        self.entries.get(key).is_some()
    }

    /// How many entries are waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Room allocated for keys and entries: what a burst left behind.
    pub fn capacity(&self) -> usize {
        self.buckets.iter().map(Vec::capacity).sum::<usize>() + self.entries.capacity()
    }

    /// Whether no entry is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tick up to which every deadline has fired.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Moves time forward to `to` and hands every entry whose deadline has come to `fire`.
    pub fn advance(&mut self, to: u64, mut fire: impl FnMut(T)) {
        if to <= self.now {
            return;
        }
        // Past one whole turn, every bucket is visited once; later ticks map to the same buckets.
        let first = self.now + 1;
        let last = to.min(self.now + SLOTS as u64);
        for tick in first..=last {
            let bucket = &mut self.buckets[(tick % SLOTS as u64) as usize];
            let entries = &mut self.entries;
            bucket.retain(|&key| match entries.get(key) {
                None => false, // cancelled
                Some(&(deadline, _)) if deadline <= to => {
                    let (_, value) = entries.remove(key).expect("entry checked above");
                    fire(value);
                    false
                }
                Some(_) => true, // a later turn
            });
            if bucket.capacity() > BUCKET_FLOOR.max(4 * bucket.len()) {
                bucket.shrink_to(BUCKET_FLOOR.max(2 * bucket.len()));
            }
        }
        self.now = to;
    }
}

/// The wheel shared by a server, in real time, with wakers as values.
#[derive(Debug)]
pub struct Timers {
    wheel: Mutex<TimerWheel<Waker>>,
    start: Instant,
    tick: Duration,
}

impl Timers {
    /// A wheel whose ticks are `tick` long (deadlines round up to the next tick).
    pub fn new(tick: Duration) -> Self {
        Timers { wheel: Mutex::new(TimerWheel::new()), start: Instant::now(), tick }
    }

    fn tick_of(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.start).as_nanos();
        since.div_ceil(self.tick.as_nanos()) as u64
    }

    /// A future that is ready at `deadline` (rounded up to the wheel's tick).
    pub fn sleep_until(&self, deadline: Instant) -> Sleep<'_> {
        Sleep { timers: self, tick: self.tick_of(deadline), key: None }
    }

    /// How many deadlines are waiting.
    pub fn pending(&self) -> usize {
        self.wheel.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Drives the wheel forever: sleeps one tick, fires what is due. Spawn it once per server.
    pub async fn run(&self) {
        let mut fired = Vec::new();
        loop {
            async_io::Timer::after(self.tick).await;
            let now = Instant::now().saturating_duration_since(self.start).as_nanos() / self.tick.as_nanos();
            self.wheel.lock().unwrap_or_else(|e| e.into_inner()).advance(now as u64, |w| fired.push(w));
            let n = fired.len().max(BUCKET_FLOOR);
            // Wake outside the lock: a woken task may poll at once on another thread.
            fired.drain(..).for_each(Waker::wake);
            // The room of a tick that woke a burst goes back once ticks are quiet again.
            if fired.capacity() > 4 * n {
                fired.shrink_to(2 * n);
            }
        }
    }
}

/// A deadline on the shared wheel; cancelled when dropped.
#[derive(Debug)]
pub struct Sleep<'a> {
    timers: &'a Timers,
    tick: u64,
    key: Option<Key>,
}

impl Sleep<'_> {
    /// Moves the deadline; cheap when it does not change.
    pub fn reset(&mut self, deadline: Instant) {
        let tick = self.timers.tick_of(deadline);
        if tick != self.tick {
            self.cancel();
            self.tick = tick;
        }
    }

    fn cancel(&mut self) {
        if let Some(key) = self.key.take() {
            self.timers.wheel.lock().unwrap_or_else(|e| e.into_inner()).cancel(key);
        }
    }
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut wheel = this.timers.wheel.lock().unwrap_or_else(|e| e.into_inner());
        match this.key {
            Some(key) => match wheel.get_mut(key) {
                Some(waker) => {
                    if !waker.will_wake(cx.waker()) {
                        *waker = cx.waker().clone();
                    }
                    Poll::Pending
                }
                None => {
                    this.key = None;
                    this.tick = 0; // fired: stays ready until reset
                    Poll::Ready(())
                }
            },
            None if this.tick <= wheel.now() => Poll::Ready(()),
            None => {
                this.key = Some(wheel.insert(this.tick, cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep<'_> {
    fn drop(&mut self) {
        self.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_the_deadline_not_before() {
        let mut wheel = TimerWheel::new();
        wheel.insert(5, "five");
        wheel.insert(SLOTS as u64 + 5, "a turn later");
        let mut fired = Vec::new();
        wheel.advance(4, |v| fired.push(v));
        assert!(fired.is_empty());
        wheel.advance(5, |v| fired.push(v));
        assert_eq!(fired, ["five"]);
        wheel.advance(SLOTS as u64 + 4, |v| fired.push(v));
        assert_eq!(fired, ["five"], "same bucket, later turn: must wait");
        wheel.advance(SLOTS as u64 + 5, |v| fired.push(v));
        assert_eq!(fired, ["five", "a turn later"]);
        assert!(wheel.is_empty());
    }

    #[test]
    fn cancelled_entries_never_fire() {
        let mut wheel = TimerWheel::new();
        let key = wheel.insert(3, 1);
        wheel.insert(3, 2);
        assert_eq!(wheel.cancel(key), Some(1));
        assert_eq!(wheel.cancel(key), None);
        let mut fired = Vec::new();
        wheel.advance(10, |v| fired.push(v));
        assert_eq!(fired, [2]);
    }

    #[test]
    fn a_long_jump_fires_everything_due_once() {
        let mut wheel = TimerWheel::new();
        for t in 1..=3000 {
            wheel.insert(t, t);
        }
        let mut fired = Vec::new();
        wheel.advance(10_000, |v| fired.push(v));
        fired.sort();
        assert_eq!(fired, (1..=3000).collect::<Vec<_>>());
    }

    #[test]
    fn past_deadlines_fire_on_the_next_advance() {
        let mut wheel = TimerWheel::new();
        wheel.advance(100, |_: ()| {});
        wheel.insert(7, ());
        let mut n = 0;
        wheel.advance(101, |_| n += 1);
        assert_eq!(n, 1);
    }

    #[test]
    fn memory_goes_back_after_a_burst() {
        let mut wheel = TimerWheel::new();
        let idle = wheel.capacity();
        // 10,000 deadlines in one bucket and 10,000 spread over the turn, most cancelled.
        let keys: Vec<Key> =
            (0..20_000u64).map(|i| wheel.insert(if i % 2 == 0 { 7 } else { 1 + i % 1000 }, i)).collect();
        assert!(wheel.capacity() >= 40_000);
        for &key in &keys[..19_990] {
            assert!(wheel.cancel(key).is_some());
        }
        let mut fired = Vec::new();
        wheel.advance(SLOTS as u64, |v| fired.push(v));
        fired.sort();
        assert_eq!(fired, (19_990..20_000).collect::<Vec<_>>());
        assert!(wheel.is_empty());
        assert!(wheel.capacity() <= idle + SLOTS * BUCKET_FLOOR + 64, "{} of room left", wheel.capacity());
    }

    #[test]
    fn sleep_wakes_through_the_driver() {
        let timers = Timers::new(Duration::from_millis(5));
        let started = Instant::now();
        smol::block_on(async {
            let sleep = timers.sleep_until(Instant::now() + Duration::from_millis(30));
            smol::future::or(sleep, async {
                timers.run().await;
            })
            .await;
        });
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(timers.pending(), 0);
    }
}
