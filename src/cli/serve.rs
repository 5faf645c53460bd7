//! `sse-progress serve`: the server's settings from flags and `SSE_PROGRESS_*` variables, and
//! the process's signal handling.

use std::net::SocketAddr;
use std::num::IntErrorKind;
use std::time::Duration;

use sse_progress::Config;

use super::flags::{Flag, Flags, parse_flags};

/// Flags of `serve` (and `demo`).
pub const SERVE_FLAGS: &[Flag] = &[
    Flag::new("listen", Some("ADDR"), "address to listen on [default: 127.0.0.1:8080]").or_env("SSE_PROGRESS_LISTEN"),
    Flag::new("publish-token", Some("TOKEN"), "producer calls need `Authorization: Bearer TOKEN`")
        .or_env("SSE_PROGRESS_PUBLISH_TOKEN"),
    Flag::new("heartbeat-secs", Some("N"), "heartbeat after N seconds of silence on a stream [default: 30]")
        .or_env("SSE_PROGRESS_HEARTBEAT_SECS"),
    Flag::new("retention-secs", Some("N"), "keep finished tasks N seconds, at most ten years [default: 3600]")
        .or_env("SSE_PROGRESS_RETENTION_SECS"),
    Flag::new("threads", Some("N"), "executor threads [default: the number of CPUs]").or_env("SSE_PROGRESS_THREADS"),
    Flag::new("max-tasks", Some("N"), "most tasks held at once; creation answers 503 beyond [default: 100000]")
        .or_env("SSE_PROGRESS_MAX_TASKS"),
    Flag::new(
        "allow-unauthenticated",
        None,
        "allow a non-loopback --listen without --publish-token (anyone could publish)",
    )
    .or_env("SSE_PROGRESS_ALLOW_UNAUTHENTICATED"),
    Flag::new(
        "max-connections",
        Some("N"),
        "open connections at most; beyond: 503 + Retry-After [default and most: open-file limit - 64]",
    )
    .or_env("SSE_PROGRESS_MAX_CONNECTIONS"),
    Flag::new(
        "max-connections-per-client",
        Some("N"),
        "open connections of any kind per client address (IPv6: per /64); beyond: 429 [default: 512, 0: no limit]",
    )
    .or_env("SSE_PROGRESS_MAX_CONNECTIONS_PER_CLIENT"),
    Flag::new(
        "max-streams-per-client",
        Some("N"),
        "open streams per client address; beyond: 429 + Retry-After [default: 256, 0: no limit]",
    )
    .or_env("SSE_PROGRESS_MAX_STREAMS_PER_CLIENT"),
    Flag::new(
        "connect-rate-per-client",
        Some("N"),
        "new connections per second per client address, burst N; beyond: 429 [default: 50, 0: no limit]",
    )
    .or_env("SSE_PROGRESS_CONNECT_RATE_PER_CLIENT"),
    Flag::new(
        "max-result-bytes",
        Some("N"),
        "total bytes of stored results; beyond: create and complete answer 503 [default: 268435456]",
    )
    .or_env("SSE_PROGRESS_MAX_RESULT_BYTES"),
    Flag::new("trust-proxy", Some("ADDR"), "take the client address from X-Forwarded-For when the peer is this IP")
        .or_env("SSE_PROGRESS_TRUST_PROXY"),
    Flag::new("require-subscribe-token", None, "streams and HEAD need ?token= (the subscribeToken returned by create)")
        .or_env("SSE_PROGRESS_REQUIRE_SUBSCRIBE_TOKEN"),
    Flag::new(
        "cors-origin",
        Some("ORIGIN"),
        "let this origin read streams and HEAD (repeatable, comma-separated, or *)",
    )
    .or_env("SSE_PROGRESS_CORS_ORIGIN")
    .repeatable(),
    Flag::new(
        "allowed-host",
        Some("HOST"),
        "answer this Host, any port (repeatable, comma-separated, or *) \
         [default: loopback names if --listen is loopback, else any]",
    )
    .or_env("SSE_PROGRESS_ALLOWED_HOST")
    .repeatable(),
    Flag::new("drain-secs", Some("N"), "on SIGTERM/SIGINT: tell streams shutting_down, exit within N s [default: 10]")
        .or_env("SSE_PROGRESS_DRAIN_SECS"),
    Flag::new("data-dir", Some("DIR"), "keep tasks in a journal in DIR: they survive a restart and kill -9")
        .or_env("SSE_PROGRESS_DATA_DIR"),
    Flag::new(
        "fsync",
        Some("WHEN"),
        "with --data-dir: `always` (a 2xx means on disk) or `interval` (flushed every 100 ms) [default: always]",
    )
    .or_env("SSE_PROGRESS_FSYNC"),
];

