//! One file per route family; each turns a parsed request into an answer.

pub mod client_js;
pub mod cors;
pub mod health;
pub mod index;
pub mod progress;
pub mod progress_many;
pub mod task_body;
pub mod tasks;
