//! A second SIGTERM or SIGINT during the drain ends the binary at once, saying so on stderr, with
//! the exit code of a process ended by that signal (128 + its number): an operator who signals
//! again does not wait out `--drain-secs`, and is not left with a silent kill.

use crate::support::*;

/// Signals twice, the second time once the binary says it is draining; returns the exit status
/// and the stderr line about the second signal.
fn signal_twice(signal: &str) -> (std::process::ExitStatus, String) {
    let mut binary = Binary::serve(&["--drain-secs", "30"]);
    // The drain waits for this connection, so the binary is still draining at the second signal.
    let _stuck = half_sent_head(binary.addr);
    binary.signal(signal);
    binary.wait_for_line("draining");
    binary.signal(signal);
    let status = binary.wait_exit(TIMEOUT);
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
