//! One connection's life: read a request, route it, answer, and repeat while keep-alive holds.
//!
//! Pipelined requests are answered in order because each is read, handled and answered before
//! the next head is parsed from the buffer. A request whose body is not read (an early error, or
//! a body on a stream or HEAD request) ends the connection after its answer, since the unread
//! body would be taken for a next request. Every way out of a connection goes through
//! `Conn::linger_close`, so no answer already written is lost to a reset.

use std::future::Future;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use async_io::Async;
use smol::future;

use crate::auth::bearer_matches;
use crate::clients::client_key;
use crate::connections::StreamGuard;
use crate::http::HttpError;
use crate::http::conn::{Conn, write_now};
use crate::http::request::{BodyKind, MAX_BODY, Method, Request};
use crate::http::response::{Body, Connection, Part, Piece, Pieces, Response};
use crate::http::router::{Route, route};
use crate::log::Ns;
use crate::log::debug;
use crate::routes::progress_many::{self, Started};
use crate::routes::{client_js, cors, health, index, progress, tasks};
use crate::sse::source::Source;
use crate::sse::stream::{self, End, Start};
use crate::sse::topic::{self, HeldWakes, Viewer};
use crate::state::{OpenGuard, Shared};

/// Serves one accepted connection until it closes (or until it becomes a stream, which moves to
/// the fan-out executor with the connection).
pub async fn serve(shared: Arc<Shared>, stream: Async<TcpStream>, peer: SocketAddr, mut open: OpenGuard) {
    let conn = Conn::new(stream);
    let behind_proxy = shared.config.trust_proxy == Some(peer.ip());
    // A trusted proxy carries many clients over its connections: they are charged per request
    // (below), never the proxy's address.
    // The rate first, so a client refused for its open connections still spends its tokens.
    if !behind_proxy {
        let client = client_key(peer.ip());
        if let Err(wait) = shared.connect_rate.admit_connection(client, Instant::now()) {
            Box::pin(refuse(&shared, conn, Refusal::Rate(wait))).await;
            return;
        }
        if !open.charge(client) {
            Box::pin(refuse(&shared, conn, Refusal::Connections)).await;
            return;
        }
    }
    serve_requests(shared, conn, peer, open, Next::First).await;
}

/// Requests served one after another from bytes already buffered before the loop yields, so a
/// client pipelining hundreds of requests shares its thread with every other connection.
const REQUEST_BUDGET: u32 = 16;

/// Which request the loop waits for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// The connection's first: it must come within the header timeout of the accept.
    First,
    /// One after an answer on a kept-alive connection: it may wait for the idle timeout.
    KeptAlive,
}

/// The request loop. The first request must arrive within the header timeout of the accept;
/// later ones may wait for the idle timeout before their first byte.
///
/// Boxed with its type spelled out: a stream that finishes cleanly comes back here from the
/// fan-out executor, and that cycle needs a named `Send` future.
fn serve_requests(
    shared: Arc<Shared>,
    mut conn: Conn,
    peer: SocketAddr,
    open: OpenGuard,
    mut next: Next,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let config = &shared.config;
        let behind_proxy = config.trust_proxy == Some(peer.ip());
        let mut idle_deadline = Instant::now()
            + match next {
                Next::First => config.header_timeout,
                Next::KeptAlive => config.idle_timeout,
            };
        let mut budget = REQUEST_BUDGET;
        loop {
            budget -= 1;
            if budget == 0 {
                budget = REQUEST_BUDGET;
                future::yield_now().await;
            }
            // Boxed, like every rare or request-sized wait here: an idle stream's memory is mostly this
            // function's future, which would otherwise be as large as its largest wait.
            let head = conn.read_head(&shared.timers, &shared.shutdown, idle_deadline, config.header_timeout);
            let request = match Box::pin(head).await {
                Ok(Some(request)) => request,
                Ok(None) if next == Next::First && !shared.shutdown.is_triggered() => {
                    Box::pin(answer_error(&shared, conn, HttpError::Timeout)).await;
                    return;
                }
                Ok(None) => return Box::pin(close(&shared, conn)).await,
                Err(e) => {
                    debug!(Ns::Http, "{peer} bad request: {e:?}");
                    Box::pin(answer_error(&shared, conn, e)).await;
                    return;
                }
            };
            let client =
                client_key(if behind_proxy { forwarded_client(&request).unwrap_or(peer.ip()) } else { peer.ip() });
            if behind_proxy && let Err(wait) = shared.connect_rate.admit_connection(client, Instant::now()) {
                Box::pin(refuse(&shared, conn, Refusal::Rate(wait))).await;
                return;
            }
            next = Next::KeptAlive;
            // The request is handled (and dropped) in a boxed future of its own; only a stream runs
            // here, so an idle stream holds neither the request nor the request-sized futures.
            match Box::pin(handle(&shared, &mut conn, request, client)).await {
                // Even when the shutdown started meanwhile: an answer said keep-alive, so a
                // request that has already arrived is served (`read_head` ends the wait at once
                // when none has).
                Flow::Next => {}
                Flow::Close => return Box::pin(close(&shared, conn)).await,
                Flow::Stream(streaming, guard) => {
                    let shared = Arc::clone(&shared);
                    match streaming {
                        Streaming::One(start) => {
                            shared.spawn_stream(stream_task(shared.clone(), conn, start, guard, peer, open))
                        }
                        Streaming::Many(started) => match *started {
                            Started::Tasks(start) => {
                                shared.spawn_stream(stream_task(shared.clone(), conn, start, guard, peer, open))
                            }
                            Started::All(start) => {
                                shared.spawn_stream(stream_task(shared.clone(), conn, start, guard, peer, open))
                            }
                        },
                    }
                    return;
                }
            }
            idle_deadline = Instant::now() + config.idle_timeout;
        }
    })
}

