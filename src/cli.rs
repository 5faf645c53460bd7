//! The `sse-progress` command line: `serve`, `demo`, `publish`, `watch`.
//!
//! Flags are parsed by hand from one table per command, so `--help` and the `SSE_PROGRESS_*`
//! environment variables come from the same place as the parsing and cannot drift apart.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::Config;

/// A flag of a command: `--name VALUE` (or a switch), also read from `SSE_PROGRESS_NAME`.
#[derive(Debug)]
pub struct Flag {
    /// The name after `--`.
    pub name: &'static str,
    /// The value's placeholder; `None` for a switch.
    pub value: Option<&'static str>,
    /// What it does, for `--help`.
    pub help: &'static str,
    /// May be given more than once; the values are joined with `,`.
    pub repeatable: bool,
}

const fn flag(name: &'static str, value: Option<&'static str>, help: &'static str) -> Flag {
    Flag { name, value, help, repeatable: false }
}

/// Flags of `serve` (and `demo`).
pub const SERVE_FLAGS: &[Flag] = &[
    flag("listen", Some("ADDR"), "address to listen on [default: 127.0.0.1:8080]"),
    flag("publish-token", Some("TOKEN"), "producer calls need `Authorization: Bearer TOKEN`"),
    flag("heartbeat-secs", Some("N"), "heartbeat after N seconds of silence on a stream [default: 30]"),
    flag("retention-secs", Some("N"), "keep finished tasks N seconds [default: 3600]"),
    flag("threads", Some("N"), "executor threads [default: the number of CPUs]"),
    flag("max-tasks", Some("N"), "most tasks held at once; creation answers 503 beyond [default: 100000]"),
    flag("allow-unauthenticated", None, "allow a non-loopback --listen without --publish-token (anyone could publish)"),
    flag(
        "max-connections",
        Some("N"),
        "open connections at most; beyond: 503 + Retry-After [default: open-file limit - 64]",
    ),
    flag(
        "max-streams-per-client",
        Some("N"),
        "open streams per client address; beyond: 429 + Retry-After [default: 256, 0: no limit]",
    ),
    flag(
        "connect-rate-per-client",
        Some("N"),
        "new connections per second per client address, burst N; beyond: 429 [default: 50, 0: no limit]",
    ),
    flag("trust-proxy", Some("ADDR"), "take the client address from X-Forwarded-For when the peer is this IP"),
    flag("require-subscribe-token", None, "streams and HEAD need ?token= (the subscribeToken returned by create)"),
    Flag {
        name: "cors-origin",
        value: Some("ORIGIN"),
        help: "let this origin read streams and HEAD (repeatable, comma-separated, or *)",
        repeatable: true,
    },
    flag("drain-secs", Some("N"), "on SIGTERM/SIGINT: tell streams shutting_down, exit within N s [default: 10]"),
];

/// Flags of `demo` beyond those of `serve`.
pub const DEMO_FLAGS: &[Flag] = &[
    flag("concurrent", Some("N"), "simulated tasks running at once [default: 3]"),
    flag("exit-after-secs", Some("N"), "stop the demo after N seconds [default: run until interrupted]"),
];

/// Parsed flags: name to value (`""` for a switch).
pub type Flags = HashMap<&'static str, String>;

