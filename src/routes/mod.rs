//! One file per route family; each turns a parsed request into an answer.

pub mod client_js;
pub mod cors;
pub mod health;
pub mod index;
pub mod progress;
pub mod progress_many;
pub mod task_body;
pub mod tasks;

/// What the unit tests of the routes share: a server's shared state without a socket, and
/// requests parsed as the server parses them.
#[cfg(test)]
pub(crate) mod testing {
    use crate::config::Config;
    use crate::http::request::{Request, parse};
    use crate::state::Shared;
    use crate::tracker::ProgressTracker;

    /// The state of a server with `config`, that requires subscribe tokens.
    pub(crate) fn shared_with_tokens() -> Shared {
        let config = Config { require_subscribe_token: true, publish_token: Some("pub".into()), ..Config::default() };
        Shared::new(ProgressTracker::new(config.clone()), config, ([127, 0, 0, 1], 8080).into())
    }

    /// `GET target`, parsed.
    pub(crate) fn get(target: &str) -> Request {
        let head = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        parse(head.as_bytes()).expect("a valid head").expect("a whole head").0
    }

    /// A client address.
    pub(crate) const CLIENT: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
}
