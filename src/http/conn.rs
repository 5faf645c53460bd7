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
/// Most read-buffer capacity an idle connection keeps after a large body.
const KEEP_CAPACITY: usize = 16 * 1024;

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

    /// Frees the read buffer when a stream starts, keeping only bytes a client pipelined after
    /// its stream request: they are its next request, served when the stream ends (at most
    /// [`MAX_HEAD`], since a head is read at most that far).
    pub fn release_buffer(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        } else {
            self.buf.shrink_to_fit();
        }
    }

    /// Gives back a buffer a large body grew, keeping what is left in it: an idle keep-alive
    /// connection must not hold a megabyte because its last request had one.
    fn shrink_buffer(&mut self) {
        if self.buf.capacity() > KEEP_CAPACITY && self.buf.len() <= KEEP_CAPACITY {
            self.buf.shrink_to(KEEP_CAPACITY.max(self.buf.len()));
            if self.buf.is_empty() {
                self.buf = Vec::new();
            }
        }
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
                // Bytes the kernel holds for us have arrived, even if this task has not read them
                // yet: a request that came in before the shutdown is served, not dropped.
                None if shutdown.is_triggered() && self.read_ready() > 0 => {
                    started = true;
                    sleep.reset(Instant::now() + header_timeout);
                }
                None => return Ok(None),
            }
        }
    }

    /// Reads what the socket holds now, without waiting; the count of bytes read.
    fn read_ready(&mut self) -> usize {
        let mut scratch = [0u8; READ_CHUNK];
        let room = MAX_HEAD.saturating_sub(self.buf.len()).min(READ_CHUNK);
        match std::io::Read::read(&mut self.stream.get_ref(), &mut scratch[..room]) {
            Ok(n) => {
                self.buf.extend_from_slice(&scratch[..n]);
                n
            }
            Err(_) => 0,
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
            self.write_all(super::response::CONTINUE, timers, deadline).await.map_err(|_| HttpError::Closed)?;
        }
        let mut sleep = timers.sleep_until(deadline);
        let read = async {
            match request.body {
                BodyKind::Length(n) => self.read_exact_buffered(n).await,
                BodyKind::Chunked => self.read_chunked().await,
                BodyKind::None => Ok(Vec::new()),
            }
        };
        let body = future::or(read, async {
            (&mut sleep).await;
            Err(HttpError::Timeout)
        })
        .await;
        self.shrink_buffer();
        body
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
    /// Closes without losing what was written: closing a socket that still has unread input
    /// sends a reset, which destroys every answer still queued for the client (RFC 9112, 9.6),
    /// and a client may have pipelined more requests than the server will answer. So the write
    /// side is shut first (the client reads our answers, then end of stream), and input is read
    /// and dropped until the peer closes, up to [`LINGER_BYTES`] or `deadline`. Every close of a
    /// connection that may have unread input goes through here.
    pub async fn linger_close(self, timers: &Timers, deadline: Instant) {
        let _ = self.stream.get_ref().shutdown(std::net::Shutdown::Write);
        // Boxed: a rare exit whose scratch buffer must not sit in every connection's future.
        Box::pin(async {
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
        })
        .await;
    }
}

/// Most input read and dropped while lingering before a close: a whole request that was
/// answered without reading its body (a 401 before a 1 MiB body, say), and its head.
const LINGER_BYTES: usize = MAX_BODY + MAX_HEAD;

/// Drains what a fresh socket has already received, writes `answer` without waiting, and shuts
/// the write side, for connections refused before they get a task: the answer then goes out
/// before a FIN instead of being destroyed by a reset for the unread request. Input arriving
/// after the close can still reset it; `linger_close` covers that where a task can be afforded.
pub fn refuse_now(stream: &TcpStream, answer: &[u8]) {
    let mut scratch = [0u8; 2048];
    for _ in 0..4 {
        match std::io::Read::read(&mut &*stream, &mut scratch) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
    let _ = std::io::Write::write(&mut &*stream, answer);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn a_large_body_leaves_no_large_buffer_behind() {
        // An idle keep-alive connection must not keep the megabyte its last body needed; the
        // request pipelined after that body must still be there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let writer = std::thread::spawn(move || {
            let mut bytes = format!("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", MAX_BODY).into_bytes();
            bytes.resize(bytes.len() + MAX_BODY, b'a');
            bytes.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
            client.write_all(&bytes).unwrap();
            client
        });
        smol::block_on(async {
            let mut conn = Conn::new(Async::new(accepted).unwrap());
            let timers = Timers::new(Duration::from_millis(100));
            let shutdown = Shutdown::default();
            let far = Instant::now() + Duration::from_secs(60);
            let request = conn.read_head(&timers, &shutdown, far, Duration::from_secs(60)).await.unwrap().unwrap();
            let body = conn.read_body(&timers, &request, far).await.unwrap();
            assert_eq!(body.len(), MAX_BODY);
            assert!(conn.buf.capacity() <= KEEP_CAPACITY, "{} bytes kept", conn.buf.capacity());
            let next = conn.read_head(&timers, &shutdown, far, Duration::from_secs(60)).await.unwrap().unwrap();
            assert_eq!(next.path(), "/next");
        });
        drop(writer.join().unwrap());
    }
}
