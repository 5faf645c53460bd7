//! Accepts connections and runs them on the server's own executor threads.
//!
//! Two executors share the executor threads: `control` runs every request, `fanout` runs the
//! streams (a connection moves there when its stream starts). Each thread drives both in turns
//! (`drive`): the ready requests (up to 256), then at most `FANOUT_TURN` stream tasks, then the
//! reactor. A producer's request that arrives during a fan-out therefore waits for the rest of
//! one short turn (64 viewer writes, well under a millisecond), never for the fan-out of the
//! previous update, and smol's own turns of 200 tasks per executor do not add up in front of it.
//! Accepting and the timer wheel run on one more thread that runs no connection code, so no
//! connection, however busy, can hold back a new client or a deadline.
//!
//! `Server::run_until(shutdown)` takes shutdown as an argument, as mini-redis does. When it
//! completes the server drains: it stops accepting, tells every stream `shutting_down`, lets
//! requests in flight finish, and returns once every connection is gone or `config.drain` has
//! passed, whichever is first. Beyond `config.max_connections` open connections a new one is
//! answered 503 at once, from the accept loop, without a request task.
//! The listening socket is made with rustix so its backlog can be 4,096: std's fixed 128 drops
//! handshakes in a reconnect storm, and each drop costs the client a 1 s SYN retry.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_io::Async;
use smol::Executor;
use smol::future::{self, FutureExt as _};

use crate::Config;
use crate::log::Ns;
use crate::log::debug;
use crate::state::{OpenGuard, Shared};
use crate::tracker::ProgressTracker;

/// Listen backlog (the kernel caps it at `net.core.somaxconn`, 4,096 by default).
pub const BACKLOG: i32 = 4096;

/// Send buffer of every accepted socket, set once on the listener (`listen`); the kernel doubles
/// it for its bookkeeping.
pub const SEND_BUFFER: usize = 64 * 1024;

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    listener: Async<TcpListener>,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds `addr` (with a listen backlog of 4,096) to serve `tracker`'s tasks.
    pub async fn bind(addr: impl ToSocketAddrs, tracker: ProgressTracker) -> io::Result<Server> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to nothing"))?;
        let mut config = tracker.config().clone();
        config.validate().map_err(|message| io::Error::new(io::ErrorKind::InvalidInput, message))?;
        // Past the open-file limit, accepts fail instead of being answered 503.
        config.max_connections = config.max_connections.min(Config::default_max_connections());
        let listener = Async::new(listen(addr)?)?;
        let shared = Shared::new(tracker, config, addr);
        debug!(Ns::Server, "listening on {addr}");
        Ok(Server { listener, shared: Arc::new(shared) })
    }

    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.get_ref().local_addr()
    }

    /// The tracker this server serves.
    pub fn tracker(&self) -> &ProgressTracker {
        &self.shared.tracker
    }

    /// Serves until the process ends.
    pub async fn run(self) -> io::Result<()> {
        self.run_until(future::pending()).await
    }

    /// Serves until `shutdown` completes, then drains (see the module docs); runs on
    /// `config.threads` threads, this one included, plus one that accepts and keeps time.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let executor = Arc::new(Executor::new());
        let fanout = Arc::new(Executor::new());
        let shared = Arc::clone(&self.shared);
        shared.set_fanout(&fanout);
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let helpers: Vec<_> = (1..shared.config.threads.max(1))
            .map(|i| {
                let executor = Arc::clone(&executor);
                let stopped = stopped.clone();
                std::thread::Builder::new().name(format!("sse-progress-{i}")).spawn({
                    let fanout = Arc::clone(&fanout);
                    move || smol::block_on(drive(&executor, &fanout, stopped.recv()))
                })
            })
            .collect::<io::Result<_>>()?;
        // Accepting and the timer wheel get a thread of their own, which runs no connection
        // code: however long one poll of a connection takes, a new client is accepted and every
        // deadline fires on time.
        let (close_listener, listener_closing) = smol::channel::bounded::<()>(1);
        let (listener_closed, closed) = smol::channel::bounded::<()>(1);
        let background = std::thread::Builder::new().name("sse-progress-accept".into()).spawn({
            let (shared, executor, stopped) = (Arc::clone(&shared), Arc::clone(&executor), stopped.clone());
            let listener = self.listener;
            move || {
                let close = async move {
                    let _ = listener_closing.recv().await;
                    listener_closed
                };
                smol::block_on(background(listener, &shared, &executor, close, stopped.recv()))
            }
        })?;
        drive(&executor, &fanout, shutdown).await;
        // The flag first, then the listener closed, then everyone woken: a client that sees the
        // listener closed sees the shutdown on the connection it already has (a stream request
        // there gets 503), and a stream told `shutting_down` finds the listener closed.
        shared.shutdown.begin();
        let _ = close_listener.try_send(());
        let _ = drive(&executor, &fanout, closed.recv()).await;
        shared.shutdown.trigger();
        let open = shared.open_connections.load(Ordering::Relaxed);
        debug!(Ns::Server, "draining {open} connections");
        let deadline = Instant::now().checked_add(shared.config.drain).unwrap_or_else(far_future);
        // The last connection's guard wakes this; the deadline ends the wait otherwise.
        let drained = future::or(shared.drained(), async {
            async_io::Timer::at(deadline).await;
        });
        drive(&executor, &fanout, drained).await;
        debug!(Ns::Server, "stopped with {} connections open", shared.open_connections.load(Ordering::Relaxed));
        drop(stop);
        for helper in helpers {
            let _ = helper.join();
        }
        let result = background.join().unwrap_or_else(|_| Err(io::Error::other("the accept thread panicked")));
        // Dropping the executors drops the connections still open past the drain time.
        drop(fanout);
        drop(executor);
        result
    }
}

