//! Server-sent events: the encoder, the per-task fan-out, and the viewer's stream loop.

pub mod encoder;
pub mod stream;
pub mod topic;