/// Where tasks are kept: `--data-dir` with its `--fsync`, or memory.
fn store(flags: &Flags) -> Result<Option<(String, sse_progress::Fsync)>, String> {
    let fsync = match flags.get("fsync").map(String::as_str) {
        None | Some("always") => sse_progress::Fsync::Always,
        Some("interval") => sse_progress::Fsync::Interval,
        Some(other) => return Err(format!("--fsync must be `always` or `interval`, not {other:?}")),
    };
    match flags.get("data-dir") {
        Some(dir) if dir.is_empty() => Err("--data-dir needs a directory".into()),
        Some(dir) => Ok(Some((dir.clone(), fsync))),
        None if flags.contains_key("fsync") => Err("--fsync needs --data-dir".into()),
        None => Ok(None),
    }
}

/// The whole number given for `--name`, if given: at most `max`, which the message names as
/// `bound`.
fn number(flags: &Flags, name: &str, max: u64, bound: &str) -> Result<Option<u64>, String> {
    let Some(text) = flags.get(name) else { return Ok(None) };
    let n = match text.parse::<u64>() {
        Ok(n) => n,
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => u64::MAX,
        Err(_) => return Err(format!("--{name} must be a whole number, not {text:?}")),
    };
    if n > max {
        return Err(format!("--{name} must be at most {bound}, not {text}"));
    }
    Ok(Some(n))
}

/// A count that fits a `usize`.
fn count(flags: &Flags, name: &str) -> Result<Option<usize>, String> {
    Ok(number(flags, name, usize::MAX as u64, &usize::MAX.to_string())?.map(|n| n as usize))
}

/// A per-client limit that fits a `u32`.
fn limit(flags: &Flags, name: &str) -> Result<Option<u32>, String> {
    Ok(number(flags, name, u32::MAX.into(), &u32::MAX.to_string())?.map(|n| n as u32))
}

/// Seconds, bounded by [`Config::MAX_DURATION`]: deadlines are instants plus these, and beyond it they
/// could overflow.
fn seconds(flags: &Flags, name: &str) -> Result<Option<Duration>, String> {
    let max = Config::MAX_DURATION.as_secs();
    Ok(number(flags, name, max, &format!("{max} (ten years)"))?.map(Duration::from_secs))
}

/// `--allowed-host`'s list: host names without scheme or port (any port matches), or `*`.
fn allowed_hosts(list: &str) -> Result<Vec<String>, String> {
    let hosts: Vec<String> = list.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_owned).collect();
    if hosts.is_empty() {
        return Err("--allowed-host needs a host name, or * for any".into());
    }
    for host in &hosts {
        // A bracketed IPv6 address has colons of its own; anywhere else a colon starts a port.
        let name = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let bracketed = name.len() != host.len();
        let fine = host == "*"
            || (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') || (bracketed && c == ':')));
        if !fine {
            return Err(format!(
                "--allowed-host takes a host name such as example.com or [::1], without scheme or port \
                 (any port matches), or * for any; not {host:?}"
            ));
        }
    }
    Ok(hosts)
}

