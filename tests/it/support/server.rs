//! The server under test in this process: the library's `Server` on 127.0.0.1:0, run by
//! `run_until` on a thread of its own until the test stops it or drops it.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use sse_progress::{Config, ProgressTracker, Server};

use super::TIMEOUT;

/// A server running on its own threads; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub tracker: ProgressTracker,
    /// Where the server's change sequence started (from the clock): its first change is the
    /// number after it.
    pub seq_start: u64,
    stop: Option<smol::channel::Sender<()>>,
    returned: mpsc::Receiver<Result<(), String>>,
    thread: Option<JoinHandle<()>>,
}

/// Starts a server with `config` (two executor threads unless set) on 127.0.0.1:0.
pub fn start_server(config: Config) -> TestServer {
    let tracker = ProgressTracker::new(config);
    let seq_start = tracker.published_seq();
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let (ready, addr) = mpsc::channel();
    let (returned_tx, returned) = mpsc::channel();
    let t = tracker.clone();
    let thread = std::thread::spawn(move || {
        let result = smol::block_on(async move {
            let server = Server::bind("127.0.0.1:0", t).await.expect("bind 127.0.0.1:0");
            ready.send(server.local_addr().unwrap()).unwrap();
            server
                .run_until(async move {
                    let _ = stopped.recv().await;
                })
                .await
        });
        let _ = returned_tx.send(result.map_err(|e| e.to_string()));
    });
    let addr = addr.recv_timeout(TIMEOUT).expect("the server starts");
    TestServer { addr, tracker, seq_start, stop: Some(stop), returned, thread: Some(thread) }
}

/// A server with the default configuration but two threads.
pub fn start_default() -> TestServer {
    start_server(Config { threads: 2, ..Config::default() })
}

/// A server without the per-client connect rate, for tests that open one connection per
/// request: many more than the default rate allows, all from 127.0.0.1.
pub fn start_unthrottled(config: Config) -> TestServer {
    start_server(Config { connect_rate_per_client: 0, ..config })
}

/// [`start_unthrottled`] with the default settings and two executor threads.
pub fn start_unthrottled_default() -> TestServer {
    start_unthrottled(Config { threads: 2, ..Config::default() })
}

impl TestServer {
    /// The change sequence number of the server's `n`th change (the `id:` of streams of many
    /// tasks): the numbers start from the clock, not from 1.
    pub fn seq(&self, n: u64) -> u64 {
        self.seq_start + n
    }

    /// Creates `n` tasks named `{prefix}{i:03}` through the library; their ids.
    pub fn create_tasks(&self, prefix: &str, n: usize) -> Vec<String> {
        let ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i:03}")).collect();
        for id in &ids {
            self.tracker.create_task(id, "").unwrap();
        }
        ids
    }

    /// Publishes `updates` changes of 4 KB each (a running task's message), to `task_ids` in
    /// turn: more than any socket buffers hold.
    pub fn flood(&self, task_ids: &[String], updates: usize) {
        for i in 0..updates {
            let message = format!("{i:06}-{}", "x".repeat(4000 - 7));
            let update = sse_progress::TaskUpdate::running(10.0).message(message);
            self.tracker.update_task(&task_ids[i % task_ids.len()], update).unwrap();
        }
    }

    /// Completes the future `run_until` was given: the shutdown and its drain begin.
    pub fn stop(&mut self) {
        drop(self.stop.take());
    }

    /// What `run_until` returned, waiting at most `limit` for it to return.
    pub fn returned(&self, limit: Duration) -> Result<(), String> {
        self.returned.recv_timeout(limit).expect("run_until returns")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
