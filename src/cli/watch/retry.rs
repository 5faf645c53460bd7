//! When `watch` tries again: the rules of the browser client (API.md, "The browser client"), so
//! a terminal and a page behave alike in front of the same server.
//!
//! A server that says how long to wait (`Retry-After` on 429 and 503) is believed, up to a cap,
//! plus a random spread so the clients it refused together do not come back together. Anything
//! else that may pass (a 5xx, a dropped or dead connection) backs off from 2 s, doubling, with
//! jitter. Attempts are counted in a row and reset by a connection that was of use, so a long
//! watch survives any number of separate drops but not a server that keeps failing.

use std::time::Duration;

/// Reconnects in a row before giving up (the first connect is not one).
pub const MAX_ATTEMPTS: u32 = 3;

/// The wait before the first retry after trouble that did not say how long to wait.
const FIRST_DELAY: Duration = Duration::from_secs(2);

/// The most a backoff delay grows to.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// The most of a server's `Retry-After` that is honoured: a server asking for an hour is more
/// likely misconfigured than right, and a terminal user would rather see the next refusal.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// What went wrong with an attempt that may be tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trouble {
    /// 429 or 503, with the server's `Retry-After` when it sent a usable one.
    Busy(Option<Duration>),
    /// A 5xx, a network error, a stream that ended early or went silent.
    Broken,
}

/// Attempts made in a row.
#[derive(Debug, Default)]
pub struct Retry {
    attempts: u32,
}

impl Retry {
    /// A connection was of use: the next trouble starts counting from the beginning.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// The wait before the next attempt after `trouble`, or `None` when the attempts are spent.
    /// `random` is uniform in `0..1` (a parameter so tests can pin it).
    pub fn next(&mut self, trouble: Trouble, random: f64) -> Option<Duration> {
        self.attempts += 1;
        if self.attempts > MAX_ATTEMPTS {
            return None;
        }
        Some(match trouble {
            Trouble::Busy(Some(wait)) => {
                let wait = wait.min(MAX_RETRY_AFTER);
                // 0-20 % more, and at least up to a second, so even `Retry-After: 1` spreads.
                wait + wait.mul_f64(0.2).max(Duration::from_secs(1)).mul_f64(random)
            }
            Trouble::Busy(None) | Trouble::Broken => backoff(self.attempts, random),
        })
    }
}

/// The backoff before attempt `attempt` (from 1): 2 s doubling, 0-20 % more, at most 30 s.
fn backoff(attempt: u32, random: f64) -> Duration {
    let base = FIRST_DELAY.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(MAX_DELAY);
    (base + base.mul_f64(0.2 * random)).min(MAX_DELAY)
}

/// A `Retry-After` in seconds; `None` for a missing value or the HTTP-date form (which a
/// client cannot trust without a clock agreed with the server).
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn backoff_doubles_from_2_s_with_jitter_and_stops_after_3_attempts() {
        let mut retry = Retry::default();
        assert_eq!(retry.next(Trouble::Broken, 0.0), Some(S(2)));
        assert_eq!(retry.next(Trouble::Broken, 0.0), Some(S(4)));
        assert_eq!(retry.next(Trouble::Broken, 1.0), Some(Duration::from_millis(9600)));
        assert_eq!(retry.next(Trouble::Broken, 0.0), None, "3 attempts, then none");
        retry.reset();
        assert_eq!(retry.next(Trouble::Busy(None), 0.5), Some(Duration::from_millis(2200)));
    }

    #[test]
    fn backoff_is_capped_at_30_s() {
        // Beyond the attempts `watch` makes today, should MAX_ATTEMPTS ever grow.
        assert_eq!(backoff(4, 1.0), Duration::from_millis(19200));
        assert_eq!((backoff(5, 0.0), backoff(5, 1.0), backoff(40, 1.0)), (MAX_DELAY, MAX_DELAY, MAX_DELAY));
    }

    #[test]
    fn retry_after_is_honoured_with_a_spread_and_a_cap() {
        let mut retry = Retry::default();
        assert_eq!(retry.next(Trouble::Busy(Some(S(10))), 0.0), Some(S(10)));
        assert_eq!(retry.next(Trouble::Busy(Some(S(10))), 1.0), Some(S(12)), "at most 20 % more");
        assert_eq!(
            retry.next(Trouble::Busy(Some(S(1))), 0.5),
            Some(Duration::from_millis(1500)),
            "at least 1 s of spread"
        );
        let mut retry = Retry::default();
        assert_eq!(retry.next(Trouble::Busy(Some(S(3600))), 0.0), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(Some(" 7")), Some(S(7)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(None), None);
    }
}
