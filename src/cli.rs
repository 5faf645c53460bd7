//! The command line (stub until written).
/// Runs the command line.
pub fn main(_args: Vec<String>) -> i32 { 0 }
