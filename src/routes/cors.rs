//! CORS for browser viewers on other origins: which origin may read the stream and HEAD routes.
//!
//! Nothing is sent unless `--cors-origin` is given. An `EventSource` on another origin makes a
//! simple GET (no preflight) and needs only `Access-Control-Allow-Origin`; `fetch` with a
//! `Last-Event-ID` header preflights, which `preflight` answers.

use crate::config::Config;
use crate::http::response::Response;

/// Headers that scripts on other origins may read from our answers.
const EXPOSE: &str = "X-Task-Status, X-Task-Progress, X-Task-Stage, X-Task-Event-Id, X-Task-Updated-At, Retry-After";

/// The CORS headers for a request from `origin`, if that origin is allowed.
pub fn allow_origin(config: &Config, origin: Option<&str>) -> Option<Vec<(&'static str, String)>> {
    let origin = origin?;
    let allowed = if config.cors_origins.iter().any(|o| o == "*") {
        "*".to_owned()
    } else if config.cors_origins.iter().any(|o| o == origin) {
        origin.to_owned()
    } else {
        return None;
    };
    let mut headers =
        vec![("Access-Control-Allow-Origin", allowed.clone()), ("Access-Control-Expose-Headers", EXPOSE.into())];
    if allowed != "*" {
        headers.push(("Vary", "Origin".into()));
    }
    Some(headers)
}

/// Adds the preflight answer's headers.
pub fn preflight(response: Response) -> Response {
    response
        .header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        .header("Access-Control-Allow-Headers", "Last-Event-ID, Cache-Control, Accept")
        .header("Access-Control-Max-Age", "600")
}

/// Adds CORS headers to an answer.
pub fn apply(mut response: Response, headers: Vec<(&'static str, String)>) -> Response {
    response.headers.extend(headers);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_origins_are_allowed() {
        let mut config = Config { cors_origins: vec!["https://app.example".into()], ..Config::default() };
        assert!(allow_origin(&config, Some("https://evil.example")).is_none());
        assert!(allow_origin(&config, None).is_none());
        let headers = allow_origin(&config, Some("https://app.example")).unwrap();
        assert_eq!(headers[0], ("Access-Control-Allow-Origin", "https://app.example".to_owned()));
        assert!(headers.iter().any(|(n, v)| *n == "Vary" && v == "Origin"));
        config.cors_origins = vec!["*".into()];
        assert_eq!(allow_origin(&config, Some("https://x.example")).unwrap()[0].1, "*");
        assert!(allow_origin(&Config::default(), Some("https://app.example")).is_none(), "nothing by default");
    }
}
