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
//! - [`tracker`]: the live tasks and their changes; [`task`]: the task model and its limits;
//!   [`store`]: where tasks persist (the seam for a journal or Redis).
//! - [`server`]: accept loop, executor threads (one executor for requests, one for streams);
//!   `dispatch`: one connection's request loop.
//! - [`http`]: the HTTP/1.1 layer (request head, bodies, responses, routes by path).
//! - [`routes`]: one file per route family (progress stream and HEAD, producer API, health).
//! - [`sse`]: the event encoder, the per-task fan-out ([`sse::topic`]) and a viewer's loop.
//! - [`timer_wheel`]: the one wheel behind every deadline; [`connections`]: stream health and
//!   the per-client stream cap; [`rate_limit`]: the connect token bucket; [`shutdown`]: the drain
//!   signal; [`auth`]: constant-time token checks.
//! - [`cli`], [`demo`], [`client`], [`mod@bench`]: the `sse-progress` binary's commands, its small
//!   HTTP client and the load tool.
//!
//! # Implementation
//! A change takes the tracker's lock, applies, encodes one [`sse::encoder::Frame`] and appends it
//! to the task's topic, which wakes the viewers. Each viewer is one task on the stream executor
//! that writes the shared frames' bytes (all that are ready, in one `writev`); nothing is copied
//! or queued per viewer. See ARCHITECTURE.md.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod auth;
pub mod bench;
pub mod cli;
mod cli_publish;
mod cli_watch;
pub mod client;
mod clients;
pub mod config;
pub mod connections;
pub mod demo;
mod dispatch;
pub mod error;
mod hosts;
pub mod http;
pub mod log;
mod random;
pub mod rate_limit;
pub mod routes;
pub mod server;
pub mod shutdown;
pub mod slab;
pub mod sse;
pub mod store;
pub mod task;
pub mod timer_wheel;
pub mod tracker;

pub use config::Config;
pub use error::{Error, ErrorKind, Result};
pub use server::Server;
pub use store::{MemoryStore, TaskStore};
pub use task::{Task, TaskStatus, TaskUpdate};
pub use tracker::ProgressTracker;

/// README's Rust example is compiled as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
