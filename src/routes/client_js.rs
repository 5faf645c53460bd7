//! `GET /client/sse-progress.js`: the browser client module (`clients/js/sse-progress.js`, the
//! npm package's file byte for byte), for pages without a bundler.
//!
//! Embedded in the binary, so the server needs no files around it, and the page and the client
//! always come from the same build. `Cache-Control: no-cache` makes a browser ask again each time
//! (an upgraded server is picked up at once); the module is small.

use crate::http::response::{Body, Response};

/// The module, as the package ships it.
pub const MODULE: &str = include_str!("../../clients/js/sse-progress.js");

/// The module's answer.
pub fn module() -> Response {
    Response {
        status: 200,
        headers: vec![("Content-Type", "text/javascript; charset=utf-8".into()), ("Cache-Control", "no-cache".into())],
        body: Body::Bytes(MODULE.as_bytes().to_vec()),
    }
}