/// A stream, as a task of its own on the fan-out executor; if it finishes cleanly on a kept-alive
/// connection, the connection goes on serving requests there. Its future is most of an idle
/// stream's memory (`server::tests::connection_futures_stay_small` keeps it in sight), so nothing
/// wraps it in another async fn, which would store it twice.
pub(crate) async fn stream_task<S: Source + 'static>(
    shared: Arc<Shared>,
    mut conn: Conn,
    start: Start<S>,
    guard: StreamGuard,
    peer: SocketAddr,
    open: OpenGuard,
) {
    let keep_alive = start.keep_alive;
    let end = stream::run(&shared, &mut conn, start, &guard).await;
    drop(guard);
    if end == End::Finished && keep_alive && !shared.shutdown.is_triggered() {
        serve_requests(shared, conn, peer, open, Next::KeptAlive).await;
    } else {
        Box::pin(close(&shared, conn)).await;
    }
}

/// The client's address as the trusted proxy saw it: the last entry of `X-Forwarded-For`
/// (entries before it were sent by the client and prove nothing).
fn forwarded_client(request: &Request) -> Option<IpAddr> {
    request.forwarded_for()?.rsplit(',').next()?.trim().parse().ok()
}

/// Why a connection is refused before its first request is read.
enum Refusal {
    /// Its client opens connections faster than the connect rate; a token is free after this.
    Rate(std::time::Duration),
    /// Its client has `max_connections_per_client` open already.
    Connections,
}

async fn refuse(shared: &Arc<Shared>, conn: Conn, why: Refusal) {
    let response = match why {
        Refusal::Rate(wait) => {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            Response::error(429, "too_many_connections", "This client opens connections too fast; slow down.")
                .header("Retry-After", seconds.to_string())
        }
        Refusal::Connections => {
            Response::error(429, "too_many_connections", "This client has too many open connections.")
                .header("Retry-After", CONNECTIONS_RETRY_AFTER)
        }
    };
    shared.refuse(conn, &response).await;
}

/// `Retry-After` of a refusal for too many open connections: long enough for some to close.
const CONNECTIONS_RETRY_AFTER: &str = "5";

/// Answers a request that could not be read, then closes without losing the answer.
async fn answer_error(shared: &Shared, conn: Conn, e: HttpError) {
    if let Some(response) = e.response() {
        write(shared, &conn, &response, Part::Whole, Connection::Close).await;
    }
    close(shared, conn).await;
}

/// Closes the connection gracefully (see `Conn::linger_close`).
async fn close(shared: &Shared, conn: Conn) {
    let deadline = Instant::now() + if shared.shutdown.is_triggered() { LINGER_DRAINING } else { LINGER };
    conn.linger_close(&shared.timers, deadline).await;
}

/// How long a closing connection keeps reading so its last answer is not reset away.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
/// The same while the server drains: shorter, so lingering does not hold the exit back.
const LINGER_DRAINING: std::time::Duration = std::time::Duration::from_millis(500);

/// A stream about to start, by its source.
enum Streaming {
    /// One task.
    One(Start<Viewer>),
    /// Many tasks, or all (boxed: larger, and rarer).
    Many(Box<Started>),
}

