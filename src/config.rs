//! Every setting of the tracker and the server, with the defaults of API.md.
//!
//! One struct for both, because `Server::bind(addr, tracker)` takes its settings from the
//! tracker it serves: an embedding program configures one thing.

use std::time::Duration;

/// Settings; `Config::default()` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// A heartbeat after this much silence on a stream (default 30 s).
    pub heartbeat: Duration,
    /// Finished tasks are removed this long after they finish (default 1 h).
    pub retention: Duration,
    /// The reconnect delay sent as `retry:` (default 2 s).
    pub retry: Duration,
    /// A connection whose write has been stuck this long is unhealthy (default 30 s).
    pub unhealthy_after: Duration,
    /// A connection without successful activity this long is stale and closed (default 2 min).
    pub stale_after: Duration,
    /// A request's headers must arrive within this time of its first byte (default 10 s).
    pub header_timeout: Duration,
    /// An idle keep-alive connection is closed after this long without a request (default 60 s).
    pub idle_timeout: Duration,
    /// Producer calls need `Authorization: Bearer <token>` when set.
    pub publish_token: Option<String>,
    /// At most this many tasks are held (default 100,000); creation answers 503 beyond it.
    pub max_tasks: usize,
    /// Executor threads of the server (default: the number of CPUs).
    pub threads: usize,
    /// Granularity of every deadline (default 100 ms).
    pub timer_tick: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            heartbeat: Duration::from_secs(30),
            retention: Duration::from_secs(3600),
            retry: Duration::from_millis(2000),
            unhealthy_after: Duration::from_secs(30),
            stale_after: Duration::from_secs(120),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            publish_token: None,
            max_tasks: 100_000,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            timer_tick: Duration::from_millis(100),
        }
    }
}
