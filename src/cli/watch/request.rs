//! The stream request `watch` sends: built here only, because everything in it comes from the
//! command line or from the server, and neither may reach the request line or a header as it is.
//!
//! Task ids are checked against their grammar (so they need no encoding and cannot carry a
//! space, a CR or a `?` into the request line); tokens are percent-encoded (the server decodes
//! `+` as a space, so even a `+` must be sent as `%2B`); a `Last-Event-ID` is sent back only if
//! it is plain visible ASCII, so a hostile server cannot make us write a header of its choosing.

use sse_progress::client::{Url, percent_encode};

/// The longest task id (API.md, the task model).
const MAX_ID_LEN: usize = 128;

/// The most tasks one multi-task stream may list (API.md, "Many tasks on one stream").
pub const MAX_TASKS: usize = 100;

/// Which route a stream goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/api/brand-monitor/progress/{id}`: one task, as servers without multi-task streams know.
    One,
    /// `/api/brand-monitor/progress?tasks=...`: several tasks on one stream.
    Many,
}

/// Whether `id` is a task id: 1 to 128 chars of `A-Z a-z 0-9 _ - .`, not starting with `.`.
pub fn valid_task_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The request head for `tasks` (id and subscribe token, ids already checked), resuming after
/// `last_id` if there is one.
pub fn stream_request(url: &Url, route: Route, tasks: &[(&str, &str)], last_id: Option<&str>) -> String {
    let path = match route {
        Route::One => {
            let (id, token) = tasks.first().copied().unwrap_or_default();
            let query = if token.is_empty() { String::new() } else { format!("?token={}", percent_encode(token)) };
            format!("/api/brand-monitor/progress/{id}{query}")
        }
        Route::Many => {
            let ids: Vec<&str> = tasks.iter().map(|(id, _)| *id).collect();
            let mut path = format!("/api/brand-monitor/progress?tasks={}", ids.join(","));
            if tasks.iter().any(|(_, token)| !token.is_empty()) {
                let tokens: Vec<String> = tasks.iter().map(|(_, token)| percent_encode(token)).collect();
                path.push_str(&format!("&tokens={}", tokens.join(",")));
            }
            path
        }
    };
    let mut head =
        format!("GET {}{path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n", url.base, url.authority);
    if let Some(id) = last_id.filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic())) {
        head.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    head.push_str("\r\n");
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("http://127.0.0.1:8080/base").unwrap()
    }

    #[test]
    fn task_ids_follow_their_grammar() {
        for good in ["a", "build-42", "A.b_c-9", &"x".repeat(128)] {
            assert!(valid_task_id(good), "{good}");
        }
        for bad in ["", ".hidden", "a b", "a/b", "a%2Fb", "a?b", "a\r\nb", "é", &"x".repeat(129)] {
            assert!(!valid_task_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_percent_encoded_and_commas_separate_them() {
        assert_eq!(percent_encode("a+b c/d,e%~"), "a%2Bb%20c%2Fd%2Ce%25~");
        let head = stream_request(&url(), Route::Many, &[("a", "t+1"), ("b", ""), ("c", "t 3")], None);
        assert!(
            head.starts_with("GET /base/api/brand-monitor/progress?tasks=a,b,c&tokens=t%2B1,,t%203 HTTP/1.1\r\n"),
            "{head}"
        );
        let head = stream_request(&url(), Route::Many, &[("a", ""), ("b", "")], None);
        assert!(head.starts_with("GET /base/api/brand-monitor/progress?tasks=a,b HTTP/1.1\r\n"), "{head}");
        let head = stream_request(&url(), Route::One, &[("a", "x&y")], None);
        assert!(head.starts_with("GET /base/api/brand-monitor/progress/a?token=x%26y HTTP/1.1\r\n"), "{head}");
        assert!(head.ends_with("Host: 127.0.0.1:8080\r\nAccept: text/event-stream\r\n\r\n"), "{head}");
    }

    #[test]
    fn only_a_plain_last_event_id_is_sent_back() {
        let head = stream_request(&url(), Route::One, &[("a", "")], Some("42"));
        assert!(head.ends_with("Last-Event-ID: 42\r\n\r\n"), "{head}");
        for hostile in ["4\r2", "4 2", "", "4\x002"] {
            let head = stream_request(&url(), Route::One, &[("a", "")], Some(hostile));
            assert!(!head.contains("Last-Event-ID"), "{hostile:?}: {head}");
        }
    }
}
