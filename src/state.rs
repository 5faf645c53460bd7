//! What every connection of a server shares, and the guards that keep its counts.
//!
//! Routes, streams and the request loop are handed an `Arc<Shared>`; they import this file,
//! never the accept loop (`server.rs`), so no module imports one that imports it back.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use smol::Executor;

use crate::clients::OpenPerClient;
use crate::config::Config;
use crate::connections::Connections;
use crate::hosts::AllowedHosts;
use crate::http::conn::{Conn, refuse_now};
use crate::rate_limit::ConnectRate;
use crate::shutdown::Shutdown;
use crate::timer_wheel::Timers;
use crate::tracker::ProgressTracker;

/// What every connection of a server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The tasks.
    pub tracker: ProgressTracker,
    /// The settings (a copy of the tracker's).
    pub config: Config,
    /// The one timer wheel.
    pub timers: Timers,
    /// The connection manager.
    pub connections: Arc<Connections>,
    /// Where streams run, apart from requests: see `Server::run_until`. Only a weak handle, set
    /// while the server runs: tasks hold `Arc<Shared>`, so a strong one here would keep every
    /// stream alive after the server returns.
    fanout: Mutex<Weak<Executor<'static>>>,
    /// When the server started.
    pub started: Instant,
    /// Set when the server starts draining.
    pub shutdown: Shutdown,
    /// New connections per client address.
    pub connect_rate: ConnectRate,
    /// Connections open now (streams and the rest).
    pub open_connections: AtomicUsize,
    /// Open connections per client, capped by `max_connections_per_client`.
    pub open_per_client: OpenPerClient,
    /// The `Host`s answered.
    pub hosts: AllowedHosts,
    /// Refused connections lingering now (see `Shared::refuse`).
    refusing: AtomicUsize,
    /// Bytes of request bodies being read now, at most [`BODIES_IN_FLIGHT`].
    bodies: AtomicUsize,
    /// Who waits for the last connection to close (the drain of `Server::run_until`).
    drain_waiter: Mutex<Option<Waker>>,
}

/// Counts a connection as open while it lives (it moves with the connection to the fan-out
/// executor when the connection becomes a stream), and against its client's cap once charged.
#[derive(Debug)]
pub(crate) struct OpenGuard {
    shared: Arc<Shared>,
    client: Option<IpAddr>,
}

impl OpenGuard {
    /// Counts this connection against `client`'s cap; false when the client is at its cap.
    pub(crate) fn charge(&mut self, client: IpAddr) -> bool {
        debug_assert!(self.client.is_none(), "charged once");
        let charged = self.shared.open_per_client.acquire(client);
        if charged {
            self.client = Some(client);
        }
        charged
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if let Some(client) = self.client {
            self.shared.open_per_client.release(client);
        }
        if self.shared.open_connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            let waiter = self.shared.drain_waiter.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(waker) = waiter {
                waker.wake();
            }
        }
    }
}

impl Shared {
    /// The state of a server of `tracker` listening on `addr`, with `config` (validated).
    pub(crate) fn new(tracker: ProgressTracker, config: Config, addr: SocketAddr) -> Shared {
        Shared {
            open_per_client: OpenPerClient::new(config.max_connections_per_client),
            hosts: AllowedHosts::new(&config.allowed_hosts, addr.ip()),
            refusing: AtomicUsize::new(0),
            bodies: AtomicUsize::new(0),
            timers: Timers::new(config.timer_tick),
            connections: Arc::new(Connections::new(
                config.unhealthy_after,
                config.stale_after,
                config.max_streams_per_client,
            )),
            fanout: Mutex::new(Weak::new()),
            started: Instant::now(),
            shutdown: Shutdown::default(),
            connect_rate: ConnectRate::new(config.connect_rate_per_client),
            open_connections: AtomicUsize::new(0),
            drain_waiter: Mutex::new(None),
            config,
            tracker,
        }
    }

