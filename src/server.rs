//! Accepts connections and runs them on the server's own executor threads.
//!
//! `Server::run_until(shutdown)` takes shutdown as an argument, as mini-redis does: the accept
//! loop, the timer-wheel driver and the retention sweep stop when `shutdown` completes.
//! The listening socket is made with rustix so its backlog can be 4,096: std's fixed 128 drops
//! handshakes in a reconnect storm, and each drop costs the client a 1 s SYN retry.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Async;
use smol::Executor;
use smol::future::{self, FutureExt as _};

use crate::config::Config;
use crate::connections::Connections;
use crate::debug;
use crate::log::Ns;
use crate::timer_wheel::Timers;
use crate::tracker::ProgressTracker;

/// Listen backlog (the kernel caps it at `net.core.somaxconn`, 4,096 by default).
pub const BACKLOG: i32 = 4096;

/// What every connection of a server shares.
#[derive(Debug)]
pub struct Shared {
    /// The tasks.
    pub tracker: ProgressTracker,
    /// The settings (a copy of the tracker's).
    pub config: Config,
    /// The one timer wheel.
    pub timers: Timers,
    /// The connection manager.
    pub connections: Connections,
    /// When the server started.
    pub started: Instant,
}

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    listener: Async<TcpListener>,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds `addr` (with a backlog of [`BACKLOG`]) to serve `tracker`'s tasks.
    pub async fn bind(addr: impl ToSocketAddrs, tracker: ProgressTracker) -> io::Result<Server> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to nothing"))?;
        let listener = Async::new(listen(addr)?)?;
        let config = tracker.config().clone();
        let shared = Shared {
            timers: Timers::new(config.timer_tick),
            connections: Connections::new(config.unhealthy_after, config.stale_after),
            started: Instant::now(),
            config,
            tracker,
        };
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

    /// Serves until `shutdown` completes, on `config.threads` threads (this one included).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let executor = Arc::new(Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let helpers: Vec<_> = (1..self.shared.config.threads.max(1))
            .map(|i| {
                let executor = Arc::clone(&executor);
                let stopped = stopped.clone();
                std::thread::Builder::new()
                    .name(format!("sse-progress-{i}"))
                    .spawn(move || smol::block_on(executor.run(stopped.recv())))
            })
            .collect::<io::Result<_>>()?;
        let shared = &self.shared;
        let housekeeping = async {
            future::zip(shared.timers.run(), sweep_retention(shared)).await;
        };
        let accept = accept_loop(&self.listener, shared, &executor);
        let result = executor.run(future::or(future::or(accept, async { housekeeping.await; Ok(()) }), async {
            shutdown.await;
            Ok(())
        }));
        let result = result.await;
        debug!(Ns::Server, "stopping");
        drop(stop);
        for helper in helpers {
            let _ = helper.join();
        }
        result
    }
}

async fn accept_loop(listener: &Async<TcpListener>, shared: &Arc<Shared>, executor: &Arc<Executor<'static>>) -> io::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors or similar: back off instead of spinning.
                debug!(Ns::Server, "accept failed: {e}");
                shared.timers.sleep_until(Instant::now() + Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.get_ref().set_nodelay(true);
        let shared = Arc::clone(shared);
        executor
            .spawn(async move {
                // A panic must end this connection only, never the executor thread under it.
                if AssertUnwindSafe(crate::dispatch::serve(shared, stream, peer)).catch_unwind().await.is_err() {
                    debug!(Ns::Conn, "{peer}: a connection task panicked");
                }
            })
            .detach();
    }
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
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, BACKLOG)?;
    Ok(TcpListener::from(fd))
}

/// Connects to a server (for clients in this crate): a plain std socket with `TCP_NODELAY`.
pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}
