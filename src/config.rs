//! Every setting of the tracker and the server, with the defaults of docs/API.md.
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
    /// Open connections at most; beyond, new ones get 503 (default: from the open-file limit).
    pub max_connections: usize,
    /// Open streams per client address at most; beyond, 429 (default 256, 0 = no limit).
    pub max_streams_per_client: u32,
    /// New connections per second per client address, burst of the same (default 50, 0 = no limit).
    pub connect_rate_per_client: u32,
    /// Take the client address from `X-Forwarded-For` when the peer is this proxy.
    pub trust_proxy: Option<std::net::IpAddr>,
    /// Streams and HEAD need `?token=` (the `subscribeToken` of creation).
    pub require_subscribe_token: bool,
    /// Origins allowed to read streams and HEAD across origins (`*` for any); empty: no CORS.
    pub cors_origins: Vec<String>,
    /// On shutdown, streams are told and the server exits within this time (default 10 s).
    pub drain: Duration,
    /// Open connections of any kind per client address (IPv6: per /64) at most; beyond, 429
    /// (default 512, 0 = no limit).
    pub max_connections_per_client: u32,
    /// Total bytes of stored `result`s at most (default 256 MiB); beyond, creation and complete
    /// answer 503 with `Retry-After`.
    pub max_result_bytes: usize,
    /// Hosts the server answers (`Host` header, any port, case-insensitive; `*` for any). Empty:
    /// the default of docs/API.md, "Which hosts are answered": loopback names when the server listens
    /// on a loopback address, any host otherwise.
    pub allowed_hosts: Vec<String>,
}

/// File descriptors kept free for the listener, logs, a store and the answers that refuse.
const FD_RESERVE: u64 = 64;

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
            max_connections: Config::default_max_connections(),
            max_streams_per_client: 256,
            connect_rate_per_client: 50,
            trust_proxy: None,
            require_subscribe_token: false,
            cors_origins: Vec::new(),
            drain: Duration::from_secs(10),
            max_connections_per_client: 512,
            max_result_bytes: 256 << 20,
            allowed_hosts: Vec::new(),
        }
    }
}

impl Config {
    /// Longest retention, drain or other duration setting accepted: ten years. Beyond it,
    /// arithmetic on instants could overflow.
    pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

    /// The default connection cap: the soft open-file limit less a reserve.
    pub fn default_max_connections() -> usize {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(1024);
        limit.saturating_sub(FD_RESERVE).max(16) as usize
    }

    /// Checks settings that cannot work together or would protect nothing; `Server::bind` calls
    /// it. The message is a whole sentence for the operator.
    pub fn validate(&self) -> Result<(), String> {
        if self.publish_token.as_deref() == Some("") {
            return Err("The publish token is empty: set a non-empty token, or none.".into());
        }
        if self.require_subscribe_token && self.publish_token.is_none() {
            return Err("Subscribe tokens without a publish token protect nothing (anyone could list and read \
                        every task): set a publish token too."
                .into());
        }
        let durations = [
            ("heartbeat", self.heartbeat),
            ("retention", self.retention),
            ("retry", self.retry),
            ("unhealthy_after", self.unhealthy_after),
            ("stale_after", self.stale_after),
            ("header_timeout", self.header_timeout),
            ("idle_timeout", self.idle_timeout),
            ("drain", self.drain),
        ];
        if let Some((name, _)) = durations.iter().find(|(_, d)| *d > Config::MAX_DURATION) {
            return Err(format!("The {name} setting is over ten years."));
        }
        if self.timer_tick.is_zero() {
            return Err("The timer tick must be longer than zero.".into());
        }
        Ok(())
    }
}
