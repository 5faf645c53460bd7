//! The load tool's producers for the throughput mode: N keep-alive connections driven by one
//! thread on one epoll, each with one request in flight (no pipelining: a worker posting its
//! progress waits for the answer before it sends the next update).
//!
//! One thread, not one per connection: with a thread per producer the two cores of a small host
//! spend a fifth of their time switching between the tool's threads and the server's (`perf`
//! shows it as `finish_task_switch` under the server's own `send`), and the figure measures
//! the scheduler instead of the server.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rustix::event::epoll;

/// One producer connection.
struct Producer {
    /// `None` once it has sent its last request and read the answer.
    socket: Option<TcpStream>,
    buf: Vec<u8>,
    /// When the request in flight went out; `None` when the connection is done.
    sent: Option<Instant>,
}

/// Sends requests `0..total` over `connections` keep-alive connections to `addr`, each request
/// made by `request(index)` (a whole HTTP/1.1 request with a `Content-Length` body), and returns
/// the round trip of each in µs. Fails on any answer of 300 or more, a closed connection, or
/// when `limit` passes first.
pub fn run(
    addr: SocketAddr,
    connections: usize,
    total: usize,
    request: impl Fn(usize) -> Vec<u8>,
    limit: Duration,
) -> Result<Vec<u64>, String> {
    let deadline = Instant::now() + limit;
    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| format!("producers: {e}"))?;
    let mut producers = Vec::with_capacity(connections);
    let mut next = 0;
    for index in 0..connections.min(total) {
        let socket = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .and_then(|s| s.set_nodelay(true).and(s.set_nonblocking(true)).map(|()| s))
            .map_err(|e| format!("producer connect: {e}"))?;
        epoll::add(&epoll, &socket, epoll::EventData::new_u64(index as u64), epoll::EventFlags::IN)
            .map_err(|e| format!("producers: {e}"))?;
        let mut producer = Producer { socket: Some(socket), buf: Vec::with_capacity(1024), sent: None };
        producer.send(&request(next))?;
        next += 1;
        producers.push(producer);
    }
    let mut round_trips = Vec::with_capacity(total);
    let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
    let mut chunk = vec![0u8; 16 * 1024];
    let tick = rustix::event::Timespec { tv_sec: 0, tv_nsec: 50_000_000 };
    while round_trips.len() < total {
        if Instant::now() > deadline {
            return Err(format!("producers: {} of {total} answers within {limit:?}", round_trips.len()));
        }
        events.clear();
        match epoll::wait(&epoll, rustix::buffer::spare_capacity(&mut events), Some(&tick)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(format!("producers: {e}")),
        }
        for event in &events {
            let producer = &mut producers[event.data.u64() as usize];
            let (Some(sent), Some(socket)) = (producer.sent, &producer.socket) else { continue };
            match (&*socket).read(&mut chunk) {
                Ok(0) => return Err("publish: the server closed a producer connection".into()),
                Ok(n) => producer.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("publish: {e}")),
            }
            let Some((status, len)) = answer(&producer.buf)? else { continue };
            round_trips.push(sent.elapsed().as_micros() as u64);
            if status >= 300 {
                let text = String::from_utf8_lossy(&producer.buf[..len]).into_owned();
                return Err(format!("publish answered {status}: {text}"));
            }
            producer.buf.drain(..len);
            producer.sent = None;
            if next < total {
                producer.send(&request(next))?;
                next += 1;
            } else {
                // Done: closing takes it out of the epoll set, so a later close by the server
                // cannot keep a level-triggered readiness spinning.
                producer.socket = None;
            }
        }
    }
    Ok(round_trips)
}

impl Producer {
    fn send(&mut self, request: &[u8]) -> Result<(), String> {
        // One request in flight on an idle connection: an empty send buffer takes it whole.
        let Some(socket) = &self.socket else { return Err("publish: a producer connection is closed".into()) };
        match (&*socket).write(request) {
            Ok(n) if n == request.len() => {
                self.sent = Some(Instant::now());
                Ok(())
            }
            Ok(_) | Err(_) => Err("publish: a request did not go out whole".into()),
        }
    }
}

/// The status and length of the whole answer at the start of `buf`, once it is all there.
fn answer(buf: &[u8]) -> Result<Option<(u16, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(buf) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("publish: a bad answer ({e})")),
    };
    let status = response.code.unwrap_or(0);
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
        .unwrap_or(0);
    Ok((buf.len() >= head + length).then_some((status, head + length)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_whole_only_with_its_body() {
        let whole = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(answer(&whole[..whole.len() - 1]), Ok(None));
        assert_eq!(answer(whole), Ok(Some((200, whole.len()))));
        assert_eq!(answer(b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1"), Ok(Some((204, 27))));
        assert!(answer(b"\x00garbage\r\n\r\n").is_err());
    }
}
