//! Live progress of long-running tasks, streamed to browsers and terminals over Server-Sent Events.
//!
//! ```no_run
//! use sse_progress::{Config, ProgressTracker, Server, TaskUpdate};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tracker = ProgressTracker::new(Config::default());
//! tracker.create_task("task-123", "Initializing analysis")?;
//! tracker.update_task("task-123", TaskUpdate::running(50.0).stage("Processing data"))?;
//! smol::block_on(async {
//!     let server = Server::bind("127.0.0.1:8080", tracker.clone()).await?;
//!     server.run().await // GET /api/brand-monitor/progress/task-123 streams it
//! })?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! The crate root is the whole public API: [`ProgressTracker`] (the live tasks), [`Server`],
//! [`Config`], the task types, [`TaskStore`] and [`Loaded`] (where tasks persist) and [`client`]
//! (a small blocking HTTP and SSE client). Everything else is private, which keeps semver to this page:
//! - `tracker`, `task`, `store`: the tasks, their limits, the persistence seam.
//! - `server` (accept thread, executors), `state` (what connections share), `dispatch` (one
//!   connection's request loop), `http/` (head, bodies, chunked framing, responses, routes by
//!   path), `routes/` (one file per route family).
//! - `sse/`: the event encoder, the per-task fan-out (`topic`), where a stream's frames come from
//!   (`source`: one task, `multi` many through an `inbox`, `feed` all), how they are written
//!   (`unsent`) and a viewer's loop (`stream`).
//! - `timer_wheel`, `connections` (stream health), `clients` (per-client keys and counts),
//!   `rate_limit`, `hosts`, `auth`, `random`, `shutdown`, `slab`, `log`.
//!
//! The `sse-progress` binary (`src/main.rs`, `src/cli/`) is built on this public API only.
//!
//! # Implementation
//! A change takes the tracker's lock and the next number of the server-wide change sequence,
//! applies, encodes one frame and appends it to the task's topic and to the feed of all tasks,
//! which wake the viewers. Each viewer is one task on the stream executor
//! that writes the shared frames' bytes (all that are ready, in one `writev`); nothing is copied
//! or queued per viewer. See ARCHITECTURE.md.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod auth;
pub mod client;
mod clients;
mod config;
mod connections;
mod dispatch;
mod error;
mod hosts;
mod http;
mod log;
mod random;
mod rate_limit;
mod routes;
mod server;
mod shutdown;
mod slab;
mod sse;
mod state;
mod store;
mod task;
mod timer_wheel;
mod tracker;

pub use config::Config;
pub use error::{Error, ErrorKind, Result};
pub use server::Server;
pub use store::{Commits, FileStore, Fsync, Loaded, MemoryStore, Snapshot, StoredTask, TaskStore};
pub use task::{JsonText, NewTask, Task, TaskStatus, TaskUpdate};
pub use tracker::{ProgressTracker, TaskCounts};

/// Parts the fuzz targets, the benches and the tests reach into: the parsers, the encoder, the
/// fan-out and the timer wheel, each measured or fuzzed on its own. Not a public API: nothing
/// here is covered by semver, and it is hidden from the docs.
#[doc(hidden)]
pub mod internals {
    #![allow(missing_docs)]
    pub mod chunked {
        pub use crate::http::chunked::*;
    }
    pub mod request {
        pub use crate::http::request::*;
    }
    pub mod router {
        pub use crate::http::router::*;
    }
    pub mod encoder {
        pub use crate::sse::encoder::*;
    }
    pub mod topic {
        pub use crate::sse::topic::*;
    }
    pub mod timer_wheel {
        pub use crate::timer_wheel::*;
    }
    pub mod task {
        pub use crate::task::*;
    }
    pub use crate::task::validate_task_id;
    pub use crate::tracker::now_ms;
}

/// README's Rust example is compiled as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