/// Parses `--name value`, `--name=value` and switches against `specs`; other words are returned
/// in order as positionals. Unset flags fall back to `SSE_PROGRESS_<NAME>`.
pub fn parse_flags(args: &[String], specs: &[&[Flag]]) -> Result<(Flags, Vec<String>), String> {
    let all = || specs.iter().flat_map(|s| s.iter());
    let mut flags = Flags::new();
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(body) = arg.strip_prefix("--") else {
            positional.push(arg.clone());
            continue;
        };
        let (name, inline) = body.split_once('=').map_or((body, None), |(n, v)| (n, Some(v.to_owned())));
        let spec = all().find(|f| f.name == name).ok_or_else(|| format!("unknown flag --{name} (see --help)"))?;
        let value = match (spec.value, inline) {
            (None, None) => String::new(),
            (None, Some(_)) => return Err(format!("--{name} takes no value")),
            (Some(_), Some(v)) => v,
            (Some(placeholder), None) => {
                i += 1;
                args.get(i - 1).cloned().ok_or_else(|| format!("--{name} needs a value {placeholder}"))?
            }
        };
        match flags.get_mut(spec.name) {
            Some(old) if spec.repeatable => {
                old.push(',');
                old.push_str(&value);
            }
            _ => {
                flags.insert(spec.name, value);
            }
        }
    }
    for spec in all() {
        if !flags.contains_key(spec.name)
            && let Ok(value) = std::env::var(env_name(spec.name))
        {
            let switch_on = spec.value.is_some() || matches!(value.as_str(), "1" | "true" | "yes");
            if switch_on {
                flags.insert(spec.name, if spec.value.is_some() { value } else { String::new() });
            }
        }
    }
    Ok((flags, positional))
}

/// `listen` -> `SSE_PROGRESS_LISTEN`.
pub fn env_name(flag: &str) -> String {
    format!("SSE_PROGRESS_{}", flag.to_ascii_uppercase().replace('-', "_"))
}

fn number<T: std::str::FromStr>(flags: &Flags, name: &str) -> Result<Option<T>, String> {
    flags.get(name).map(|v| v.parse::<T>().map_err(|_| format!("--{name} must be a number, not {v:?}"))).transpose()
}

/// The server settings from `serve`'s flags: the listen address and the config.
pub fn serve_settings(flags: &Flags) -> Result<(SocketAddr, Config), String> {
    let listen = flags.get("listen").map_or("127.0.0.1:8080", String::as_str);
    let addr: SocketAddr = listen.parse().map_err(|_| format!("--listen must be IP:PORT, not {listen:?}"))?;
    let mut config = Config::default();
    if let Some(n) = number::<u64>(flags, "heartbeat-secs")? {
        if n == 0 || n >= config.stale_after.as_secs() {
            return Err(format!(
                "--heartbeat-secs must be from 1 to {}: a stream silent for {} s is stale and closed",
                config.stale_after.as_secs() - 1,
                config.stale_after.as_secs()
            ));
        }
        config.heartbeat = Duration::from_secs(n);
    }
    if let Some(n) = number::<u64>(flags, "retention-secs")? {
        config.retention = Duration::from_secs(n);
    }
    if let Some(n) = number::<usize>(flags, "threads")? {
        config.threads = n.clamp(1, 256);
    }
    if let Some(n) = number::<usize>(flags, "max-tasks")? {
        config.max_tasks = n;
    }
    config.publish_token = flags.get("publish-token").filter(|t| !t.is_empty()).cloned();
    if let Some(n) = number::<usize>(flags, "max-connections")? {
        config.max_connections = n.max(1);
    }
    if let Some(n) = number::<u32>(flags, "max-streams-per-client")? {
        config.max_streams_per_client = n;
    }
    if let Some(n) = number::<u32>(flags, "connect-rate-per-client")? {
        config.connect_rate_per_client = n;
    }
    if let Some(proxy) = flags.get("trust-proxy") {
        config.trust_proxy =
            Some(proxy.parse().map_err(|_| format!("--trust-proxy must be an IP address, not {proxy:?}"))?);
    }
    config.require_subscribe_token = flags.contains_key("require-subscribe-token");
    if let Some(origins) = flags.get("cors-origin") {
        config.cors_origins = origins.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect();
    }
    if let Some(n) = number::<u64>(flags, "drain-secs")? {
        config.drain = Duration::from_secs(n);
    }
    if !addr.ip().is_loopback() && config.publish_token.is_none() && !flags.contains_key("allow-unauthenticated") {
        return Err(format!(
            "refusing to listen on {addr} without --publish-token: anyone who can reach it could publish. \
             Set --publish-token (or SSE_PROGRESS_PUBLISH_TOKEN), or pass --allow-unauthenticated."
        ));
    }
    Ok((addr, config))
}

