//! The `sse-progress` binary: the command line (`cli/`), built on the library's public API only.

mod cli;

fn main() {
    std::process::exit(cli::main(std::env::args().skip(1).collect()));
}
