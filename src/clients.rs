//! Who a client is, for every per-client limit, and how many connections each one holds.
//!
//! An IPv6 client usually owns a whole /64 (SLAAC hands out addresses from it at will), so keying
//! limits by its full address would give it 2^64 separate budgets: IPv6 clients are keyed by
//! their /64, IPv4 ones (and IPv4-mapped IPv6 addresses) by their address.
//!
//! The open-connection count exists because idle keep-alive sockets are cheap to open and hold:
//! without a per-client cap, one address could fill `max_connections` and lock everyone out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;

/// The key a client's limits are counted under.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Open connections per client key, capped.
#[derive(Debug)]
pub struct OpenPerClient {
    max: u32,
    counts: Mutex<HashMap<IpAddr, u32>>,
}

impl OpenPerClient {
    /// At most `max` open connections per client key (0: no limit).
    pub fn new(max: u32) -> OpenPerClient {
        OpenPerClient { max, counts: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more connection of `key`; false (and nothing counted) at the cap.
    pub fn acquire(&self, key: IpAddr) -> bool {
        if self.max == 0 {
            return true;
        }
        let mut counts = self.lock();
        let count = counts.entry(key).or_insert(0);
        if *count >= self.max {
            return false;
        }
        *count += 1;
        true
    }

    /// Forgets one connection of `key` counted by [`acquire`](Self::acquire).
    pub fn release(&self, key: IpAddr) {
        if self.max == 0 {
            return;
        }
        let mut counts = self.lock();
        if let Some(count) = counts.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&key);
            }
        }
    }

    /// Client keys with an open connection now.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let key = |s: &str| client_key(s.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:10.1.2.3"), key("10.1.2.3"), "IPv4-mapped is IPv4");
        assert_ne!(key("10.1.2.3"), key("10.1.2.4"));
    }

    #[test]
    fn connections_are_capped_per_key_and_released() {
        let open = OpenPerClient::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(open.acquire(a) && open.acquire(a));
        assert!(!open.acquire(a), "the third is refused");
        assert!(open.acquire(b), "other clients have their own cap");
        open.release(a);
        assert!(open.acquire(a));
        open.release(a);
        open.release(a);
        open.release(b);
        assert_eq!(open.clients(), 0, "nothing is left behind");
        assert!((0..1000).all(|_| OpenPerClient::new(0).acquire(a)), "0 is no limit");
    }
}
