//! The token bucket of new connections per client address.
//!
//! One client opening connections in a loop must not take the server from everyone else. The
//! table is keyed by IP address and bounded: when it grows past [`MAX_TRACKED`], buckets that
//! have refilled completely (clients that went quiet) are dropped, which loses nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most client addresses the rate limiter remembers before dropping quiet ones.
pub const MAX_TRACKED: usize = 65_536;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// New connections per second per address, shared by the server.
#[derive(Debug)]
pub struct ConnectRate {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl ConnectRate {
    /// `rate` new connections per second per address, with a burst of the same size (0 = no limit).
    pub fn new(rate: u32) -> ConnectRate {
        ConnectRate { rate: f64::from(rate), burst: f64::from(rate), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for a new connection from `ip`, or says how long until one is available.
    pub fn admit_connection(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(ip).or_insert(Bucket { tokens: self.burst, updated: now });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let limits = ConnectRate::new(5);
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limits.admit_connection(ip, t0).is_ok());
        }
        let wait = limits.admit_connection(ip, t0).unwrap_err();
        assert!(wait > Duration::from_millis(150) && wait <= Duration::from_millis(200), "{wait:?}");
        assert!(limits.admit_connection(ip, t0 + Duration::from_millis(200)).is_ok());
        let other: IpAddr = "127.0.0.10".parse().unwrap();
        assert!(limits.admit_connection(other, t0).is_ok(), "addresses have their own buckets");
    }
}