/// The server settings from `serve`'s flags: the listen address and the config.
pub fn serve_settings(flags: &Flags) -> Result<(SocketAddr, Config), String> {
    let listen = flags.get("listen").map_or("127.0.0.1:8080", String::as_str);
    let addr: SocketAddr = listen.parse().map_err(|_| format!("--listen must be IP:PORT, not {listen:?}"))?;
    let mut config = Config::default();
    if let Some(heartbeat) = number(flags, "heartbeat-secs", u64::MAX, "")? {
        let stale = config.stale_after.as_secs();
        if heartbeat == 0 || heartbeat >= stale {
            return Err(format!(
                "--heartbeat-secs must be from 1 to {}: a stream silent for {stale} s is stale and closed",
                stale - 1
            ));
        }
        config.heartbeat = Duration::from_secs(heartbeat);
    }
    if let Some(retention) = seconds(flags, "retention-secs")? {
        config.retention = retention;
    }
    if let Some(n) = count(flags, "threads")? {
        config.threads = n.clamp(1, 256);
    }
    if let Some(n) = count(flags, "max-tasks")? {
        config.max_tasks = n;
    }
    // An explicitly empty token is kept, for `validate` to refuse: dropping it would run the
    // server open to anyone while the operator believes it has a token.
    config.publish_token = flags.get("publish-token").cloned();
    if let Some(n) = count(flags, "max-connections")? {
        let most = Config::default_max_connections();
        if n > most {
            eprintln!(
                "sse-progress: --max-connections {n} is more than the open-file limit allows; using {most} \
                 (the limit less a reserve)"
            );
        }
        config.max_connections = n.clamp(1, most);
    }
    if let Some(n) = limit(flags, "max-connections-per-client")? {
        config.max_connections_per_client = n;
    }
    if let Some(n) = limit(flags, "max-streams-per-client")? {
        config.max_streams_per_client = n;
    }
    if let Some(n) = limit(flags, "connect-rate-per-client")? {
        config.connect_rate_per_client = n;
    }
    if let Some(n) = count(flags, "max-result-bytes")? {
        config.max_result_bytes = n;
    }
    if let Some(proxy) = flags.get("trust-proxy") {
        config.trust_proxy =
            Some(proxy.parse().map_err(|_| format!("--trust-proxy must be an IP address, not {proxy:?}"))?);
    }
    config.require_subscribe_token = flags.contains_key("require-subscribe-token");
    if let Some(origins) = flags.get("cors-origin") {
        config.cors_origins = origins.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect();
    }
    if let Some(hosts) = flags.get("allowed-host") {
        config.allowed_hosts = allowed_hosts(hosts)?;
    }
    if let Some(drain) = seconds(flags, "drain-secs")? {
        config.drain = drain;
    }
    config.validate()?;
    if !addr.ip().is_loopback() && config.publish_token.is_none() && !flags.contains_key("allow-unauthenticated") {
        return Err(format!(
            "refusing to listen on {addr} without --publish-token: anyone who can reach it could publish. \
             Set --publish-token (or SSE_PROGRESS_PUBLISH_TOKEN), or pass --allow-unauthenticated."
        ));
    }
    Ok((addr, config))
}

/// Runs the server until SIGTERM or SIGINT, then drains.
pub fn run(args: &[String]) -> Result<(), String> {
    let (flags, positional) = parse_flags(args, &[SERVE_FLAGS])?;
    if let Some(extra) = positional.first() {
        return Err(format!("unexpected argument {extra:?}"));
    }
    let (addr, config) = serve_settings(&flags)?;
    let tracker = match store(&flags)? {
        None => sse_progress::ProgressTracker::new(config),
        Some((dir, fsync)) => {
            let store = sse_progress::FileStore::open_with(&dir, fsync).map_err(|e| e.to_string())?;
            sse_progress::ProgressTracker::with_store(config, Box::new(store))
                .map_err(|e| format!("data directory {dir}: {e}"))?
        }
    };
    smol::block_on(async {
        let server =
            sse_progress::Server::bind(addr, tracker).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        eprintln!("sse-progress listening on http://{}", server.local_addr().map_err(|e| e.to_string())?);
        server.run_until(termination_signal()?).await.map_err(|e| e.to_string())?;
        eprintln!("sse-progress stopped");
        Ok(())
    })
}

/// Completes on the first SIGTERM or SIGINT, and from then on exits the process at a second one.
///
/// The drain after the first signal may last `--drain-secs`; an operator who signals again wants
/// out now. The handlers stay installed for that: dropping them would let the second signal kill
/// the process without a word.
pub fn termination_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use async_signal::{Signal, Signals};
    use smol::stream::StreamExt as _;
    let mut signals = Signals::new([Signal::Term, Signal::Int]).map_err(|e| format!("cannot handle signals: {e}"))?;
    Ok(async move {
        let Some(Ok(first)) = signals.next().await else { return };
        // A thread, not a task: the server's executors are busy draining, and this must not wait
        // for them.
        let watcher = std::thread::Builder::new().name("sse-progress-signals".into()).spawn(move || {
            if let Some(Ok(second)) = smol::block_on(signals.next()) {
                eprintln!("sse-progress: second {}: exiting now", signal_name(second));
                std::process::exit(128 + second as i32);
            }
        });
        match watcher {
            Ok(_) => eprintln!("sse-progress: {}: draining (a second signal exits at once)", signal_name(first)),
            Err(e) => {
                eprintln!("sse-progress: {}: draining (cannot watch for a second signal: {e})", signal_name(first))
            }
        }
    })
}

