//! One file per route family; each turns a parsed request into an answer.

pub mod cors;
pub mod health;
pub mod index;
pub mod progress;
pub mod task_body;
pub mod tasks;
