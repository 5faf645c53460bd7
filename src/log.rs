//! `DEBUG=sse:*` logging to stderr: the convention of the `debug` package that the TypeScript
//! system this server replaces used, so operators keep the switch they know.
//!
//! Namespaces are a bit set read once from the environment; a disabled namespace costs one
//! relaxed load, so log lines can stay on hot paths.

use std::sync::atomic::{AtomicU8, Ordering};

/// A logging namespace, named `sse:<name>` in `DEBUG`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Ns {
    /// Requests and responses.
    Http = 1,
    /// Stream connections: open, close, health.
    Conn = 2,
    /// Task changes.
    Tracker = 4,
    /// Start, stop, listen.
    Server = 8,
}

impl Ns {
    const ALL: [Ns; 4] = [Ns::Http, Ns::Conn, Ns::Tracker, Ns::Server];

    /// The name after `sse:`.
    pub fn name(self) -> &'static str {
        match self {
            Ns::Http => "http",
            Ns::Conn => "conn",
            Ns::Tracker => "tracker",
            Ns::Server => "server",
        }
    }
}

const UNSET: u8 = 0x80;
static ENABLED: AtomicU8 = AtomicU8::new(UNSET);

/// Which namespaces a `DEBUG` value turns on: `sse:*`, `*`, or a comma/space separated list.
pub fn parse_debug(value: &str) -> u8 {
    let mut bits = 0;
    for item in value.split([',', ' ']).map(str::trim) {
        match item {
            "*" | "sse:*" => bits = 0x0f,
            _ => {
                for ns in Ns::ALL {
                    if item.strip_prefix("sse:") == Some(ns.name()) {
                        bits |= ns as u8;
                    }
                }
            }
        }
    }
    bits
}

/// Whether `ns` logs; reads `DEBUG` on first use.
pub fn enabled(ns: Ns) -> bool {
    let mut bits = ENABLED.load(Ordering::Relaxed);
    if bits == UNSET {
        bits = std::env::var("DEBUG").map(|v| parse_debug(&v)).unwrap_or(0);
        ENABLED.store(bits, Ordering::Relaxed);
    }
    bits & ns as u8 != 0
}

/// Writes one line to stderr when the namespace is on: `sse:http GET /path 200`. Crate-local:
/// logging is not part of the library's API.
macro_rules! debug {
    ($ns:expr, $($arg:tt)*) => {
        if $crate::log::enabled($ns) {
            eprintln!("sse:{} {}", $ns.name(), format_args!($($arg)*));
        }
    };
}
pub(crate) use debug;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_values_select_namespaces() {
        assert_eq!(parse_debug("sse:*"), 0x0f);
        assert_eq!(parse_debug("sse:http,sse:conn"), Ns::Http as u8 | Ns::Conn as u8);
        assert_eq!(parse_debug("sse:tracker other:*"), Ns::Tracker as u8);
        assert_eq!(parse_debug(""), 0);
    }
}