/// The accept thread: accepts until `close` completes, then closes the listener and says so
/// by dropping what `close` gave; drives the timer wheel and the retention sweep until `stop`.
async fn background<T>(
    listener: Async<TcpListener>,
    shared: &Arc<Shared>,
    executor: &Arc<Executor<'static>>,
    close: impl Future<Output = T>,
    stop: impl Future,
) -> io::Result<()> {
    let accept = async {
        let mut closed = None;
        let accepted = future::or(accept_loop(&listener, shared, executor), async {
            closed = Some(close.await);
            Ok(())
        })
        .await;
        drop(listener);
        drop(closed);
        accepted?;
        future::pending::<io::Result<()>>().await
    };
    let housekeeping = async {
        future::zip(shared.timers.run(), sweep_retention(shared)).await;
        Ok(())
    };
    future::or(future::or(accept, housekeeping), async {
        stop.await;
        Ok(())
    })
    .await
}

/// An instant no deadline reaches (for durations too long to add).
pub(crate) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// Most requests run in one turn before the fan-out gets the thread again.
const CONTROL_TURN: usize = 256;
/// Most stream tasks run in one turn before requests and the reactor get the thread again.
const FANOUT_TURN: usize = 64;

/// Runs `main` on this thread while driving both executors in turns, requests first. After a
/// turn that ran anything, a yield hands the thread back to `block_on`, which polls the reactor
/// (epoll, without waiting) before polling this again; with nothing ready, it sleeps until either
/// executor has a task.
async fn drive<T>(control: &Executor<'static>, fanout: &Executor<'static>, main: impl Future<Output = T>) -> T {
    let turns = async {
        loop {
            let mut ran = 0;
            while ran < CONTROL_TURN && control.try_tick() {
                ran += 1;
            }
            let mut streams = 0;
            while streams < FANOUT_TURN && fanout.try_tick() {
                streams += 1;
            }
            if ran + streams > 0 {
                future::yield_now().await;
            } else {
                future::or(control.tick(), fanout.tick()).await;
            }
        }
    };
    main.or(turns).await
}

