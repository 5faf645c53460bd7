//! The `sse-progress` binary in a process of its own, for what only a process shows: signals and
//! exit codes, stderr, resident memory. A child also keeps environment variables and signal
//! handlers out of the test process, which every test shares.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use super::{HEALTH, TIMEOUT, ask, connect};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sse-progress");

/// `sse-progress serve` on a port of its own, its stderr read line by line; killed (SIGKILL, by
/// its PID) if a test leaves it running.
pub struct Binary {
    child: Child,
    pub addr: SocketAddr,
    stderr: Receiver<String>,
    /// Every stderr line read so far.
    pub seen: Vec<String>,
}

impl Binary {
    /// Starts `sse-progress serve --listen 127.0.0.1:0 --threads 2 ARGS` and returns once it
    /// has said where it listens and answered health there. The health answer matters: the
    /// binary installs its signal handlers after it prints the address, before it serves.
    pub fn serve(args: &[&str]) -> Binary {
        Self::serve_with_env(args, &[])
    }

    /// [`Binary::serve`] with extra environment variables for the child.
    pub fn serve_with_env(args: &[&str], env: &[(&str, &str)]) -> Binary {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--threads", "2"])
            .args(args)
            .envs(env.iter().copied())
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
        let reply = ask(
            &connect(binary.addr),
            &format!("GET {HEALTH} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(reply.status, 200, "health of the new server: {}", reply.text());
        binary
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for a stderr line containing `text`, and returns it.
    pub fn wait_for_line(&mut self, text: &str) -> String {
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
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Waits for the child to exit, at most `limit`; kills it and fails the test if it overruns.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                self.signal("KILL");
                let _ = self.child.wait();
                panic!("the server did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").args(["-KILL", &self.pid().to_string()]).status();
            let _ = self.child.wait();
        }
    }
}

/// `VmRSS` of a process, in bytes.
pub fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}