/// What the connection does after a request.
enum Flow {
    /// Run this stream.
    Stream(Streaming, StreamGuard),
    /// Read the next request.
    Next,
    /// Close (gracefully: see `Conn::linger_close`).
    Close,
}

/// Handles one request and says what the connection does next.
async fn handle(shared: &Shared, conn: &mut Conn, request: Request, client: IpAddr) -> Flow {
    let part = if request.method == Method::Head { Part::HeadOnly } else { Part::Whole };
    let mut body_read = false;
    let mut held: Option<HeldWakes> = None;
    let route = route(request.path());
    // CORS headers go on every answer of the stream route, errors included, so a page on another
    // origin can read why it was refused.
    let cors_headers = match route {
        Some(Route::Progress(_) | Route::ProgressMany | Route::ClientJs) => {
            cors::allow_origin(&shared.config, request.origin())
        }
        _ => None,
    };
    let response = match route {
        // Health and metrics are for probes and scrapers, which name the server as they please.
        Some(route) if !matches!(route, Route::Health | Route::Metrics) && !shared.hosts.allows(request.host()) => {
            Response::error(403, "host_not_allowed", "This server does not answer for this host.")
        }
        None => no_route(),
        Some(route) if request.method == Method::Options => {
            let response = Response::empty(204).header("Allow", route.allow());
            match &cors_headers {
                Some(_) => cors::preflight(response),
                None => response,
            }
        }
        Some(route) if !route.allows(request.method) => {
            Response::error(405, "method_not_allowed", "This route does not take this method.")
                .header("Allow", route.allow())
        }
        // A body here would be read as the next request once the stream ends: refuse it unread,
        // and close.
        Some(Route::Progress(_) | Route::ProgressMany) if request.body != BodyKind::None => {
            Response::error(400, "bad_request", "A stream or status request must not have a body.")
        }
        Some(Route::Progress(id)) if request.method == Method::Get => {
            match progress::start(shared, &request, id, client, cors_headers.clone().unwrap_or_default()) {
                Ok((start, guard)) => return Flow::Stream(Streaming::One(start), guard),
                Err(response) => response,
            }
        }
        Some(Route::Progress(id)) => progress::head(shared, &request, id),
        Some(Route::ProgressMany) => {
            match progress_many::start(shared, &request, client, cors_headers.clone().unwrap_or_default()) {
                Ok((started, guard)) => return Flow::Stream(Streaming::Many(Box::new(started)), guard),
                Err(response) => response,
            }
        }
        Some(Route::ClientJs) => client_js::module(),
        Some(Route::Index) => index::page(),
        Some(Route::Health) => health::health(shared),
        Some(Route::Metrics) => health::metrics(shared),
        Some(route) => {
            if let Some(token) = &shared.config.publish_token
                && !bearer_matches(request.authorization(), token)
            {
                let response =
                    Response::error(401, "unauthorized", "This call needs `Authorization: Bearer <publish token>`.")
                        .header("WWW-Authenticate", "Bearer");
                // The body is not read: it would be taken for the next request.
                let connection = if request.keep_alive && request.body == BodyKind::None {
                    Connection::KeepAlive
                } else {
                    Connection::Close
                };
                return write(shared, conn, &response, part, connection).await;
            }
            // A chunked body's size is known only at its end: it takes room for the largest.
            let room = match request.body {
                BodyKind::None => 0,
                BodyKind::Length(n) => n.min(MAX_BODY),
                BodyKind::Chunked => MAX_BODY,
            };
            let Some(_room) = shared.body_room(room) else {
                let response = Response::error(503, "server_busy", "The server is reading many bodies; retry shortly.")
                    .header("Retry-After", "1");
                // Unread, so the connection closes after the answer.
                return write(shared, conn, &response, part, Connection::Close).await;
            };
            let deadline = Instant::now() + shared.config.idle_timeout;
            let body = match Box::pin(conn.read_body(&shared.timers, &request, deadline)).await {
                Ok(body) => {
                    body_read = true;
                    body
                }
                Err(e) => {
                    if let Some(response) = e.response() {
                        write(shared, conn, &response, Part::Whole, Connection::Close).await;
                    }
                    return Flow::Close;
                }
            };
            let ((response, ticket), wakes) = topic::holding_wakes(|| producer(shared, &request, &body, route));
            held = Some(wakes);
            // A change held until the journal has it on disk is answered after that, awaited
            // (never blocking this thread on the `fdatasync`).
            match ticket {
                Some(ticket) if !ticket.settled().await => Response::from(&crate::tracker::storage_unavailable()),
                _ => response,
            }
        }
    };
    let response = match cors_headers {
        Some(headers) => cors::apply(response, headers),
        None => response,
    };
    // A body nobody read would be parsed as the next request.
    let connection =
        if request.keep_alive && (body_read || request.body == BodyKind::None) && !shared.shutdown.is_triggered() {
            Connection::KeepAlive
        } else {
            Connection::Close
        };
    debug!(Ns::Http, "{:?} {} {}", request.method, request.path(), response.status);
    write_waking(shared, conn, &response, part, connection, held).await
}

