//! `GET /`: the live dashboard, for the demo and for operators of a running server.
//!
//! The page is embedded in the binary (no files beside it, no CDN, no framework) and follows every
//! task over one all-tasks stream through the client module the server serves at
//! `/client/sse-progress.js`: a browser allows six HTTP/1.1 connections per origin, so a page
//! with a stream per task would stall from the seventh task on.

use crate::http::response::{Body, Response};

/// The dashboard: markup, style and a module script in one file.
const PAGE: &str = include_str!("dashboard.html");

/// The page.
pub fn page() -> Response {
    Response {
        status: 200,
        headers: vec![
            ("Content-Type", "text/html; charset=utf-8".into()),
            // A server upgraded in place serves its own page, not a cached older one.
            ("Cache-Control", "no-cache".into()),
            ("X-Content-Type-Options", "nosniff".into()),
        ],
        body: Body::Bytes(PAGE.as_bytes().to_vec()),
    }
}
