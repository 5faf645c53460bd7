//! Helpers shared by the integration tests, each defined here once and in no test file: a real
//! server on 127.0.0.1:0 in its own threads (or the binary in a process of its own), and blocking
//! clients with bounded timeouts so a hang fails fast instead of stalling CI.
//!
//! Every test runs as a thread of one process, so nothing here changes what the process shares
//! (environment, current directory, signal handlers, limits): what needs its own environment or
//! signals runs as a child process ([`Binary`]), and every socket is opened close-on-exec so a
//! child started by another test cannot inherit it.

mod api;
mod binary;
mod net;
mod server;
mod sse;

use std::time::{Duration, Instant};

pub use api::*;
pub use binary::*;
pub use net::*;
pub use server::*;
pub use sse::*;

/// Every blocking read or connect in the tests gives up after this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The producer routes' prefix (API.md, "Producer API").
pub const TASKS: &str = "/api/brand-monitor/tasks";
/// The stream and HEAD route's prefix (API.md, "The event stream").
pub const PROGRESS: &str = "/api/brand-monitor/progress";
/// The health route.
pub const HEALTH: &str = "/api/brand-monitor/health";

/// Polls `condition` (a short pause between tries) until it holds, failing after TIMEOUT.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
