//! The load tool's viewers: many streams per thread on one level-triggered epoll, one `recv` per
//! readiness.
//!
//! The tool must cost less per event than the server it measures, or the latencies it reports
//! are its own lag. So viewers are not async tasks: async-io re-arms a one-shot registration
//! before every wait (an `epoll_ctl` per event) and finds out with a failed read that a socket is
//! drained, and a task per viewer also pays a wake-up and a poll. Here each event costs the
//! `recv` that fetches it and a share of one `epoll_wait`.
//!
//! A viewer does not decode events: it scans the bytes for the publisher's marker
//! `@bench:<index>:<send time in µs>@`, which appears once in every event of an update whether
//! the server is sse-progress (inside the task JSON's `message`) or a peer such as nchan (the
//! bare message).

use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::event::epoll;

/// Microseconds since the Unix epoch, the clock both publisher and viewers read.
pub fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// The marker of update `index`, sent at `micros`.
pub fn marker(index: usize, micros: u64) -> String {
    format!("@bench:{index}:{micros}@")
}

/// What one viewer saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Delivery latency of each update received, in µs.
    pub latencies: Vec<u32>,
    /// Distinct updates received.
    pub updates: usize,
    /// Why the viewer stopped early, if it did.
    pub error: Option<String>,
    /// Whether its stream started (status 200 and a head).
    pub connected: bool,
}

/// Where and how to subscribe.
#[derive(Clone, Debug)]
pub struct Target {
    /// The server.
    pub addr: SocketAddr,
    /// The request head to send (a GET with headers, ending in a blank line).
    pub request: String,
    /// Updates each viewer waits for.
    pub updates: usize,
    /// Poll without sleeping (see `--busy-poll`).
    pub busy_poll: bool,
}

/// What the threads of one run share.
#[derive(Debug, Default)]
pub struct Progress {
    /// Viewers whose stream started.
    pub connected: AtomicUsize,
    /// Viewers done: all updates seen, or failed.
    pub finished: AtomicUsize,
    /// Set by the driver to end every viewer now.
    pub stop: AtomicBool,
}

/// Where one viewer is.
#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Head,
    Body,
    Done,
}

#[derive(Debug)]
struct Viewer {
    socket: Option<TcpStream>,
    phase: Phase,
    buf: Vec<u8>,
    seen: Seen,
    last_index: Option<usize>,
}

