//! The integration tests, one module per property, in one test binary: each test runs a real
//! server (in this process on 127.0.0.1:0, or the binary as a child process) and talks to it over
//! TCP through the clients of `support`. One binary links once, where a binary per file linked
//! the library and its dependencies 25 times.
//!
//! The tests run in parallel threads of this one process, so they share its open-file limit and
//! everything else process-wide; `support` says how it keeps out of that.

mod support;

mod all_tasks_stream;
mod bench_tool;
mod chunked_framing;
mod cli;
mod cli_watch;
mod client_module;
mod config_validation;
mod connection_caps;
mod cors;
mod curl;
mod desync;
mod durable;
mod durable_compaction;
mod durable_disk_full;
mod durable_recovery;
mod durable_scale;
mod fanout;
mod health_counters;
mod host_rule;
mod http_limits;
mod injection;
mod limits;
mod multi_stream;
mod publish_auth;
mod restart_ids;
mod result_memory;
mod resume;
mod resume_query;
mod shutdown;
mod signals;
mod slow_clients;
mod smoke;
mod stream;
mod stream_memory;
mod subscribe_tokens;
mod tasks_api;
mod terminal_snapshot;
