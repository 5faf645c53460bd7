//! Which `Host`s the server answers (docs/API.md, "Which hosts are answered").
//!
//! A page on any website can send requests to a server on 127.0.0.1, and with DNS rebinding
//! (its own name re-pointed to 127.0.0.1) read the answers as same-origin. Such a request
//! carries the attacker's name in `Host`; refusing names the server does not serve closes that
//! door. A loopback server serves only loopback names by default; a server on another address
//! is reached by names nobody can list in advance, so it takes any unless told otherwise.

use std::net::{IpAddr, Ipv4Addr};

/// The hosts a server answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedHosts {
    /// Any host.
    Any,
    /// `localhost`, `*.localhost`, `127.x.y.z` and `[::1]`.
    Loopback,
    /// These names (lowercase, without port).
    List(Vec<String>),
}

impl AllowedHosts {
    /// The rule for a server listening on `listen`: `configured` (from `--allowed-host`) when
    /// it names anything, else the default by address.
    pub fn new(configured: &[String], listen: IpAddr) -> AllowedHosts {
        let names: Vec<String> = configured
            .iter()
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
            .map(|h| split_port(h).unwrap_or(h).to_ascii_lowercase())
            .collect();
        if names.iter().any(|h| h == "*") {
            AllowedHosts::Any
        } else if !names.is_empty() {
            AllowedHosts::List(names)
        } else if listen.is_loopback() {
            AllowedHosts::Loopback
        } else {
            AllowedHosts::Any
        }
    }

    /// Whether a request with this `Host` value is answered. `None` (no `Host`, which only
    /// HTTP/1.0 may send) is let through, as docs/API.md says.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        if *self == AllowedHosts::Any {
            return true;
        }
        let Some(name) = split_port(host) else { return false };
        match self {
            AllowedHosts::Any => true,
            AllowedHosts::Loopback => is_loopback_name(name),
            AllowedHosts::List(names) => names.iter().any(|n| n.eq_ignore_ascii_case(name)),
        }
    }
}

/// The name of a `Host` value without its port: `None` if the value is not `name[:port]` or
/// `[v6][:port]`.
fn split_port(host: &str) -> Option<&str> {
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        let rest = &host[end + 1..];
        (&host[..=end], if rest.is_empty() { rest } else { rest.strip_prefix(':')? })
    } else {
        host.rsplit_once(':').unwrap_or((host, ""))
    };
    (!name.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some(name)
}

fn is_loopback_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "localhost"
        || lower.ends_with(".localhost")
        || lower == "[::1]"
        || lower.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn a_loopback_server_answers_loopback_names_only() {
        let rule = AllowedHosts::new(&[], LOOPBACK);
        for ok in ["localhost", "LOCALHOST:8080", "app.localhost", "127.0.0.1", "127.9.8.7:80", "[::1]", "[::1]:8080"] {
            assert!(rule.allows(Some(ok)), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "128.0.0.1",
            "127.0.0.1.evil.example",
            "[::2]",
            "localhost:80x",
            ":8080",
            "",
            "[::1",
        ] {
            assert!(!rule.allows(Some(bad)), "{bad}");
        }
        assert!(rule.allows(None), "HTTP/1.0 without Host");
    }

    #[test]
    fn other_addresses_answer_any_host_unless_a_list_is_given() {
        let public: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(AllowedHosts::new(&[], public), AllowedHosts::Any);
        assert_eq!(AllowedHosts::new(&[], "0.0.0.0".parse().unwrap()), AllowedHosts::Any);
        let rule = AllowedHosts::new(&["Progress.Example.com".into(), "other:8443".into()], public);
        assert!(rule.allows(Some("progress.example.com:443")));
        assert!(rule.allows(Some("OTHER")));
        assert!(!rule.allows(Some("localhost")), "the list replaces the default");
        assert_eq!(AllowedHosts::new(&["*".into()], LOOPBACK), AllowedHosts::Any);
    }
}
