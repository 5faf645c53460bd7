//! The `sse-progress` command line: `serve`, `demo`, `publish`, `watch`, `bench`. This file only
//! dispatches; each command lives in a file of its own, and the flags' parsing in `flags.rs`.

mod bench;
mod demo;
mod flags;
mod publish;
mod serve;
mod watch;

use flags::usage_of;

const TOP_HELP: &str = "\
sse-progress: live progress of long-running tasks over Server-Sent Events.

Usage: sse-progress <command> [options]

Commands:
  serve     run the server (see `sse-progress serve --help`)
  demo      run the server with simulated brand-analysis tasks, and print where to watch them
  publish   create, update, complete, fail, get, list or delete tasks from a shell
  watch     follow tasks in the terminal, a progress bar each, reconnecting with backoff
  bench     load: open many streams, publish, report memory per stream and delivery latency
  help      this text

Stream a task:   curl -N http://127.0.0.1:8080/api/brand-monitor/progress/TASK_ID
";

/// Runs the command line; returns the process exit code.
pub fn main(args: Vec<String>) -> i32 {
    let Some(command) = args.first().map(String::as_str) else {
        eprint!("{TOP_HELP}");
        return 2;
    };
    let rest = &args[1..];
    let wants_help = rest.iter().any(|a| a == "--help" || a == "-h");
    let result = match command {
        "help" | "--help" | "-h" => {
            print!("{TOP_HELP}");
            Ok(())
        }
        "serve" if wants_help => {
            print!("{}", usage_of("serve", "[options]", &[serve::SERVE_FLAGS]));
            Ok(())
        }
        "demo" if wants_help => {
            print!("{}", usage_of("demo", "[options]", &[serve::SERVE_FLAGS, demo::DEMO_FLAGS]));
            Ok(())
        }
        "publish" if wants_help => {
            print!("{}", publish::HELP);
            Ok(())
        }
        "watch" if wants_help => {
            print!("{}", watch::HELP);
            Ok(())
        }
        "serve" => serve::run(rest),
        "demo" => demo::run(rest),
        "publish" => return publish::run(rest),
        "watch" => return watch::run(rest),
        "bench" => return bench::main(rest),
        other => Err(format!("unknown command {other:?}\n\n{TOP_HELP}")),
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("sse-progress: {message}");
            2
        }
    }
}