/// The answer to a path no route matches.
fn no_route() -> Response {
    Response::error(404, "not_found", "No route matches this path.")
}

fn producer(shared: &Shared, request: &Request, body: &[u8], route: Route<'_>) -> tasks::Produced {
    match route {
        Route::Tasks if request.method == Method::Post => tasks::create(shared, request, body),
        Route::Tasks => (tasks::list(shared), None),
        Route::Task(id) => tasks::task(shared, request, body, id),
        Route::Complete(id) => tasks::complete(shared, request, body, id),
        Route::Fail(id) => tasks::fail(shared, request, body, id),
        _ => (no_route(), None),
    }
}

/// Writes an answer; [`Flow::Next`] when it went out whole and the connection goes on.
async fn write(shared: &Shared, conn: &Conn, response: &Response, part: Part, connection: Connection) -> Flow {
    write_waking(shared, conn, response, part, connection, None).await
}

/// Writes an answer, then wakes the viewers `held` back while it was made: right after the first
/// attempt at the write, so the producer's answer is on its way before the fan-out starts, and a
/// producer that does not read its answers never holds the fan-out back.
async fn write_waking(
    shared: &Shared,
    conn: &Conn,
    response: &Response,
    part: Part,
    connection: Connection,
    held: Option<HeldWakes>,
) -> Flow {
    let bytes_len = match &response.body {
        Body::Bytes(bytes) if part == Part::Whole => bytes.len(),
        _ => 0,
    };
    let mut out = Vec::with_capacity(256 + bytes_len);
    response.write_to(&mut out, part, connection);
    let written = write_now(conn.stream(), &out);
    drop(held);
    let sent = match written {
        Ok(n) if n == out.len() => true,
        Ok(n) => conn.write_all(&out[n..], &shared.timers, Instant::now() + shared.config.idle_timeout).await.is_ok(),
        Err(_) => false,
    };
    let sent = match &response.body {
        Body::Pieces(pieces) if sent && part == Part::Whole => {
            drop(out);
            Box::pin(write_pieces(shared, conn, pieces.as_ref())).await
        }
        _ => sent,
    };
    if sent && connection == Connection::KeepAlive { Flow::Next } else { Flow::Close }
}

/// Bytes of a body written before the connection yields its thread (see [`REQUEST_BUDGET`]).
const BYTES_BUDGET: usize = 1 << 20;
/// Small pieces are gathered up to this many bytes before a write; lent pieces over it are
/// written from where they are.
const GATHER: usize = 16 * 1024;

/// Writes a body of pieces as the socket takes them, gathering small ones into one write; each
/// write must make progress within the idle timeout. Yields every [`BYTES_BUDGET`] bytes: a
/// list of large results is a lot of copying into the kernel, and other connections share the
/// thread.
async fn write_pieces(shared: &Shared, conn: &Conn, pieces: &dyn Pieces) -> bool {
    let mut gathered = Vec::with_capacity(GATHER);
    let mut since_yield = 0;
    let mut index = 0;
    loop {
        let piece = pieces.piece(index, &mut gathered);
        index += 1;
        let lent = match piece {
            Some(Piece::Built) if gathered.len() < GATHER => continue,
            Some(Piece::Lent(bytes)) if bytes.len() < GATHER => {
                gathered.extend_from_slice(bytes);
                continue;
            }
            Some(Piece::Built) => None,
            Some(Piece::Lent(bytes)) => Some(bytes),
            None => None,
        };
        for bytes in [&gathered[..], lent.unwrap_or_default()] {
            if bytes.is_empty() {
                continue;
            }
            let deadline = Instant::now() + shared.config.idle_timeout;
            if conn.write_all(bytes, &shared.timers, deadline).await.is_err() {
                return false;
            }
            since_yield += bytes.len();
        }
        gathered.clear();
        if piece.is_none() {
            return true;
        }
        if since_yield >= BYTES_BUDGET {
            since_yield = 0;
            future::yield_now().await;
        }
    }
}