async fn accept_loop(
    listener: &Async<TcpListener>,
    shared: &Arc<Shared>,
    executor: &Arc<Executor<'static>>,
) -> io::Result<()> {
    loop {
        let (stream, peer) = match accept(listener).await {
            Ok(accepted) => accepted,
            Err(e) => {
                debug!(Ns::Server, "accept failed: {e}");
                // Out of file descriptors or memory: back off instead of spinning. Anything else
                // (a connection reset before it was accepted) concerns that connection only.
                use rustix::io::Errno;
                let exhausted = [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM].map(Errno::raw_os_error);
                if exhausted.contains(&e.raw_os_error().unwrap_or(0)) {
                    shared.timers.sleep_until(Instant::now() + Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        if shared.open_connections.fetch_add(1, Ordering::Relaxed) >= shared.config.max_connections {
            shared.open_connections.fetch_sub(1, Ordering::Relaxed);
            refuse_full(shared, executor, stream);
            continue;
        }
        let open = OpenGuard::new(Arc::clone(shared));
        executor.spawn(guarded(peer, crate::dispatch::serve(Arc::clone(shared), stream, peer, open))).detach();
    }
}

/// A connection's future, with its panic logged.
///
/// The executor already keeps a panic inside its task: smol spawns with async-task's
/// `propagate_panic`, which catches the panic, drops the task's future (so its guards close the
/// connection and fix the counts) and, for a detached task, drops the panic too;
/// `tests::a_panicking_task_ends_alone` holds smol to that. Streams are spawned without this
/// wrapper: an async fn stores a future it is given and then awaits twice (rust-lang/rust#62958),
/// which would double the memory of every idle stream.
pub(crate) async fn guarded(peer: SocketAddr, connection: impl Future<Output = ()>) {
    if AssertUnwindSafe(connection).catch_unwind().await.is_err() {
        debug!(Ns::Conn, "{peer}: a connection task panicked");
    }
}

/// Answers 503 on a fresh socket and closes it gracefully, as [`Shared::refuse`] does but from
/// the accept loop, in a small task of its own. `Retry-After` is spread over 1-5 s so refused
/// clients do not return together.
fn refuse_full(shared: &Arc<Shared>, executor: &Executor<'static>, stream: Async<TcpStream>) {
    let response = crate::http::response::Response::error(
        503,
        "server_full",
        "The server is at its connection limit; retry later.",
    )
    .header("Retry-After", fastrand::u32(1..=5).to_string());
    let conn = crate::http::conn::Conn::new(stream);
    let shared = Arc::clone(shared);
    executor.spawn(async move { shared.refuse(conn, &response).await }).detach();
}

/// Removes finished tasks past their retention, once a second.
async fn sweep_retention(shared: &Shared) {
    loop {
        shared.timers.sleep_until(Instant::now() + Duration::from_secs(1)).await;
        let removed = shared.tracker.remove_expired();
        if removed > 0 {
            debug!(Ns::Tracker, "removed {removed} finished tasks past retention");
        }
    }
}

/// A listening socket with our backlog; std's `TcpListener::bind` fixes it at 128.
///
/// `TCP_NODELAY` and the fixed send buffer are set here, once: Linux copies a listener's socket
/// options to every connection it accepts, which saves two syscalls per connect
/// (`accepted_sockets_inherit_the_listeners_options` checks that this kernel does). Producers'
/// and health connections get the fixed buffer too: their answers are small, and a large one
/// (`/tasks` with many tasks) only takes a few more writes.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_tcp_nodelay(&fd, true)?;
    // A fixed send buffer turns off the kernel's autotuning: a client that never reads then costs
    // at most this much kernel memory, and its writes block soon enough to be noticed as stuck
    // instead of vanishing into a buffer that grows to megabytes.
    sockopt::set_socket_send_buffer_size(&fd, SEND_BUFFER)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, BACKLOG)?;
    Ok(TcpListener::from(fd))
}

/// Accepts one connection, already non-blocking (`accept4` with `SOCK_NONBLOCK`, so no `ioctl`
/// follows as in `Async::accept`).
async fn accept(listener: &Async<TcpListener>) -> io::Result<(Async<TcpStream>, SocketAddr)> {
    use rustix::net::SocketFlags;
    let (fd, peer) = listener
        .read_with(|l| Ok(rustix::net::acceptfrom_with(l, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)?))
        .await?;
    let peer = peer
        .and_then(|a| SocketAddr::try_from(a).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "accept gave no peer address"))?;
    Ok((Async::new_nonblocking(TcpStream::from(fd))?, peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_panicking_task_ends_alone() {
        struct Dropped(Arc<AtomicUsize>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let executor = Executor::new();
        let dropped = Arc::new(AtomicUsize::new(0));
        let guard = Dropped(Arc::clone(&dropped));
        let (tx, rx) = smol::channel::bounded::<()>(1);
        executor
            .spawn(async move {
                let _guard = guard;
                let _ = rx.recv().await;
                panic!("a connection task panics (this message is expected)");
            })
            .detach();
        let after = smol::block_on(executor.run(async {
            future::yield_now().await;
            tx.send(()).await.unwrap();
            // The panicking task runs in this executor's next turn; this one must go on after it.
            for _ in 0..3 {
                future::yield_now().await;
            }
            executor.spawn(async { 7 }).await
        }));
        assert_eq!(after, 7, "the executor goes on running tasks");
        assert_eq!(dropped.load(Ordering::SeqCst), 1, "the panicked task's future was dropped");
    }

    #[test]
    fn accepted_sockets_inherit_the_listeners_options() {
        smol::block_on(async {
            let listener = Async::new(listen("127.0.0.1:0".parse().unwrap()).unwrap()).unwrap();
            let addr = listener.get_ref().local_addr().unwrap();
            let client = TcpStream::connect(addr).unwrap();
            let (accepted, peer) = accept(&listener).await.unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            let fd = accepted.get_ref();
            assert!(rustix::net::sockopt::tcp_nodelay(fd).unwrap(), "TCP_NODELAY is not inherited");
            // The kernel doubles the value set, for its bookkeeping.
            let sndbuf = rustix::net::sockopt::socket_send_buffer_size(fd).unwrap();
            assert_eq!(sndbuf, 2 * SEND_BUFFER, "SO_SNDBUF is not inherited");
            let mut byte = [0u8; 1];
            let read = std::io::Read::read(&mut &*fd, &mut byte);
            assert_eq!(read.unwrap_err().kind(), io::ErrorKind::WouldBlock, "the socket blocks");
        });
    }

    /// An idle stream's memory is mostly its connection future: keep it in sight. These sizes are
    /// deterministic for one compiler; the bounds catch a change that inlines a large wait again.
    #[test]
    fn connection_futures_stay_small() {
        smol::block_on(async {
            let tracker = crate::ProgressTracker::new(crate::Config::default());
            let server = super::Server::bind("127.0.0.1:0", tracker).await.unwrap();
            let shared = &server.shared;
            let addr = server.local_addr().unwrap();
            let socket = || async_io::Async::new(std::net::TcpStream::connect(addr).unwrap()).unwrap();
            shared.open_connections.fetch_add(1, Ordering::Relaxed);
            let open = OpenGuard::new(Arc::clone(shared));
            let serve = crate::dispatch::serve(shared.clone(), socket(), addr, open);
            let serve_size = std::mem::size_of_val(&serve);
            drop(serve);
            shared.tracker.create_task("t", "").unwrap();
            let start = || {
                let (viewer, snapshot) = shared.tracker.topic("t").unwrap().subscribe();
                crate::sse::stream::Start {
                    source: viewer,
                    opening: crate::sse::stream::Opening::Task { task_id: "t".into(), snapshot: Some(snapshot) },
                    framing: crate::http::response::Framing::Chunked,
                    keep_alive: true,
                    extra_headers: Vec::new(),
                }
            };
            let guard = shared.connections.open(addr.ip()).unwrap();
            let mut conn = crate::http::conn::Conn::new(socket());
            let stream_size = std::mem::size_of_val(&crate::sse::stream::run(shared, &mut conn, start(), &guard));
            shared.open_connections.fetch_add(1, Ordering::Relaxed);
            let open = OpenGuard::new(Arc::clone(shared));
            let task = crate::dispatch::stream_task(Arc::clone(shared), conn, start(), guard, addr, open);
            let task_size = std::mem::size_of_val(&task);
            // A stream of many tasks: the same loop with another source.
            let topics: Vec<_> = (0..100)
                .map(|i| {
                    shared.tracker.create_task(&format!("m{i}"), "").unwrap();
                    shared.tracker.topic(&format!("m{i}")).unwrap()
                })
                .collect();
            let multi = crate::sse::multi::Multi::subscribe(shared.tracker.clone(), &topics, 0);
            let many = crate::sse::stream::Start {
                source: Box::new(multi),
                opening: crate::sse::stream::Opening::Tasks(Box::default()),
                framing: crate::http::response::Framing::Chunked,
                keep_alive: true,
                extra_headers: Vec::new(),
            };
            let guard = shared.connections.open(addr.ip()).unwrap();
            shared.open_connections.fetch_add(1, Ordering::Relaxed);
            let open = OpenGuard::new(Arc::clone(shared));
            let conn = crate::http::conn::Conn::new(socket());
            let many_size =
                std::mem::size_of_val(&crate::dispatch::stream_task(Arc::clone(shared), conn, many, guard, addr, open));
            eprintln!(
                "request loop {serve_size} B, stream loop {stream_size} B, stream task {task_size} B, \
                 stream task of many tasks {many_size} B"
            );
            assert!(serve_size <= 2048 && stream_size <= 1024, "{serve_size} / {stream_size}");
            // The task is the stream loop plus the connection it owns: not the loop twice.
            assert!(task_size <= 1280, "a stream task of {task_size} B");
            // Its source is boxed, its members on the heap: the same size as a stream of one task.
            assert!(many_size <= task_size + 32, "a stream task of many tasks of {many_size} B");
        });
    }
}
