//! `sse-progress watch URL TASK_ID...`: tasks in the terminal, all over one stream, reconnecting
//! as the browser client does (API.md, "The browser client"), so a terminal and a page behave
//! alike in front of the same server.
//!
//! Several tasks share one multi-task stream (`?tasks=`), whose `id:` is the server's change
//! sequence: resuming with the last one seen gets exactly the tasks that changed meanwhile. One
//! task keeps the one-task route it always used, which servers without multi-task streams also
//! answer. `request.rs` builds the request, `stream.rs` follows one connection, `retry.rs` says
//! when to try again, `board.rs` holds what is known of each task and `display.rs` shows it.

mod board;
mod display;
mod request;
mod retry;
mod stream;

use sse_progress::client::Url;

use super::flags::{Flag, parse_flags};
use board::Board;
use display::Display;
use request::{MAX_TASKS, Route, valid_task_id};
use retry::{MAX_ATTEMPTS, Retry};
use stream::End;

/// `watch --help`.
pub const HELP: &str = "\
Usage: sse-progress watch URL TASK_ID... [--token TOKEN]...

Follows up to 100 tasks until each has ended: a progress bar per task (stage, percent, ETA)
redrawn in place on a terminal, one plain line per change otherwise. Several tasks share one
stream (GET /api/brand-monitor/progress?tasks=A,B,...); a single task uses its own route
(/api/brand-monitor/progress/TASK_ID), which older servers also answer.

  --token TOKEN   a subscribe token, sent percent-encoded (?token=, or ?tokens= in the order of
                  the tasks). With several tasks give one per task, in their order, as repeated
                  --token flags or one comma-separated list; an empty entry is a task without.

Reconnects like the browser client, each time resuming with Last-Event-ID: after a 429 or 503,
once its Retry-After has passed (at most 60 s, plus a random 0-20 %, at least up to 1 s);
after a 5xx, a dropped connection or 75 s without a byte, after 2 s doubling (at most 30 s,
plus up to 20 % jitter). At most 3 attempts in a row; a connection that brought a change (or
stayed open 30 s) resets the count. Other 4xx answers are final.

Exit status: 0 every task completed; 1 a task failed, was deleted, or was refused (a per-task
error on the stream such as not_found or token_invalid, or 401/403 for the whole request);
2 anything else: bad usage, 404 (no task of the list exists), another final answer, or no
connection after the attempts.
Reads no environment variables: every setting is a flag of this command line.
";

/// Runs `watch`; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let Args { url, route, tasks } = match parse(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("sse-progress watch: {e}");
            return 2;
        }
    };
    let mut board = Board::new(tasks);
    let mut display = Display::new(&board);
    let mut last_id: Option<String> = None;
    let mut retry = Retry::default();
    loop {
        let outcome = stream::follow(&url, route, &mut board, &mut display, &mut last_id);
        if outcome.useful {
            retry.reset();
        }
        match outcome.end {
            End::Done => return board.exit_code(),
            End::Fatal(why) => {
                display.notice(&why);
                return 2;
            }
            End::Retry(trouble, why) => match retry.next(trouble, fastrand::f64()) {
                Some(wait) => {
                    display.notice(&format!("{why}; reconnecting in {:.1} s", wait.as_secs_f64()));
                    std::thread::sleep(wait);
                }
                None => {
                    display.notice(&format!("{why}; giving up after {MAX_ATTEMPTS} attempts"));
                    return 2;
                }
            },
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
struct Args {
    url: Url,
    route: Route,
    /// (id, token; empty: none), without repeats.
    tasks: Vec<(String, String)>,
}

/// Reads the command line.
fn parse(args: &[String]) -> Result<Args, String> {
    // Command-line only: a publish token exported for `publish` must never go out in a URL.
    let flags = &[Flag::new("token", Some("TOKEN"), "subscribe token").repeatable()];
    let (flags, positional) = parse_flags(args, &[flags])?;
    let Some((url, ids)) = positional.split_first().filter(|(_, ids)| !ids.is_empty()) else {
        return Err(format!("a URL and at least one task id are needed\n\n{HELP}"));
    };
    let url = Url::parse(url).map_err(|e| e.to_string())?;
    if let Some(bad) = ids.iter().find(|id| !valid_task_id(id)) {
        return Err(format!("{bad:?} is not a task id (1 to 128 of A-Z a-z 0-9 _ - ., not starting with .)"));
    }
    let tokens: Vec<String> = match flags.get("token") {
        Some(list) => list.split(',').map(str::to_owned).collect(),
        None => vec![String::new(); ids.len()],
    };
    if tokens.len() != ids.len() {
        return Err(format!(
            "{} tokens for {} tasks: give one --token per task, in their order",
            tokens.len(),
            ids.len()
        ));
    }
    // The same task twice is followed once (the server refuses a list with repeats).
    let mut tasks: Vec<(String, String)> = Vec::with_capacity(ids.len());
    for (id, token) in ids.iter().zip(tokens) {
        if !tasks.iter().any(|(seen, _)| seen == id) {
            tasks.push((id.clone(), token));
        }
    }
    if tasks.len() > MAX_TASKS {
        return Err(format!("{} tasks: one stream follows at most {MAX_TASKS}", tasks.len()));
    }
    let route = if tasks.len() == 1 { Route::One } else { Route::Many };
    Ok(Args { url, route, tasks })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn tokens_pair_with_tasks_in_order_either_way() {
        let url = "http://127.0.0.1:1";
        let repeated = parse(&args(&[url, "a", "b", "--token", "x", "--token", ""])).unwrap();
        let listed = parse(&args(&[url, "a", "b", "--token=x,"])).unwrap();
        let want = vec![("a".to_owned(), "x".to_owned()), ("b".to_owned(), String::new())];
        assert_eq!((repeated.route, &repeated.tasks), (Route::Many, &want));
        assert_eq!(listed.tasks, want);
        let one = parse(&args(&[url, "a", "a", "--token", "t,t"])).unwrap();
        assert_eq!(
            (one.route, one.tasks),
            (Route::One, vec![("a".to_owned(), "t".to_owned())]),
            "a repeat is followed once"
        );
    }

    #[test]
    fn bad_usage_is_refused_before_any_connect() {
        let url = "http://127.0.0.1:1";
        for bad in [
            &[url][..],
            &[url, "a b"],
            &[url, "a/../b"],
            &[url, "a", "b", "--token", "x"],
            &["https://example.com", "a"],
            &[url, "a", "--nonsense"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
        let mut words = vec![url.to_owned()];
        words.extend(many);
        assert!(parse(&words).unwrap_err().contains("at most 100"));
    }
}