fn signal_name(signal: async_signal::Signal) -> &'static str {
    match signal {
        async_signal::Signal::Term => "SIGTERM",
        async_signal::Signal::Int => "SIGINT",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_parse_in_both_forms() {
        let (flags, pos) = parse_flags(
            &args(&["--listen=127.0.0.1:9", "--threads", "4", "x", "--allow-unauthenticated"]),
            &[SERVE_FLAGS],
        )
        .unwrap();
        assert_eq!(flags["listen"], "127.0.0.1:9");
        assert_eq!(flags["threads"], "4");
        assert_eq!(flags["allow-unauthenticated"], "");
        assert_eq!(pos, ["x"]);
        assert!(parse_flags(&args(&["--nope"]), &[SERVE_FLAGS]).is_err());
        assert!(parse_flags(&args(&["--threads"]), &[SERVE_FLAGS]).is_err());
    }

    #[test]
    fn public_addresses_need_a_token_or_an_explicit_opt_out() {
        let (flags, _) = parse_flags(&args(&["--listen", "0.0.0.0:8080"]), &[SERVE_FLAGS]).unwrap();
        assert!(serve_settings(&flags).unwrap_err().contains("--publish-token"));
        let (flags, _) =
            parse_flags(&args(&["--listen", "0.0.0.0:8080", "--publish-token", "t"]), &[SERVE_FLAGS]).unwrap();
        assert!(serve_settings(&flags).is_ok());
        let (flags, _) =
            parse_flags(&args(&["--listen", "0.0.0.0:8080", "--allow-unauthenticated"]), &[SERVE_FLAGS]).unwrap();
        assert!(serve_settings(&flags).is_ok());
        let (flags, _) = parse_flags(&args(&["--heartbeat-secs", "soon"]), &[SERVE_FLAGS]).unwrap();
        assert!(serve_settings(&flags).unwrap_err().contains("number"));
    }

    fn settings(words: &[&str]) -> Result<Config, String> {
        let (flags, _) = parse_flags(&args(words), &[SERVE_FLAGS])?;
        serve_settings(&flags).map(|(_, config)| config)
    }

    #[test]
    fn every_server_flag_names_its_own_variable() {
        let mut seen = std::collections::HashSet::new();
        for spec in SERVE_FLAGS.iter().chain(super::super::demo::DEMO_FLAGS) {
            let var = spec.env.unwrap_or_else(|| panic!("--{} has no variable", spec.name));
            assert!(var.starts_with("SSE_PROGRESS_") && seen.insert(var), "{var}");
        }
    }

    #[test]
    fn the_protection_flags_reach_the_config() {
        let config = settings(&[
            "--max-connections-per-client",
            "7",
            "--max-result-bytes",
            "1000",
            "--allowed-host",
            "a.example",
            "--allowed-host=b.example, [::1]",
        ])
        .unwrap();
        assert_eq!((config.max_connections_per_client, config.max_result_bytes), (7, 1000));
        assert_eq!(config.allowed_hosts, ["a.example", "b.example", "[::1]"]);
        assert_eq!(settings(&["--allowed-host", "*"]).unwrap().allowed_hosts, ["*"]);
        for bad in ["", "example.com:8080", "http://example.com", "*.example.com"] {
            assert!(settings(&["--allowed-host", bad]).unwrap_err().contains("--allowed-host"), "{bad:?}");
        }
    }

    #[test]
    fn numbers_are_bounded_where_they_are_given() {
        let ten_years = Config::MAX_DURATION.as_secs().to_string();
        assert_eq!(settings(&["--retention-secs", &ten_years]).unwrap().retention, Config::MAX_DURATION);
        for flag in ["--retention-secs", "--drain-secs", "--heartbeat-secs"] {
            for huge in ["99999999999999999", "99999999999999999999999"] {
                let error = settings(&[flag, huge]).unwrap_err();
                assert!(error.contains(flag) && (error.contains("at most") || error.contains("from 1 to")), "{error}");
            }
        }
        assert!(settings(&["--max-streams-per-client", "4294967296"]).unwrap_err().contains("at most 4294967295"));
        let most = Config::default_max_connections();
        assert_eq!(settings(&["--max-connections", &(most + 1).to_string()]).unwrap().max_connections, most);
        assert_eq!(settings(&["--max-connections", "0"]).unwrap().max_connections, 1);
    }

    #[test]
    fn settings_that_protect_nothing_are_refused() {
        assert!(settings(&["--publish-token", ""]).unwrap_err().contains("empty"));
        assert!(settings(&["--require-subscribe-token"]).unwrap_err().contains("publish token"));
        assert!(settings(&["--require-subscribe-token", "--publish-token", "t"]).is_ok());
    }
}
