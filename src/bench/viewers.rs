//! The load tool's viewers: many streams in one process, each counting the updates it receives
//! and how long each took from the publisher's clock to its socket.
//!
//! A viewer does not decode events: it scans the bytes for the publisher's marker
//! `@bench:<index>:<send time in µs>@`, which appears once in every event of an update whether
//! the server is sse-progress (inside the task JSON's `message`) or a peer such as nchan (the
//! bare message). That keeps the tool cheap enough that it is not what is being measured.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_io::Async;
use smol::io::{AsyncReadExt, AsyncWriteExt};

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
}

/// Opens a socket from `source` (any port) to `addr`.
async fn connect_from(source: Option<IpAddr>, addr: SocketAddr) -> io::Result<Async<TcpStream>> {
    let Some(source) = source else {
        return Async::<TcpStream>::connect(addr).await;
    };
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK, None)?;
    rustix::net::bind(&fd, &SocketAddr::new(source, 0))?;
    match rustix::net::connect(&fd, &addr) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let stream = Async::new(TcpStream::from(fd))?;
    stream.writable().await?;
    if let Some(e) = stream.get_ref().take_error()? {
        return Err(e);
    }
    let _ = sockopt::set_tcp_nodelay(stream.get_ref(), true);
    Ok(stream)
}

/// One viewer: connects (holding a `gate` permit while it does), counts itself in `connected`,
/// then reads until it has `updates` updates or `stop` closes.
pub async fn run(
    target: &Target,
    source: Option<IpAddr>,
    gate: &smol::lock::Semaphore,
    connected: &AtomicUsize,
    updates: usize,
    stop: smol::channel::Receiver<()>,
) -> Seen {
    let mut seen = Seen::default();
    let permit = gate.acquire().await;
    let stream = match connect_from(source, target.addr).await {
        Ok(stream) => stream,
        Err(e) => {
            seen.error = Some(format!("connect: {e}"));
            return seen;
        }
    };
    let mut stream = stream;
    if let Err(e) = stream.write_all(target.request.as_bytes()).await {
        seen.error = Some(format!("request: {e}"));
        return seen;
    }
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    // The head: wait for its end, check the status.
    let body_start = loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                seen.error = Some("closed before the response head".into());
                return seen;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() > 16 * 1024 {
            seen.error = Some("response head too long".into());
            return seen;
        }
    };
    if !buf.starts_with(b"HTTP/1.1 200") && !buf.starts_with(b"HTTP/1.0 200") {
        let line =
            String::from_utf8_lossy(&buf[..buf.iter().position(|&b| b == b'\r').unwrap_or(buf.len())]).into_owned();
        seen.error = Some(format!("answer: {line}"));
        return seen;
    }
    seen.connected = true;
    connected.fetch_add(1, Ordering::SeqCst);
    drop(permit);
    buf.drain(..body_start);
    let mut last_index: Option<usize> = None;
    loop {
        scan(&mut buf, &mut seen, &mut last_index);
        if seen.updates >= updates {
            return seen;
        }
        let read = async { Some(stream.read(&mut chunk).await) };
        let stopped = async {
            let _ = stop.recv().await;
            None
        };
        match smol::future::or(read, stopped).await {
            Some(Ok(0)) => {
                seen.error = Some("the server closed the stream".into());
                return seen;
            }
            Some(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Some(Err(e)) => {
                seen.error = Some(format!("read: {e}"));
                return seen;
            }
            None => return seen,
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