fn usage_of(command: &str, synopsis: &str, specs: &[&[Flag]]) -> String {
    let mut out = format!(
        "Usage: sse-progress {command} {synopsis}\n\nOptions (each also from the environment variable shown):\n"
    );
    for spec in specs.iter().flat_map(|s| s.iter()) {
        let left = match spec.value {
            Some(v) => format!("--{} {v}", spec.name),
            None => format!("--{}", spec.name),
        };
        out.push_str(&format!("  {left:<28} {}\n  {:<28} [env: {}]\n", spec.help, "", env_name(spec.name)));
    }
    out.push_str("\nDEBUG=sse:* (or sse:http,sse:conn,sse:tracker,sse:server) logs to stderr.\n");
    out
}

const TOP_HELP: &str = "\
sse-progress: live progress of long-running tasks over Server-Sent Events.

Usage: sse-progress <command> [options]

Commands:
  serve     run the server (see `sse-progress serve --help`)
  demo      run the server with simulated brand-analysis tasks, and print where to watch them
  publish   create, update, complete, fail, get, list or delete tasks from a shell
  watch     follow one task in the terminal with a progress bar, reconnecting like the browser hook
  bench     load: open many streams, publish, report memory per stream and delivery latency
  help      this text

Stream a task:   curl -N http://127.0.0.1:8080/api/brand-monitor/progress/TASK_ID
";

/// Runs the command line; returns the process exit code.
pub fn main(args: Vec<String>) -> i32 {
    let Some(command) = args.first().map(String::as_str) else {
        eprint!("{TOP_HELP}");
        return 2;
    };
    let rest = &args[1..];
    let wants_help = rest.iter().any(|a| a == "--help" || a == "-h");
    let result = match command {
        "help" | "--help" | "-h" => {
            print!("{TOP_HELP}");
            Ok(())
        }
        "serve" if wants_help => {
            print!("{}", usage_of("serve", "[options]", &[SERVE_FLAGS]));
            Ok(())
        }
        "demo" if wants_help => {
            print!("{}", usage_of("demo", "[options]", &[SERVE_FLAGS, DEMO_FLAGS]));
            Ok(())
        }
        "publish" if wants_help => {
            print!("{}", crate::cli_publish::HELP);
            Ok(())
        }
        "watch" if wants_help => {
            print!("{}", crate::cli_watch::HELP);
            Ok(())
        }
        "serve" => serve(rest),
        "demo" => crate::demo::run(rest),
        "publish" => return crate::cli_publish::run(rest),
        "watch" => return crate::cli_watch::run(rest),
        "bench" => return crate::bench::main(rest),
        other => Err(format!("unknown command {other:?}\n\n{TOP_HELP}")),
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("sse-progress: {message}");
            2
        }
    }
}

fn serve(args: &[String]) -> Result<(), String> {
    let (flags, positional) = parse_flags(args, &[SERVE_FLAGS])?;
    if let Some(extra) = positional.first() {
        return Err(format!("unexpected argument {extra:?}"));
    }
    let (addr, config) = serve_settings(&flags)?;
    let tracker = crate::ProgressTracker::new(config);
    smol::block_on(async {
        let server = crate::Server::bind(addr, tracker).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        eprintln!("sse-progress listening on http://{}", server.local_addr().map_err(|e| e.to_string())?);
        server.run_until(termination_signal()?).await.map_err(|e| e.to_string())?;
        eprintln!("sse-progress stopped");
        Ok(())
    })
}

/// Completes on the first SIGTERM or SIGINT.
pub fn termination_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use async_signal::{Signal, Signals};
    use smol::stream::StreamExt as _;
    let mut signals = Signals::new([Signal::Term, Signal::Int]).map_err(|e| format!("cannot handle signals: {e}"))?;
    Ok(async move {
        if let Some(Ok(signal)) = signals.next().await {
            eprintln!("sse-progress: {signal:?}: draining");
        }
    })
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
}