    /// Completes when no connection is open (woken by the last one's guard).
    pub(crate) async fn drained(&self) {
        std::future::poll_fn(|cx| {
            if self.open_connections.load(Ordering::Acquire) == 0 {
                return Poll::Ready(());
            }
            *self.drain_waiter.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            // Checked again after registering: a last close in between must not be missed.
            if self.open_connections.load(Ordering::Acquire) == 0 { Poll::Ready(()) } else { Poll::Pending }
        })
        .await;
    }

    /// Makes `fanout` the executor of new streams (weakly: see the field).
    pub(crate) fn set_fanout(&self, fanout: &Arc<Executor<'static>>) {
        *self.fanout.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(fanout);
    }
}

/// Most bytes of request bodies read at once, over all connections. A body may be 1 MiB, and
/// without a bound 10,000 connections that each send most of one and stall would hold 10 GB:
/// memory would grow with what clients send. Past it a body is refused (503) unread.
pub(crate) const BODIES_IN_FLIGHT: usize = 64 << 20;

/// Room for one body among [`BODIES_IN_FLIGHT`]; given back when dropped.
#[derive(Debug)]
pub(crate) struct BodyRoom<'a> {
    shared: &'a Shared,
    bytes: usize,
}

impl Shared {
    /// Reserves `bytes` for a body about to be read; `None` when the bodies in flight would pass
    /// [`BODIES_IN_FLIGHT`].
    pub(crate) fn body_room(&self, bytes: usize) -> Option<BodyRoom<'_>> {
        let before = self.bodies.fetch_add(bytes, Ordering::AcqRel);
        if before + bytes > BODIES_IN_FLIGHT {
            self.bodies.fetch_sub(bytes, Ordering::AcqRel);
            return None;
        }
        Some(BodyRoom { shared: self, bytes })
    }
}

impl Drop for BodyRoom<'_> {
    fn drop(&mut self) {
        self.shared.bodies.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl OpenGuard {
    /// Counts a connection the caller has already added to `open_connections`.
    pub(crate) fn new(shared: Arc<Shared>) -> OpenGuard {
        OpenGuard { shared, client: None }
    }
}

impl Shared {
    /// Runs a stream on the stream executor; a stream started after the server stopped is
    /// dropped, which closes its connection.
    pub(crate) fn spawn_stream(&self, stream: impl Future<Output = ()> + Send + 'static) {
        let fanout = self.fanout.lock().unwrap_or_else(|e| e.into_inner()).upgrade();
        if let Some(fanout) = fanout {
            fanout.spawn(stream).detach();
        }
    }
}

/// Most refused connections lingering at once (see [`Shared::refuse`]).
const REFUSALS_LINGERING: usize = 32;

/// How long a refused connection lingers.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// A place among the refused connections that may linger; given back when dropped.
struct Lingering(Arc<Shared>);

impl Lingering {
    fn take(shared: &Arc<Shared>) -> Option<Lingering> {
        if shared.refusing.fetch_add(1, Ordering::Relaxed) >= REFUSALS_LINGERING {
            shared.refusing.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Lingering(Arc::clone(shared)))
    }

    /// Writes `answer` and closes gracefully (see `Conn::linger_close`), for a short while.
    async fn close(self, conn: Conn, answer: &[u8]) {
        refuse_now(conn.stream().get_ref(), answer);
        conn.linger_close(&self.0.timers, Instant::now() + REFUSAL_LINGER).await;
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        self.0.refusing.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    /// Answers a connection refused before its first request (limits, rate) and closes it.
    ///
    /// A refused client may come back at once and be refused again, so refusals must not hold
    /// sockets without bound: up to [`REFUSALS_LINGERING`] of them linger for a second (so the
    /// answer is not reset away by a request still arriving); past that, the answer is written
    /// after draining what has arrived and the socket is closed at once.
    pub(crate) async fn refuse(self: &Arc<Self>, conn: Conn, response: &crate::http::response::Response) {
        use crate::http::response::{Connection, Part};
        let mut answer = Vec::with_capacity(256);
        response.write_to(&mut answer, Part::Whole, Connection::Close);
        match Lingering::take(self) {
            Some(lingering) => lingering.close(conn, &answer).await,
            None => refuse_now(conn.stream().get_ref(), &answer),
        }
    }
}
