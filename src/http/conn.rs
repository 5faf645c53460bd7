//! One client socket with its read buffer: reads heads and bodies within their limits and
//! deadlines, writes answers.
//!
//! The read buffer grows only as a request needs (at most the 8 KiB head plus what a pipelining
//! client sent after it) and is released with [`Conn::release_buffer`] when a stream starts, so
//! an idle stream holds no buffer at all. Deadlines come from the shared timer wheel.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use async_io::Async;
use smol::future;
use smol::io::{AsyncReadExt, AsyncWriteExt};

use super::HttpError;
use super::chunked::{self, Status};
use super::request::{self, BodyKind, MAX_BODY, MAX_HEAD, Request};
use crate::shutdown::Shutdown;
use crate::timer_wheel::Timers;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 4096;

/// A client connection.
#[derive(Debug)]
pub struct Conn {
    stream: Async<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    /// Wraps an accepted socket.
    pub fn new(stream: Async<TcpStream>) -> Conn {
        Conn { stream, buf: Vec::new() }
    }

    /// The socket, for the stream loop.
    pub fn stream(&self) -> &Async<TcpStream> {
        &self.stream
    }

    /// Frees the read buffer (a stream reads nothing more).
    pub fn release_buffer(&mut self) {
        self.buf = Vec::new();
    }

    /// Whether bytes of a next (pipelined) request are already buffered.
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Reads the next request head. `Ok(None)`: the peer closed, or stayed idle until
    /// `idle_deadline`, before sending a byte. Once a byte arrives, the whole head must follow
    /// within `header_timeout` of `head_started` (the later of that byte and the time given).
    ///
    /// A `shutdown` while no byte of a request has arrived also ends the wait with `Ok(None)`.
    pub async fn read_head(
        &mut self,
        timers: &Timers,
        shutdown: &Shutdown,
        idle_deadline: Instant,
        header_timeout: Duration,
    ) -> Result<Option<Request>, HttpError> {
        let mut sleep = timers.sleep_until(idle_deadline);
        let mut started = !self.buf.is_empty();
        if started {
            sleep.reset(Instant::now() + header_timeout);
        }
        loop {
            if started && let Some((request, len)) = request::parse(&self.buf)? {
                self.buf.drain(..len);
                return Ok(Some(request));
            }
            let read = async { Some(read_more(&self.stream, &mut self.buf, MAX_HEAD).await) };
            let stop = async {
                if started {
                    (&mut sleep).await;
                } else {
                    future::or(&mut sleep, shutdown.wait()).await;
                }
                None
            };
            match future::or(read, stop).await {
                Some(Ok(0)) if !started => return Ok(None),
                Some(Ok(0)) => return Err(HttpError::Closed),
                Some(Ok(_)) => {
                    if !started {
                        started = true;
                        sleep.reset(Instant::now() + header_timeout);
                    }
                }
                Some(Err(_)) => return Err(HttpError::Closed),
                None if started => return Err(HttpError::Timeout),
                None => return Ok(None),
            }
        }
    }

    /// Reads the body of `request` (at most [`MAX_BODY`]), answering `100 Continue` first when
    /// asked. The whole body must arrive by `deadline`.
    pub async fn read_body(
        &mut self,
        timers: &Timers,
        request: &Request,
        deadline: Instant,
    ) -> Result<Vec<u8>, HttpError> {
        if let BodyKind::Length(n) = request.body
            && n > MAX_BODY
        {
            return Err(HttpError::BodyTooLarge);
        }
        if request.body == BodyKind::None {
            return Ok(Vec::new());
        }
        if request.expect_continue && request.http11 {
            self.write_all(b"HTTP/1.1 100 Continue\r\n\r\n", timers, deadline).await.map_err(|_| HttpError::Closed)?;
        }
        let mut sleep = timers.sleep_until(deadline);
        let read = async {
            match request.body {
                BodyKind::Length(n) => self.read_exact_buffered(n).await,
                BodyKind::Chunked => self.read_chunked().await,
                BodyKind::None => Ok(Vec::new()),
            }
        };
        future::or(read, async {
            (&mut sleep).await;
            Err(HttpError::Timeout)
        })
        .await
    }

