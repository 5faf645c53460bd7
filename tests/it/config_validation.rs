//! Settings that would protect nothing or overflow are refused when the server binds, with a
//! whole sentence saying why (API.md, protection settings).
use std::time::Duration;

use sse_progress::{Config, ProgressTracker, Server};

fn bind_error(config: Config) -> String {
    let tracker = ProgressTracker::new(config);
    match smol::block_on(Server::bind("127.0.0.1:0", tracker)) {
        Ok(_) => panic!("the server bound"),
        Err(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            e.to_string()
        }
    }
}

#[test]
fn an_empty_publish_token_is_refused() {
    // Shows an empty token set through the library is not taken as "every caller may publish".
    let message = bind_error(Config { publish_token: Some(String::new()), ..Config::default() });
    assert!(message.contains("publish token is empty"), "{message}");
}

#[test]
fn subscribe_tokens_without_a_publish_token_are_refused() {
    // Shows the combination is refused: without a publish token, the list and GET routes would
    // show every task to anyone, so subscribe tokens would guard nothing.
    let message = bind_error(Config { require_subscribe_token: true, ..Config::default() });
    assert!(message.contains("publish token"), "{message}");
    let tracker = ProgressTracker::new(Config {
        require_subscribe_token: true,
        publish_token: Some("p".into()),
        ..Config::default()
    });
    assert!(smol::block_on(Server::bind("127.0.0.1:0", tracker)).is_ok(), "with both, the server binds");
}

#[test]
fn durations_that_would_overflow_are_refused() {
    // Shows a huge drain or retention is refused at bind instead of wrapping or panicking later.
    for config in [
        Config { drain: Duration::from_secs(u64::MAX), ..Config::default() },
        Config { retention: Duration::MAX, ..Config::default() },
    ] {
        assert!(bind_error(config).contains("over ten years"));
    }
}