/// Runs `count` viewers on this thread, at most `in_flight` of them connecting at once, the
/// `k`-th from `sources[(first + k) % len]` (any port). Returns what each saw, in order.
pub fn run_share(
    target: &Target,
    sources: &[IpAddr],
    first: usize,
    count: usize,
    in_flight: usize,
    progress: &Progress,
) -> io::Result<Vec<Seen>> {
    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let mut viewers: Vec<Viewer> = (0..count)
        .map(|_| Viewer {
            socket: None,
            phase: Phase::Connecting,
            buf: Vec::new(),
            seen: Seen::default(),
            last_index: None,
        })
        .collect();
    let (mut next, mut connecting, mut done) = (0, 0, 0);
    let mut events: Vec<epoll::Event> = Vec::with_capacity(1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let tick = rustix::event::Timespec { tv_sec: 0, tv_nsec: if target.busy_poll { 0 } else { 20_000_000 } };
    while done < count && !progress.stop.load(Ordering::Relaxed) {
        while connecting < in_flight.max(1) && next < count {
            let source = (!sources.is_empty()).then(|| sources[(first + next) % sources.len()]);
            let viewer = &mut viewers[next];
            match start_connect(source, target.addr) {
                Ok(socket) => {
                    epoll::add(&epoll, &socket, epoll::EventData::new_u64(next as u64), epoll::EventFlags::OUT)?;
                    viewer.socket = Some(socket);
                    connecting += 1;
                }
                Err(e) => {
                    viewer.fail(format!("connect: {e}"));
                    done += 1;
                    progress.finished.fetch_add(1, Ordering::Relaxed);
                }
            }
            next += 1;
        }
        events.clear();
        match epoll::wait(&epoll, rustix::buffer::spare_capacity(&mut events), Some(&tick)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        for event in &events {
            let index = event.data.u64() as usize;
            let viewer = &mut viewers[index];
            let was = (viewer.phase == Phase::Connecting || viewer.phase == Phase::Head, viewer.phase == Phase::Done);
            match viewer.phase {
                Phase::Connecting => viewer.connected_socket(&epoll, index, target),
                Phase::Head | Phase::Body => viewer.readable(&mut chunk, target.updates, progress),
                Phase::Done => {}
            }
            let now = (viewer.phase == Phase::Connecting || viewer.phase == Phase::Head, viewer.phase == Phase::Done);
            if was.0 && !now.0 {
                connecting -= 1;
            }
            if !was.1 && now.1 {
                done += 1;
                progress.finished.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(viewers.into_iter().map(|v| v.seen).collect())
}

/// A non-blocking socket from `source` (any port) whose connect to `addr` is under way.
fn start_connect(source: Option<IpAddr>, addr: SocketAddr) -> io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK, None)?;
    sockopt::set_tcp_nodelay(&fd, true)?;
    if let Some(source) = source {
        rustix::net::bind(&fd, &SocketAddr::new(source, 0))?;
    }
    match rustix::net::connect(&fd, &addr) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => Ok(TcpStream::from(fd)),
        Err(e) => Err(e.into()),
    }
}

impl Viewer {
    fn fail(&mut self, why: String) {
        self.seen.error = Some(why);
        self.close();
    }

    /// Ends the viewer; closing the socket also takes it out of the epoll set.
    fn close(&mut self) {
        self.socket = None;
        self.buf = Vec::new();
        self.phase = Phase::Done;
    }

    /// The connect finished (or failed): send the request and wait for the answer.
    fn connected_socket(&mut self, epoll: &impl std::os::fd::AsFd, index: usize, target: &Target) {
        let Some(socket) = &self.socket else { return };
        let result = match socket.take_error() {
            Ok(None) => (|| {
                let sent = (&*socket).write(target.request.as_bytes())?;
                if sent < target.request.len() {
                    return Err(io::Error::other("the request did not go out whole"));
                }
                epoll::modify(epoll, socket, epoll::EventData::new_u64(index as u64), epoll::EventFlags::IN)?;
                Ok(())
            })(),
            Ok(Some(e)) | Err(e) => Err(e),
        };
        match result {
            Ok(()) => self.phase = Phase::Head,
            Err(e) => {
                self.seen.error = Some(format!("connect: {e}"));
                self.close();
            }
        }
    }

    /// One `recv`, then whatever it completed.
    fn readable(&mut self, chunk: &mut [u8], updates: usize, progress: &Progress) {
        let Some(socket) = &self.socket else { return };
        let n = match (&*socket).read(chunk) {
            Ok(0) => {
                let why = if self.phase == Phase::Head {
                    "closed before the response head"
                } else {
                    "the server closed the stream"
                };
                return self.fail(why.into());
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => return,
            Err(e) => return self.fail(format!("read: {e}")),
        };
        self.buf.extend_from_slice(&chunk[..n]);
        if self.phase == Phase::Head {
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                if self.buf.len() > 16 * 1024 {
                    self.fail("response head too long".into());
                }
                return;
            };
            if !self.buf.starts_with(b"HTTP/1.1 200") && !self.buf.starts_with(b"HTTP/1.0 200") {
                let line = self.buf.iter().position(|&b| b == b'\r').unwrap_or(self.buf.len());
                let line = String::from_utf8_lossy(&self.buf[..line]).into_owned();
                return self.fail(format!("answer: {line}"));
            }
            self.seen.connected = true;
            progress.connected.fetch_add(1, Ordering::SeqCst);
            self.buf.drain(..end + 4);
            self.phase = Phase::Body;
        }
        scan(&mut self.buf, &mut self.seen, &mut self.last_index);
        if self.seen.updates >= updates {
            self.close();
        }
    }
}

/// Takes every whole marker out of `buf`, keeping a possibly cut one at the end.
fn scan(buf: &mut Vec<u8>, seen: &mut Seen, last_index: &mut Option<usize>) {
    const OPEN: &[u8] = b"@bench:";
    let now = now_micros();
    let mut consumed = 0;
    let mut from = 0;
    while let Some(at) = find(&buf[from..], OPEN).map(|i| i + from) {
        let Some(close) = buf[at + OPEN.len()..].iter().position(|&b| b == b'@') else { break };
        let body = &buf[at + OPEN.len()..at + OPEN.len() + close];
        let text = std::str::from_utf8(body).unwrap_or("");
        if let Some((index, sent)) = text.split_once(':')
            && let (Ok(index), Ok(sent)) = (index.parse::<usize>(), sent.parse::<u64>())
            // A snapshot repeats the latest update on (re)connect: count each update once.
            && *last_index != Some(index)
        {
            *last_index = Some(index);
            seen.updates += 1;
            seen.latencies.push(now.saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
        }
        from = at + OPEN.len() + close + 1;
        consumed = from;
    }
    // Keep only a tail that may hold the start of a cut marker.
    let keep_from = if consumed > 0 { consumed } else { buf.len().saturating_sub(64) };
    buf.drain(..keep_from.min(buf.len()));
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_counted_once_even_when_cut_across_reads() {
        let mut seen = Seen::default();
        let mut last = None;
        let t = now_micros();
        let whole = format!("data: {{\"message\":\"{}\"}}\n\nid: 3\ndata: {}", marker(1, t), marker(2, t));
        let (a, b) = whole.split_at(whole.len() - 5);
        let mut buf = a.as_bytes().to_vec();
        scan(&mut buf, &mut seen, &mut last);
        assert_eq!(seen.updates, 1);
        buf.extend_from_slice(b.as_bytes());
        scan(&mut buf, &mut seen, &mut last);
        assert_eq!(seen.updates, 2);
        buf.extend_from_slice(marker(2, t).as_bytes());
        scan(&mut buf, &mut seen, &mut last);
        assert_eq!(seen.updates, 2, "a repeated update is not counted again");
    }
}