    async fn read_exact_buffered(&mut self, n: usize) -> Result<Vec<u8>, HttpError> {
        while self.buf.len() < n {
            let cap = self.buf.len() + (n - self.buf.len()).min(64 * 1024);
            if read_more(&self.stream, &mut self.buf, cap).await.map_err(|_| HttpError::Closed)? == 0 {
                return Err(HttpError::Closed);
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Decodes `Transfer-Encoding: chunked` as [`chunked`] reads it, refusing more than
    /// [`MAX_BODY`] of data. Each element is parsed from the buffer, which is filled only while
    /// the parser needs more bytes, so a malformed line is refused as soon as its first bad byte
    /// arrives.
    async fn read_chunked(&mut self) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        loop {
            let (size, line) = loop {
                match chunked::size_line(&self.buf)? {
                    Status::Complete(done) => break done,
                    Status::Partial => self.fill(chunked::MAX_LINE).await?,
                }
            };
            let size =
                usize::try_from(size).ok().filter(|&s| s <= MAX_BODY - body.len()).ok_or(HttpError::BodyTooLarge)?;
            self.buf.drain(..line);
            if size == 0 {
                // Trailer fields are checked and ignored; the body ends at an empty line.
                loop {
                    match chunked::trailer_section(&self.buf)? {
                        Status::Complete(len) => {
                            self.buf.drain(..len);
                            return Ok(body);
                        }
                        Status::Partial => self.fill(chunked::MAX_TRAILERS).await?,
                    }
                }
            }
            let end = loop {
                if self.buf.len() > size
                    && let Status::Complete(crlf) = chunked::data_end(&self.buf[size..])?
                {
                    break size + crlf;
                }
                // Here fewer than `size + 2` bytes are buffered.
                let cap = self.buf.len() + (size + 2 - self.buf.len()).min(64 * 1024);
                self.fill(cap).await?;
            };
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..end);
        }
    }

    async fn fill(&mut self, cap: usize) -> Result<(), HttpError> {
        match read_more(&self.stream, &mut self.buf, cap).await {
            Ok(0) | Err(_) => Err(HttpError::Closed),
            Ok(_) => Ok(()),
        }
    }

    /// Writes all of `bytes`, giving up at `deadline` (a client that never reads must not hold
    /// the connection's task forever).
    ///
    /// Most writes complete at once, without a timer or an await; only a blocked write boxes
    /// the future that waits, which keeps every connection's own future small (an idle stream's
    /// memory is mostly that future).
    pub async fn write_all(&self, bytes: &[u8], timers: &Timers, deadline: Instant) -> std::io::Result<()> {
        let written = write_now(&self.stream, bytes)?;
        if written == bytes.len() {
            return Ok(());
        }
        Box::pin(self.write_blocked(&bytes[written..], timers, deadline)).await
    }

    async fn write_blocked(&self, bytes: &[u8], timers: &Timers, deadline: Instant) -> std::io::Result<()> {
        let mut stream = &self.stream;
        let mut sleep = timers.sleep_until(deadline);
        future::or(stream.write_all(bytes), async {
            (&mut sleep).await;
            Err(std::io::ErrorKind::TimedOut.into())
        })
        .await
    }
}

impl Conn {
    /// Closes after an error answer without losing it: closing a socket that still has unread
    /// input sends a reset, which can destroy the answer in flight (RFC 9112, 9.6). So the write
    /// side is shut first and input is read and dropped until the peer closes, up to
    /// `LINGER_BYTES` (256 KiB) or `deadline`.
    pub async fn linger_close(self, timers: &Timers, deadline: Instant) {
        let _ = self.stream.get_ref().shutdown(std::net::Shutdown::Write);
        let mut sleep = timers.sleep_until(deadline);
        let drain = async {
            let mut scratch = [0u8; 2048];
            let mut left = LINGER_BYTES;
            while left > 0 {
                match (&self.stream).read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        };
        future::or(drain, &mut sleep).await;
    }
}

/// Most input read and dropped while lingering before a close.
const LINGER_BYTES: usize = 256 * 1024;

/// Writes what the socket takes now, without waiting: the number of bytes written.
pub fn write_now(stream: &Async<TcpStream>, bytes: &[u8]) -> std::io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match std::io::Write::write(&mut stream.get_ref(), &bytes[written..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Reads once into the spare room of `buf`, never letting it grow past `cap` bytes.
///
/// Bytes land in a per-thread scratch buffer first and only what arrived is copied into `buf`,
/// so a connection's buffer is as large as its request, not as large as a read could be: with
/// thousands of connections arriving at once, that is the difference between a few hundred
/// bytes and 4 KiB each of short-lived memory (which fragments the heap the streams live in).
async fn read_more(stream: &Async<TcpStream>, buf: &mut Vec<u8>, cap: usize) -> std::io::Result<usize> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<[u8; READ_CHUNK]> = const { std::cell::RefCell::new([0; READ_CHUNK]) };
    }
    let room = cap.saturating_sub(buf.len()).clamp(1, READ_CHUNK);
    stream
        .read_with(|socket| {
            SCRATCH.with_borrow_mut(|scratch| {
                let n = std::io::Read::read(&mut &*socket, &mut scratch[..room])?;
                buf.extend_from_slice(&scratch[..n]);
                Ok(n)
            })
        })
        .await
}
