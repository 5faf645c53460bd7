//! A second SIGTERM or SIGINT during the drain ends the binary at once, saying so on stderr, with
//! the exit code of a process ended by that signal (128 + its number): an operator who signals
//! again does not wait out `--drain-secs`, and is not left with a silent kill.
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use support::{TIMEOUT, connect};

/// `sse-progress serve` on a free port, its stderr read line by line; killed if a test leaves it.
struct Binary {
    child: Child,
    addr: SocketAddr,
    stderr: Receiver<String>,
    /// Every stderr line read so far.
    seen: Vec<String>,
}

impl Binary {
    /// Starts the binary with `args` on `127.0.0.1:0` and waits for the address it listens on.
    fn serve(args: &[&str]) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sse-progress"))
            .args(["serve", "--listen", "127.0.0.1:0", "--threads", "2"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let (lines, stderr) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut binary = Binary { child, addr: "127.0.0.1:0".parse().unwrap(), stderr, seen: Vec::new() };
        let line = binary.wait_for_line("listening on http://");
        binary.addr = line.rsplit("http://").next().unwrap().trim().parse().expect("an address");
        binary
    }

    /// Waits (bounded) for a stderr line containing `text`, and returns it.
    fn wait_for_line(&mut self, text: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("no stderr line with {text:?} within {TIMEOUT:?}: {:?}", self.seen),
            }
        }
    }

    /// Sends `signal` (`TERM`, `INT`, `KILL`) to the child, by its PID.
    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Waits for the child to exit, at most `TIMEOUT`; fails the test if it overruns.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the binary did not exit within {TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal("KILL");
            let _ = self.child.wait();
        }
    }
}

/// A connection that has sent half a request head: the drain waits for it (up to its end), so
/// the binary is still draining when the second signal comes.
fn hold_the_drain(addr: SocketAddr) -> TcpStream {
    let mut stuck = connect(addr);
    stuck.write_all(b"GET /api/brand-monitor/health HTTP/1.1\r\nHo").unwrap();
    // The stuck connection is accepted by now: a later one on the same listener was answered.
    let mut probe = connect(addr);
    probe.write_all(b"GET /api/brand-monitor/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let reply = sse_progress::client::read_reply(&mut BufReader::new(probe), false).expect("health answers");
    assert_eq!(reply.status, 200);
    stuck
}

/// Signals twice, the second time once the binary says it is draining; returns the exit status
/// and the stderr line about the second signal.
fn signal_twice(signal: &str) -> (std::process::ExitStatus, String) {
    let mut binary = Binary::serve(&["--drain-secs", "30"]);
    let _stuck = hold_the_drain(binary.addr);
    binary.signal(signal);
    binary.wait_for_line("draining");
    binary.signal(signal);
    let status = binary.wait_exit();
    // The line is written before the exit, so it is in the pipe by now.
    let line = binary.wait_for_line("second");
    (status, line)
}

#[test]
fn a_second_sigterm_during_the_drain_exits_at_once_with_143() {
    // Shows that with a drain of 30 s held open by a connection, a second SIGTERM ends the
    // process with 128 + 15 and says so (a drain that ran its course would exit 0).
    let (status, line) = signal_twice("TERM");
    assert_eq!(status.code(), Some(143), "exit status {status}");
    assert_eq!(line, "sse-progress: second SIGTERM: exiting now");
}

#[test]
fn a_second_sigint_during_the_drain_exits_at_once_with_130() {
    // Shows the same for Ctrl-C pressed twice: 128 + 2.
    let (status, line) = signal_twice("INT");
    assert_eq!(status.code(), Some(130), "exit status {status}");
    assert_eq!(line, "sse-progress: second SIGINT: exiting now");
}
