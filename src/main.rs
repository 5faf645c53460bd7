//! The `sse-progress` binary: hands its arguments to [`sse_progress::cli`].

fn main() {
    std::process::exit(sse_progress::cli::main(std::env::args().skip(1).collect()));
}
